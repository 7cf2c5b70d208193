/*
 * delete.c - POST /filedelete: remove an original and exactly its
 * thumbnails.
 *
 * The fields (filename, coll, token) come form-urlencoded (the reference's
 * clients) or as multipart/form-data (Specify 7 posts a FormData); both are
 * bounded. The original goes first; then every object in the thumbnails
 * folder that http_thumb_is_of() recognises as "<root>_<S><ext>" of this
 * name, for every S. That rule is exact, unlike the reference's two
 * prefix guesses (before ".att", or before the first '.'), which orphan
 * Specify 7's or Specify 6's thumbnails and could hit a neighbour's.
 * A missing original is 404 (Specify treats it as done); its stray
 * thumbnails are removed all the same.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_multipart.h"
#include "http_proto.h"
#include "log.h"

#define FORM_MAX (64 * 1024)
#define THUMBS_MAX 100000

struct del {
	int multipart;
	struct http_multipart mp;
	int field;                      /* index in vals, -1 = skip */
	char *body;                     /* urlencoded body, FORM_MAX */
	size_t len;
	int fail;
	char vals[3][1024];             /* filename, coll, token */
	size_t vlen[3];
	int seen[3];
	int bad;                        /* NUL, overflow, duplicate */
};

static const char *const names[3] = {"filename", "coll", "token"};

static int field_index(const char *n, size_t nl)
{
	for (int i = 0; i < 3; i++)
		if (strlen(names[i]) == nl && memcmp(n, names[i], nl) == 0)
			return i;
	return -1;
}

static void set_val(struct del *d, int i, const char *v, size_t vl)
{
	if (d->seen[i] || vl >= sizeof d->vals[i] || memchr(v, '\0', vl)) {
		d->bad = 1;
		return;
	}
	memcpy(d->vals[i], v, vl);
	d->vals[i][vl] = '\0';
	d->vlen[i] = vl;
	d->seen[i] = 1;
}

static int form_cb(void *arg, const char *n, size_t nl, const char *v,
		   size_t vl)
{
	int i = field_index(n, nl);
	if (i >= 0)
		set_val(arg, i, v, vl);
	return 0;
}

static int mp_begin(void *arg, const struct http_mp_part *p)
{
	struct del *d = arg;
	d->field = p->has_filename ? -1 : field_index(p->name, strlen(p->name));
	if (d->field >= 0) {
		if (d->seen[d->field])
			d->bad = 1;
		d->vlen[d->field] = 0;
	}
	return 0;
}

static int mp_data(void *arg, const char *data, size_t n)
{
	struct del *d = arg;
	if (d->field < 0)
		return 0;
	size_t *l = &d->vlen[d->field];
	if (*l + n >= sizeof d->vals[0] || memchr(data, '\0', n)) {
		d->bad = 1;
		return 0;
	}
	memcpy(d->vals[d->field] + *l, data, n);
	*l += n;
	return 0;
}

static int mp_end(void *arg)
{
	struct del *d = arg;
	if (d->field >= 0) {
		d->vals[d->field][d->vlen[d->field]] = '\0';
		d->seen[d->field] = 1;
	}
	d->field = -1;
	return 0;
}

static const struct http_mp_callbacks del_cb = {mp_begin, mp_data, mp_end};

enum MHD_Result http_delete_begin(struct http_req *rq)
{
	struct del *d = calloc(1, sizeof *d);
	if (d == NULL)
		return MHD_NO;
	rq->state = d;
	d->field = -1;
	const char *ct = http_header(rq, "Content-Type");
	if (ct && strncasecmp(ct, "multipart/", 10) == 0) {
		d->multipart = 1;
		if (http_mp_init(&d->mp, ct, &del_cb, d) != 0)
			d->fail = 400;
	} else {
		d->body = malloc(FORM_MAX);
		if (d->body == NULL)
			return MHD_NO;
	}
	return MHD_YES;
}

int http_delete_body(struct http_req *rq, const char *data, size_t len)
{
	struct del *d = rq->state;
	if (d->fail)
		return rq->body_bytes > FORM_MAX * 4 ? -1 : 0;
	if (d->multipart) {
		if (rq->body_bytes > FORM_MAX * 4 ||
		    http_mp_feed(&d->mp, data, len) != 0)
			d->fail = 400;
		return 0;
	}
	if (d->len + len > FORM_MAX) {
		d->fail = 413;
		return 0;
	}
	memcpy(d->body + d->len, data, len);
	d->len += len;
	return 0;
}

struct thumb_list {
	const char *name;               /* the original's stored name */
	char **names;                   /* full object names to delete */
	size_t n, cap;
	int overflow;
};

static int collect_thumb(void *arg, const struct store_entry *e)
{
	struct thumb_list *tl = arg;
	if (e->is_dir)
		return 0;
	const char *base = strrchr(e->name, '/');
	base = base ? base + 1 : e->name;
	if (!http_thumb_is_of(tl->name, base))
		return 0;
	if (tl->n == tl->cap) {
		size_t nc = tl->cap ? tl->cap * 2 : 16;
		if (nc > THUMBS_MAX) {
			tl->overflow = 1;
			return 1;
		}
		char **nn = realloc(tl->names, nc * sizeof *nn);
		if (nn == NULL) {
			tl->overflow = 1;
			return 1;
		}
		tl->names = nn;
		tl->cap = nc;
	}
	tl->names[tl->n] = strdup(e->name);
	if (tl->names[tl->n] == NULL) {
		tl->overflow = 1;
		return 1;
	}
	tl->n++;
	return 0;
}

/* Delete NAME's thumbnails. Returns how many, or a negative store error. */
static int delete_thumbnails(const struct http_scope *sc, const char *name)
{
	char prefix[STORE_NAME_MAX], root[300];
	const char *dot = strrchr(name, '.');
	size_t rl = dot && dot != name ? (size_t)(dot - name) : strlen(name);
	snprintf(root, sizeof root, "%.*s_", (int)rl, name);
	if (http_object_name(sc, "thumbnails", root, prefix, sizeof prefix) != 0)
		return STORE_EINVAL;
	struct thumb_list tl = {name, NULL, 0, 0, 0};
	int rc = store_list(sc->store, prefix, 0, NULL, collect_thumb, &tl);
	int deleted = 0;
	if (rc < 0 && rc != STORE_ENOENT && !tl.overflow)
		deleted = rc;
	for (size_t i = 0; i < tl.n; i++) {
		int d = store_delete(sc->store, tl.names[i]);
		if (d == 0 && deleted >= 0)
			deleted++;
		else if (d != STORE_ENOENT) {
			log_error("delete_thumbnail", "name=%s error=%s",
				  log_q(tl.names[i]), log_q(store_strerror(d)));
			deleted = d;
		}
		free(tl.names[i]);
	}
	free(tl.names);
	return deleted;
}

enum MHD_Result http_delete_end(struct http_req *rq)
{
	struct del *d = rq->state;
	if (!d->fail && !d->multipart &&
	    http_form_parse(d->body, d->len, form_cb, d) != 0)
		d->fail = 400;
	if (!d->fail && d->multipart && http_mp_finish(&d->mp) != 0)
		d->fail = 400;
	if (d->fail)
		return http_reply_text(rq, (unsigned)d->fail, "Bad request.\n");
	if (d->bad || !d->seen[0])
		return http_reply_text(rq, 400, "Bad request.\n");
	const char *name = d->vals[0];
	if (!http_name_valid(name, d->vlen[0]))
		return http_reply_text(rq, 400, "Invalid filename.\n");

	struct http_scope *sc = malloc(sizeof *sc);
	if (sc == NULL)
		return MHD_NO;
	enum MHD_Result ret;
	char obj[STORE_NAME_MAX];
	int st = http_scope_resolve(rq, d->seen[1] ? d->vals[1] : "", sc);
	if (st == 0) {
		/* the client is known: the request is audited */
		if (http_object_name(sc, "originals", name, obj, sizeof obj) == 0)
			http_audit_set(rq, "delete", sc, obj, -1);
		else
			http_audit_set(rq, "delete", sc, name, -1);
		st = http_check_token(rq, sc->key, d->seen[2] ? d->vals[2] : NULL,
				      name, d->vlen[0]);
	}
	if (st) {
		ret = http_reply_text(rq, (unsigned)st, st == 403
				      ? "Invalid token.\n"
				      : st == 429 ? HTTP_TEXT_PENALISED
				      : st == 404 ? "Unknown collection.\n"
						  : "Refused.\n");
		goto out;
	}
	if (http_object_name(sc, "originals", name, obj, sizeof obj) != 0) {
		ret = http_reply_text(rq, 400, "Name too long.\n");
		goto out;
	}
	int rc = store_delete(sc->store, obj);
	if (rc != 0 && rc != STORE_ENOENT) {
		log_error("delete", "name=%s error=%s", log_q(obj),
			  log_q(store_strerror(rc)));
		ret = http_reply_text(rq, http_status_of(rc), "Storage error.\n");
		goto out;
	}
	int nt = delete_thumbnails(sc, name);
	if (nt < 0) {
		ret = http_reply_text(rq, http_status_of(nt), "Storage error.\n");
		goto out;
	}
	log_info("delete", "client=%s name=%s found=%d thumbnails=%d",
		 log_q(sc->client.name), log_q(obj), rc == 0, nt);
	ret = rc == STORE_ENOENT ? http_reply_text(rq, 404, "File not found.\n")
				 : http_reply_text(rq, 200, "Ok.");
out:
	free(sc);
	return ret;
}

void http_delete_cleanup(struct http_req *rq)
{
	struct del *d = rq->state;
	if (d == NULL)
		return;
	free(d->body);
	free(d);
	rq->state = NULL;
}
