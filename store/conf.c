/*
 * conf.c - the configuration file parser.
 *
 * One table, conf_keywords[], maps every keyword to a field of struct conf
 * and the kind of value it takes; conf_parse_line() looks the keyword up
 * (case-insensitively), parses the value by kind and stores it. Repeatable
 * keywords (ListenHTTP, ListenSSH, ListenAdmin, HostKey) append, and the
 * first occurrence in a file replaces the default list. Values may be
 * double-quoted, with \" and \\ escapes, so paths with spaces work.
 *
 * Defaults that depend on DataDir (Catalog, HostKey, SpoolDir) are derived
 * after the whole file is read, so the order of lines does not matter.
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "penalty.h"
#include "schedule.h"

enum conf_kind {
	K_STR,          /* string into char[size] */
	K_INT,          /* int within [min, max] */
	K_BOOL,         /* yes|no|true|false|on|off|1|0 */
	K_SIZE,         /* uint64_t with K/M/G/T suffix */
	K_LOGLEVEL,     /* error|warn|info|debug */
	K_LISTEN,       /* repeatable struct conf_listen */
	K_PATHLIST,     /* repeatable host key path */
	K_FORMAT,       /* archive format: tar.xz|tar.zst */
	K_SCHEDULE,     /* crontab(5) schedule, or off|none = "" */
	K_CHECKED,      /* string into char[size], checked by CHECK */
	K_STARTUPS,     /* struct conf_startups: start:rate:full or N */
};

struct conf_keyword {
	const char *name;
	enum conf_kind kind;
	size_t offset;  /* of the field in struct conf */
	size_t size;    /* of a string field */
	long min, max;  /* for K_INT */
	size_t count_offset; /* for repeatable kinds: the n_ field */
	int (*check)(const char *val, char *err, size_t errlen); /* K_CHECKED */
};

#define F(field) offsetof(struct conf, field)
#define S(field) sizeof(((struct conf *)0)->field)
#define STR(kw, field) { kw, K_STR, F(field), S(field), 0, 0, 0, NULL }
#define INT(kw, field, lo, hi) { kw, K_INT, F(field), 0, lo, hi, 0, NULL }
#define BOOL(kw, field) { kw, K_BOOL, F(field), 0, 0, 1, 0, NULL }
#define CHECKED(kw, field, fn) { kw, K_CHECKED, F(field), S(field), 0, 0, 0, fn }

/* The penalty keywords are checked with the parser that will use them. */
static int check_penalties(const char *v, char *err, size_t errlen)
{
	struct penalty_settings ps;
	penalty_defaults(&ps);
	return penalty_parse(&ps, v, NULL, NULL, err, errlen);
}

static int check_exempt(const char *v, char *err, size_t errlen)
{
	struct penalty_settings ps;
	penalty_defaults(&ps);
	return penalty_parse(&ps, NULL, v, NULL, err, errlen);
}

static int check_netblock(const char *v, char *err, size_t errlen)
{
	struct penalty_settings ps;
	penalty_defaults(&ps);
	return penalty_parse(&ps, NULL, NULL, v, err, errlen);
}

static const struct conf_keyword conf_keywords[] = {
	STR("DataDir", data_dir),
	STR("Catalog", catalog),
	{ "HostKey", K_PATHLIST, F(host_keys), S(host_keys[0]), 0,
	  CONF_MAX_HOSTKEYS, F(n_host_keys), NULL },
	STR("PidFile", pid_file),
	{ "LogLevel", K_LOGLEVEL, F(log_level), 0, 0, 0, 0, NULL },
	{ "ListenHTTP", K_LISTEN, F(http), 0, 0, CONF_MAX_LISTEN, F(n_http), NULL },
	{ "ListenSSH", K_LISTEN, F(ssh), 0, 0, CONF_MAX_LISTEN, F(n_ssh), NULL },
	{ "ListenAdmin", K_LISTEN, F(admin), 0, 0, CONF_MAX_LISTEN, F(n_admin), NULL },
	STR("PublicURL", public_url),
	STR("AttachmentKey", attachment_key),
	INT("TimeTolerance", time_tolerance, 1, 86400),
	BOOL("RequireKeyForGet", require_key_for_get),
	{ "MaxUploadSize", K_SIZE, F(max_upload_size), 0, 0, 0, 0, NULL },
	INT("MaxThumbnailScale", max_thumbnail_scale, 16, 16384),
	INT("ThumbnailConcurrency", thumbnail_concurrency, 0, 256),
	STR("DefaultClient", default_client),
	BOOL("StaticFiles", static_files),
	STR("TLSCertificate", tls_certificate),
	STR("TLSKey", tls_key),
	INT("HTTPThreads", http_threads, 1, 1024),
	INT("HTTPMaxConnections", http_max_connections, 1, 1000000),
	INT("HTTPTimeout", http_timeout, 1, 86400),
	INT("HTTPHeaderTimeout", http_header_timeout, 1, 3600),
	INT("HTTPMaxConnectionsPerSource", http_max_per_source, 0, 1000000),
	{ "HTTPMaxHeaderSize", K_SIZE, F(http_max_header_size), 0, 0, 0, 0,
	  NULL },
	INT("MaxAuthTries", max_auth_tries, 1, 100),
	INT("LoginGraceTime", login_grace_time, 1, 3600),
	INT("MaxConnections", max_connections, 1, 100000),
	INT("MaxSessions", max_sessions, 1, 1000),
	INT("PerSourceMaxStartups", max_startups_per_source, 1, 100000),
	{ "MaxStartups", K_STARTUPS, F(max_startups), 0, 0, 0, 0, NULL },
	INT("IdleTimeout", idle_timeout, 0, 7 * 86400),
	STR("SpoolDir", spool_dir),
	CHECKED("PerSourcePenalties", per_source_penalties, check_penalties),
	CHECKED("PerSourcePenaltyExemptList", penalty_exempt, check_exempt),
	CHECKED("PerSourceNetBlockSize", net_block_size, check_netblock),
	{ "SyncSchedule", K_SCHEDULE, F(sync_schedule), S(sync_schedule), 0, 0, 0, NULL },
	{ "ArchiveSchedule", K_SCHEDULE, F(archive_schedule), S(archive_schedule),
	  0, 0, 0, NULL },
	INT("ArchiveKeep", archive_keep, 1, 10000),
	STR("ArchiveLocation", archive_location),
	{ "ArchiveFormat", K_FORMAT, F(archive_format), S(archive_format), 0, 0, 0, NULL },
	INT("SyncConcurrency", sync_concurrency, 1, 1024),
	STR("AwsPrincipal", aws_principal),
	INT("ShutdownGrace", shutdown_grace, 0, 86400),
	BOOL("ReusePort", reuse_port),
	STR("AuditDir", audit_dir),
	INT("AuditRetentionDays", audit_retention_days, 0, 100000),
};

#define N_KEYWORDS (sizeof conf_keywords / sizeof conf_keywords[0])
_Static_assert(N_KEYWORDS <= 64, "conf_seen_repeat has one bit per keyword");

size_t conf_keyword_count(void)
{
	return N_KEYWORDS;
}

const char *conf_keyword_name(size_t i)
{
	return i < N_KEYWORDS ? conf_keywords[i].name : NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The ThumbnailConcurrency default, also what "0" means in a file. */
static int conf_cores(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	return cores > 0 ? (int)(cores > 256 ? 256 : cores) : 2;
}

void conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->data_dir, sizeof c->data_dir, "var");
	c->log_level = LOG_LVL_INFO;
	c->http[0].port = 8080;
	c->n_http = 1;
	c->ssh[0].port = 2222;
	c->n_ssh = 1;
	snprintf(c->admin[0].host, sizeof c->admin[0].host, "127.0.0.1");
	c->admin[0].port = 9180;
	c->n_admin = 1;
	c->time_tolerance = 150;
	c->max_thumbnail_scale = 1024;
	c->thumbnail_concurrency = conf_cores();
	c->http_threads = 8;
	c->http_max_connections = 1024;
	c->http_timeout = 60;
	c->http_header_timeout = 20;
	c->http_max_per_source = 256;
	c->http_max_header_size = 64 * 1024;
	c->max_auth_tries = 6;
	c->login_grace_time = 120;
	c->max_connections = 1000;
	c->max_sessions = 10;
	c->max_startups_per_source = 10;
	c->max_startups.start = 10;
	c->max_startups.rate = 30;
	c->max_startups.full = 100;
	c->archive_keep = 4;
	snprintf(c->archive_format, sizeof c->archive_format, "tar.xz");
	c->sync_concurrency = 32;
	c->shutdown_grace = 30;
	c->audit_retention_days = 365;
}

int conf_audit_dir_default(const char *catalog, char *out, size_t len)
{
	const char *slash = strrchr(catalog, '/');
	int n;
	if (!slash)
		n = snprintf(out, len, "audit");
	else if (slash == catalog)
		n = snprintf(out, len, "/audit");
	else
		n = snprintf(out, len, "%.*s/audit", (int)(slash - catalog),
			     catalog);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int conf_parse_listen(const char *s, struct conf_listen *out)
{
	memset(out, 0, sizeof *out);
	const char *port;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof out->host)
			return -1;
		memcpy(out->host, s + 1, (size_t)(end - s - 1));
		port = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon) {
			if (strchr(s, ':') != colon)
				return -1; /* bare IPv6 needs brackets */
			size_t hl = (size_t)(colon - s);
			if (hl >= sizeof out->host)
				return -1;
			memcpy(out->host, s, hl);
			port = colon + 1;
		} else {
			port = s;
		}
	}
	if (strcmp(out->host, "*") == 0)
		out->host[0] = '\0';
	if (!*port)
		return -1;
	char *end;
	errno = 0;
	long p = strtol(port, &end, 10);
	if (errno || *end || p < 0 || p > 65535)
		return -1;
	out->port = (int)p;
	return 0;
}

int conf_parse_size(const char *s, uint64_t *out)
{
	if (!isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	default: return -1;
	}
	if (*end) {
		end++;
		if (toupper((unsigned char)*end) == 'B' || toupper((unsigned char)*end) == 'I')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return -1;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/* A whole decimal number from *P, stopping at END_CH (':' or '\0');
 * advances *P past it. 0 or -1. */
static int startups_part(const char **p, char end_ch, long *out)
{
	const char *s = *p;
	if (!isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end != end_ch || v > INT_MAX)
		return -1;
	*out = v;
	*p = *end ? end + 1 : end;
	return 0;
}

int conf_parse_startups(const char *s, struct conf_startups *out, char *err,
			size_t errlen)
{
	const char *p = s;
	long start = 0, rate = 100, full = 0;
	int bad;
	if (strchr(s, ':')) {
		bad = startups_part(&p, ':', &start) < 0 ||
		      startups_part(&p, ':', &rate) < 0 ||
		      startups_part(&p, '\0', &full) < 0;
	} else {
		bad = startups_part(&p, '\0', &start) < 0;
		full = start;
	}
	if (bad) {
		set_err(err, errlen, "'%s' is not start:rate:full (like "
			"10:30:100) or a number", s);
		return -1;
	}
	if (start < 1 || full > 100000) {
		set_err(err, errlen, "'%s': start and full must be from 1 to "
			"100000", s);
		return -1;
	}
	if (rate < 1 || rate > 100) {
		set_err(err, errlen, "'%s': rate must be a percentage from 1 "
			"to 100", s);
		return -1;
	}
	if (start > full) {
		set_err(err, errlen, "'%s': start is above full", s);
		return -1;
	}
	out->start = (int)start;
	out->rate = (int)rate;
	out->full = (int)full;
	return 0;
}

static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Split LINE into keyword and value (unquoted into VAL). Returns 1 for a
 * keyword line, 0 for blank/comment, -1 on a syntax error. */
static int split_line(const char *line, char *kw, size_t kwlen, char *val,
		      size_t vallen, char *err, size_t errlen)
{
	const char *p = line;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	size_t k = 0;
	while (*p && !isspace((unsigned char)*p) && *p != '=') {
		if (k + 1 >= kwlen) {
			set_err(err, errlen, "keyword too long");
			return -1;
		}
		kw[k++] = *p++;
	}
	kw[k] = '\0';
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '=') { /* sshd_config allows "Keyword=value" */
		p++;
		while (isspace((unsigned char)*p))
			p++;
	}
	size_t v = 0;
	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
			if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			if (v + 1 >= vallen) {
				set_err(err, errlen, "value of %s too long", kw);
				return -1;
			}
			val[v++] = *p++;
		}
		if (*p != '"') {
			set_err(err, errlen, "unterminated quote in value of %s", kw);
			return -1;
		}
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p && *p != '#') {
			set_err(err, errlen, "unexpected text after the value of %s", kw);
			return -1;
		}
	} else {
		while (*p && *p != '#') {
			if (v + 1 >= vallen) {
				set_err(err, errlen, "value of %s too long", kw);
				return -1;
			}
			val[v++] = *p++;
		}
		while (v > 0 && isspace((unsigned char)val[v - 1]))
			v--;
	}
	val[v] = '\0';
	if (v == 0) {
		set_err(err, errlen, "%s needs a value", kw);
		return -1;
	}
	return 1;
}

/* Repeatable keywords: the first use in a file replaces the defaults. The
 * seen-mask lives in the conf's spare state, tracked per parse run. */
static __thread unsigned long long conf_seen_repeat;

int conf_parse_line(struct conf *c, const char *line, char *err, size_t errlen)
{
	char kw[64], val[CONF_PATH_MAX];
	int r = split_line(line, kw, sizeof kw, val, sizeof val, err, errlen);
	if (r <= 0)
		return r;
	const struct conf_keyword *k = NULL;
	size_t idx = 0;
	for (; idx < N_KEYWORDS; idx++)
		if (strcasecmp(conf_keywords[idx].name, kw) == 0) {
			k = &conf_keywords[idx];
			break;
		}
	if (!k) {
		set_err(err, errlen, "unknown keyword '%s'", kw);
		return -1;
	}
	char *field = (char *)c + k->offset;
	switch (k->kind) {
	case K_STR:
		if (strlen(val) >= k->size) {
			set_err(err, errlen, "%s: value too long (at most %zu bytes)",
				k->name, k->size - 1);
			return -1;
		}
		memcpy(field, val, strlen(val) + 1);
		return 0;
	case K_INT: {
		char *end;
		errno = 0;
		long n = strtol(val, &end, 10);
		if (errno || *end || end == val || n < k->min || n > k->max) {
			set_err(err, errlen, "%s: '%s' is not a number from %ld to %ld",
				k->name, val, k->min, k->max);
			return -1;
		}
		*(int *)field = (int)n;
		return 0;
	}
	case K_BOOL:
		if (parse_bool(val, (int *)field) < 0) {
			set_err(err, errlen, "%s: '%s' is not yes or no", k->name, val);
			return -1;
		}
		return 0;
	case K_SIZE:
		if (conf_parse_size(val, (uint64_t *)field) < 0) {
			set_err(err, errlen, "%s: '%s' is not a size (like 512M or 2G)",
				k->name, val);
			return -1;
		}
		return 0;
	case K_LOGLEVEL: {
		int lvl = log_level_parse(val);
		if (lvl < 0) {
			set_err(err, errlen, "%s: '%s' is not error, warn, info or debug",
				k->name, val);
			return -1;
		}
		*(int *)field = lvl;
		return 0;
	}
	case K_CHECKED: {
		char why[200] = "";
		if (strlen(val) >= k->size) {
			set_err(err, errlen, "%s: value too long (at most %zu bytes)",
				k->name, k->size - 1);
			return -1;
		}
		if (k->check(val, why, sizeof why) < 0) {
			set_err(err, errlen, "%s: %s", k->name, why);
			return -1;
		}
		memcpy(field, val, strlen(val) + 1);
		return 0;
	}
	case K_STARTUPS: {
		char why[200];
		if (conf_parse_startups(val, (struct conf_startups *)field, why,
					sizeof why) < 0) {
			set_err(err, errlen, "%s: %s", k->name, why);
			return -1;
		}
		return 0;
	}
	case K_FORMAT:
		if (strcmp(val, "tar.xz") && strcmp(val, "tar.zst")) {
			set_err(err, errlen, "%s: '%s' is not tar.xz or tar.zst",
				k->name, val);
			return -1;
		}
		memcpy(field, val, strlen(val) + 1);
		return 0;
	case K_SCHEDULE: {
		if (strcasecmp(val, "off") == 0 || strcasecmp(val, "none") == 0) {
			field[0] = '\0';
			return 0;
		}
		struct schedule sched;
		char why[200];
		if (strlen(val) >= k->size) {
			set_err(err, errlen, "%s: value too long", k->name);
			return -1;
		}
		if (schedule_parse(val, &sched, why, sizeof why) < 0) {
			set_err(err, errlen, "%s: '%s' is not a schedule: %s",
				k->name, val, why);
			return -1;
		}
		memcpy(field, val, strlen(val) + 1);
		return 0;
	}
	case K_LISTEN:
	case K_PATHLIST: {
		int *n = (int *)((char *)c + k->count_offset);
		if (!(conf_seen_repeat & (1ull << idx))) {
			conf_seen_repeat |= 1ull << idx;
			*n = 0;
		}
		if (*n >= k->max) {
			set_err(err, errlen, "%s: at most %ld may be given", k->name, k->max);
			return -1;
		}
		if (k->kind == K_LISTEN) {
			struct conf_listen *l = (struct conf_listen *)field + *n;
			if (conf_parse_listen(val, l) < 0) {
				set_err(err, errlen,
					"%s: '%s' is not an address (host:port, [v6]:port, *:port or port)",
					k->name, val);
				return -1;
			}
		} else {
			char *slot = field + (size_t)*n * k->size;
			if (strlen(val) >= k->size) {
				set_err(err, errlen, "%s: path too long", k->name);
				return -1;
			}
			memcpy(slot, val, strlen(val) + 1);
		}
		(*n)++;
		return 0;
	}
	}
	set_err(err, errlen, "%s: internal error", k->name);
	return -1;
}

/* Fill the defaults that are derived from DataDir. */
int conf_finish(struct conf *c, char *err, size_t errlen)
{
	int n = 0;
	if (c->catalog[0] == '\0')
		n = snprintf(c->catalog, sizeof c->catalog, "%s/assetd.db", c->data_dir);
	if (n < 0 || (size_t)n >= sizeof c->catalog)
		goto toolong;
	if (c->n_host_keys == 0) {
		n = snprintf(c->host_keys[0], sizeof c->host_keys[0],
			     "%s/ssh_host_ed25519_key", c->data_dir);
		if (n < 0 || (size_t)n >= sizeof c->host_keys[0])
			goto toolong;
		n = snprintf(c->host_keys[1], sizeof c->host_keys[1],
			     "%s/ssh_host_rsa_key", c->data_dir);
		if (n < 0 || (size_t)n >= sizeof c->host_keys[1])
			goto toolong;
		c->n_host_keys = 2;
	}
	if (c->spool_dir[0] == '\0') {
		n = snprintf(c->spool_dir, sizeof c->spool_dir, "%s/spool", c->data_dir);
		if (n < 0 || (size_t)n >= sizeof c->spool_dir)
			goto toolong;
	}
	if (c->audit_dir[0] == '\0' &&
	    conf_audit_dir_default(c->catalog, c->audit_dir,
				   sizeof c->audit_dir) != 0)
		goto toolong;
	if (c->thumbnail_concurrency == 0)
		c->thumbnail_concurrency = conf_cores();
	if (c->tls_certificate[0] && !c->tls_key[0]) {
		set_err(err, errlen, "TLSCertificate is set but TLSKey is not");
		return -1;
	}
	if (c->tls_key[0] && !c->tls_certificate[0]) {
		set_err(err, errlen, "TLSKey is set but TLSCertificate is not");
		return -1;
	}
	return 0;
toolong:
	set_err(err, errlen, "DataDir is too long");
	return -1;
}

int conf_load(const char *path, struct conf *c, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	conf_seen_repeat = 0;
	char line[CONF_PATH_MAX + 128];
	char msg[512];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof line - 1 && line[len - 1] != '\n') {
			set_err(err, errlen, "%s:%d: line too long", path, lineno);
			rc = -1;
			break;
		}
		if (conf_parse_line(c, line, msg, sizeof msg) < 0) {
			set_err(err, errlen, "%s:%d: %s", path, lineno, msg);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		set_err(err, errlen, "%s: read error", path);
		rc = -1;
	}
	fclose(f);
	if (rc == 0 && conf_finish(c, msg, sizeof msg) < 0) {
		set_err(err, errlen, "%s: %s", path, msg);
		rc = -1;
	}
	return rc;
}
