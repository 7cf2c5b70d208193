/*
 * fileget.c - serving originals: /fileget (type=O), /getfileref and
 * /static/ (only with StaticFiles yes).
 *
 * Browsers play video and audio straight from fileget, so an object is
 * served like a static file by a mature web server: one byte range (206,
 * 416), ETag and Last-Modified with If-None-Match / If-Modified-Since (304)
 * and If-Range, HEAD without touching the bytes. On the filesystem backend
 * the response is a file descriptor, which libmicrohttpd sends with
 * sendfile() (zero copy); on S3 the range is one ranged GET streamed
 * through a bounded buffer.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_proto.h"
#include "log.h"

#define READ_BLOCK (256 * 1024)

static ssize_t reader_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	ssize_t n = store_reader_read(cls, buf, max);
	if (n > 0)
		return n;
	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void reader_free(void *cls)
{
	store_reader_close(cls);
}

static ssize_t no_body_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	(void)pos;
	(void)buf;
	(void)max;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void make_etag(const struct store_stat *ss, char *out, size_t len)
{
	if (ss->etag[0])
		snprintf(out, len, "\"%s\"", ss->etag);
	else
		snprintf(out, len, "\"%llx-%llx\"", (unsigned long long)ss->mtime,
			 (unsigned long long)ss->size);
}

static void add_validators(struct MHD_Response *r, const char *etag,
			   const char *lm)
{
	MHD_add_response_header(r, "ETag", etag);
	MHD_add_response_header(r, "Last-Modified", lm);
}

/* 1 if the If-Range precondition holds (or is absent). */
static int if_range_ok(struct http_req *rq, const char *etag, int64_t mtime)
{
	const char *ir = http_header(rq, "If-Range");
	int64_t t;
	if (ir == NULL)
		return 1;
	if (ir[0] == '"')
		return strcmp(ir, etag) == 0; /* strong comparison */
	if (strncmp(ir, "W/", 2) == 0)
		return 0;
	return http_date_parse(ir, &t) == 0 && t == mtime;
}

enum MHD_Result http_serve_object(struct http_req *rq, struct store *st,
				  const char *name, const char *ctype_name,
				  const char *disposition)
{
	struct store_stat ss, os;
	struct store_reader *rd = NULL;
	char etag[STORE_ETAG_MAX + 8], lm[64], crange[96];
	uint64_t off = 0, len = 0;
	int partial = 0;

	for (int attempt = 0;; attempt++) {
		int rc = store_stat(st, name, &ss);
		if (rc == 0 && ss.is_dir)
			rc = STORE_ENOENT;
		if (rc != 0) {
			unsigned status = http_status_of(rc);
			if (status >= 500)
				log_error("http_store", "op=stat name=%s error=%s",
					  log_q(name), log_q(store_strerror(rc)));
			return http_reply_text(rq, status, status == 404
					       ? "File not found.\n"
					       : "Storage error.\n");
		}
		make_etag(&ss, etag, sizeof etag);
		http_date_format(ss.mtime, lm, sizeof lm);

		/* Conditional GET: If-None-Match wins over If-Modified-Since. */
		const char *inm = http_header(rq, "If-None-Match");
		const char *ims = http_header(rq, "If-Modified-Since");
		int64_t t;
		if (inm ? http_etag_match(inm, etag)
			: (ims && http_date_parse(ims, &t) == 0 && ss.mtime <= t)) {
			struct MHD_Response *r = MHD_create_response_from_buffer(
				0, (void *)"", MHD_RESPMEM_PERSISTENT);
			if (r == NULL)
				return MHD_NO;
			add_validators(r, etag, lm);
			return http_reply(rq, 304, r);
		}

		off = 0;
		len = ss.size;
		partial = 0;
		const char *range = http_header(rq, "Range");
		if (range && if_range_ok(rq, etag, ss.mtime)) {
			int pr = http_range_parse(range, ss.size, &off, &len);
			if (pr == HTTP_RANGE_UNSATISFIABLE) {
				struct MHD_Response *r =
					MHD_create_response_from_buffer(
						0, (void *)"", MHD_RESPMEM_PERSISTENT);
				if (r == NULL)
					return MHD_NO;
				snprintf(crange, sizeof crange, "bytes */%llu",
					 (unsigned long long)ss.size);
				MHD_add_response_header(r, "Content-Range", crange);
				MHD_add_response_header(r, "Accept-Ranges", "bytes");
				add_validators(r, etag, lm);
				return http_reply(rq, 416, r);
			}
			if (pr == HTTP_RANGE_OK)
				partial = 1;
			else {
				off = 0;
				len = ss.size;
			}
		}
		if (rq->method == HM_HEAD)
			break;
		rc = store_reader_open(st, name, off, len, &rd, &os);
		if (rc != 0) {
			unsigned status = http_status_of(rc);
			return http_reply_text(rq, status, status == 404
					       ? "File not found.\n"
					       : "Storage error.\n");
		}
		/* Replaced between the stat and the open: answer about the
		 * object actually opened. */
		if (os.size == ss.size && os.mtime == ss.mtime &&
		    strcmp(os.etag, ss.etag) == 0)
			break;
		store_reader_close(rd);
		rd = NULL;
		if (attempt >= 2)
			return http_reply_text(rq, 503, "File is changing.\n");
	}

	struct MHD_Response *r;
	if (rq->method == HM_HEAD) {
		r = MHD_create_response_from_callback(len, 4096, no_body_cb,
						      NULL, NULL);
	} else {
		int fd = store_reader_fd(rd);
		int dfd = fd >= 0 ? dup(fd) : -1;
		if (dfd >= 0) {
			store_reader_close(rd);
			r = MHD_create_response_from_fd_at_offset64(len, dfd, off);
			if (r == NULL)
				close(dfd);
		} else {
			r = MHD_create_response_from_callback(
				len, READ_BLOCK, reader_cb, rd, reader_free);
			if (r == NULL)
				store_reader_close(rd);
		}
	}
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", store_content_type(ctype_name));
	MHD_add_response_header(r, "Accept-Ranges", "bytes");
	add_validators(r, etag, lm);
	/* A stored .html or .svg must not run script in our origin. */
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Content-Security-Policy", "sandbox");
	if (disposition)
		MHD_add_response_header(r, "Content-Disposition", disposition);
	if (partial) {
		snprintf(crange, sizeof crange, "bytes %llu-%llu/%llu",
			 (unsigned long long)off,
			 (unsigned long long)(off + len - 1),
			 (unsigned long long)ss.size);
		MHD_add_response_header(r, "Content-Range", crange);
	}
	rq->bytes_out = len;
	return http_reply(rq, partial ? 206 : 200, r);
}

enum MHD_Result http_route_fileget(struct http_req *rq)
{
	int bad = 0;
	const char *coll = http_arg(rq, "coll", &bad);
	const char *type = http_arg(rq, "type", &bad);
	const char *filename = http_arg(rq, "filename", &bad);
	const char *scale = http_arg(rq, "scale", &bad);
	const char *dl = http_arg(rq, "downloadname", &bad);
	const char *token = http_arg(rq, "token", &bad);

	if (bad)
		return http_reply_text(rq, 400, "Bad request: NUL in a parameter.\n");
	if (filename == NULL)
		return http_reply_text(rq, 400, "Missing filename.\n");
	if (!http_name_valid(filename, strlen(filename)))
		return http_reply_text(rq, 400, "Invalid filename.\n");
	if (type == NULL || type[0] == '\0')
		type = "O";
	if (strcmp(type, "O") != 0 && strcmp(type, "T") != 0)
		return http_reply_text(rq, 400, "Invalid type.\n");

	struct http_scope *sc;
	enum MHD_Result ret;
	int st = http_scope_for_read(rq, coll, filename, token, &sc);
	if (st) {
		ret = http_reply_text(rq, st, st == 403 ? "Invalid token.\n"
					  : st == 429 ? HTTP_TEXT_PENALISED
					  : st == 404 ? "Unknown collection.\n"
						      : "Unavailable.\n");
	} else if (type[0] == 'T') {
		ret = http_serve_thumbnail(rq, sc, filename, scale);
	} else {
		char obj[STORE_NAME_MAX], disp[1200];
		const char *dispp = NULL;
		if (dl && dl[0] &&
		    http_content_disposition(dl, disp, sizeof disp) == 0)
			dispp = disp;
		if (http_object_name(sc, "originals", filename, obj, sizeof obj))
			ret = http_reply_text(rq, 400, "Name too long.\n");
		else
			ret = http_serve_object(rq, sc->store, obj, filename, dispp);
	}
	free(sc);
	return ret;
}

enum MHD_Result http_route_getfileref(struct http_req *rq)
{
	int bad = 0;
	const char *coll = http_arg(rq, "coll", &bad);
	const char *type = http_arg(rq, "type", &bad);
	const char *filename = http_arg(rq, "filename", &bad);
	const char *token = http_arg(rq, "token", &bad);
	char prefix[CATALOG_NAME_MAX + 4] = "";
	char base[CONF_PATH_MAX + 128], ecoll[CATALOG_TEXT_MAX * 3 + 1];
	char ename[256 * 3 + 1], out[sizeof base + sizeof ecoll + sizeof ename + 32];

	if (bad || filename == NULL || coll == NULL ||
	    !http_name_valid(filename, strlen(filename)) ||
	    strchr(coll, '/') != NULL)
		return http_reply_text(rq, 400, "Bad request.\n");
	struct http_scope *sc;
	int st = http_scope_for_read(rq, coll, filename, token, &sc);
	free(sc);
	if (st)
		return http_reply_text(rq, st, "Refused.\n");
	if (rq->prefixed)
		snprintf(prefix, sizeof prefix, "/c/%s", rq->client);
	if (http_base_url(rq->set.public_url, http_header(rq, "X-Forwarded-Proto"),
			  http_header(rq, "X-Forwarded-Host"),
			  http_header(rq, "Host"), rq->tls, prefix, base,
			  sizeof base) != 0 ||
	    http_pct_encode_url(coll, ecoll, sizeof ecoll) != 0 ||
	    http_pct_encode_url(filename, ename, sizeof ename) != 0)
		return http_reply_text(rq, 400, "Bad request.\n");
	snprintf(out, sizeof out, "%s/static/%s/%s/%s", base, ecoll,
		 type && strcmp(type, "T") == 0 ? "thumbnails" : "originals",
		 ename);
	return http_reply_text(rq, 200, out);
}

/* /static/<coll>/<originals|thumbnails>/<name>: no token, by design of
 * the old web portal; served only when StaticFiles is on. */
enum MHD_Result http_route_static(struct http_req *rq)
{
	char coll[CATALOG_TEXT_MAX], sub[16];
	const char *p = rq->route_path + strlen("/static/");
	const char *s1 = strchr(p, '/');
	const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;

	if (s1 == NULL || s2 == NULL || (size_t)(s1 - p) >= sizeof coll ||
	    (size_t)(s2 - s1 - 1) >= sizeof sub)
		return http_reply_text(rq, 404, "Not found.\n");
	memcpy(coll, p, (size_t)(s1 - p));
	coll[s1 - p] = '\0';
	memcpy(sub, s1 + 1, (size_t)(s2 - s1 - 1));
	sub[s2 - s1 - 1] = '\0';
	const char *name = s2 + 1;
	if ((strcmp(sub, "originals") != 0 && strcmp(sub, "thumbnails") != 0) ||
	    !http_name_valid(name, strlen(name)))
		return http_reply_text(rq, 404, "Not found.\n");
	struct http_scope *sc = malloc(sizeof *sc);
	if (sc == NULL)
		return MHD_NO;
	enum MHD_Result ret;
	char obj[STORE_NAME_MAX];
	int st = http_scope_resolve(rq, coll, sc);
	if (st)
		ret = http_reply_text(rq, st, "Not found.\n");
	else if (http_object_name(sc, sub, name, obj, sizeof obj))
		ret = http_reply_text(rq, 400, "Name too long.\n");
	else
		ret = http_serve_object(rq, sc->store, obj, name, NULL);
	free(sc);
	return ret;
}
