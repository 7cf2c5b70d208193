/*
 * server.c - the Specify endpoint's listeners, route table and the
 * cross-cutting parts of every request.
 *
 * Each configured address gets a listening socket of ours and one
 * libmicrohttpd daemon on it, thread per connection: store reads and
 * writes block (S3 over libcurl, fsync on fs), so a connection must own its
 * thread. Owning the socket lets a SIGHUP that changes the TLS certificate
 * start a new daemon on the same socket and drain the old one: no
 * connection is refused during the switch.
 *
 * The access handler looks the path up in one table (below an optional
 * "/c/<client>" prefix that scopes the request to one client), refuses a
 * wrong method in one place, and calls the route. Every answer goes
 * through http_reply(), which adds X-Timestamp (Specify 7 learns its clock
 * offset from it, on errors too) and Access-Control-Allow-Origin (the
 * browser uploads straight to us). Settings are copied into the request
 * when it starts, so a reload never changes a request halfway, and tokens
 * are judged against that start time.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_proto.h"
#include "http_token.h"
#include "log.h"
#include "net.h"
#include "ops.h"
#include "penalty.h"

/* ---- replies -------------------------------------------------------- */

enum MHD_Result http_reply(struct http_req *rq, unsigned status,
			   struct MHD_Response *r)
{
	char ts[32];
	if (r == NULL) {
		/* Out of memory: let libmicrohttpd close the connection. */
		return MHD_NO;
	}
	snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
	MHD_add_response_header(r, "X-Timestamp", ts);
	MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
	MHD_add_response_header(r, "Server", "assetd/" ASSETD_VERSION);
	enum MHD_Result ret = MHD_queue_response(rq->conn, status, r);
	MHD_destroy_response(r);
	rq->status = status;
	rq->responded = 1;
	return ret;
}

enum MHD_Result http_reply_text(struct http_req *rq, unsigned status,
				const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	return http_reply(rq, status, r);
}

const char *http_arg(struct http_req *rq, const char *name, int *bad)
{
	const char *v = NULL;
	size_t vl = 0;
	if (MHD_lookup_connection_value_n(rq->conn, MHD_GET_ARGUMENT_KIND, name,
					  strlen(name), &v, &vl) != MHD_YES ||
	    v == NULL)
		return NULL;
	if (strlen(v) != vl) {
		/* "%00" decoded into the value: never let C see a shorter
		 * name than the client sent. */
		if (bad)
			*bad = 1;
		return NULL;
	}
	return v;
}

const char *http_header(struct http_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

unsigned http_status_of(int err)
{
	switch (err) {
	case STORE_OK: return 200;
	case STORE_ENOENT:
	case STORE_ENOTDIR:
	case STORE_EISDIR: return 404;
	case STORE_EACCES: return 403;
	/* The daemon's own storage credentials were refused: a server fault,
	 * not the client's. A 403 here would read as "invalid token" to
	 * Specify (and send it resyncing its clock) instead of an error. */
	case STORE_EAUTH: return 500;
	case STORE_EINVAL: return 400;
	case STORE_ENOSPC:
	case STORE_EQUOTA: return 507; /* Insufficient Storage */
	case STORE_ETOOBIG: return 413;
	case STORE_ETHROTTLED:
	case STORE_EUNAVAIL: return 503;
	default: return 500;
	}
}

const char *http_store_error_text(int err)
{
	switch (err) {
	case STORE_ENOSPC: return "Storage error: no space left.\n";
	case STORE_ETOOBIG: return "Storage error: file too large.\n";
	case STORE_ETHROTTLED:
	case STORE_EUNAVAIL:
		return "Storage error: storage unavailable, try again later.\n";
	default: return "Storage error.\n";
	}
}

int http_object_name(const struct http_scope *sc, const char *sub,
		     const char *name, char *out, size_t outlen)
{
	int n;
	if (sc->dir[0])
		n = snprintf(out, outlen, "%s/%s/%s", sc->dir, sub, name);
	else
		n = snprintf(out, outlen, "%s/%s", sub, name);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int http_spool_open(struct http_req *rq)
{
	char path[CONF_PATH_MAX + 32];
	int fd = open(rq->set.spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* Filesystems without O_TMPFILE: a named file, unlinked at once. */
	snprintf(path, sizeof path, "%s/.http-XXXXXX", rq->set.spool_dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	else
		log_error("spool_open", "dir=%s error=%s",
			  log_q(rq->set.spool_dir), log_q(strerror(errno)));
	return fd;
}

/* ---- scoping: coll -> client, store, folder, key -------------------- */

static int count_one(void *arg, const struct catalog_collection *c)
{
	(void)c;
	*(int *)arg = 1;
	return 1; /* one is enough */
}

static int client_has_collections(struct http_server *srv, const char *client)
{
	int any = 0;
	catalog_collection_list(srv->cat, client, count_one, &any);
	return any;
}

static int scope_client(struct http_req *rq, const char *name,
			struct http_scope *out)
{
	int rc = tenant_get(rq->srv->tc, name, &out->client, &out->store);
	if (rc == CATALOG_ENOENT) {
		log_info("http_refused", "reason=unknown_client client=%s",
			 log_q(name));
		return 404;
	}
	if (rc != 0) {
		log_error("http_store", "client=%s error=%d", log_q(name), rc);
		return 503;
	}
	if (out->client.disabled) {
		log_info("http_refused", "reason=client_disabled client=%s",
			 log_q(name));
		return 403;
	}
	snprintf(out->key, sizeof out->key, "%s",
		 out->client.attachment_key[0] ? out->client.attachment_key
					       : rq->set.attachment_key);
	return 0;
}

int http_scope_resolve(struct http_req *rq, const char *coll,
		       struct http_scope *out)
{
	struct catalog_collection col;
	struct http_server *srv = rq->srv;
	int rc;

	out->dir[0] = '\0';
	if (coll == NULL)
		coll = "";
	if (rq->prefixed) {
		rc = coll[0] ? catalog_collection_find(srv->cat, rq->client,
						       coll, &col)
			     : CATALOG_ENOENT;
		if (rc == 0) {
			snprintf(out->dir, sizeof out->dir, "%s", col.subfolder);
		} else if (rc == CATALOG_ENOENT) {
			/* A client without collections is flat: any coll
			 * maps to its root. */
			if (client_has_collections(srv, rq->client)) {
				log_info("http_refused",
					 "reason=unknown_collection client=%s coll=%s",
					 log_q(rq->client), log_q(coll));
				return 404;
			}
		} else {
			log_error("http_catalog", "error=%s",
				  log_q(catalog_errmsg(srv->cat)));
			return 503;
		}
		return scope_client(rq, rq->client, out);
	}
	rc = coll[0] ? catalog_collection_find(srv->cat, NULL, coll, &col)
		     : CATALOG_ENOENT;
	if (rc == 0) {
		snprintf(out->dir, sizeof out->dir, "%s", col.subfolder);
		return scope_client(rq, col.client, out);
	}
	if (rc == CATALOG_EEXIST) {
		log_warn("http_refused",
			 "reason=ambiguous_collection coll=%s msg=%s", log_q(coll),
			 log_q("several clients have this collection: use the "
			       "client's /c/<client>/ URL"));
		return 404;
	}
	if (rc != CATALOG_ENOENT) {
		log_error("http_catalog", "error=%s",
			  log_q(catalog_errmsg(srv->cat)));
		return 503;
	}
	if (rq->set.default_client[0])
		return scope_client(rq, rq->set.default_client, out);
	log_info("http_refused", "reason=unknown_collection coll=%s",
		 log_q(coll));
	return 404;
}

/* The peer's address as text, "" if unknown. */
static void peer_addr(struct http_req *rq, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	net_addr_text(ci ? ci->client_addr : NULL, out, outlen);
}

int http_penalised(struct http_req *rq)
{
	char addr[INET6_ADDRSTRLEN];
	peer_addr(rq, addr, sizeof addr);
	int left = penalty_refused(rq->srv->pen, addr, rq->started);
	if (left == 0)
		return 0;
	log_info("http_refused", "reason=penalty addr=%s path=%s seconds=%d",
		 log_q(addr), log_q(rq->url), left);
	return 429;
}

int http_scope_for_read(struct http_req *rq, const char *coll,
			const char *filename, const char *token,
			struct http_scope **out)
{
	struct http_scope *sc = malloc(sizeof *sc);
	*out = NULL;
	if (sc == NULL)
		return 503;
	int st = http_scope_resolve(rq, coll, sc);
	if (st == 0 && rq->set.require_key_for_get)
		st = http_check_token(rq, sc->key, token, filename,
				      strlen(filename));
	if (st) {
		free(sc);
		return st;
	}
	*out = sc;
	return 0;
}

int http_check_token(struct http_req *rq, const char *key, const char *token,
		     const char *name, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	/* A refused source gets no verdict on its token at all: a guesser
	 * learns nothing while it waits. */
	if (http_penalised(rq))
		return 429;
	int rc = http_token_check(key, token, name, len, rq->started,
				  rq->set.time_tolerance);
	ops_auth("http", rc == HTTP_TOKEN_OK);
	if (rc == HTTP_TOKEN_OK)
		return 0;
	peer_addr(rq, addr, sizeof addr);
	log_info("http_refused", "reason=%s path=%s client=%s addr=%s",
		 log_q(http_token_strerror(rc)), log_q(rq->url),
		 log_q(rq->client), log_q(addr));
	penalty_add(rq->srv->pen, addr, PENALTY_TOKENFAIL, rq->started);
	return 403;
}

/* ---- where a file that comes before its fields is staged ------------ */

struct stage_census {
	int clients;                    /* enabled clients */
	char only[CATALOG_NAME_MAX];    /* the one client, when clients == 1 */
	struct {
		char name[CATALOG_NAME_MAX];
		int n;
	} regions[16];                  /* enabled clients per region */
	int n_regions;
};

static int census_client(void *arg, const struct catalog_client *c)
{
	struct stage_census *cs = arg;
	if (c->disabled)
		return 0;
	if (cs->clients++ == 0)
		snprintf(cs->only, sizeof cs->only, "%s", c->name);
	if (!c->region[0])
		return 0;
	for (int i = 0; i < cs->n_regions; i++)
		if (strcmp(cs->regions[i].name, c->region) == 0) {
			cs->regions[i].n++;
			return 0;
		}
	if (cs->n_regions < (int)(sizeof cs->regions / sizeof cs->regions[0])) {
		snprintf(cs->regions[cs->n_regions].name,
			 sizeof cs->regions[0].name, "%s", c->region);
		cs->regions[cs->n_regions++].n = 1;
	}
	return 0;
}

/* The region's assets location, opened once and kept (under srv->lock)
 * until the server stops. */
static int region_store(struct http_server *srv, const char *url,
			struct store **out)
{
	int rc = 0;
	pthread_mutex_lock(&srv->lock);
	for (int i = 0; i < srv->n_stage; i++)
		if (strcmp(store_url(srv->stage[i]), url) == 0) {
			*out = srv->stage[i];
			pthread_mutex_unlock(&srv->lock);
			return 0;
		}
	if (srv->n_stage == HTTP_STAGE_MAX)
		rc = -1;
	else
		rc = tenant_open_location(srv->cat, url, out);
	if (rc == 0)
		srv->stage[srv->n_stage++] = *out;
	pthread_mutex_unlock(&srv->lock);
	return rc;
}

int http_stage_store(struct http_req *rq, struct store **out)
{
	struct http_server *srv = rq->srv;
	struct catalog_client cl;
	const char *name = NULL;
	struct stage_census *cs = NULL;
	int st = 0;

	if (rq->prefixed)
		name = rq->client;
	else if (rq->set.default_client[0])
		name = rq->set.default_client;
	if (name == NULL) {
		cs = calloc(1, sizeof *cs);
		if (cs == NULL)
			return 503;
		if (catalog_client_list(srv->cat, census_client, cs) < 0) {
			free(cs);
			return 503;
		}
		if (cs->clients == 0) {
			free(cs);
			log_info("http_refused", "reason=%s",
				 log_q("no client to upload to"));
			return 404;
		}
		if (cs->clients == 1)
			name = cs->only;
	}
	if (name) {
		char nm[CATALOG_NAME_MAX];
		snprintf(nm, sizeof nm, "%s", name);
		name = nm;
		free(cs);
		int rc = tenant_get(srv->tc, name, &cl, out);
		if (rc == CATALOG_ENOENT) {
			log_info("http_refused", "reason=unknown_client client=%s",
				 log_q(name));
			return 404;
		}
		if (rc != 0)
			return 503;
		if (cl.disabled) {
			log_info("http_refused", "reason=client_disabled client=%s",
				 log_q(name));
			return 403;
		}
		return 0;
	}
	/* Several clients and the collection comes after the file: stage in
	 * the assets location of the region that holds most of them, so that
	 * the commit is a rename (fs) or a server-side copy (S3) for every
	 * client in that region, and a copy within the endpoint for most
	 * others. */
	int best = -1;
	for (int i = 0; i < cs->n_regions; i++)
		if (best < 0 || cs->regions[i].n > cs->regions[best].n ||
		    (cs->regions[i].n == cs->regions[best].n &&
		     strcmp(cs->regions[i].name, cs->regions[best].name) < 0))
			best = i;
	struct catalog_region *rg = calloc(1, sizeof *rg);
	if (rg == NULL) {
		free(cs);
		return 503;
	}
	if (best >= 0 &&
	    catalog_region_get(srv->cat, cs->regions[best].name, rg) == 0 &&
	    rg->assets[0] && region_store(srv, rg->assets, out) == 0)
		st = 0;
	else if (tenant_get(srv->tc, cs->only, &cl, out) == 0)
		st = 0; /* no region: the first client's location */
	else
		st = 503;
	free(rg);
	free(cs);
	return st;
}

/* ---- small routes --------------------------------------------------- */

static enum MHD_Result route_root(struct http_req *rq)
{
	return http_reply_text(rq, 200,
			       "assetd " ASSETD_VERSION
			       ": Specify web asset server\n");
}

/* Under a prefix, the client must exist and be enabled. */
static int prefix_client_ok(struct http_req *rq)
{
	struct http_scope *sc;
	if (!rq->prefixed)
		return 0;
	sc = malloc(sizeof *sc);
	if (sc == NULL)
		return 503;
	int st = scope_client(rq, rq->client, sc);
	free(sc);
	return st;
}

static enum MHD_Result route_xml(struct http_req *rq)
{
	char prefix[CATALOG_NAME_MAX + 4] = "";
	char base[CONF_PATH_MAX + 128];
	char esc[sizeof base * 6];
	char body[sizeof base * 12];

	int st = prefix_client_ok(rq);
	if (st)
		return http_reply_text(rq, st, st == 404 ? "Unknown client.\n"
						   : "Refused.\n");
	if (rq->prefixed)
		snprintf(prefix, sizeof prefix, "/c/%s", rq->client);
	if (http_base_url(rq->set.public_url,
			  http_header(rq, "X-Forwarded-Proto"),
			  http_header(rq, "X-Forwarded-Host"),
			  http_header(rq, "Host"), rq->tls, prefix, base,
			  sizeof base) != 0)
		return http_reply_text(rq, 400, "Bad Host header.\n");
	if (http_xml_escape(base, esc, sizeof esc) != 0)
		return http_reply_text(rq, 500, "Base URL too long.\n");
	int cdata = strstr(base, "]]>") == NULL;
	const char *u = cdata ? base : esc;
	const char *o = cdata ? "<![CDATA[" : "";
	const char *c = cdata ? "]]>" : "";
	int n = snprintf(body, sizeof body,
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		 "<urls>\n"
		 "    <url type=\"read\">%s%s/fileget%s</url>\n"
		 "    <url type=\"write\">%s%s/fileupload%s</url>\n"
		 "    <url type=\"delete\">%s%s/filedelete%s</url>\n"
		 "    <url type=\"getmetadata\">%s%s/getmetadata%s</url>\n"
		 "    <url type=\"testkey\">%s/testkey</url>\n"
		 "</urls>\n",
		 o, u, c, o, u, c, o, u, c, o, u, c, esc);
	if (n < 0 || (size_t)n >= sizeof body)
		return http_reply_text(rq, 500, "Base URL too long.\n");
	struct MHD_Response *r = MHD_create_response_from_buffer(
		(size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/xml; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	return http_reply(rq, 200, r);
}

struct key_probe {
	struct http_req *rq;
	const char *token;
	const char *random;
	int ok;
};

static int probe_client_key(void *arg, const struct catalog_client *c)
{
	struct key_probe *kp = arg;
	if (c->disabled || c->attachment_key[0] == '\0')
		return 0;
	if (http_token_check(c->attachment_key, kp->token, kp->random,
			     strlen(kp->random), kp->rq->started,
			     kp->rq->set.time_tolerance) == HTTP_TOKEN_OK) {
		kp->ok = 1;
		return 1;
	}
	return 0;
}

/* testkey: under a prefix, that client's key. Unprefixed, the server key,
 * the DefaultClient's, or any client's: each Specify installation using
 * the shared URL tests its own key. */
static enum MHD_Result route_testkey(struct http_req *rq)
{
	int bad = 0;
	const char *random = http_arg(rq, "random", &bad);
	const char *token = http_arg(rq, "token", &bad);
	if (bad || random == NULL)
		return http_reply_text(rq, bad ? 400 : 403,
				       bad ? "Bad request.\n"
					   : "Invalid token.\n");
	if (http_penalised(rq))
		return http_reply_text(rq, 429, HTTP_TEXT_PENALISED);
	if (rq->prefixed) {
		struct http_scope *sc = malloc(sizeof *sc);
		if (sc == NULL)
			return MHD_NO;
		int st = scope_client(rq, rq->client, sc);
		if (st == 0)
			st = http_check_token(rq, sc->key, token, random,
					      strlen(random));
		free(sc);
		if (st)
			return http_reply_text(rq, st, st == 403
					       ? "Invalid token.\n"
					       : st == 429 ? HTTP_TEXT_PENALISED
					       : "Unknown client.\n");
		return http_reply_text(rq, 200, "Ok.");
	}
	if (http_token_check(rq->set.attachment_key, token, random,
			     strlen(random), rq->started,
			     rq->set.time_tolerance) == HTTP_TOKEN_OK) {
		ops_auth("http", 1);
		return http_reply_text(rq, 200, "Ok.");
	}
	struct key_probe kp = {rq, token, random, 0};
	catalog_client_list(rq->srv->cat, probe_client_key, &kp);
	if (kp.ok) {
		ops_auth("http", 1);
		return http_reply_text(rq, 200, "Ok.");
	}
	/* One log line with the reason, from the usual place. */
	int st = http_check_token(rq, rq->set.attachment_key, token, random,
				  strlen(random));
	return http_reply_text(rq, st == 429 ? 429 : 403,
			       st == 429 ? HTTP_TEXT_PENALISED
					 : "Invalid token.\n");
}

/* ---- the route table ------------------------------------------------ */

static const struct http_route routes[] = {
	{"/", 0, HM_GET | HM_HEAD, 0, route_root, NULL, NULL, NULL, NULL},
	{"/web_asset_store.xml", 0, HM_GET | HM_HEAD, 0, route_xml, NULL,
	 NULL, NULL, NULL},
	{"/testkey", 0, HM_GET | HM_HEAD, 0, route_testkey, NULL, NULL, NULL,
	 NULL},
	{"/fileupload", 0, HM_POST | HM_OPTIONS, 0, NULL, http_upload_begin,
	 http_upload_body, http_upload_end, http_upload_cleanup},
	{"/fileget", 0, HM_GET | HM_HEAD, 0, http_route_fileget, NULL, NULL,
	 NULL, NULL},
	{"/filedelete", 0, HM_POST, 0, NULL, http_delete_begin,
	 http_delete_body, http_delete_end, http_delete_cleanup},
	{"/getmetadata", 0, HM_GET | HM_HEAD, 0, http_route_getmetadata, NULL,
	 NULL, NULL, NULL},
	{"/getfileref", 0, HM_GET | HM_HEAD, 1, http_route_getfileref, NULL,
	 NULL, NULL, NULL},
	{"/static/", 1, HM_GET | HM_HEAD, 1, http_route_static, NULL, NULL,
	 NULL, NULL},
};

static const struct http_route *route_find(const char *path)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const struct http_route *r = &routes[i];
		if (r->prefix_match ? strncmp(path, r->path, strlen(r->path)) == 0
				    : strcmp(path, r->path) == 0)
			return r;
	}
	return NULL;
}

static int method_of(const char *m)
{
	if (strcmp(m, "GET") == 0)
		return HM_GET;
	if (strcmp(m, "HEAD") == 0)
		return HM_HEAD;
	if (strcmp(m, "POST") == 0)
		return HM_POST;
	if (strcmp(m, "OPTIONS") == 0)
		return HM_OPTIONS;
	return 0;
}

static void allow_header(const struct http_route *r, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s%s", r->methods & HM_GET ? "GET, " : "",
		 r->methods & HM_HEAD ? "HEAD, " : "",
		 r->methods & HM_POST ? "POST, " : "",
		 r->methods & HM_OPTIONS ? "OPTIONS, " : "");
	size_t n = strlen(out);
	if (n >= 2)
		out[n - 2] = '\0';
}

/* ---- slow clients --------------------------------------------------- */

/* HTTPTimeout is an idle timeout: a client that sends one byte a second
 * never trips it, and would hold a thread for ever. Each connection is
 * therefore watched from the moment it opens (or its previous request
 * ends) until its next request's headers are in; past HTTPHeaderTimeout
 * (plus HTTPTimeout of keep-alive idle after a request) the watchdog shuts
 * its socket down, which ends the connection's thread.
 * An entry leaves the list (under WLOCK) before libmicrohttpd closes the
 * fd, so the watchdog never touches a reused descriptor. */

/* Milliseconds on the monotonic clock: the header deadline is counted from
 * when the connection began waiting, to the quarter second the watchdog
 * wakes at, and a change of the wall clock moves no deadline. */
static int64_t watch_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify_conn(void *cls, struct MHD_Connection *c,
			void **socket_context,
			enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	struct http_watch *w = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			c, MHD_CONNECTION_INFO_CONNECTION_FD);
		w = calloc(1, sizeof *w);
		if (w == NULL || ci == NULL) {
			free(w);
			return;
		}
		w->fd = ci->connect_fd;
		w->since = watch_now_ms();
		pthread_mutex_lock(&srv->wlock);
		w->next = srv->watch;
		if (srv->watch)
			srv->watch->prev = w;
		srv->watch = w;
		pthread_mutex_unlock(&srv->wlock);
		*socket_context = w;
		return;
	}
	if (w == NULL)
		return;
	pthread_mutex_lock(&srv->wlock);
	if (w->prev)
		w->prev->next = w->next;
	else
		srv->watch = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&srv->wlock);
	free(w);
	*socket_context = NULL;
}

/* Mark C's request as started (headers in) or ended. */
static void watch_mark(struct http_server *srv, struct MHD_Connection *c,
		       int in_request)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci == NULL || ci->socket_context == NULL)
		return;
	struct http_watch *w = ci->socket_context;
	pthread_mutex_lock(&srv->wlock);
	w->in_request = in_request;
	w->since = watch_now_ms();
	if (!in_request)
		w->served = 1;
	pthread_mutex_unlock(&srv->wlock);
}

static void *watchdog_main(void *arg)
{
	struct http_server *srv = arg;
	while (!srv->stopping) {
		usleep(250 * 1000);
		int64_t now = watch_now_ms();
		pthread_mutex_lock(&srv->wlock);
		for (struct http_watch *w = srv->watch; w; w = w->next) {
			int64_t limit = 1000 * (int64_t)(srv->header_timeout +
					(w->served ? srv->timeout : 0));
			if (w->in_request || w->cut || now - w->since < limit)
				continue;
			w->cut = 1;
			/* logged before the cut, so that the line is there
			 * by the time the client sees its connection end */
			log_info("http_refused", "reason=header_timeout secs=%d",
				 srv->header_timeout);
			shutdown(w->fd, SHUT_RDWR);
		}
		pthread_mutex_unlock(&srv->wlock);
	}
	return NULL;
}

/* Bytes of the request head as received: request line and headers. */
struct head_size {
	size_t n;
};

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind,
				       const char *key, const char *value)
{
	struct head_size *h = cls;
	(void)kind;
	h->n += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static size_t request_head_size(struct MHD_Connection *c, const char *url)
{
	struct head_size h = { strlen(url) + 16 };
	MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_size, &h);
	return h.n;
}

/* The first call, when the headers are in: find the route. Answers are
 * given on the last call (libmicrohttpd closes a connection whose answer
 * was queued on the first one), except the early refusals of body routes,
 * where closing is the point: the client may still be sending the body. */
static enum MHD_Result start_request(struct http_server *srv,
				     struct MHD_Connection *c, const char *url,
				     const char *method, void **con_cls)
{
	struct http_req *rq = calloc(1, sizeof *rq);
	if (rq == NULL)
		return MHD_NO;
	watch_mark(srv, c, 1);
	rq->srv = srv;
	rq->conn = c;
	rq->started = (int64_t)time(NULL);
	rq->url = url;
	rq->method = method_of(method);
	pthread_mutex_lock(&srv->lock);
	rq->set = srv->set;
	rq->tls = srv->tls_cert != NULL;
	pthread_mutex_unlock(&srv->lock);
	*con_cls = rq;
	if (request_head_size(c, url) > srv->max_header_size) {
		/* Answered now, so that libmicrohttpd closes the connection. */
		log_info("http_refused", "reason=header_too_large max=%zu",
			 srv->max_header_size);
		struct MHD_Response *r = MHD_create_response_from_buffer(
			26, (void *)"Request header too large.\n",
			MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
		MHD_add_response_header(r, "Connection", "close");
		return http_reply(rq, 431, r);
	}

	int p = http_split_prefix(url, rq->client, sizeof rq->client,
				  &rq->route_path);
	if (p < 0) {
		rq->pending = 404;
		return MHD_YES;
	}
	rq->prefixed = p == 1;
	rq->route = route_find(rq->route_path);
	if (rq->route == NULL ||
	    (rq->route->static_only && !rq->set.static_files)) {
		rq->route = NULL;
		rq->pending = 404;
		return MHD_YES;
	}
	if (!(rq->route->methods & rq->method)) {
		rq->pending = 405;
		return MHD_YES;
	}
	if ((rq->method == HM_POST && rq->route->begin == http_upload_begin) ||
	    (rq->method == HM_GET && rq->route->handle == http_route_fileget)) {
		rq->transfer = 1;
		ops_transfer("http", 1);
	}
	if (rq->method != HM_OPTIONS && rq->route->begin)
		return rq->route->begin(rq);
	return MHD_YES;
}

static enum MHD_Result reply_pending(struct http_req *rq)
{
	if (rq->pending == 404)
		return http_reply_text(rq, 404, "Not found.\n");
	char allow[64];
	allow_header(rq->route, allow, sizeof allow);
	rq->route = NULL; /* nothing began: no cleanup */
	struct MHD_Response *r = MHD_create_response_from_buffer(
		20, (void *)"Method not allowed.\n", MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Allow", allow);
	MHD_add_response_header(r, "Content-Type", "text/plain");
	return http_reply(rq, 405, r);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct http_req *rq = *con_cls;
	(void)version;

	if (rq == NULL)
		return start_request(cls, c, url, method, con_cls);
	if (rq->responded) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		rq->body_bytes += n;
		if (rq->pending || rq->route == NULL ||
		    rq->route->body == NULL || rq->method == HM_OPTIONS) {
			/* a body nobody reads: bounded */
			return rq->body_bytes > (1 << 20) ? MHD_NO : MHD_YES;
		}
		return rq->route->body(rq, upload_data, n) == 0 ? MHD_YES
								: MHD_NO;
	}
	if (rq->pending)
		return reply_pending(rq);
	if (rq->method == HM_OPTIONS)
		return http_upload_options(rq);
	if (rq->route->handle)
		return rq->route->handle(rq);
	return rq->route->end(rq);
}

/* The path as an SSH session shows the same object: the client's folder
 * is /attachments/ there, so one object has one name in the audit log
 * whichever protocol touched it. */
void http_audit_path(struct http_req *rq, const char *obj)
{
	snprintf(rq->audit_path, sizeof rq->audit_path, "/attachments/%s", obj);
}

void http_audit_set(struct http_req *rq, const char *op,
		    const struct http_scope *sc, const char *obj, int64_t bytes)
{
	rq->audit_op = op;
	rq->audit_identity = sc->client.attachment_key[0] ? "key:client"
							  : "key:server";
	snprintf(rq->audit_client, sizeof rq->audit_client, "%s",
		 sc->client.name);
	http_audit_path(rq, obj);
	rq->audit_bytes = bytes;
}

/* The route's name as a metrics label: "fileget", "root", "static", or
 * "unknown" for paths that are no route (never the path itself: labels
 * must stay few). */
static const char *route_label(const struct http_req *rq)
{
	const struct http_route *r = rq->route ? rq->route
					       : route_find(rq->route_path
							    ? rq->route_path
							    : "");
	if (!r || rq->pending == 404)
		return "unknown";
	if (strcmp(r->path, "/") == 0)
		return "root";
	if (strcmp(r->path, "/static/") == 0)
		return "static";
	return r->path + 1;
}

/* Count the finished request and audit it if it was a write or delete. */
static void record_request(struct http_req *rq,
			   enum MHD_RequestTerminationCode toe)
{
	int completed = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
	char status[16], result[32], addr[64] = "";
	if (!completed)
		snprintf(status, sizeof status, "aborted");
	else
		snprintf(status, sizeof status, "%u", rq->status);
	if (!completed)
		snprintf(result, sizeof result, "aborted");
	else if (rq->status >= 200 && rq->status < 300)
		snprintf(result, sizeof result, "ok");
	else
		snprintf(result, sizeof result, "http %u", rq->status);
	if (rq->audit_op)
		peer_addr(rq, addr, sizeof addr);
	struct ops_actor who = { "http", rq->audit_client,
				 rq->audit_identity, addr };
	struct ops_event e = {
		.op = route_label(rq),
		.status = status,
		.audit_op = rq->audit_op,
		.path = rq->audit_path,
		.bytes = rq->audit_bytes,
		.bytes_in = rq->body_bytes,
		.bytes_out = completed && rq->method != HM_HEAD ? rq->bytes_out
								: 0,
		.result = result,
	};
	ops_record(&who, &e);
	if (rq->transfer)
		ops_transfer("http", -1);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_req *rq = *con_cls;
	if (rq == NULL)
		return;
	watch_mark(cls, c, 0);
	if (rq->route && rq->route->cleanup)
		rq->route->cleanup(rq);
	record_request(rq, toe);
	static const char *const methods[] = {"?", "GET", "HEAD", "?", "POST",
					      "?", "?", "?", "OPTIONS"};
	const char *m = rq->method >= 0 && rq->method <= 8 ? methods[rq->method]
							   : "?";
	log_event(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? LOG_LVL_INFO
							     : LOG_LVL_WARN,
		  "http_request",
		  "method=%s path=%s status=%u client=%s bytes_in=%llu "
		  "secs=%lld%s",
		  m, log_q(rq->url), rq->status, log_q(rq->client),
		  (unsigned long long)rq->body_bytes,
		  (long long)(time(NULL) - rq->started),
		  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
							     : " aborted=1");
	free(rq);
	*con_cls = NULL;
}

static void connection_cb(void *cls, struct MHD_Connection *c,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	ops_session("http", toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
	notify_conn(cls, c, socket_context, toe);
}

static void mhd_logger(void *cls, const char *fm, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof msg, fm, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warn("http_mhd", "msg=%s", log_q(msg));
}

/* ---- listeners ------------------------------------------------------ */

/* A listening socket for A (net.h), non-blocking for libmicrohttpd; with
 * ReusePort, SO_REUSEPORT so that a new instance can bind the same port
 * while this one drains. The fd, or -1 (logged). */
static int listener_open(const struct conf_listen *a, int *port_out,
			 int reuse)
{
	int fd = net_listen(a->host, a->port, 511,
			    NET_NONBLOCK | (reuse ? NET_REUSEPORT : 0),
			    port_out);
	if (fd < 0) {
		log_error("http_listen", "host=%s port=%d error=%s",
			  log_q(a->host), a->port, log_q(net_strerror(fd)));
		return -1;
	}
	return fd;
}

/* libmicrohttpd gives each connection one memory pool: the request head
 * is read into it, the parsed headers and the response head are built in
 * it, and what is left is the read buffer for the body. The pool is zeroed
 * whole between two requests of a keep-alive connection, so its size is
 * paid on every request and, once touched, stays resident per connection
 * (1,000 keep-alive connections at 256 KiB each were 250 MiB). It is sized
 * from the head bound instead: room for the largest head allowed (so that
 * start_request, not libmicrohttpd, makes the exact HTTPMaxHeaderSize
 * check), plus POOL_SLACK for the parsed header entries, the response head
 * and a body read buffer; never less than POOL_MIN. An upload's read
 * buffer grows in POOL_INCREMENT steps into what the head left free. */
#define POOL_MIN (64 * 1024)
#define POOL_SLACK (16 * 1024)
#define POOL_INCREMENT (16 * 1024)

static size_t pool_size(const struct http_server *srv)
{
	size_t n = srv->max_header_size + POOL_SLACK;
	return n < POOL_MIN ? POOL_MIN : n;
}

static struct MHD_Daemon *daemon_start(struct http_server *srv, int fd,
				       const char *cert, const char *key)
{
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (cert)
		flags |= MHD_USE_TLS;
	struct MHD_OptionItem tls_opts[] = {
		{MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert},
		{MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key},
		{MHD_OPTION_END, 0, NULL},
	};
	struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
	return MHD_start_daemon(
		flags, 0, NULL, NULL, access_cb, srv,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->threads_limit,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->timeout,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool_size(srv),
		MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)POOL_INCREMENT,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)srv->max_per_source,
		MHD_OPTION_NOTIFY_COMPLETED, completed_cb, srv,
		MHD_OPTION_NOTIFY_CONNECTION, connection_cb, srv,
		MHD_OPTION_ARRAY, cert ? tls_opts : none,
		MHD_OPTION_END);
}

static unsigned daemon_connections(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *i =
		MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return i ? i->num_connections : 0;
}

static void *retire_main(void *arg)
{
	struct http_retired *r = arg;
	/* Let requests in flight on the old daemon finish (an upload may
	 * take half an hour); stop at once when the server stops. */
	while (!r->srv->stopping && daemon_connections(r->mhd) > 0)
		usleep(100 * 1000);
	MHD_stop_daemon(r->mhd);
	if (r->fd >= 0)
		close(r->fd);
	return NULL;
}

/* Stop accepting on MHD and drain it in the background. */
static void retire(struct http_server *srv, struct MHD_Daemon *mhd, int fd)
{
	struct http_retired *r = calloc(1, sizeof *r);
	MHD_quiesce_daemon(mhd);
	if (r != NULL) {
		/* Filled in before the thread exists: it reads them at once
		 * (filled after, a busy machine let it read NULL and crash
		 * the daemon, and every later client was refused). */
		r->srv = srv;
		r->mhd = mhd;
		r->fd = fd;
	}
	if (r == NULL ||
	    pthread_create(&r->thread, NULL, retire_main, r) != 0) {
		free(r);
		MHD_stop_daemon(mhd);
		if (fd >= 0)
			close(fd);
		return;
	}
	pthread_mutex_lock(&srv->lock);
	r->next = srv->retired;
	srv->retired = r;
	pthread_mutex_unlock(&srv->lock);
}

/* ---- configuration -------------------------------------------------- */

static void settings_from_conf(struct http_settings *s, const struct conf *c)
{
	memset(s, 0, sizeof *s);
	snprintf(s->public_url, sizeof s->public_url, "%s", c->public_url);
	snprintf(s->attachment_key, sizeof s->attachment_key, "%s",
		 c->attachment_key);
	s->time_tolerance = c->time_tolerance > 0 ? c->time_tolerance : 150;
	s->require_key_for_get = c->require_key_for_get;
	s->max_upload_size = c->max_upload_size;
	s->max_thumbnail_scale =
		c->max_thumbnail_scale > 0 ? c->max_thumbnail_scale : 1024;
	snprintf(s->default_client, sizeof s->default_client, "%s",
		 c->default_client);
	s->static_files = c->static_files;
	if (c->spool_dir[0])
		snprintf(s->spool_dir, sizeof s->spool_dir, "%s", c->spool_dir);
	else
		snprintf(s->spool_dir, sizeof s->spool_dir, "%s/spool",
			 c->data_dir[0] ? c->data_dir : "var");
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < 4096) {
			if (cap > (1 << 20)) { /* a PEM file is small */
				free(buf);
				fclose(f);
				return NULL;
			}
			char *nb = realloc(buf, cap + 65536);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Read the TLS files named in C. 0 with CERT and KEY set (both NULL when TLS
 * is off), or -1 (logged). */
static int tls_load(const struct conf *c, char **cert, char **key)
{
	*cert = *key = NULL;
	if (!c->tls_certificate[0] && !c->tls_key[0])
		return 0;
	if (!c->tls_certificate[0] || !c->tls_key[0]) {
		log_error("http_tls", "msg=%s",
			  log_q("TLSCertificate and TLSKey go together"));
		return -1;
	}
	*cert = read_file(c->tls_certificate);
	*key = read_file(c->tls_key);
	if (*cert == NULL || *key == NULL) {
		log_error("http_tls", "cert=%s key=%s error=%s",
			  log_q(c->tls_certificate), log_q(c->tls_key),
			  log_q("cannot read the certificate or key"));
		free(*cert);
		free(*key);
		*cert = *key = NULL;
		return -1;
	}
	return 0;
}

static int same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void mkdir_p(const char *path)
{
	char tmp[CONF_PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0700);
			*p = '/';
		}
	}
	mkdir(tmp, 0700);
}

/* ---- the public face ------------------------------------------------ */

int http_start(const struct conf *conf, struct catalog *cat,
	       struct tenant_cache *tc, struct http_server **out)
{
	struct http_server *srv = calloc(1, sizeof *srv);
	*out = NULL;
	if (srv == NULL)
		return -1;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->tlock, NULL);
	pthread_cond_init(&srv->tcond, NULL);
	srv->cat = cat;
	srv->tc = tc;
	settings_from_conf(&srv->set, conf);
	struct penalty_settings ps;
	penalty_from_conf(conf, &ps);
	srv->pen = penalty_new(&ps, "http");
	if (srv->pen == NULL)
		goto fail;
	srv->threads_limit = conf->http_max_connections > 0
				     ? conf->http_max_connections : 1024;
	srv->timeout = conf->http_timeout > 0 ? conf->http_timeout : 60;
	srv->header_timeout = conf->http_header_timeout > 0
				      ? conf->http_header_timeout : 20;
	srv->max_per_source = conf->http_max_per_source;
	srv->max_header_size = conf->http_max_header_size > 0
				       ? (size_t)conf->http_max_header_size
				       : 64 * 1024;
	pthread_mutex_init(&srv->wlock, NULL);
	if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) == 0)
		srv->watchdog_started = 1;
	srv->gen_max = conf->thumbnail_concurrency > 0
			       ? conf->thumbnail_concurrency
			       : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (srv->gen_max < 1)
		srv->gen_max = 1;
	mkdir_p(srv->set.spool_dir);
	if (tls_load(conf, &srv->tls_cert, &srv->tls_key) != 0)
		goto fail;
	for (int i = 0; i < conf->n_http && i < CONF_MAX_LISTEN; i++) {
		struct http_listener *l = &srv->ls[srv->n_ls];
		l->addr = conf->http[i];
		l->fd = listener_open(&l->addr, &l->port, conf->reuse_port);
		if (l->fd < 0)
			goto fail;
		l->mhd = daemon_start(srv, l->fd, srv->tls_cert, srv->tls_key);
		if (l->mhd == NULL) {
			log_error("http_listen", "port=%d error=%s", l->port,
				  log_q("libmicrohttpd refused to start"));
			close(l->fd);
			goto fail;
		}
		srv->n_ls++;
		log_info("http_listen", "host=%s port=%d tls=%d",
			 log_q(l->addr.host[0] ? l->addr.host : "*"), l->port,
			 srv->tls_cert != NULL);
	}
	*out = srv;
	return 0;
fail:
	http_stop(srv, 0);
	return -1;
}

int http_port(const struct http_server *srv, int i)
{
	if (srv == NULL || i < 0 || i >= srv->n_ls)
		return 0;
	return srv->ls[i].port;
}

int http_reload(struct http_server *srv, const struct conf *conf)
{
	char *cert, *key;
	int rc = 0;

	pthread_mutex_lock(&srv->lock);
	settings_from_conf(&srv->set, conf);
	pthread_mutex_unlock(&srv->lock);
	struct penalty_settings ps;
	penalty_from_conf(conf, &ps);
	penalty_reload(srv->pen, &ps);
	mkdir_p(srv->set.spool_dir);
	srv->gen_max = conf->thumbnail_concurrency > 0
			       ? conf->thumbnail_concurrency : srv->gen_max;
	if (conf->http_header_timeout > 0)
		srv->header_timeout = conf->http_header_timeout;

	if (tls_load(conf, &cert, &key) != 0)
		return -1; /* keep serving with the old certificate */
	int tls_changed = !same_str(cert, srv->tls_cert) ||
			  !same_str(key, srv->tls_key);

	/* Listeners: keep those whose address is unchanged (restarting
	 * their daemon on the same socket if TLS changed), open new ones,
	 * drain the ones no longer configured. */
	struct http_listener next[CONF_MAX_LISTEN];
	int n_next = 0;
	int kept[CONF_MAX_LISTEN] = {0};
	for (int i = 0; i < conf->n_http && i < CONF_MAX_LISTEN; i++) {
		struct http_listener *nl = &next[n_next];
		int found = -1;
		for (int j = 0; j < srv->n_ls; j++)
			if (!kept[j] && srv->ls[j].addr.port == conf->http[i].port &&
			    strcmp(srv->ls[j].addr.host, conf->http[i].host) == 0)
				found = j;
		if (found >= 0) {
			*nl = srv->ls[found];
			kept[found] = 1;
			if (tls_changed) {
				struct MHD_Daemon *d =
					daemon_start(srv, nl->fd, cert, key);
				if (d == NULL) {
					log_error("http_reload", "port=%d error=%s",
						  nl->port,
						  log_q("cannot restart with the new TLS files"));
					rc = -1;
				} else {
					retire(srv, nl->mhd, -1);
					nl->mhd = d;
				}
			}
			n_next++;
			continue;
		}
		nl->addr = conf->http[i];
		nl->fd = listener_open(&nl->addr, &nl->port, conf->reuse_port);
		if (nl->fd < 0) {
			rc = -1;
			continue;
		}
		nl->mhd = daemon_start(srv, nl->fd, cert, key);
		if (nl->mhd == NULL) {
			close(nl->fd);
			rc = -1;
			continue;
		}
		log_info("http_listen", "host=%s port=%d tls=%d",
			 log_q(nl->addr.host[0] ? nl->addr.host : "*"),
			 nl->port, cert != NULL);
		n_next++;
	}
	for (int j = 0; j < srv->n_ls; j++)
		if (!kept[j])
			retire(srv, srv->ls[j].mhd, srv->ls[j].fd);
	pthread_mutex_lock(&srv->lock);
	memcpy(srv->ls, next, sizeof next);
	srv->n_ls = n_next;
	if (tls_changed) {
		struct http_old_pem *o = calloc(1, sizeof *o);
		if (o) {
			o->cert = srv->tls_cert;
			o->key = srv->tls_key;
			o->next = srv->old_pem;
			srv->old_pem = o;
		}
		srv->tls_cert = cert;
		srv->tls_key = key;
		cert = key = NULL;
	}
	pthread_mutex_unlock(&srv->lock);
	/* libmicrohttpd copies nothing: the old PEM buffers must outlive
	 * the retired daemons, so they are only freed at http_stop(). */
	if (cert) {
		free(cert);
		free(key);
	}
	if (tls_changed)
		log_info("http_reload", "tls=%d", srv->tls_cert != NULL);
	return rc;
}

void http_stop(struct http_server *srv, int grace_seconds)
{
	if (srv == NULL)
		return;
	/* Stop accepting, and close the listening sockets at once: a
	 * connection that arrives now is refused cleanly (or, with
	 * ReusePort, goes to the instance that replaces this one) instead of
	 * waiting in a backlog that is reset at the end of the grace. */
	for (int i = 0; i < srv->n_ls; i++) {
		if (srv->ls[i].mhd)
			MHD_quiesce_daemon(srv->ls[i].mhd);
		if (srv->ls[i].fd >= 0)
			close(srv->ls[i].fd);
		srv->ls[i].fd = -1;
	}
	time_t deadline = time(NULL) + (grace_seconds > 0 ? grace_seconds : 0);
	for (;;) {
		unsigned busy = 0;
		for (int i = 0; i < srv->n_ls; i++)
			if (srv->ls[i].mhd)
				busy += daemon_connections(srv->ls[i].mhd);
		if (busy == 0 || time(NULL) >= deadline)
			break;
		usleep(50 * 1000);
	}
	srv->stopping = 1;
	if (srv->watchdog_started)
		pthread_join(srv->watchdog, NULL);
	for (int i = 0; i < srv->n_ls; i++) {
		if (srv->ls[i].mhd)
			MHD_stop_daemon(srv->ls[i].mhd);
		if (srv->ls[i].fd >= 0)
			close(srv->ls[i].fd);
	}
	for (struct http_retired *r = srv->retired, *nx; r; r = nx) {
		nx = r->next;
		pthread_join(r->thread, NULL);
		free(r);
	}
	free(srv->tls_cert);
	free(srv->tls_key);
	penalty_free(srv->pen);
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->tlock);
	pthread_mutex_destroy(&srv->wlock);
	pthread_cond_destroy(&srv->tcond);
	for (int i = 0; i < srv->n_stage; i++)
		store_close(srv->stage[i]);
	for (struct http_old_pem *o = srv->old_pem, *nx; o; o = nx) {
		nx = o->next;
		free(o->cert);
		free(o->key);
		free(o);
	}
	free(srv);
}
