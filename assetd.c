/*
 * assetd.c - the daemon: configuration -> catalog -> HTTP + SSH front ends.
 *
 * main() parses the options, loads the configuration (one clear error naming
 * file:line and exit 1 if it is bad, before anything is started), then, for
 * -t, checks the configuration and the catalog and exits; otherwise it opens
 * the catalog and the tenant cache, creates missing host keys, starts the
 * HTTP and SSH front ends, writes the pid file, tells systemd it is ready
 * and runs the main loop in the foreground (systemd style: no fork).
 *
 * Signals are blocked in every thread and read from a signalfd in the main
 * loop, so no work ever happens in a signal handler:
 *   SIGTERM, SIGINT  stop accepting and let work in flight finish for up to
 *                    ShutdownGrace seconds (both front ends drain at once,
 *                    from a stopper thread; a second signal forces the exit);
 *   SIGHUP           re-read the configuration: a bad file is refused with a
 *                    log line and the running configuration kept; a good one
 *                    is applied (log level, http_reload, sshd_reload).
 * Settings that name files or sockets the running process holds (DataDir,
 * Catalog, HostKey, PidFile, SpoolDir, the listeners) are restart-only: a
 * reload logs each one that changed and keeps the running value, the way
 * PostgreSQL treats its server-start parameters.
 *
 * sd_notify is spoken by hand over $NOTIFY_SOCKET (one datagram per state
 * change), so there is no libsystemd dependency.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "audit.h"
#include "catalog.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "schedule.h"
#include "sshd.h"
#include "tenant.h"

#ifndef ASSETD_SYSCONFDIR
#define ASSETD_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF_PATH ASSETD_SYSCONFDIR "/assetd/assetd.conf"

/* How long a client's catalog row is trusted by the tenant cache: assetctl
 * changes reach the front ends within this many seconds. */
#define TENANT_TTL_SECONDS 5

/* Extra seconds past ShutdownGrace before a stuck shutdown is forced. */
#define SHUTDOWN_SLACK_SECONDS 10

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

struct options {
	const char *conf_path;  /* -f, or NULL */
	int test_only;          /* -t */
	int debug;              /* -d: debug logging, kept across reloads */
};

struct daemon {
	struct options opt;
	struct conf conf;               /* the running configuration */
	char conf_source[CONF_PATH_MAX]; /* the file read, "" = built-in */
	struct catalog *cat;
	struct tenant_cache *tc;
	struct schedule_runner *sched; /* SyncSchedule / ArchiveSchedule */
	struct http_server *http;
	struct sshd_server *sshd;
	struct admin_server *admin;     /* /metrics and /healthz */
	int sigfd;
	int pid_written;                /* 1 once conf.pid_file holds our pid */
};

/* ---- options and configuration ------------------------------------- */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: assetd [-dhtV] [-f config_file]\n"
		"  -f FILE  read FILE instead of %s\n"
		"           (built-in defaults, ./var, if that does not exist)\n"
		"  -t       check the configuration and the catalog, then exit\n"
		"  -d       debug logging (stays on across reloads)\n"
		"  -V       print the version and exit\n"
		"  -h       this help\n",
		DEFAULT_CONF_PATH);
}

/* Which file to read: -f FILE, else the system file if it exists, else none
 * (SOURCE = ""). */
static void conf_source(const struct options *opt, char *source, size_t len)
{
	if (opt->conf_path)
		snprintf(source, len, "%s", opt->conf_path);
	else if (access(DEFAULT_CONF_PATH, F_OK) == 0)
		snprintf(source, len, "%s", DEFAULT_CONF_PATH);
	else
		source[0] = '\0';
}

/* Load SOURCE (or the defaults if "") into C. 0 or -1 with ERR. */
static int load_config(const char *source, struct conf *c, char *err,
		       size_t errlen)
{
	conf_defaults(c);
	if (source[0] == '\0')
		return conf_finish(c, err, errlen);
	return conf_load(source, c, err, errlen);
}

/* ---- systemd notification ------------------------------------------ */

/* Send STATE to the service manager if it asked for notifications. Errors
 * are logged at debug level and otherwise ignored: a daemon must run the
 * same with or without systemd. */
static void notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path) {
		log_warn("notify_failed", "reason=%s",
			 log_q("NOTIFY_SOCKET is not a unix socket path"));
		return;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* Linux abstract namespace */
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				      len + (path[0] == '/'));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_debug("notify_failed", "reason=%s", log_q(strerror(errno)));
		return;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		   (const struct sockaddr *)&sa, salen) < 0)
		log_debug("notify_failed", "reason=%s", log_q(strerror(errno)));
	close(fd);
}

/* RELOADING=1 carries the monotonic time so that systemd's notify-reload
 * type (253+) can match it; older managers ignore the extra field. */
static void notify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char msg[96];
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull +
			 (unsigned long long)ts.tv_nsec / 1000ull);
	notify(msg);
}

/* ---- files ---------------------------------------------------------- */

/* mkdir -p PATH; parents get 0755 (less the umask), PATH itself MODE. An
 * existing directory is left as it is. 0 or -errno. */
static int make_dirs(const char *path, mode_t mode)
{
	char buf[CONF_PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return -ENAMETOOLONG;
	size_t n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0) {
		if (errno != EEXIST)
			return -errno;
		struct stat st;
		if (stat(buf, &st) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
	}
	return 0;
}

/* Write our pid to PATH through a temp file and rename(), so that a reader
 * never sees an empty pid file. 0 or -errno. */
static int pidfile_write(const char *path)
{
	char tmp[CONF_PATH_MAX + 16];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	char line[32];
	int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
	int rc = 0;
	if (write(fd, line, (size_t)len) != len)
		rc = -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* Remove PATH only if it still names this process: a second instance that
 * took the file over keeps it. */
static void pidfile_remove(const char *path)
{
	char line[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, line, sizeof line - 1);
	close(fd);
	if (n <= 0)
		return;
	line[n] = '\0';
	if (strtol(line, NULL, 10) == (long)getpid())
		unlink(path);
}

/* ---- -t: check and exit --------------------------------------------- */

static int readable(const char *path)
{
	return access(path, R_OK) == 0;
}

/* Check the configuration (already loaded) and the catalog; print what was
 * checked or why it failed on stderr. Returns the exit code. */
static int check_only(const struct daemon *d)
{
	const struct conf *c = &d->conf;
	if (d->conf_source[0])
		fprintf(stderr, "assetd: configuration %s: ok\n", d->conf_source);
	else
		fprintf(stderr,
			"assetd: no configuration file (%s does not exist): "
			"built-in defaults\n",
			DEFAULT_CONF_PATH);
	if (c->tls_certificate[0] && !readable(c->tls_certificate)) {
		fprintf(stderr, "assetd: TLSCertificate %s: %s\n",
			c->tls_certificate, strerror(errno));
		return EXIT_ERROR;
	}
	if (c->tls_key[0] && !readable(c->tls_key)) {
		fprintf(stderr, "assetd: TLSKey %s: %s\n", c->tls_key,
			strerror(errno));
		return EXIT_ERROR;
	}
	for (int i = 0; i < c->n_host_keys; i++) {
		if (access(c->host_keys[i], F_OK) < 0)
			fprintf(stderr,
				"assetd: HostKey %s: missing, created at start\n",
				c->host_keys[i]);
		else if (!readable(c->host_keys[i])) {
			fprintf(stderr, "assetd: HostKey %s: %s\n",
				c->host_keys[i], strerror(errno));
			return EXIT_ERROR;
		}
	}
	if (access(c->catalog, F_OK) < 0) {
		/* Creating it here would be a side effect of a check. */
		fprintf(stderr,
			"assetd: catalog %s: does not exist yet, created at "
			"start\n",
			c->catalog);
		fprintf(stderr, "assetd: check ok\n");
		return EXIT_OK;
	}
	struct catalog *cat = NULL;
	char err[512] = "";
	if (catalog_open(c->catalog, &cat, err, sizeof err) < 0) {
		fprintf(stderr, "assetd: catalog %s: %s\n", c->catalog,
			err[0] ? err : "cannot open");
		return EXIT_ERROR;
	}
	int rc = catalog_check(cat);
	if (rc < 0)
		fprintf(stderr, "assetd: catalog %s: integrity check failed: %s\n",
			c->catalog, catalog_errmsg(cat));
	else
		fprintf(stderr, "assetd: catalog %s: ok\n", c->catalog);
	catalog_close(cat);
	if (rc < 0)
		return EXIT_ERROR;
	fprintf(stderr, "assetd: check ok\n");
	return EXIT_OK;
}

/* ---- listeners in log lines ----------------------------------------- */

/* "127.0.0.1:8080,[::1]:8080" of the ports actually bound; "none" if no
 * listener is bound. */
static void format_bound(char *out, size_t outlen,
			 const struct conf_listen *l, int n,
			 int (*port_of)(const void *srv, int i),
			 const void *srv)
{
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < n && o < outlen; i++) {
		int port = port_of(srv, i);
		if (port <= 0)
			continue;
		const char *h = l[i].host[0] ? l[i].host : "*";
		int v6 = strchr(h, ':') != NULL;
		int w = snprintf(out + o, outlen - o, "%s%s%s%s:%d",
				 o ? "," : "", v6 ? "[" : "", h, v6 ? "]" : "",
				 port);
		if (w < 0 || (size_t)w >= outlen - o)
			break;
		o += (size_t)w;
	}
	if (o == 0)
		snprintf(out, outlen, "none");
}

static int http_port_of(const void *srv, int i)
{
	return http_port((const struct http_server *)srv, i);
}

static int sshd_port_of(const void *srv, int i)
{
	return sshd_port((const struct sshd_server *)srv, i);
}

static int admin_port_of(const void *srv, int i)
{
	return admin_port((const struct admin_server *)srv, i);
}

/* "127.0.0.1:8080,[::1]:8080" of the configured addresses. */
static void format_listen(char *out, size_t outlen,
			  const struct conf_listen *l, int n)
{
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < n && o < outlen; i++) {
		const char *h = l[i].host[0] ? l[i].host : "*";
		int v6 = strchr(h, ':') != NULL;
		int w = snprintf(out + o, outlen - o, "%s%s%s%s:%d",
				 o ? "," : "", v6 ? "[" : "", h, v6 ? "]" : "",
				 l[i].port);
		if (w < 0 || (size_t)w >= outlen - o)
			break;
		o += (size_t)w;
	}
}

/* At debug level, the settings in force (never a key or secret: only
 * whether one is set). */
static void log_config(const struct conf *c, const char *source)
{
	if (log_get_level() < LOG_LVL_DEBUG)
		return;
	char http[256], ssh[256];
	format_listen(http, sizeof http, c->http, c->n_http);
	format_listen(ssh, sizeof ssh, c->ssh, c->n_ssh);
	log_debug("config",
		  "source=%s data_dir=%s catalog=%s spool_dir=%s "
		  "listen_http=%s listen_ssh=%s attachment_key=%s "
		  "shutdown_grace=%d",
		  log_q(source[0] ? source : "(built-in)"), log_q(c->data_dir),
		  log_q(c->catalog), log_q(c->spool_dir), log_q(http),
		  log_q(ssh), c->attachment_key[0] ? "set" : "unset",
		  c->shutdown_grace);
}

/* ---- start ---------------------------------------------------------- */

/* Block the signals the main loop reads before any thread exists, so every
 * thread inherits the mask and they all arrive at the signalfd. */
static int signals_setup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL); /* peers that go away: EPIPE instead */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC);
}

static int daemon_start(struct daemon *d)
{
	const struct conf *c = &d->conf;
	char err[512] = "";
	int rc;

	log_config(c, d->conf_source);
	if ((rc = make_dirs(c->data_dir, 0700)) < 0) {
		log_error("start_failed", "what=DataDir path=%s error=%s",
			  log_q(c->data_dir), log_q(strerror(-rc)));
		return -1;
	}
	if ((rc = make_dirs(c->spool_dir, 0700)) < 0) {
		log_error("start_failed", "what=SpoolDir path=%s error=%s",
			  log_q(c->spool_dir), log_q(strerror(-rc)));
		return -1;
	}
	if (catalog_open(c->catalog, &d->cat, err, sizeof err) < 0) {
		log_error("start_failed", "what=catalog path=%s error=%s",
			  log_q(c->catalog), log_q(err));
		return -1;
	}
	if (strcmp(c->audit_dir, "off") != 0) {
		if ((rc = make_dirs(c->audit_dir, 0700)) < 0 ||
		    (rc = audit_open(c->audit_dir, c->audit_retention_days)) < 0) {
			log_error("start_failed", "what=AuditDir path=%s error=%s",
				  log_q(c->audit_dir), log_q(strerror(-rc)));
			return -1;
		}
	}
	metrics_gauge_set("assetd_start_time_seconds", (double)time(NULL), NULL);
	{
		/* S3 multipart uploads in flight are journalled, so that the
		 * next start can abort those a crash left (see
		 * store/upjournal.c; the scheduler's recovery thread). */
		char jdir[CONF_PATH_MAX + 16];
		if (store_upload_journal_dir(c->catalog, jdir, sizeof jdir) < 0 ||
		    store_upload_journal(jdir) < 0)
			log_warn("s3_journal_off", "dir=%s", log_q(jdir));
	}
	if (tenant_cache_new(d->cat, TENANT_TTL_SECONDS, &d->tc) < 0) {
		log_error("start_failed", "what=tenant_cache");
		return -1;
	}
	if (sshd_ensure_host_keys(c) < 0)
		return -1; /* the reason is logged */
	if (http_start(c, d->cat, d->tc, &d->http) < 0)
		return -1;
	if (sshd_start(c, d->cat, d->tc, &d->sshd) < 0)
		return -1;
	if (admin_start(c, d->cat, &d->admin) < 0)
		return -1;
	if (schedule_runner_start(d->cat, c, &d->sched, err, sizeof err) < 0) {
		log_error("start_failed", "what=schedule error=%s", log_q(err));
		return -1;
	}
	if (c->pid_file[0]) {
		if ((rc = pidfile_write(c->pid_file)) < 0) {
			log_error("start_failed", "what=PidFile path=%s error=%s",
				  log_q(c->pid_file), log_q(strerror(-rc)));
			return -1;
		}
		d->pid_written = 1;
	}

	char http[256], ssh[256], admin[256];
	format_bound(http, sizeof http, c->http, c->n_http, http_port_of,
		     d->http);
	format_bound(ssh, sizeof ssh, c->ssh, c->n_ssh, sshd_port_of, d->sshd);
	format_bound(admin, sizeof admin, c->admin, c->n_admin, admin_port_of,
		     d->admin);
	log_info("started",
		 "version=%s pid=%ld config=%s catalog=%s http=%s ssh=%s "
		 "admin=%s",
		 ASSETD_VERSION, (long)getpid(),
		 log_q(d->conf_source[0] ? d->conf_source : "(built-in)"),
		 log_q(c->catalog), log_q(http), log_q(ssh), log_q(admin));
	char status[600];
	snprintf(status, sizeof status, "READY=1\nSTATUS=serving http=%s ssh=%s",
		 http, ssh);
	notify(status);
	return 0;
}

/* ---- reload (SIGHUP) ------------------------------------------------ */

static int listen_equal(const struct conf_listen *a, int na,
			const struct conf_listen *b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (a[i].port != b[i].port || strcmp(a[i].host, b[i].host))
			return 0;
	return 1;
}

/* Settings the running process cannot change in place. For each that
 * differs, log it and put the running value back into NEXT. */
static void keep_restart_only(const struct conf *cur, struct conf *next)
{
#define KEEP_STR(field, kw)                                                  \
	if (strcmp(cur->field, next->field) != 0) {                          \
		log_warn("reload_needs_restart", "keyword=" kw);             \
		memcpy(next->field, cur->field, sizeof next->field);         \
	}
#define KEEP_LISTEN(field, n, kw)                                            \
	if (!listen_equal(cur->field, cur->n, next->field, next->n)) {       \
		log_warn("reload_needs_restart", "keyword=" kw);             \
		memcpy(next->field, cur->field, sizeof next->field);         \
		next->n = cur->n;                                            \
	}
	KEEP_STR(data_dir, "DataDir");
	KEEP_STR(catalog, "Catalog");
	KEEP_STR(pid_file, "PidFile");
	KEEP_STR(spool_dir, "SpoolDir");
	KEEP_STR(audit_dir, "AuditDir");
	KEEP_LISTEN(http, n_http, "ListenHTTP");
	KEEP_LISTEN(ssh, n_ssh, "ListenSSH");
	KEEP_LISTEN(admin, n_admin, "ListenAdmin");
	if (cur->reuse_port != next->reuse_port) {
		log_warn("reload_needs_restart", "keyword=ReusePort");
		next->reuse_port = cur->reuse_port;
	}
	int keys_same = cur->n_host_keys == next->n_host_keys;
	for (int i = 0; keys_same && i < cur->n_host_keys; i++)
		keys_same = strcmp(cur->host_keys[i], next->host_keys[i]) == 0;
	if (!keys_same) {
		log_warn("reload_needs_restart", "keyword=HostKey");
		memcpy(next->host_keys, cur->host_keys, sizeof next->host_keys);
		next->n_host_keys = cur->n_host_keys;
	}
#undef KEEP_STR
#undef KEEP_LISTEN
}

static void daemon_reload(struct daemon *d)
{
	char source[CONF_PATH_MAX], err[512] = "";
	static struct conf next; /* struct conf is large; main thread only */
	notify_reloading();
	conf_source(&d->opt, source, sizeof source);
	log_info("reloading", "config=%s",
		 log_q(source[0] ? source : "(built-in)"));
	if (load_config(source, &next, err, sizeof err) < 0) {
		log_error("reload_refused", "error=%s keeping=%s", log_q(err),
			  log_q("the running configuration"));
		notify("READY=1\nSTATUS=reload refused: bad configuration");
		return;
	}
	keep_restart_only(&d->conf, &next);
	log_set_level(d->opt.debug ? LOG_LVL_DEBUG : next.log_level);
	int failed = 0;
	if (http_reload(d->http, &next) < 0) {
		log_error("reload_failed", "what=http");
		failed = 1;
	}
	if (sshd_reload(d->sshd, &next) < 0) {
		log_error("reload_failed", "what=ssh");
		failed = 1;
	}
	if (next.audit_retention_days != d->conf.audit_retention_days &&
	    strcmp(next.audit_dir, "off") != 0 &&
	    audit_open(next.audit_dir, next.audit_retention_days) < 0) {
		log_error("reload_failed", "what=AuditRetentionDays");
		failed = 1;
	}
	if (schedule_runner_reload(d->sched, &next, err, sizeof err) < 0) {
		log_error("reload_failed", "what=schedule error=%s",
			  log_q(err));
		failed = 1;
	}
	d->conf = next;
	snprintf(d->conf_source, sizeof d->conf_source, "%s", source);
	log_config(&d->conf, d->conf_source);
	static const char *const level_names[] = { "error", "warn", "info",
						   "debug" };
	log_info("reloaded", "config=%s log_level=%s partial=%s",
		 log_q(source[0] ? source : "(built-in)"),
		 level_names[log_get_level()], failed ? "yes" : "no");
	notify("READY=1\nSTATUS=serving");
}

/* ---- stop (SIGTERM / SIGINT) ---------------------------------------- */

struct stopper {
	struct daemon *d;
	int grace;
	int done_fd[2];         /* written by the stopper thread when done */
};

static void *stop_sshd_thread(void *arg)
{
	struct stopper *s = arg;
	sshd_stop(s->d->sshd, s->grace);
	return NULL;
}

/* Drain both front ends at once, so the whole stop takes at most one
 * ShutdownGrace, not one per front end. */
static void *stopper_thread(void *arg)
{
	struct stopper *s = arg;
	pthread_t t;
	int have_thread = s->d->sshd &&
			  pthread_create(&t, NULL, stop_sshd_thread, s) == 0;
	if (s->d->http)
		http_stop(s->d->http, s->grace);
	if (have_thread)
		pthread_join(t, NULL);
	else if (s->d->sshd)
		sshd_stop(s->d->sshd, s->grace);
	s->d->http = NULL;
	s->d->sshd = NULL;
	char b = 1;
	ssize_t w = write(s->done_fd[1], &b, 1);
	(void)w;
	return NULL;
}

/* Returns 0 once both front ends are stopped, or -1 if the shutdown had to
 * be cut short (a second signal or a stuck front end). */
static int daemon_shutdown(struct daemon *d, int signo)
{
	int grace = d->conf.shutdown_grace;
	log_info("stopping", "signal=%s grace=%d",
		 signo == SIGINT ? "INT" : "TERM", grace);
	notify("STOPPING=1");
	static struct stopper s;
	s.d = d;
	s.grace = grace;
	if (pipe2(s.done_fd, O_CLOEXEC) < 0)
		return -1;
	pthread_t t;
	if (pthread_create(&t, NULL, stopper_thread, &s) != 0) {
		close(s.done_fd[0]);
		close(s.done_fd[1]);
		return -1;
	}
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	long limit_ms = ((long)grace + SHUTDOWN_SLACK_SECONDS) * 1000;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long spent = (now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (spent >= limit_ms) {
			log_error("stop_forced", "reason=%s",
				  log_q("front ends did not stop in time"));
			return -1;
		}
		struct pollfd p[2] = { { d->sigfd, POLLIN, 0 },
				       { s.done_fd[0], POLLIN, 0 } };
		int n = poll(p, 2, (int)(limit_ms - spent));
		if (n < 0 && errno != EINTR)
			return -1;
		if (n <= 0)
			continue;
		if (p[1].revents) {
			pthread_join(t, NULL);
			close(s.done_fd[0]);
			close(s.done_fd[1]);
			return 0;
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;
			if (read(d->sigfd, &si, sizeof si) != sizeof si)
				continue;
			if (si.ssi_signo == SIGHUP) {
				log_info("reload_ignored",
					 "reason=%s", log_q("stopping"));
				continue;
			}
			log_warn("stop_forced",
				 "reason=%s", log_q("second stop signal"));
			return -1;
		}
	}
}

/* ---- the main loop --------------------------------------------------- */

/* Wait for signals and act on them. Returns the signal that asked to stop. */
static int daemon_loop(struct daemon *d)
{
	for (;;) {
		struct pollfd p = { d->sigfd, POLLIN, 0 };
		int n = poll(&p, 1, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("loop_failed", "error=%s",
				  log_q(strerror(errno)));
			return SIGTERM;
		}
		struct signalfd_siginfo si;
		if (read(d->sigfd, &si, sizeof si) != sizeof si)
			continue;
		switch (si.ssi_signo) {
		case SIGHUP:
			daemon_reload(d);
			break;
		case SIGTERM:
		case SIGINT:
			return (int)si.ssi_signo;
		}
	}
}

/* Release what is left; the front ends are already stopped unless the
 * start failed half way. */
static void daemon_release(struct daemon *d)
{
	/* first: a running backup job is told to stop and is recorded */
	schedule_runner_stop(d->sched);
	d->sched = NULL;
	if (d->sshd)
		sshd_stop(d->sshd, 0);
	if (d->http)
		http_stop(d->http, 0);
	if (d->admin)
		admin_stop(d->admin);
	d->sshd = NULL;
	d->http = NULL;
	d->admin = NULL;
	if (d->tc)
		tenant_cache_free(d->tc);
	if (d->cat)
		catalog_close(d->cat);
	d->tc = NULL;
	d->cat = NULL;
	audit_close();
	if (d->pid_written)
		pidfile_remove(d->conf.pid_file);
}

int main(int argc, char **argv)
{
	static struct daemon d; /* large; zeroed */
	int ch;
	while ((ch = getopt(argc, argv, "f:tdVh")) != -1) {
		switch (ch) {
		case 'f':
			d.opt.conf_path = optarg;
			break;
		case 't':
			d.opt.test_only = 1;
			break;
		case 'd':
			d.opt.debug = 1;
			break;
		case 'V':
			printf("assetd %s\n", ASSETD_VERSION);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "assetd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	char err[512] = "";
	conf_source(&d.opt, d.conf_source, sizeof d.conf_source);
	if (load_config(d.conf_source, &d.conf, err, sizeof err) < 0) {
		if (d.opt.test_only) {
			fprintf(stderr, "assetd: %s\n", err);
			fprintf(stderr, "assetd: check failed\n");
		} else {
			log_error("config_invalid", "error=%s", log_q(err));
		}
		return EXIT_ERROR;
	}
	if (d.opt.test_only)
		return check_only(&d);

	log_set_level(d.opt.debug ? LOG_LVL_DEBUG : d.conf.log_level);
	d.sigfd = signals_setup();
	if (d.sigfd < 0) {
		log_error("start_failed", "what=signals error=%s",
			  log_q(strerror(errno)));
		return EXIT_ERROR;
	}
	if (daemon_start(&d) < 0) {
		daemon_release(&d);
		log_error("stopped", "reason=%s", log_q("start failed"));
		return EXIT_ERROR;
	}
	int signo = daemon_loop(&d);
	int rc = daemon_shutdown(&d, signo);
	if (rc < 0) {
		/* Front-end threads may still run: leave without unwinding
		 * what they use. */
		if (d.pid_written)
			pidfile_remove(d.conf.pid_file);
		log_error("stopped", "clean=no");
		_exit(EXIT_ERROR);
	}
	daemon_release(&d);
	log_info("stopped", "clean=yes");
	return EXIT_OK;
}
