/*
 * upload.c - POST /fileupload: streaming multipart uploads.
 *
 * Specify 7 sends the file part first and token, store, type and coll
 * after it; Specify 6 and curl users may send the fields first. The body
 * is parsed as it arrives (http_multipart) and the file's bytes go
 * straight into the store either way:
 *  - when the fields came first and checked out, into a writer on the
 *    final name (an fs temp file beside it, or an S3 multipart upload);
 *  - when the file comes first, into a staged writer (store_writer_open_
 *    staged): a hidden temp object in the location it most likely goes to
 *    (http_stage_store: the /c/<client>/ prefix's client, DefaultClient,
 *    the only client, or the assets location of the region with most
 *    clients), since the final name and collection folder arrive after
 *    the bytes. At the end it is committed under its final name: rename(2)
 *    on fs, a single PUT or a server-side copy on S3.
 * Nothing becomes visible until the end of the body, when the name, the
 * collection and the token (judged against the moment the request
 * started, so a long upload keeps its token) have all checked out. Any
 * refusal, and a connection that breaks, aborts the writer: the temp file
 * is unlinked, the multipart upload aborted; a refused or broken upload
 * leaves nothing.
 *
 * MaxUploadSize is checked against Content-Length before any byte is read
 * and against the bytes actually received: the answer is 413 either way.
 * A body a little over the limit is read and dropped so that the client
 * gets its answer; a client waiting for "100 Continue", or a body far over,
 * gets the 413 at once and the connection is closed.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_multipart.h"
#include "http_proto.h"
#include "http_token.h"
#include "log.h"

enum { P_SKIP, P_FILE, P_FIELD };

enum { F_TOKEN, F_STORE, F_TYPE, F_COLL, F_COUNT };
static const char *const field_names[F_COUNT] = {"token", "store", "type",
						 "coll"};

struct field {
	char buf[1024];
	size_t len;
	int seen;       /* complete */
	int overflow;
	int has_nul;
};

struct upload {
	struct http_multipart mp;
	struct http_req *rq;
	int part;                       /* P_* of the current part */
	int field;                      /* F_* when part == P_FIELD */
	struct field f[F_COUNT];
	int file_seen;
	int fail;                       /* HTTP status to answer, 0 = none */
	const char *fail_msg;
	int checked;                    /* fields validated */
	int thumbnail;                  /* type=T: store nothing */
	struct http_scope *sc;
	char obj[STORE_NAME_MAX];
	struct store_writer *w;         /* direct or staged */
	int staged;                     /* W was opened staged: commit_as */
	uint64_t file_bytes;
	uint64_t content_length;        /* 0 if unknown */
};

static void set_fail(struct upload *u, int status, const char *msg)
{
	if (u->fail == 0) {
		u->fail = status;
		u->fail_msg = msg;
	}
}

/* Validate the fields once: name, collection, token, type. 0 or a status
 * (with fail set). */
static int check_fields(struct upload *u)
{
	struct http_req *rq = u->rq;
	struct field *st = &u->f[F_STORE], *tk = &u->f[F_TOKEN];
	struct field *ty = &u->f[F_TYPE], *co = &u->f[F_COLL];

	if (u->checked)
		return u->fail;
	u->checked = 1;
	for (int i = 0; i < F_COUNT; i++)
		if (u->f[i].overflow || u->f[i].has_nul) {
			set_fail(u, 400, "Invalid field.\n");
			return u->fail;
		}
	if (!st->seen) {
		set_fail(u, 400, "Missing store.\n");
		return u->fail;
	}
	if (!http_name_valid(st->buf, st->len)) {
		log_info("http_refused", "reason=invalid_name name=%s",
			 log_q(st->buf));
		set_fail(u, 400, "Invalid store name.\n");
		return u->fail;
	}
	if (ty->seen && strcmp(ty->buf, "T") == 0)
		u->thumbnail = 1;
	else if (ty->seen && ty->buf[0] && strcmp(ty->buf, "O") != 0) {
		set_fail(u, 400, "Invalid type.\n");
		return u->fail;
	}
	u->sc = malloc(sizeof *u->sc);
	if (u->sc == NULL) {
		set_fail(u, 503, "Out of memory.\n");
		return u->fail;
	}
	int s = http_scope_resolve(rq, co->seen ? co->buf : "", u->sc);
	if (s) {
		set_fail(u, s, s == 404 ? "Unknown collection.\n"
				: s == 403 ? "Client disabled.\n"
					   : "Unavailable.\n");
		return u->fail;
	}
	int name_ok = http_object_name(u->sc, "originals", st->buf, u->obj,
				       sizeof u->obj) == 0;
	/* From here the client is known: the request is audited. */
	if (!u->thumbnail)
		http_audit_set(rq, "write", u->sc, name_ok ? u->obj : st->buf,
			       -1);
	s = http_check_token(rq, u->sc->key, tk->seen ? tk->buf : NULL,
			     st->buf, st->len);
	if (s) {
		set_fail(u, s, s == 429 ? HTTP_TEXT_PENALISED
				       : "Invalid token.\n");
		return u->fail;
	}
	if (!name_ok) {
		set_fail(u, 400, "Name too long.\n");
		return u->fail;
	}
	return 0;
}

/* A store error's reply: the status from http_status_of() and words a
 * person reading Specify's error can act on. */
static void store_fail(struct upload *u, int rc)
{
	set_fail(u, (int)http_status_of(rc),
		 rc == STORE_EQUOTA ? "Quota exceeded: the collection's "
				      "storage quota is used up.\n"
				    : http_store_error_text(rc));
}

/* HINT is the body's length: a little more than the file. */
static int writer_open(struct upload *u, uint64_t hint)
{
	struct store_put_opts po;
	memset(&po, 0, sizeof po);
	po.size_hint = hint;
	int rc = store_writer_open(u->sc->store, u->obj, &po, &u->w);
	if (rc != 0) {
		u->w = NULL;
		log_error("upload_store", "op=open name=%s error=%s",
			  log_q(u->obj), log_q(store_strerror(rc)));
		store_fail(u, rc);
		return -1;
	}
	return 0;
}

/* The file part begins: decide where its bytes go. */
static void file_begin(struct upload *u)
{
	u->file_seen = 1;
	u->part = P_FILE;
	if (u->fail)
		return;
	if (u->f[F_STORE].seen && u->f[F_TOKEN].seen && u->f[F_COLL].seen &&
	    u->f[F_TYPE].seen) {
		if (check_fields(u) || u->thumbnail)
			return;
		writer_open(u, u->content_length);
		return;
	}
	/* The fields come after the file: stage it where it most likely
	 * goes, name it at the end. */
	struct store *stage;
	int s = http_stage_store(u->rq, &stage);
	if (s) {
		set_fail(u, s, s == 404 ? "Unknown client.\n"
				: s == 403 ? "Client disabled.\n"
					   : "Unavailable.\n");
		return;
	}
	struct store_put_opts po;
	memset(&po, 0, sizeof po);
	po.size_hint = u->content_length;
	int rc = store_writer_open_staged(stage, &po, &u->w);
	if (rc != 0) {
		u->w = NULL;
		log_error("upload_store", "op=stage location=%s error=%s",
			  log_q(store_url(stage)), log_q(store_strerror(rc)));
		store_fail(u, rc);
		return;
	}
	u->staged = 1;
}

static int file_data(struct upload *u, const char *d, size_t n)
{
	u->file_bytes += n;
	if (u->fail || u->thumbnail)
		return 0;
	if (u->w) {
		int rc = store_writer_write(u->w, d, n);
		if (rc != 0) {
			log_error("upload_store", "op=write name=%s error=%s",
				  log_q(u->obj), log_q(store_strerror(rc)));
			store_fail(u, rc);
		}
		return 0;
	}
	return 0;
}

static int on_begin(void *arg, const struct http_mp_part *p)
{
	struct upload *u = arg;
	u->part = P_SKIP;
	if (!u->file_seen && (p->has_filename || strcmp(p->name, "file") == 0)) {
		file_begin(u);
		return 0;
	}
	for (int i = 0; i < F_COUNT; i++) {
		if (strcmp(p->name, field_names[i]) != 0)
			continue;
		if (u->f[i].seen) {
			/* A second token or store: which one would count?
			 * Refuse rather than guess. */
			set_fail(u, 400, "Duplicate field.\n");
			return 0;
		}
		u->part = P_FIELD;
		u->field = i;
		u->f[i].len = 0;
	}
	return 0;
}

static int on_data(void *arg, const char *d, size_t n)
{
	struct upload *u = arg;
	if (u->part == P_FILE)
		return file_data(u, d, n);
	if (u->part == P_FIELD) {
		struct field *f = &u->f[u->field];
		if (f->len + n >= sizeof f->buf) {
			f->overflow = 1;
			return 0;
		}
		if (memchr(d, '\0', n))
			f->has_nul = 1;
		memcpy(f->buf + f->len, d, n);
		f->len += n;
	}
	return 0;
}

static int on_end(void *arg)
{
	struct upload *u = arg;
	if (u->part == P_FIELD) {
		struct field *f = &u->f[u->field];
		f->buf[f->len < sizeof f->buf ? f->len : sizeof f->buf - 1] = '\0';
		f->seen = 1;
	}
	u->part = P_SKIP;
	return 0;
}

static const struct http_mp_callbacks mp_cb = {on_begin, on_data, on_end};

enum MHD_Result http_upload_options(struct http_req *rq)
{
	const char *req_h = http_header(rq, "Access-Control-Request-Headers");
	const char *allow = "Content-Type, X-Requested-With, Authorization";
	if (req_h && strlen(req_h) < 512) {
		int ok = 1;
		for (const char *p = req_h; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || strchr("-_, ", *p)))
				ok = 0;
		if (ok && req_h[0])
			allow = req_h;
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(
		0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Access-Control-Allow-Methods", "POST, OPTIONS");
	MHD_add_response_header(r, "Access-Control-Allow-Headers", allow);
	MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
	MHD_add_response_header(r, "Allow", "POST, OPTIONS");
	return http_reply(rq, 200, r);
}

/* An answer given before the body is read: the client may still be
 * sending it, so close the connection after the answer. */
static enum MHD_Result reply_early(struct http_req *rq, unsigned status,
				   const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	MHD_add_response_header(r, "Connection", "close");
	return http_reply(rq, status, r);
}

/* Past MaxUploadSize, how much more of a body is read and dropped so that
 * the client, still sending, can read the 413 (as nginx's lingering close
 * does); beyond it the connection is closed. */
#define LINGER_BYTES ((uint64_t)8 << 20)

enum MHD_Result http_upload_begin(struct http_req *rq)
{
	const char *cl = http_header(rq, "Content-Length");
	const char *expect = http_header(rq, "Expect");
	uint64_t len = 0, max = rq->set.max_upload_size;
	if (cl) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(cl, &end, 10);
		if (errno == 0 && *end == '\0' && end != cl)
			len = v;
	}
	if (max && len > max &&
	    (expect != NULL || len > max + LINGER_BYTES)) {
		/* The client waits for "100 Continue" (nothing is sent yet),
		 * or the body is too large to read and drop: refuse now. */
		log_info("http_refused", "reason=too_large bytes=%llu max=%llu",
			 (unsigned long long)len, (unsigned long long)max);
		return reply_early(rq, 413, "Upload too large.\n");
	}
	struct upload *u = calloc(1, sizeof *u);
	if (u == NULL)
		return MHD_NO;
	u->rq = rq;
	u->content_length = len;
	rq->state = u;
	if (http_mp_init(&u->mp, http_header(rq, "Content-Type"), &mp_cb, u) != 0)
		return reply_early(rq, 400, "Expected multipart/form-data.\n");
	if (max && len > max)
		set_fail(u, 413, "Upload too large.\n"); /* read, drop, answer */
	return MHD_YES;
}

int http_upload_body(struct http_req *rq, const char *data, size_t len)
{
	struct upload *u = rq->state;
	uint64_t max = rq->set.max_upload_size;
	if (max && (rq->body_bytes > max || u->fail == 413)) {
		if (u->fail != 413 || u->fail_msg == NULL)
			log_info("http_refused", "reason=too_large bytes=%llu max=%llu",
				 (unsigned long long)rq->body_bytes,
				 (unsigned long long)max);
		u->fail = 413;
		u->fail_msg = "Upload too large.\n";
		/* Stop writing at once; drop what was stored. */
		if (u->w) {
			store_writer_abort(u->w);
			u->w = NULL;
		}
		return rq->body_bytes > max + LINGER_BYTES ? -1 : 0;
	}
	int rc = http_mp_feed(&u->mp, data, len);
	if (rc != 0 && u->fail == 0)
		set_fail(u, 400, "Malformed multipart body.\n");
	return 0;
}

static void drop(struct upload *u)
{
	if (u->w) {
		store_writer_abort(u->w);
		u->w = NULL;
	}
}

enum MHD_Result http_upload_end(struct http_req *rq)
{
	struct upload *u = rq->state;
	if (u->fail == 0 && http_mp_finish(&u->mp) != 0)
		set_fail(u, 400, "Truncated multipart body.\n");
	if (u->fail == 0 && !u->file_seen)
		set_fail(u, 400, "Missing file.\n");
	if (u->fail == 0)
		check_fields(u);
	if (u->fail == 0 && u->thumbnail) {
		drop(u);
		return http_reply_text(rq, 200, "Ignoring thumbnail upload!");
	}
	if (u->fail == 0 && u->w == NULL)
		set_fail(u, 500, "Storage error.\n");
	if (u->fail == 0) {
		int rc = u->staged ? store_writer_commit_as(u->w, u->sc->store,
							    u->obj)
				   : store_writer_commit(u->w);
		u->w = NULL;
		if (rc != 0) {
			log_error("upload_store", "op=commit name=%s error=%s",
				  log_q(u->obj), log_q(store_strerror(rc)));
			store_fail(u, rc);
		}
	}
	drop(u);
	if (u->fail)
		return http_reply_text(rq, (unsigned)u->fail, u->fail_msg);
	log_info("upload", "client=%s name=%s bytes=%llu",
		 log_q(u->sc->client.name), log_q(u->obj),
		 (unsigned long long)u->file_bytes);
	rq->audit_bytes = (int64_t)u->file_bytes;
	return http_reply_text(rq, 200, "Ok.");
}

void http_upload_cleanup(struct http_req *rq)
{
	struct upload *u = rq->state;
	if (u == NULL)
		return;
	drop(u); /* a broken connection: nothing becomes visible */
	free(u->sc);
	free(u);
	rq->state = NULL;
}
