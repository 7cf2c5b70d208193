/*
 * exif.c - GET /getmetadata: the EXIF metadata of an original (libexif).
 *
 * Only the head of the file is read (EXIF lives in a JPEG's APP1 segment,
 * at most 64 KiB, after at most a few other segments), so metadata of a
 * large original costs one small ranged read. dt=date answers the
 * DateTimeOriginal value as written; otherwise the answer is a JSON list
 * of groups {"Name": IFD, "Fields": {tag: value}} in IFD order (Image,
 * EXIF, GPS, Interoperability, Thumbnail, MakerNote). Values are libexif's
 * renderings; bytes that are not UTF-8 are escaped so the JSON stays valid.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libexif/exif-data.h>
#include <libexif/exif-loader.h>
#include <libexif/exif-mnote-data.h>

#include "http_proto.h"
#include "log.h"

#define HEAD_MAX (512 * 1024)
#define JSON_MAX (1024 * 1024)

struct jbuf {
	char *p;
	size_t len, cap;
	int overflow;
};

static void jput(struct jbuf *b, const char *s, size_t n)
{
	if (b->overflow)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 4096;
		while (nc < b->len + n + 1)
			nc *= 2;
		if (nc > JSON_MAX) {
			b->overflow = 1;
			return;
		}
		char *np = realloc(b->p, nc);
		if (np == NULL) {
			b->overflow = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void jstr(struct jbuf *b, const char *s)
{
	char esc[8];
	jput(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			jput(b, esc, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", *p);
			jput(b, esc, 6);
		} else if (*p >= 0x80) {
			/* keep a valid UTF-8 sequence, escape a stray byte */
			size_t n = (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3
				 : (*p & 0xF8) == 0xF0 ? 4 : 0;
			size_t have = 1;
			while (have < n && p[have] && (p[have] & 0xC0) == 0x80)
				have++;
			if (n && have == n && http_name_valid((const char *)p, n)) {
				jput(b, (const char *)p, n);
				p += n - 1;
			} else {
				snprintf(esc, sizeof esc, "\\u%04x", *p);
				jput(b, esc, 6);
			}
		} else {
			jput(b, (const char *)p, 1);
		}
	}
	jput(b, "\"", 1);
}

struct group_ctx {
	struct jbuf *b;
	ExifIfd ifd;
	int n;
};

static void put_entry(ExifEntry *e, void *arg)
{
	struct group_ctx *g = arg;
	char val[1024];
	const char *name = exif_tag_get_name_in_ifd(e->tag, g->ifd);
	if (name == NULL)
		return;
	exif_entry_get_value(e, val, sizeof val);
	if (g->n++)
		jput(g->b, ", ", 2);
	jstr(g->b, name);
	jput(g->b, ": ", 2);
	jstr(g->b, val);
}

static int render_json(ExifData *ed, struct jbuf *b)
{
	static const struct {
		ExifIfd ifd;
		const char *name;
	} groups[] = {
		{EXIF_IFD_0, "Image"},
		{EXIF_IFD_EXIF, "EXIF"},
		{EXIF_IFD_GPS, "GPS"},
		{EXIF_IFD_INTEROPERABILITY, "Interoperability"},
		{EXIF_IFD_1, "Thumbnail"},
	};
	int ng = 0;
	jput(b, "[", 1);
	for (size_t i = 0; ed && i < sizeof groups / sizeof groups[0]; i++) {
		ExifContent *c = ed->ifd[groups[i].ifd];
		if (c == NULL || c->count == 0)
			continue;
		if (ng++)
			jput(b, ", ", 2);
		jput(b, "{\"Name\": ", 9);
		jstr(b, groups[i].name);
		jput(b, ", \"Fields\": {", 13);
		struct group_ctx g = {b, groups[i].ifd, 0};
		exif_content_foreach_entry(c, put_entry, &g);
		jput(b, "}}", 2);
	}
	ExifMnoteData *md = ed ? exif_data_get_mnote_data(ed) : NULL;
	unsigned n = md ? exif_mnote_data_count(md) : 0;
	if (n > 0) {
		char val[1024];
		int nf = 0;
		if (ng++)
			jput(b, ", ", 2);
		jput(b, "{\"Name\": \"MakerNote\", \"Fields\": {", 33);
		for (unsigned i = 0; i < n; i++) {
			const char *name = exif_mnote_data_get_name(md, i);
			if (name == NULL ||
			    exif_mnote_data_get_value(md, i, val, sizeof val) == NULL)
				continue;
			if (nf++)
				jput(b, ", ", 2);
			jstr(b, name);
			jput(b, ": ", 2);
			jstr(b, val);
		}
		jput(b, "}}", 2);
	}
	jput(b, "]", 1);
	return b->overflow ? -1 : 0;
}

enum MHD_Result http_route_getmetadata(struct http_req *rq)
{
	int bad = 0;
	const char *coll = http_arg(rq, "coll", &bad);
	const char *filename = http_arg(rq, "filename", &bad);
	const char *dt = http_arg(rq, "dt", &bad);
	const char *token = http_arg(rq, "token", &bad);
	char obj[STORE_NAME_MAX];
	enum MHD_Result ret;

	if (bad || filename == NULL)
		return http_reply_text(rq, 400, "Bad request.\n");
	if (!http_name_valid(filename, strlen(filename)))
		return http_reply_text(rq, 400, "Invalid filename.\n");
	struct http_scope *sc;
	int st = http_scope_for_read(rq, coll, filename, token, &sc);
	if (st == 0 && http_object_name(sc, "originals", filename, obj,
					sizeof obj) != 0)
		st = 400;
	if (st) {
		free(sc);
		return http_reply_text(rq, (unsigned)st, "Refused.\n");
	}

	struct store_reader *rd = NULL;
	int rc = store_reader_open(sc->store, obj, 0, HEAD_MAX, &rd, NULL);
	free(sc);
	if (rc != 0) {
		unsigned s = http_status_of(rc);
		return http_reply_text(rq, s, s == 404 ? "File not found.\n"
					     : "Storage error.\n");
	}
	ExifLoader *ld = exif_loader_new();
	char *buf = malloc(64 * 1024);
	size_t total = 0;
	int io_err = 0;
	while (ld && buf && total < HEAD_MAX) {
		ssize_t n = store_reader_read(rd, buf, 64 * 1024);
		if (n < 0)
			io_err = 1;
		if (n <= 0)
			break;
		total += (size_t)n;
		/* 0: the loader has what it needs (or this is no EXIF file) */
		if (!exif_loader_write(ld, (unsigned char *)buf, (unsigned)n))
			break;
	}
	free(buf);
	store_reader_close(rd);
	if (ld == NULL || io_err) {
		if (ld)
			exif_loader_unref(ld);
		return http_reply_text(rq, 503, "Storage error.\n");
	}
	ExifData *ed = exif_loader_get_data(ld);
	exif_loader_unref(ld);

	if (dt && strcmp(dt, "date") == 0) {
		ExifEntry *e = ed ? exif_content_get_entry(
					    ed->ifd[EXIF_IFD_EXIF],
					    EXIF_TAG_DATE_TIME_ORIGINAL)
				  : NULL;
		char val[64];
		if (e == NULL) {
			ret = http_reply_text(rq, 404, "No DateTimeOriginal.\n");
		} else {
			exif_entry_get_value(e, val, sizeof val);
			ret = http_reply_text(rq, 200, val);
		}
	} else {
		struct jbuf b = {0};
		if (render_json(ed, &b) != 0) {
			ret = http_reply_text(rq, 500, "Metadata too large.\n");
		} else {
			struct MHD_Response *r =
				MHD_create_response_from_buffer_with_free_callback(
					b.len, b.p, free);
			if (r == NULL) {
				free(b.p);
				ret = MHD_NO;
			} else {
				b.p = NULL;
				MHD_add_response_header(r, "Content-Type",
							"application/json");
				ret = http_reply(rq, 200, r);
			}
		}
		free(b.p);
	}
	if (ed)
		exif_data_unref(ed);
	return ret;
}
