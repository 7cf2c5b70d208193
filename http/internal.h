/*
 * internal.h - private to http/: the server, the per-request state and the
 * helpers the route files share (replies, client/collection scoping,
 * tokens, serving an object).
 *
 * server.c owns the listeners, the route table and the access handler;
 * upload.c, fileget.c, thumb.c, exif.c and delete.c each implement routes
 * over these helpers. Nothing here is visible outside http/.
 */
#ifndef ASSETD_HTTP_INTERNAL_H
#define ASSETD_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <microhttpd.h>

#include "catalog.h"
#include "conf.h"
#include "http.h"
#include "store.h"
#include "tenant.h"

/* The settings a request needs, copied under the server's lock when the
 * request starts so that a reload never changes a request halfway. */
struct http_settings {
	char public_url[CONF_PATH_MAX];
	char attachment_key[256];       /* the server's key; secret */
	int time_tolerance;             /* seconds */
	int require_key_for_get;
	uint64_t max_upload_size;       /* 0 = none */
	int max_thumbnail_scale;
	char default_client[64];        /* "" = none */
	int static_files;
	char spool_dir[CONF_PATH_MAX + 16]; /* where file-first uploads and S3
					   thumbnail sources are spooled */
};

/* One listening socket and the libmicrohttpd daemon serving it. */
struct http_listener {
	struct conf_listen addr;        /* as configured */
	int fd;                         /* ours; handed to MHD, never closed by it */
	int port;                       /* bound port */
	struct MHD_Daemon *mhd;
};

/* A daemon replaced by a TLS reload, drained in the background. */
struct http_retired {
	struct http_server *srv;
	struct MHD_Daemon *mhd;
	int fd;                         /* listening fd to close after, or -1 */
	pthread_t thread;
	struct http_retired *next;
};

/* PEM buffers replaced by a reload, kept until the server stops (a
 * draining daemon may still refer to them). */
struct http_old_pem {
	char *cert, *key;
	struct http_old_pem *next;
};

/* A thumbnail being generated: later requests for the same one wait. */
struct http_inflight {
	char key[STORE_URL_MAX + STORE_NAME_MAX];
	int done;
	int waiters;
	struct http_inflight *next;
};

#define HTTP_STAGE_MAX 16

/* One open connection, for the header deadline (server.c). */
struct http_watch {
	int fd;                         /* the connection's socket */
	int64_t since;                  /* when it began waiting for headers,
					   monotonic milliseconds */
	int in_request;                 /* headers are in; a request runs */
	int cut;                        /* shut down by the watchdog */
	int served;                     /* a request has ended: keep-alive
					   idle time (HTTPTimeout) comes first */
	struct http_watch *prev, *next;
};

struct http_server {
	pthread_mutex_t lock;           /* guards set, tls, listeners */
	struct http_settings set;
	struct catalog *cat;
	struct tenant_cache *tc;
	struct http_listener ls[CONF_MAX_LISTEN];
	int n_ls;
	char *tls_cert;                 /* PEM in memory, NULL = plain HTTP */
	char *tls_key;
	int threads_limit;              /* HTTPMaxConnections */
	int timeout;                    /* HTTPTimeout */
	int header_timeout;             /* HTTPHeaderTimeout */
	int max_per_source;             /* HTTPMaxConnectionsPerSource */
	size_t max_header_size;         /* HTTPMaxHeaderSize */
	/* connections waiting for a request's headers (the watchdog) */
	pthread_mutex_t wlock;
	struct http_watch *watch;
	pthread_t watchdog;
	int watchdog_started;
	struct http_retired *retired;
	struct http_old_pem *old_pem;
	volatile int stopping;
	struct store *stage[HTTP_STAGE_MAX]; /* regions' assets locations
					   opened for staging uploads */
	int n_stage;

	struct penalty_table *pen;      /* per-source penalties for bad
					   tokens (store/penalty.c) */

	/* thumbnails */
	pthread_mutex_t tlock;
	pthread_cond_t tcond;
	int gen_running;                /* generations running now */
	int gen_max;                    /* ThumbnailConcurrency */
	struct http_inflight *inflight;
};

enum http_method { HM_GET = 1, HM_HEAD = 2, HM_POST = 4, HM_OPTIONS = 8 };

struct http_req;

/* A route: its path (below the optional /c/<client> prefix), methods and
 * handlers. HANDLE answers bodiless requests at once; body routes get
 * BEGIN at the headers, BODY for each chunk and END when it is complete. */
struct http_route {
	const char *path;
	int prefix_match;               /* path is a prefix ("/static/") */
	int methods;
	int static_only;                /* only with StaticFiles yes */
	enum MHD_Result (*handle)(struct http_req *rq);
	enum MHD_Result (*begin)(struct http_req *rq);
	int (*body)(struct http_req *rq, const char *data, size_t len);
	enum MHD_Result (*end)(struct http_req *rq);
	void (*cleanup)(struct http_req *rq);
};

struct http_req {
	struct http_server *srv;
	struct MHD_Connection *conn;
	struct http_settings set;
	int64_t started;                /* unix seconds when the headers came:
					   tokens are judged against this */
	int method;
	const char *url;                /* path without the query */
	const char *route_path;         /* URL below the client prefix */
	const struct http_route *route;
	char client[CATALOG_NAME_MAX];  /* the /c/<client> prefix, or "" */
	int prefixed;
	int tls;
	unsigned status;                /* the status answered, for the log */
	uint64_t body_bytes;            /* request body bytes seen */
	int responded;
	unsigned pending;               /* 404/405 decided at the headers,
					   answered at the end */
	void *state;                    /* the route's own state */
	uint64_t bytes_out;             /* body bytes of the answer queued */
	int transfer;                   /* counted in transfers_active */
	/* The audit event of a write or delete, set by the route once it
	 * knows the client (http_audit_set), recorded when the request
	 * ends with its final status. */
	const char *audit_op;           /* "write", "delete", or NULL */
	const char *audit_identity;     /* "key:client" / "key:server" */
	char audit_client[CATALOG_NAME_MAX];
	char audit_path[STORE_NAME_MAX + 16];
	int64_t audit_bytes;
};

/* What a `coll` resolves to. */
struct http_scope {
	struct catalog_client client;
	struct store *store;            /* owned by the tenant cache */
	char dir[CATALOG_URL_MAX];      /* the collection's subfolder or "" */
	char key[CATALOG_TEXT_MAX];     /* the attachment key that applies */
};

/* ---- server.c ------------------------------------------------------- */

/* The answer's text when http_check_token() returns 429. */
#define HTTP_TEXT_PENALISED \
	"Too many failed attempts from this address; try again later.\n"

/* Queue R with STATUS after adding X-Timestamp and the CORS header; takes
 * ownership of R. */
enum MHD_Result http_reply(struct http_req *rq, unsigned status,
			   struct MHD_Response *r);
/* A short text/plain answer. */
enum MHD_Result http_reply_text(struct http_req *rq, unsigned status,
				const char *text);

/* A query argument, or NULL. Values with an embedded NUL are treated as
 * absent and flagged in *BAD (if not NULL). */
const char *http_arg(struct http_req *rq, const char *name, int *bad);
const char *http_header(struct http_req *rq, const char *name);

/* Resolve COLL for this request (prefix, DefaultClient, ambiguity). Returns
 * 0 or an HTTP status (404 unknown/ambiguous, 403 disabled, 503 store).
 * Logs why when refusing. */
int http_scope_resolve(struct http_req *rq, const char *coll,
		       struct http_scope *out);

/* The scope of a read (fileget, getmetadata, getfileref): resolve COLL,
 * then, with RequireKeyForGet, check TOKEN for FILENAME. 0 with *OUT
 * (malloc'd, the caller frees it), or an HTTP status (*OUT NULL). */
int http_scope_for_read(struct http_req *rq, const char *coll,
			const char *filename, const char *token,
			struct http_scope **out);

/* Check TOKEN for NAME (LEN bytes) with KEY, against the request's start.
 * 0, 403 (logged, never with the token; counts towards the source's
 * penalty), or 429 when the source is refused for repeated failures. */
int http_check_token(struct http_req *rq, const char *key, const char *token,
		     const char *name, size_t len);

/* 429 if the request's source is refused for repeated token failures
 * (logged), else 0. */
int http_penalised(struct http_req *rq);

/* "<dir>/<sub>/<name>" into OUT. 0 or -1. */
int http_object_name(const struct http_scope *sc, const char *sub,
		     const char *name, char *out, size_t outlen);

/* Note that this request is OP ("write", "delete") on object OBJ of SC's
 * client, BYTES long (-1 n/a): audited when it ends. */
void http_audit_set(struct http_req *rq, const char *op,
		    const struct http_scope *sc, const char *obj,
		    int64_t bytes);

/* Set the audited path to object OBJ of the request's client. */
void http_audit_path(struct http_req *rq, const char *obj);

/* Map a store error to an HTTP status. */
unsigned http_status_of(int store_err);

/* Where to stage a file that arrives before the fields that say where it
 * goes (Specify 7's order): the /c/<client>/ prefix's client, the
 * DefaultClient, the only client, or else the assets location of the
 * region with most clients. 0 with *OUT (owned by the server or the tenant
 * cache), or an HTTP status (404, 403, 503; logged). */
int http_stage_store(struct http_req *rq, struct store **out);

/* The reply body for a store error that reached the client: a fixed text
 * that says what kind of failure it was (full storage, unavailable or
 * throttling storage, too large) and never names the object or the store.
 * Static string, ends in a newline. */
const char *http_store_error_text(int store_err);

/* A temp file in the spool directory, already unlinked. fd or -1. */
int http_spool_open(struct http_req *rq);

/* ---- fileget.c ------------------------------------------------------ */

/* Serve object NAME of STORE with ranges, validators and HEAD; with
 * DISPOSITION (may be NULL) as Content-Disposition. Content-Type from
 * CTYPE_NAME's extension. */
enum MHD_Result http_serve_object(struct http_req *rq, struct store *st,
				  const char *name, const char *ctype_name,
				  const char *disposition);

enum MHD_Result http_route_fileget(struct http_req *rq);
enum MHD_Result http_route_getfileref(struct http_req *rq);
enum MHD_Result http_route_static(struct http_req *rq);

/* ---- thumb.c -------------------------------------------------------- */

enum MHD_Result http_serve_thumbnail(struct http_req *rq,
				     const struct http_scope *sc,
				     const char *name, const char *scale);

/* ---- upload.c ------------------------------------------------------- */

enum MHD_Result http_upload_begin(struct http_req *rq);
int http_upload_body(struct http_req *rq, const char *data, size_t len);
enum MHD_Result http_upload_end(struct http_req *rq);
void http_upload_cleanup(struct http_req *rq);
enum MHD_Result http_upload_options(struct http_req *rq);

/* ---- delete.c ------------------------------------------------------- */

enum MHD_Result http_delete_begin(struct http_req *rq);
int http_delete_body(struct http_req *rq, const char *data, size_t len);
enum MHD_Result http_delete_end(struct http_req *rq);
void http_delete_cleanup(struct http_req *rq);

/* ---- exif.c --------------------------------------------------------- */

enum MHD_Result http_route_getmetadata(struct http_req *rq);

#endif
