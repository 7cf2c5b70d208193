/*
 * admin.c - the admin listener: /metrics and /healthz over libmicrohttpd.
 *
 * A small MHD daemon per ListenAdmin address, with its own polling thread.
 * /metrics renders the registry of store/metrics.c. /healthz checks the
 * catalog (listing the regions) and then each region's assets location with
 * a one-entry listing through a freshly opened store, so it reports the
 * backend as it is now, not as a cache remembers it. Health checks are
 * serialised and their result is reused for one second, so a busy prober
 * cannot turn into a stream of S3 requests.
 */
#include "admin.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "net.h"
#include "store.h"
#include "tenant.h"

#define HEALTH_TEXT_MAX 4096

struct admin_server {
	struct MHD_Daemon *mhd[CONF_MAX_LISTEN];
	int port[CONF_MAX_LISTEN];
	int n;
	struct catalog *cat;
	pthread_mutex_t health_lock;
	time_t health_at;               /* when health_text was computed */
	int health_ok;
	char health_text[HEALTH_TEXT_MAX];
};

struct health_walk {
	struct admin_server *srv;
	size_t len;
	int ok;
	int regions;
};

static void health_append(struct health_walk *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void health_append(struct health_walk *w, const char *fmt, ...)
{
	char *buf = w->srv->health_text;
	if (w->len >= HEALTH_TEXT_MAX - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + w->len, HEALTH_TEXT_MAX - w->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		w->len += (size_t)n < HEALTH_TEXT_MAX - w->len ? (size_t)n
							       : HEALTH_TEXT_MAX - 1 - w->len;
}

static int stop_at_first(void *arg, const struct store_entry *e)
{
	(void)arg;
	(void)e;
	return 1;
}

static int check_region(void *arg, const struct catalog_region *r)
{
	struct health_walk *w = arg;
	struct store *st = NULL;
	w->regions++;
	int rc = tenant_open_location(w->srv->cat, r->assets, &st);
	if (rc == 0) {
		rc = store_list(st, "", '/', NULL, stop_at_first, NULL);
		if (rc > 0)
			rc = 0; /* stopped at the first entry: it answered */
		store_close(st);
	}
	if (rc == 0) {
		health_append(w, "region %s: ok\n", r->name);
	} else {
		w->ok = 0;
		health_append(w, "region %s: %s\n", r->name, store_strerror(rc));
	}
	return 0;
}

static void health_compute(struct admin_server *srv)
{
	struct health_walk w = { srv, 0, 1, 0 };
	srv->health_text[0] = '\0';
	int rc = catalog_region_list(srv->cat, check_region, &w);
	if (rc != 0) {
		w.ok = 0;
		health_append(&w, "catalog: %s\n", catalog_errmsg(srv->cat));
	} else {
		health_append(&w, "catalog: ok\n");
	}
	srv->health_ok = w.ok;
	srv->health_at = time(NULL);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
			     const char *ctype, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* The newest finished run of a kind, from the catalog. */
struct last_run {
	int64_t finished;
	int ok;
};

static int newest_finished(void *arg, const struct catalog_run *r)
{
	struct last_run *l = arg;
	if (r->finished <= 0)
		return 0; /* still running: look further back */
	l->finished = r->finished;
	l->ok = r->state == CATALOG_DONE;
	return 1;
}

/* Syncs and archives also run from assetctl, in another process: the
 * catalog's runs table is where every run is recorded, so the "last run"
 * gauges are read from it at each scrape (two small indexed queries). */
static void jobs_from_catalog(struct admin_server *srv)
{
	static const char *const kinds[] = { "sync", "archive" };
	for (size_t i = 0; i < 2; i++) {
		struct last_run l = { 0, 0 };
		/* (the callback's stop may come back as the return value) */
		catalog_run_list(srv->cat, kinds[i], 20, newest_finished, &l);
		if (l.finished == 0)
			continue;
		metrics_gauge_set("assetd_job_last_run_timestamp_seconds",
				  (double)l.finished, METRICS_L(kinds[i]));
		metrics_gauge_set("assetd_job_last_success", l.ok,
				  METRICS_L(kinds[i]));
	}
}

static enum MHD_Result admin_handler(void *cls, struct MHD_Connection *c,
				     const char *url, const char *method,
				     const char *version, const char *upload,
				     size_t *upload_size, void **req)
{
	struct admin_server *srv = cls;
	(void)version;
	(void)upload;
	if (*req == NULL) { /* first call: headers only */
		*req = srv;
		return MHD_YES;
	}
	if (*upload_size) { /* no bodies here: swallow and refuse below */
		*upload_size = 0;
		return MHD_YES;
	}
	int head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !head)
		return reply(c, 405, "text/plain", "method not allowed\n", 19,
			     MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics") == 0) {
		jobs_from_catalog(srv);
		size_t len = 0;
		char *text = metrics_render(&len);
		if (!text)
			return reply(c, 500, "text/plain", "out of memory\n", 14,
				     MHD_RESPMEM_PERSISTENT);
		return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8",
			     text, len, MHD_RESPMEM_MUST_FREE);
	}
	if (strcmp(url, "/healthz") == 0) {
		pthread_mutex_lock(&srv->health_lock);
		if (time(NULL) - srv->health_at >= 1)
			health_compute(srv);
		char *copy = strdup(srv->health_text);
		int ok = srv->health_ok;
		pthread_mutex_unlock(&srv->health_lock);
		if (!copy)
			return reply(c, 500, "text/plain", "out of memory\n", 14,
				     MHD_RESPMEM_PERSISTENT);
		return reply(c, ok ? 200 : 503, "text/plain; charset=utf-8", copy,
			     strlen(copy), MHD_RESPMEM_MUST_FREE);
	}
	return reply(c, 404, "text/plain", "not found\n", 10, MHD_RESPMEM_PERSISTENT);
}

int admin_start(const struct conf *conf, struct catalog *cat,
		struct admin_server **out)
{
	struct admin_server *srv = calloc(1, sizeof *srv);
	if (!srv)
		return -1;
	srv->cat = cat;
	pthread_mutex_init(&srv->health_lock, NULL);
	for (int i = 0; i < conf->n_admin; i++) {
		const struct conf_listen *l = &conf->admin[i];
		int port = l->port;
		/* The same socket as the other listeners (net.h), ReusePort
		 * included; libmicrohttpd polls it and closes it at stop. */
		int fd = net_listen(l->host, l->port, SOMAXCONN,
				    NET_NONBLOCK |
					    (conf->reuse_port ? NET_REUSEPORT : 0),
				    &port);
		if (fd < 0) {
			log_error("admin_listen", "addr=%s port=%d msg=%s",
				  log_q(l->host), l->port,
				  log_q(net_strerror(fd)));
			admin_stop(srv);
			return -1;
		}
		struct MHD_Daemon *d = MHD_start_daemon(
			MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
			NULL, NULL, admin_handler, srv,
			MHD_OPTION_LISTEN_SOCKET, fd,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
		if (!d) {
			log_error("admin_listen", "addr=%s port=%d msg=%s",
				  log_q(l->host), port,
				  log_q("libmicrohttpd refused to start"));
			close(fd);
			admin_stop(srv);
			return -1;
		}
		srv->mhd[srv->n] = d;
		srv->port[srv->n] = port;
		log_info("admin_listen", "addr=%s port=%d", log_q(l->host), port);
		srv->n++;
	}
	*out = srv;
	return 0;
}

int admin_port(const struct admin_server *srv, int i)
{
	return srv && i >= 0 && i < srv->n ? srv->port[i] : 0;
}

void admin_stop(struct admin_server *srv)
{
	if (!srv)
		return;
	for (int i = 0; i < srv->n; i++)
		MHD_stop_daemon(srv->mhd[i]);
	pthread_mutex_destroy(&srv->health_lock);
	free(srv);
}
