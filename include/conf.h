/*
 * conf.h - the daemon's configuration file.
 *
 * "Keyword value" lines in the style of sshd_config: '#' starts a comment,
 * keywords are case-insensitive, a value may be double-quoted. An unknown
 * keyword, a bad value or a missing file is one error naming FILE:LINE.
 * Every keyword, its default and its meaning are listed in
 * etc/assetd.conf.sample and man/assetd.conf.5; conf.c holds the one table
 * that maps keywords to the fields below.
 *
 * Relative paths in the file are taken relative to the directory the daemon
 * was started in (like nginx's prefix, the "embedded" setup uses ./var).
 */
#ifndef ASSETD_CONF_H
#define ASSETD_CONF_H

#include <stddef.h>
#include <stdint.h>

#define CONF_PATH_MAX 1024
#define CONF_MAX_LISTEN 8
#define CONF_MAX_HOSTKEYS 4

/* A listening address: "127.0.0.1:8080", "[::1]:2222", "*:2222",
 * "8080" (= all addresses). */
struct conf_listen {
	char host[256];                 /* "" = any */
	int port;
};

/* MaxStartups start:rate:full, as in OpenSSH: once START connections are
 * unauthenticated, a new one is dropped with probability RATE percent,
 * rising linearly to 100% at FULL. A single number N means N:100:N. */
struct conf_startups {
	int start;                      /* 1 .. full */
	int rate;                       /* percent, 1 .. 100 */
	int full;                       /* start .. 100000 */
};

struct conf {
	/* files */
	char data_dir[CONF_PATH_MAX];   /* DataDir, default "var" */
	char catalog[CONF_PATH_MAX];    /* Catalog, default DataDir/assetd.db */
	char host_keys[CONF_MAX_HOSTKEYS][CONF_PATH_MAX]; /* HostKey (repeat) */
	int n_host_keys;                /* default: ssh_host_ed25519_key and
					   ssh_host_rsa_key under DataDir */
	char pid_file[CONF_PATH_MAX];   /* PidFile, "" = none */

	/* logging */
	int log_level;                  /* LogLevel: LOG_ERROR..LOG_DEBUG */

	/* listeners; port 0 in a test means "pick one and log it" */
	struct conf_listen http[CONF_MAX_LISTEN]; /* ListenHTTP, default *:8080 */
	int n_http;
	struct conf_listen ssh[CONF_MAX_LISTEN];  /* ListenSSH, default *:2222 */
	int n_ssh;
	struct conf_listen admin[CONF_MAX_LISTEN]; /* ListenAdmin, default
						     127.0.0.1:9180 */
	int n_admin;

	/* HTTP / Specify */
	char public_url[CONF_PATH_MAX]; /* PublicURL, "" = from the request */
	char attachment_key[256];       /* AttachmentKey: the server's key */
	int time_tolerance;             /* TimeTolerance seconds, 150 */
	int require_key_for_get;        /* RequireKeyForGet yes|no, no */
	uint64_t max_upload_size;       /* MaxUploadSize bytes, 0 = no limit;
					   accepts K/M/G/T suffixes */
	int max_thumbnail_scale;        /* MaxThumbnailScale, 1024 */
	int thumbnail_concurrency;      /* ThumbnailConcurrency, = cores
					   (0 in a file = cores) */
	char default_client[64];        /* DefaultClient, "" = none */
	int static_files;               /* StaticFiles yes|no, no: getfileref
					   and /static/ */
	char tls_certificate[CONF_PATH_MAX]; /* TLSCertificate */
	char tls_key[CONF_PATH_MAX];    /* TLSKey */
	int http_threads;               /* HTTPThreads, default 8 */
	int http_max_connections;       /* HTTPMaxConnections, 1024 */
	int http_timeout;               /* HTTPTimeout seconds (idle), 60 */
	int http_header_timeout;        /* HTTPHeaderTimeout seconds to send a
					   request's headers, 20 */
	int http_max_per_source;        /* HTTPMaxConnectionsPerSource, 256;
					   0 = no limit */
	uint64_t http_max_header_size;  /* HTTPMaxHeaderSize bytes, 64K */

	/* SSH */
	int max_auth_tries;             /* MaxAuthTries, 6 */
	int login_grace_time;           /* LoginGraceTime seconds, 120 */
	int max_connections;            /* MaxConnections: SSH connections at
					   once, in all, 1000 */
	int max_sessions;               /* MaxSessions: session channels at
					   once on one connection, 10 */
	int max_startups_per_source;    /* PerSourceMaxStartups, 10 */
	struct conf_startups max_startups; /* MaxStartups, 10:30:100: all
					   unauthenticated connections */
	int idle_timeout;               /* IdleTimeout seconds, 0 = none */
	char spool_dir[CONF_PATH_MAX];  /* SpoolDir, default DataDir/spool:
					   out-of-order SFTP writes */

	/* per-source penalties, SSH and HTTP (penalty.h parses them) */
	char per_source_penalties[256]; /* PerSourcePenalties, "" = defaults */
	char penalty_exempt[2048];      /* PerSourcePenaltyExemptList, "" =
					   none */
	char net_block_size[32];        /* PerSourceNetBlockSize, "" = 32:64 */

	/* backups */
	char sync_schedule[128];        /* SyncSchedule cron form, "" = off */
	char archive_schedule[128];     /* ArchiveSchedule, "" = off */
	int archive_keep;               /* ArchiveKeep, 4 */
	char archive_location[CONF_PATH_MAX]; /* ArchiveLocation URL, "" =
					   DataDir/archives (fs) */
	char archive_format[16];        /* ArchiveFormat tar.xz|tar.zst */
	int sync_concurrency;           /* SyncConcurrency, 32 */

	/* AWS */
	char aws_principal[512];        /* AwsPrincipal ARN for bucket policy */

	/* service */
	int shutdown_grace;             /* ShutdownGrace seconds, 30 */
	int reuse_port;                 /* ReusePort yes|no, no: SO_REUSEPORT
					   on the listeners, so a new instance
					   can bind the same ports */

	/* audit log */
	char audit_dir[CONF_PATH_MAX];  /* AuditDir, default "audit" beside
					   the catalog; "off" = no audit log */
	int audit_retention_days;       /* AuditRetentionDays, 365; 0 = keep
					   every day */
};

/* Log levels, shared with log.h. */
enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };

/* Fill C with every default. */
void conf_defaults(struct conf *c);

/* Read PATH over the defaults in C. Returns 0, or -1 with ERR holding
 * "PATH:LINE: message" (or "PATH: message"). */
int conf_load(const char *path, struct conf *c, char *err, size_t errlen);

/* Derive what depends on DataDir (Catalog, HostKey, SpoolDir) where not
 * set, and check combinations. conf_load() calls it; a program running on
 * the defaults alone calls it after conf_defaults(). 0 or -1 with ERR. */
int conf_finish(struct conf *c, char *err, size_t errlen);

/* Parse one "Keyword value" line into C (used by conf_load and tests).
 * Returns 0, or -1 with a message in ERR (without file:line). Blank and
 * comment lines return 0. */
int conf_parse_line(struct conf *c, const char *line, char *err,
		    size_t errlen);

/* Parse "host:port", "[v6]:port", "*:port" or "port". 0 or -1. */
int conf_parse_listen(const char *s, struct conf_listen *out);

/* The keywords of the table, in order: for tests that keep the sample file
 * and the manual page in step with the parser. NULL past the end. */
size_t conf_keyword_count(void);
const char *conf_keyword_name(size_t i);

/* The default AuditDir for CATALOG: "audit" in the catalog's directory.
 * 0 or -1 if it does not fit. */
int conf_audit_dir_default(const char *catalog, char *out, size_t len);

/* Parse a MaxStartups value, "start:rate:full" or "N" (= N:100:N), into
 * OUT. 0, or -1 with a message in ERR. */
int conf_parse_startups(const char *s, struct conf_startups *out, char *err,
			size_t errlen);

/* Parse a size with optional K/M/G/T suffix (binary). 0 or -1. */
int conf_parse_size(const char *s, uint64_t *out);

#endif
