/*
 * s3xml.c - a small XML reader for S3's replies, and the documents on it.
 *
 * S3 answers with plain XML: elements, text, the five predefined entities,
 * numeric character references, an optional <?xml?> declaration, perhaps a
 * comment. The reader below handles exactly that and refuses the rest
 * (DTDs, undefined entities, mismatched tags, text over S3XML_TEXT_MAX,
 * nesting over S3XML_DEPTH_MAX). It walks the buffer once, keeps a stack of
 * element names as a '/'-joined path, collects each element's text, and
 * reports (path, text) when the element closes. Attributes are skipped;
 * namespaces are ignored (S3 uses one default namespace).
 *
 * The document parsers are callbacks over that walk. All input is treated
 * as hostile: every index is checked against LEN, and the walk never reads
 * past it.
 */
#include "s3xml.h"
#include "isotime.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 512

struct walker {
	const char *p, *end;
	char path[PATH_MAX_LEN];
	size_t path_len;
	size_t seg_start[S3XML_DEPTH_MAX]; /* path offset of each element */
	int depth;
	char text[S3XML_TEXT_MAX];
	size_t text_len;
	int text_overflow;
};

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '-' ||
	       c == '.' || (unsigned char)c >= 0x80;
}

static int starts(const struct walker *w, const char *s)
{
	size_t n = strlen(s);
	return (size_t)(w->end - w->p) >= n && memcmp(w->p, s, n) == 0;
}

/* Advance past the first occurrence of S; -1 if it never comes. */
static int skip_past(struct walker *w, const char *s)
{
	size_t n = strlen(s);
	while ((size_t)(w->end - w->p) >= n) {
		if (memcmp(w->p, s, n) == 0) {
			w->p += n;
			return 0;
		}
		w->p++;
	}
	return -1;
}

static int text_add(struct walker *w, const char *s, size_t n)
{
	if (w->text_len + n >= sizeof w->text) {
		w->text_overflow = 1;
		return -1;
	}
	memcpy(w->text + w->text_len, s, n);
	w->text_len += n;
	w->text[w->text_len] = '\0';
	return 0;
}

static int put_utf8(struct walker *w, unsigned long cp)
{
	char b[4];
	size_t n;
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xC0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xE0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return text_add(w, b, n);
}

/* At '&': decode one reference into the text. */
static int entity(struct walker *w)
{
	static const struct {
		const char *name;
		char c;
	} named[] = { { "&lt;", '<' },   { "&gt;", '>' }, { "&amp;", '&' },
		      { "&quot;", '"' }, { "&apos;", '\'' } };
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
		if (starts(w, named[i].name)) {
			w->p += strlen(named[i].name);
			return text_add(w, &named[i].c, 1);
		}
	}
	if (!starts(w, "&#"))
		return -1;
	w->p += 2;
	int base = 10;
	if (w->p < w->end && (*w->p == 'x' || *w->p == 'X')) {
		base = 16;
		w->p++;
	}
	unsigned long cp = 0;
	int digits = 0;
	while (w->p < w->end && *w->p != ';') {
		char c = *w->p;
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		cp = cp * (unsigned long)base + (unsigned long)d;
		if (cp > 0x10FFFF || ++digits > 8)
			return -1;
		w->p++;
	}
	if (w->p >= w->end || digits == 0)
		return -1;
	w->p++; /* ';' */
	return put_utf8(w, cp);
}

/* Read a tag name at the cursor into the path (after a '/'). */
static int push_name(struct walker *w)
{
	const char *s = w->p;
	while (w->p < w->end && is_name_char(*w->p))
		w->p++;
	size_t n = (size_t)(w->p - s);
	if (n == 0 || w->depth >= S3XML_DEPTH_MAX)
		return -1;
	size_t need = w->path_len + (w->depth ? 1 : 0) + n;
	if (need >= sizeof w->path)
		return -1;
	w->seg_start[w->depth] = w->path_len + (w->depth ? 1 : 0);
	if (w->depth)
		w->path[w->path_len++] = '/';
	memcpy(w->path + w->path_len, s, n);
	w->path_len += n;
	w->path[w->path_len] = '\0';
	w->depth++;
	return 0;
}

/* Skip attributes up to '>' or "/>"; returns 1 for an empty element. */
static int skip_attrs(struct walker *w)
{
	while (w->p < w->end) {
		char c = *w->p;
		if (c == '>') {
			w->p++;
			return 0;
		}
		if (c == '/') {
			if (w->p + 1 < w->end && w->p[1] == '>') {
				w->p += 2;
				return 1;
			}
			return -1;
		}
		if (c == '"' || c == '\'') {
			w->p++;
			while (w->p < w->end && *w->p != c) {
				if (*w->p == '<')
					return -1;
				w->p++;
			}
			if (w->p >= w->end)
				return -1;
		} else if (c == '<') {
			return -1;
		}
		w->p++;
	}
	return -1;
}

static int close_element(struct walker *w, s3xml_cb cb, void *arg)
{
	int rc = 0;
	if (cb)
		rc = cb(arg, w->path, w->text, w->text_len);
	w->depth--;
	w->path_len = w->depth ? w->seg_start[w->depth] - 1 : 0;
	w->path[w->path_len] = '\0';
	w->text_len = 0;
	w->text[0] = '\0';
	return rc;
}

int s3xml_walk(const char *buf, size_t len, s3xml_cb cb, void *arg,
	       char *root_out, size_t root_cap)
{
	struct walker *w = calloc(1, sizeof *w);
	int rc = -1, seen_root = 0;
	if (!w)
		return -1;
	if (!buf)
		len = 0;
	w->p = buf;
	w->end = buf + len;
	if (root_out && root_cap)
		root_out[0] = '\0';
	if (starts(w, "\xEF\xBB\xBF"))
		w->p += 3;

	while (w->p < w->end) {
		if (*w->p != '<') {
			if (w->depth == 0) {
				if (!is_space(*w->p))
					goto out;
				w->p++;
				continue;
			}
			if (*w->p == '&') {
				if (entity(w) < 0)
					goto out;
				continue;
			}
			const char *s = w->p;
			while (w->p < w->end && *w->p != '<' && *w->p != '&')
				w->p++;
			if (text_add(w, s, (size_t)(w->p - s)) < 0)
				goto out;
			continue;
		}
		if (starts(w, "<?")) {
			if (skip_past(w, "?>") < 0)
				goto out;
		} else if (starts(w, "<!--")) {
			if (skip_past(w, "-->") < 0)
				goto out;
		} else if (starts(w, "<![CDATA[")) {
			if (w->depth == 0)
				goto out;
			w->p += 9;
			const char *s = w->p;
			if (skip_past(w, "]]>") < 0)
				goto out;
			if (text_add(w, s, (size_t)(w->p - 3 - s)) < 0)
				goto out;
		} else if (starts(w, "<!")) {
			goto out; /* DOCTYPE and friends: never in S3 replies */
		} else if (starts(w, "</")) {
			w->p += 2;
			if (w->depth == 0)
				goto out;
			const char *s = w->p;
			while (w->p < w->end && is_name_char(*w->p))
				w->p++;
			size_t n = (size_t)(w->p - s);
			size_t top = w->seg_start[w->depth - 1];
			if (n != w->path_len - top ||
			    memcmp(s, w->path + top, n) != 0)
				goto out;
			while (w->p < w->end && is_space(*w->p))
				w->p++;
			if (w->p >= w->end || *w->p != '>')
				goto out;
			w->p++;
			int r = close_element(w, cb, arg);
			if (r) {
				rc = r;
				goto out;
			}
		} else {
			if (w->depth == 0 && seen_root)
				goto out; /* a second root */
			w->p++;
			/* Text before a child belongs to no leaf. */
			w->text_len = 0;
			w->text[0] = '\0';
			if (push_name(w) < 0)
				goto out;
			if (w->depth == 1) {
				seen_root = 1;
				if (root_out && root_cap) {
					size_t n = w->path_len < root_cap - 1
							   ? w->path_len
							   : root_cap - 1;
					memcpy(root_out, w->path, n);
					root_out[n] = '\0';
				}
			}
			int empty = skip_attrs(w);
			if (empty < 0)
				goto out;
			if (empty) {
				int r = close_element(w, cb, arg);
				if (r) {
					rc = r;
					goto out;
				}
			}
		}
	}
	rc = (seen_root && w->depth == 0) ? 0 : -1;
out:
	free(w);
	return rc;
}

/* ---- documents ---------------------------------------------------------- */

static void copy_text(char *dst, size_t cap, const char *s, size_t n)
{
	if (!cap)
		return;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* Strip surrounding double quotes (S3 sends ETags as "\"abc\""). */
static void copy_etag(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	copy_text(dst, cap, s, n);
}

struct err_ctx {
	char *code, *msg;
	size_t code_cap, msg_cap;
};

static int error_cb(void *arg, const char *path, const char *t, size_t n)
{
	struct err_ctx *e = arg;
	if (strcmp(path, "Error/Code") == 0)
		copy_text(e->code, e->code_cap, t, n);
	else if (strcmp(path, "Error/Message") == 0)
		copy_text(e->msg, e->msg_cap, t, n);
	return 0;
}

int s3xml_parse_error(const char *buf, size_t len, char *code,
		      size_t code_cap, char *message, size_t message_cap)
{
	char root[32];
	struct err_ctx e = { code, message, code_cap, message_cap };
	if (code_cap)
		code[0] = '\0';
	if (message_cap)
		message[0] = '\0';
	if (s3xml_walk(buf, len, error_cb, &e, root, sizeof root) != 0)
		return -1;
	return strcmp(root, "Error") == 0 ? 0 : -1;
}

int64_t s3xml_parse_time(const char *s)
{
	int64_t t;
	return isotime_parse(s, ISOTIME_S3, &t) == 0 ? t : -1;
}

#define LIST_MAX_ENTRIES 10000

struct list_ctx {
	struct s3xml_list *l;
	size_t obj_cap, pre_cap;
	int in_object;          /* a Contents element is open */
	int failed;
};

static char *dup_text(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static struct s3xml_object *cur_object(struct list_ctx *c)
{
	struct s3xml_list *l = c->l;
	if (!c->in_object) {
		if (l->n_objects + l->n_prefixes >= LIST_MAX_ENTRIES)
			return NULL;
		if (l->n_objects == c->obj_cap) {
			size_t nc = c->obj_cap ? c->obj_cap * 2 : 64;
			void *p = realloc(l->objects, nc * sizeof *l->objects);
			if (!p)
				return NULL;
			l->objects = p;
			c->obj_cap = nc;
		}
		memset(&l->objects[l->n_objects], 0, sizeof *l->objects);
		l->n_objects++;
		c->in_object = 1;
	}
	return &l->objects[l->n_objects - 1];
}

static int list_cb(void *arg, const char *path, const char *t, size_t n)
{
	struct list_ctx *c = arg;
	struct s3xml_list *l = c->l;
	static const char contents[] = "ListBucketResult/Contents";
	if (strncmp(path, contents, sizeof contents - 1) == 0) {
		const char *leaf = path + sizeof contents - 1;
		if (*leaf == '\0') { /* </Contents> */
			if (!c->in_object || !l->objects[l->n_objects - 1].key)
				return -1;
			c->in_object = 0;
			return 0;
		}
		if (*leaf != '/')
			return 0;
		leaf++;
		struct s3xml_object *o = cur_object(c);
		if (!o)
			return -1;
		if (strcmp(leaf, "Key") == 0) {
			if (o->key || n == 0 || memchr(t, '\0', n))
				return -1;
			o->key = dup_text(t, n);
			if (!o->key)
				return -1;
		} else if (strcmp(leaf, "Size") == 0) {
			if (parse_u64(t, n, &o->size) < 0)
				return -1;
		} else if (strcmp(leaf, "LastModified") == 0) {
			o->mtime = s3xml_parse_time(t);
		} else if (strcmp(leaf, "ETag") == 0) {
			copy_etag(o->etag, sizeof o->etag, t, n);
		}
		return 0;
	}
	if (strcmp(path, "ListBucketResult/CommonPrefixes/Prefix") == 0) {
		if (l->n_objects + l->n_prefixes >= LIST_MAX_ENTRIES || n == 0 ||
		    memchr(t, '\0', n))
			return -1;
		if (l->n_prefixes == c->pre_cap) {
			size_t nc = c->pre_cap ? c->pre_cap * 2 : 16;
			void *p = realloc(l->prefixes, nc * sizeof *l->prefixes);
			if (!p)
				return -1;
			l->prefixes = p;
			c->pre_cap = nc;
		}
		l->prefixes[l->n_prefixes] = dup_text(t, n);
		if (!l->prefixes[l->n_prefixes])
			return -1;
		l->n_prefixes++;
	} else if (strcmp(path, "ListBucketResult/EncodingType") == 0) {
		l->url_encoded = n == 3 && memcmp(t, "url", 3) == 0;
	} else if (strcmp(path, "ListBucketResult/IsTruncated") == 0) {
		l->truncated = n == 4 && memcmp(t, "true", 4) == 0;
	} else if (strcmp(path, "ListBucketResult/NextContinuationToken") == 0) {
		if (n >= sizeof l->next_token || memchr(t, '\0', n))
			return -1;
		copy_text(l->next_token, sizeof l->next_token, t, n);
	}
	return 0;
}

int s3xml_parse_list(const char *buf, size_t len, struct s3xml_list *out)
{
	char root[32];
	struct list_ctx c = { out, 0, 0, 0, 0 };
	memset(out, 0, sizeof *out);
	if (s3xml_walk(buf, len, list_cb, &c, root, sizeof root) != 0)
		return -1;
	if (strcmp(root, "ListBucketResult") != 0)
		return -1;
	/* A truncated page must say where to go on. */
	if (out->truncated && out->next_token[0] == '\0')
		return -1;
	return 0;
}

void s3xml_list_free(struct s3xml_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_objects; i++)
		free(l->objects[i].key);
	for (size_t i = 0; i < l->n_prefixes; i++)
		free(l->prefixes[i]);
	free(l->objects);
	free(l->prefixes);
	memset(l, 0, sizeof *l);
}

int s3xml_url_decode(char *s)
{
	size_t n = strlen(s), o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%')
			continue;
		if (i + 2 >= n)
			return -1;
		if (store_hex_digit((unsigned char)s[i + 1]) < 0 || store_hex_digit((unsigned char)s[i + 2]) < 0 ||
		    (s[i + 1] == '0' && s[i + 2] == '0'))
			return -1;
		i += 2;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			s[o++] = (char)(store_hex_digit((unsigned char)s[i + 1]) * 16 + store_hex_digit((unsigned char)s[i + 2]));
			i += 2;
		} else if (s[i] == '+') {
			s[o++] = ' '; /* S3 form-encodes: '+' is a space */
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return 0;
}

int s3xml_unescape(char *s)
{
	struct walker *w;
	size_t n = strlen(s);
	if (!strchr(s, '&'))
		return 0;
	if (n >= S3XML_TEXT_MAX || !(w = calloc(1, sizeof *w)))
		return -1;
	w->p = s;
	w->end = s + n;
	int rc = 0;
	while (w->p < w->end) {
		if (*w->p == '&') {
			if (entity(w) < 0) {
				rc = -1;
				break;
			}
		} else {
			const char *b = w->p;
			while (w->p < w->end && *w->p != '&')
				w->p++;
			if (text_add(w, b, (size_t)(w->p - b)) < 0) {
				rc = -1;
				break;
			}
		}
	}
	if (rc == 0)
		memcpy(s, w->text, w->text_len + 1);
	free(w);
	return rc;
}

struct one_ctx {
	const char *want;
	char *out;
	size_t cap;
	int found, etag;
};

static int one_cb(void *arg, const char *path, const char *t, size_t n)
{
	struct one_ctx *c = arg;
	if (strcmp(path, c->want) == 0) {
		if (n == 0 || n >= c->cap || memchr(t, '\0', n))
			return -1;
		if (c->etag)
			copy_etag(c->out, c->cap, t, n);
		else
			copy_text(c->out, c->cap, t, n);
		c->found = 1;
	}
	return 0;
}

int s3xml_parse_upload_id(const char *buf, size_t len, char *out, size_t cap)
{
	struct one_ctx c = { "InitiateMultipartUploadResult/UploadId", out, cap,
			     0, 0 };
	if (cap)
		out[0] = '\0';
	if (s3xml_walk(buf, len, one_cb, &c, NULL, 0) != 0 || !c.found)
		return -1;
	return 0;
}

int s3xml_parse_result(const char *buf, size_t len, const char *root,
		       char *etag, size_t etag_cap)
{
	char want[96], got[64];
	if (snprintf(want, sizeof want, "%s/ETag", root) >= (int)sizeof want)
		return -1;
	struct one_ctx c = { want, etag, etag_cap, 0, 1 };
	if (etag_cap)
		etag[0] = '\0';
	if (s3xml_walk(buf, len, one_cb, &c, got, sizeof got) != 0)
		return -1;
	return strcmp(got, root) == 0 ? 0 : -1;
}
