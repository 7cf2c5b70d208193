/*
 * store.c - locations, object names, and the backend-independent half of
 * the storage interface.
 *
 * Every store_ call enters here. This file parses and normalises location
 * URLs (file:// and s3://), checks every object name against the one set of
 * name rules before a backend sees it, and then dispatches through the
 * backend table of store/backend.h. It also holds what needs no backend:
 * client path normalisation (store_path_resolve, the single place where a
 * path typed by a client becomes a path in its virtual tree), content types
 * by extension, the convenience calls store_put / store_pread, and the
 * streamed copy used when a backend cannot copy server-side (fs <-> S3, or
 * two S3 endpoints).
 *
 * Names are bytes, compared bytewise; the rules (store_name_valid) refuse
 * what could escape a location or confuse a peer: empty, "." and ".."
 * segments, leading/trailing/double '/', backslashes, C0 control characters
 * and DEL, invalid UTF-8, names over 1,024 bytes and segments over 255.
 * Percent signs are ordinary characters: "%2e%2e" is a literal name.
 */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"

#define STORE_SEGMENT_MAX 255
#define STORE_COPY_BUF (256 * 1024)

/* ---- errors ---------------------------------------------------------- */

int store_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

const char *store_strerror(int err)
{
	switch (err) {
	case STORE_OK: return "success";
	case STORE_ENOENT: return "no such file or directory";
	case STORE_EACCES: return "permission denied";
	case STORE_EEXIST: return "already exists";
	case STORE_ENOTEMPTY: return "directory not empty";
	case STORE_ENOSPC: return "no space left on the storage";
	case STORE_ETHROTTLED: return "storage is throttling requests";
	case STORE_EUNAVAIL: return "storage unavailable";
	case STORE_EINVAL: return "invalid name or argument";
	case STORE_EIO: return "storage I/O error";
	case STORE_ENOTDIR: return "not a directory";
	case STORE_EISDIR: return "is a directory";
	case STORE_ENOMEM: return "out of memory";
	case STORE_EAUTH: return "storage credentials refused or missing";
	case STORE_ETOOBIG: return "object too large for the storage";
	case STORE_ECANCELED: return "canceled";
	case STORE_EQUOTA: return "quota exceeded";
	default: return "unknown storage error";
	}
}

/* ---- name rules ------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at S (at most N bytes available), or 0
 * if it is not one: overlong forms, surrogates and code points above
 * U+10FFFF are refused, as RFC 3629 says. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0; /* continuation byte, 0xc0/0xc1, 0xf5.. */
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0; /* overlong */
	if (cp >= 0xd800 && cp <= 0xdfff)
		return 0; /* UTF-16 surrogate */
	if (cp > 0x10ffff)
		return 0;
	return len;
}

/* 1 if the N bytes at S are a valid segment body: non-empty, not "." or
 * "..", at most 255 bytes, no '/', backslash or control character, UTF-8. */
static int segment_ok(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	if (n == 0 || n > STORE_SEGMENT_MAX)
		return 0;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
			return 0;
		size_t l = utf8_seq(u + i, n - i);
		if (l == 0)
			return 0;
		i += l;
	}
	return 1;
}

int store_segment_valid(const char *seg)
{
	if (!seg)
		return 0;
	size_t n = strnlen(seg, STORE_SEGMENT_MAX + 1);
	return segment_ok(seg, n);
}

int store_name_valid(const char *name)
{
	if (!name)
		return 0;
	size_t n = strnlen(name, STORE_NAME_MAX);
	if (n == 0 || n > STORE_NAME_MAX - 1)
		return 0;
	const char *p = name, *end = name + n;
	while (p <= end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *segend = slash ? slash : end;
		if (!segment_ok(p, (size_t)(segend - p)))
			return 0;
		if (!slash)
			break;
		p = slash + 1;
	}
	return 1;
}

/* A directory argument: "" (the root), or a valid name. A trailing '/' is
 * tolerated (the S3 spelling of a directory) and dropped by the caller. */
static int dir_name_ok(const char *name, char *out, size_t outlen)
{
	size_t n = strnlen(name, STORE_NAME_MAX + 1);
	if (n >= outlen || n > STORE_NAME_MAX)
		return 0;
	memcpy(out, name, n + 1);
	if (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
	return n == 0 || store_name_valid(out);
}

/* A listing prefix: "", "dir/", or "dir/part" where every complete segment
 * is valid and the partial last one has no forbidden byte (it may be "."
 * to list dot names). */
static int prefix_ok(const char *prefix)
{
	size_t n = strnlen(prefix, STORE_NAME_MAX);
	if (n > STORE_NAME_MAX - 1)
		return 0;
	if (n == 0)
		return 1;
	const char *last = strrchr(prefix, '/');
	if (last) {
		char dir[STORE_NAME_MAX];
		size_t dl = (size_t)(last - prefix);
		memcpy(dir, prefix, dl);
		dir[dl] = '\0';
		if (!store_name_valid(dir))
			return 0;
	}
	const char *part = last ? last + 1 : prefix;
	size_t pl = strlen(part);
	if (pl == 0)
		return 1;
	if (pl > STORE_SEGMENT_MAX)
		return 0;
	if ((pl == 1 && part[0] == '.') || (pl == 2 && !strcmp(part, "..")))
		return 1;
	return segment_ok(part, pl);
}

int store_path_resolve(const char *cwd, const char *path, char *out,
		       size_t outlen)
{
	if (!cwd || !path || !out || outlen < 2 || cwd[0] != '/')
		return STORE_EINVAL;

	/* OUT is used as a stack of segments: "/a/b". LEN is its length
	 * without a trailing '/'; the root is the empty stack. */
	size_t len = 0;
	const char *inputs[2] = { cwd, path };
	int first = path[0] == '/' ? 1 : 0; /* absolute PATH drops CWD */

	for (int k = first; k < 2; k++) {
		const char *p = inputs[k];
		while (*p) {
			while (*p == '/')
				p++;
			if (!*p)
				break;
			const char *s = p;
			while (*p && *p != '/')
				p++;
			size_t n = (size_t)(p - s);
			if (n == 1 && s[0] == '.')
				continue;
			if (n == 2 && s[0] == '.' && s[1] == '.') {
				/* pop one segment; ".." at the root stays */
				while (len > 0 && out[len - 1] != '/')
					len--;
				if (len > 0)
					len--;
				continue;
			}
			if (!segment_ok(s, n))
				return STORE_EINVAL;
			if (len + 1 + n + 1 > outlen)
				return STORE_EINVAL;
			out[len++] = '/';
			memcpy(out + len, s, n);
			len += n;
		}
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return 0;
}

int store_name_join(const char *dir, const char *name, char *out,
		    size_t outlen)
{
	if (!dir || !name || !out)
		return STORE_EINVAL;
	size_t dl = strlen(dir), nl = strlen(name);
	while (dl > 0 && dir[dl - 1] == '/')
		dl--;
	size_t need = (dl ? dl + 1 : 0) + nl + 1;
	if (need > outlen)
		return STORE_EINVAL;
	size_t o = 0;
	if (dl) {
		memmove(out, dir, dl);
		out[dl] = '/';
		o = dl + 1;
	}
	memmove(out + o, name, nl + 1);
	return 0;
}

/* ---- content types --------------------------------------------------- */

static const struct {
	const char *ext;
	const char *type;
} content_types[] = {
	{ "jpg", "image/jpeg" },      { "jpeg", "image/jpeg" },
	{ "jpe", "image/jpeg" },      { "png", "image/png" },
	{ "gif", "image/gif" },       { "tif", "image/tiff" },
	{ "tiff", "image/tiff" },     { "bmp", "image/bmp" },
	{ "webp", "image/webp" },     { "heic", "image/heic" },
	{ "heif", "image/heif" },     { "avif", "image/avif" },
	{ "svg", "image/svg+xml" },   { "jp2", "image/jp2" },
	{ "dng", "image/x-adobe-dng" }, { "cr2", "image/x-canon-cr2" },
	{ "nef", "image/x-nikon-nef" }, { "psd", "image/vnd.adobe.photoshop" },
	{ "ico", "image/vnd.microsoft.icon" },
	{ "pdf", "application/pdf" }, { "mp4", "video/mp4" },
	{ "m4v", "video/mp4" },       { "mov", "video/quicktime" },
	{ "avi", "video/x-msvideo" }, { "mkv", "video/x-matroska" },
	{ "webm", "video/webm" },     { "mpg", "video/mpeg" },
	{ "mpeg", "video/mpeg" },     { "mp3", "audio/mpeg" },
	{ "wav", "audio/wav" },       { "flac", "audio/flac" },
	{ "ogg", "audio/ogg" },       { "m4a", "audio/mp4" },
	{ "aac", "audio/aac" },       { "aif", "audio/aiff" },
	{ "aiff", "audio/aiff" },     { "txt", "text/plain" },
	{ "csv", "text/csv" },        { "tsv", "text/tab-separated-values" },
	{ "htm", "text/html" },       { "html", "text/html" },
	{ "md", "text/markdown" },    { "xml", "application/xml" },
	{ "json", "application/json" }, { "zip", "application/zip" },
	{ "tar", "application/x-tar" }, { "gz", "application/gzip" },
	{ "tgz", "application/gzip" }, { "xz", "application/x-xz" },
	{ "zst", "application/zstd" }, { "bz2", "application/x-bzip2" },
	{ "7z", "application/x-7z-compressed" },
	{ "doc", "application/msword" },
	{ "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
	{ "xls", "application/vnd.ms-excel" },
	{ "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
	{ "ppt", "application/vnd.ms-powerpoint" },
	{ "pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation" },
	{ "odt", "application/vnd.oasis.opendocument.text" },
	{ "ods", "application/vnd.oasis.opendocument.spreadsheet" },
	{ "rtf", "application/rtf" },
};

const char *store_content_type(const char *name)
{
	static const char *const fallback = "application/octet-stream";
	if (!name)
		return fallback;
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	const char *dot = strrchr(base, '.');
	if (!dot || dot == base || !dot[1])
		return fallback; /* no extension, or a dot file like ".txt" */
	/* Only the last extension counts: "x.tar.xz" is an xz stream. */
	for (size_t i = 0; i < sizeof content_types / sizeof content_types[0];
	     i++) {
		if (!strcasecmp(dot + 1, content_types[i].ext))
			return content_types[i].type;
	}
	return fallback;
}

/* ---- locations ------------------------------------------------------- */

/* 1 if B (length N) is a usable S3 bucket name: 3-63 of [a-z0-9.-],
 * starting and ending with a letter or digit, as AWS requires. Upper case
 * and '_' are accepted too for older buckets and S3-compatible stores. */
static int bucket_ok(const char *b, size_t n)
{
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9');
		if (!alnum && c != '.' && c != '-' && c != '_')
			return 0;
		if (!alnum && (i == 0 || i == n - 1))
			return 0;
	}
	return 1;
}

/* Normalise URL into ST->url ("scheme://rest/" with exactly one trailing
 * '/'), choosing the backend. Returns the offset of "rest" or an error. */
static int parse_url(const char *url, struct store *st)
{
	size_t n = strnlen(url, STORE_URL_MAX);
	if (n == 0 || n >= STORE_URL_MAX - 1)
		return STORE_EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c < 0x20 || c == 0x7f || c == '\\')
			return STORE_EINVAL;
	}

	char path[STORE_URL_MAX];
	const char *scheme;
	size_t pl;
	if (!strncmp(url, "file://", 7)) {
		const char *rest = url + 7;
		if (!strncmp(rest, "localhost/", 10))
			rest += 9;
		if (rest[0] != '/')
			return STORE_EINVAL; /* file://host/... or relative */
		/* The directory below "/" must be a valid name (no "..",
		 * no "//"), so that the location is what it says. */
		pl = strlen(rest);
		memcpy(path, rest, pl + 1);
		while (pl > 1 && path[pl - 1] == '/')
			path[--pl] = '\0';
		if (pl > 1 && !store_name_valid(path + 1))
			return STORE_EINVAL;
		scheme = "file";
		st->be = &store_fs_backend;
	} else if (!strncmp(url, "s3://", 5)) {
		const char *rest = url + 5;
		pl = strlen(rest);
		memcpy(path, rest, pl + 1);
		while (pl > 0 && path[pl - 1] == '/')
			path[--pl] = '\0';
		const char *slash = strchr(path, '/');
		size_t bl = slash ? (size_t)(slash - path) : pl;
		if (!bucket_ok(path, bl))
			return STORE_EINVAL;
		if (slash && !store_name_valid(slash + 1))
			return STORE_EINVAL;
		scheme = "s3";
		st->be = &store_s3_backend;
	} else {
		return STORE_EINVAL;
	}
	size_t sl = strlen(scheme);
	/* scheme "://" path "/" NUL */
	if (sl + 3 + pl + 2 > sizeof st->url)
		return STORE_EINVAL;
	memcpy(st->url, scheme, sl);
	memcpy(st->url + sl, "://", 3);
	memcpy(st->url + sl + 3, path, pl);
	size_t o = sl + 3 + pl;
	if (o == 0 || st->url[o - 1] != '/')
		st->url[o++] = '/';
	st->url[o] = '\0';
	return (int)(sl + 3);
}

int store_open(const char *url, const struct store_opts *opts,
	       struct store **out)
{
	if (!url || !out)
		return STORE_EINVAL;
	*out = NULL;
	struct store *st = calloc(1, sizeof *st);
	if (!st)
		return STORE_ENOMEM;
	int off = parse_url(url, st);
	if (off < 0) {
		free(st);
		return off;
	}
	struct store_opts defaults = { .path_style = -1 };
	int rc = st->be->open(st, st->url + off, opts ? opts : &defaults);
	if (rc < 0) {
		free(st);
		return rc;
	}
	*out = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	st->be->close(st);
	free(st);
}

const char *store_url(const struct store *st)
{
	return st->url;
}

int store_is_s3(const struct store *st)
{
	return st->be != &store_fs_backend;
}

/* ---- temp objects ---------------------------------------------------- */

int store_name_is_temp(const char *name)
{
	static const size_t pl = sizeof STORE_TMP_PREFIX - 1;
	if (!name)
		return 0;
	for (const char *p = name;;) {
		if (!strncmp(p, STORE_TMP_PREFIX, pl))
			return 1;
		p = strchr(p, '/');
		if (!p)
			return 0;
		p++;
	}
}

/* ---- dispatch -------------------------------------------------------- */

/* Reserved (temp) names: absent to readers, invalid to writers, whatever
 * the backend. */
#define IF_TEMP_RETURN(name, err)                                             \
	do {                                                                  \
		if (store_name_is_temp(name))                                 \
			return (err);                                         \
	} while (0)

int store_stat(struct store *st, const char *name, struct store_stat *out)
{
	char n[STORE_NAME_MAX];
	if (!st || !name || !out || !dir_name_ok(name, n, sizeof n))
		return STORE_EINVAL;
	memset(out, 0, sizeof *out);
	IF_TEMP_RETURN(n, STORE_ENOENT);
	return st->be->stat(st, n, out);
}

int store_set_mtime(struct store *st, const char *name, int64_t mtime)
{
	char n[STORE_NAME_MAX];
	if (!st || !name || !dir_name_ok(name, n, sizeof n))
		return STORE_EINVAL;
	IF_TEMP_RETURN(n, STORE_ENOENT);
	return st->be->set_mtime(st, n, mtime);
}

int store_reader_open(struct store *st, const char *name, uint64_t offset,
		      uint64_t len, struct store_reader **out,
		      struct store_stat *out_stat)
{
	if (!out)
		return STORE_EINVAL;
	*out = NULL;
	if (!st || !store_name_valid(name))
		return STORE_EINVAL;
	struct store_stat tmp;
	struct store_stat *sp = out_stat ? out_stat : &tmp;
	memset(sp, 0, sizeof *sp);
	IF_TEMP_RETURN(name, STORE_ENOENT);
	return st->be->reader_open(st, name, offset, len, out, sp);
}

ssize_t store_reader_read(struct store_reader *r, void *buf, size_t cap)
{
	if (!r || (!buf && cap))
		return STORE_EINVAL;
	if (cap == 0)
		return 0;
	return r->be->reader_read(r, buf, cap);
}

int store_reader_fd(struct store_reader *r)
{
	return r ? r->be->reader_fd(r) : -1;
}

void store_reader_close(struct store_reader *r)
{
	if (r)
		r->be->reader_close(r);
}

ssize_t store_pread(struct store *st, const char *name, void *buf,
		    size_t len, uint64_t offset)
{
	struct store_reader *r;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	int rc = store_reader_open(st, name, offset, len, &r, NULL);
	if (rc < 0)
		return rc;
	size_t got = 0;
	while (got < len) {
		ssize_t n = store_reader_read(r, (char *)buf + got, len - got);
		if (n < 0) {
			store_reader_close(r);
			return n;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	store_reader_close(r);
	return (ssize_t)got;
}

/* ---- metering ---------------------------------------------------------- */

void store_set_meter(struct store *st, const struct store_meter *m)
{
	if (!st)
		return;
	if (m && m->account)
		st->meter = *m;
	else
		memset(&st->meter, 0, sizeof st->meter);
}

int store_usage(struct store *st, struct store_usage *out)
{
	if (!st || !out || !st->meter.usage)
		return STORE_EINVAL;
	memset(out, 0, sizeof *out);
	return st->meter.usage(st->meter.arg, out);
}

int store_quota_check(struct store *st, int64_t objects, int64_t bytes)
{
	struct store_usage u;
	if (!st || !st->meter.usage || store_usage(st, &u) != 0)
		return 0;
	if (objects > 0 && u.quota_objects > 0 &&
	    u.objects + objects > u.quota_objects)
		return STORE_EQUOTA;
	if (bytes > 0 && u.quota_bytes > 0 && u.bytes + bytes > u.quota_bytes)
		return STORE_EQUOTA;
	return 0;
}

/* Size of the object NAME, -1 if there is none (a directory counts as
 * none: writing or deleting it fails in the backend anyway), or a
 * store_error in *RC. */
static int64_t object_size(struct store *st, const char *name, int *rc)
{
	uint64_t size = 0;
	*rc = 0;
	if (st->be->object_size) {
		int r = st->be->object_size(st, name, &size);
		if (r == STORE_ENOENT)
			return -1;
		if (r < 0) {
			*rc = r;
			return -1;
		}
		return (int64_t)size;
	}
	struct store_stat ss;
	memset(&ss, 0, sizeof ss);
	int r = st->be->stat(st, name, &ss);
	if (r == STORE_ENOENT || (r == 0 && ss.is_dir))
		return -1;
	if (r < 0) {
		*rc = r;
		return -1;
	}
	return (int64_t)ss.size;
}

static int meter_account(struct store *st, const char *name, int64_t objects,
			 int64_t bytes, int check)
{
	if (!st->meter.account || (objects == 0 && bytes == 0))
		return 0;
	return st->meter.account(st->meter.arg, name, objects, bytes, check);
}

/* What a new object NAME (replacing one of OLD bytes, or none: -1) may
 * hold under ST's quotas: *LIMIT bytes (UINT64_MAX: no byte quota).
 * STORE_EQUOTA if a new object is refused by the object quota. */
static int meter_room(struct store *st, int64_t old, uint64_t *limit)
{
	struct store_usage u;
	*limit = UINT64_MAX;
	if (!st->meter.usage)
		return 0;
	memset(&u, 0, sizeof u);
	if (st->meter.usage(st->meter.arg, &u) < 0)
		return 0; /* the commit's reservation still checks */
	if (old < 0 && u.quota_objects > 0 && u.objects >= u.quota_objects)
		return STORE_EQUOTA;
	if (u.quota_bytes > 0) {
		int64_t room = u.quota_bytes - u.bytes;
		if (room < 0)
			room = 0;
		*limit = (uint64_t)room + (uint64_t)(old > 0 ? old : 0);
	}
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

/* METERED 0: the caller has accounted the object already (a staged
 * commit streamed into its final store). */
static int writer_open(struct store *st, const char *name,
		       const struct store_put_opts *opts,
		       struct store_writer **out, int metered)
{
	if (!out)
		return STORE_EINVAL;
	*out = NULL;
	if (!st || !store_name_valid(name) || store_name_is_temp(name))
		return STORE_EINVAL;
	struct store_put_opts defaults = { 0 };
	struct store_put_opts o = opts ? *opts : defaults;
	if (o.content_type && (strlen(o.content_type) >= STORE_CTYPE_MAX ||
			       strpbrk(o.content_type, "\r\n")))
		return STORE_EINVAL;
	/* A metered store learns what the write replaces and how much room
	 * the quota leaves before anything is sent to the backend. */
	int64_t old = -1;
	uint64_t limit = UINT64_MAX;
	char *mname = NULL;
	int rc;
	if (metered && st->meter.account) {
		/* An object that cannot be sized counts as new (the quota is
		 * charged more, never less); if the backend cannot write
		 * either, its own open or commit says why. A caller that has
		 * just listed the name (rsync's receiver) says what it holds,
		 * which spares a HEAD per file on S3: the figure is as fresh
		 * as a HEAD made here would be by the time of the commit. */
		if (o.old_known)
			old = o.old_size < 0 ? -1 : o.old_size;
		else
			old = object_size(st, name, &rc);
		rc = meter_room(st, old, &limit);
		if (rc == 0 && o.size_exact && o.size_hint > limit)
			rc = STORE_EQUOTA;
		if (rc < 0)
			return rc;
		mname = strdup(name);
		if (!mname)
			return STORE_ENOMEM;
	}
	rc = st->be->writer_open(st, name, &o, out);
	if (rc < 0) {
		free(mname);
		return rc;
	}
	(*out)->size = 0;
	(*out)->dead = 0;
	(*out)->has_md5 = 0;
	(*out)->st = mname ? st : NULL;
	(*out)->name = mname;
	(*out)->old_size = old;
	(*out)->limit = limit;
	(*out)->staged = 0;
	return 0;
}

int store_writer_open(struct store *st, const char *name,
		      const struct store_put_opts *opts,
		      struct store_writer **out)
{
	return writer_open(st, name, opts, out, 1);
}

int store_writer_open_staged(struct store *st,
			     const struct store_put_opts *opts,
			     struct store_writer **out)
{
	if (!out)
		return STORE_EINVAL;
	*out = NULL;
	struct store_put_opts defaults = { 0 };
	struct store_put_opts o = opts ? *opts : defaults;
	if (!st || o.exclusive || !st->be->writer_open_staged)
		return STORE_EINVAL;
	if (o.content_type && (strlen(o.content_type) >= STORE_CTYPE_MAX ||
			       strpbrk(o.content_type, "\r\n")))
		return STORE_EINVAL;
	int rc = st->be->writer_open_staged(st, &o, out);
	if (rc < 0)
		return rc;
	(*out)->size = 0;
	(*out)->dead = 0;
	(*out)->has_md5 = 0;
	(*out)->staged = 1;
	(*out)->st = NULL; /* metered at commit_as, when the store is known */
	(*out)->name = NULL;
	(*out)->old_size = -1;
	(*out)->limit = UINT64_MAX;
	return 0;
}

int store_writer_commit_as(struct store_writer *w, struct store *dst,
			   const char *name)
{
	if (!w)
		return STORE_EINVAL;
	int rc = 0;
	if (w->dead)
		rc = w->dead < 0 ? w->dead : STORE_EIO;
	else if (!w->staged || !dst || !store_name_valid(name) ||
		 store_name_is_temp(name))
		rc = STORE_EINVAL;
	if (rc < 0) {
		store_writer_abort(w);
		return rc;
	}
	if (!dst->meter.account)
		return w->be->writer_commit_as(w, dst, name);
	/* The final store is metered: the quota is checked here, once the
	 * size is known (a staged write has no meter while it streams; the
	 * upload's own size limit bounds it meanwhile). */
	int64_t old = object_size(dst, name, &rc);
	int64_t dobj = old < 0 ? 1 : 0;
	int64_t dbytes = (int64_t)w->size - (old > 0 ? old : 0);
	rc = meter_account(dst, name, dobj, dbytes, 1);
	if (rc < 0) {
		store_writer_abort(w);
		return rc;
	}
	rc = w->be->writer_commit_as(w, dst, name);
	if (rc < 0)
		meter_account(dst, name, -dobj, -dbytes, 0);
	return rc;
}

int store_stream_into(store_read_fn rd, void *arg, uint64_t expect,
		      struct store *dst, const char *name,
		      const struct store_put_opts *opts)
{
	struct store_writer *w;
	struct store_put_opts po = *opts;
	po.size_hint = expect;
	/* The caller (commit_as) has accounted this object already. */
	int rc = writer_open(dst, name, &po, &w, 0);
	if (rc < 0)
		return rc;
	char *buf = aligned_alloc(4096, STORE_COPY_BUF);
	if (!buf) {
		store_writer_abort(w);
		return STORE_ENOMEM;
	}
	for (;;) {
		ssize_t n = rd(arg, buf, STORE_COPY_BUF);
		if (n <= 0) {
			rc = (int)n;
			break;
		}
		rc = store_writer_write(w, buf, (size_t)n);
		if (rc < 0)
			break;
	}
	free(buf);
	if (rc == 0 && store_writer_size(w) != expect)
		rc = STORE_EIO; /* cut short */
	if (rc < 0) {
		store_writer_abort(w);
		return rc;
	}
	return store_writer_commit(w);
}

int store_writer_write(struct store_writer *w, const void *buf, size_t len)
{
	if (!w || (!buf && len))
		return STORE_EINVAL;
	if (w->dead)
		return w->dead < 0 ? w->dead : STORE_EIO;
	if (len == 0)
		return 0;
	/* Past the quota: stop now rather than at the commit, so that an
	 * oversized upload is cut off instead of streamed to the end. */
	if (w->st && (uint64_t)len > w->limit - w->size) {
		w->dead = STORE_EQUOTA;
		return STORE_EQUOTA;
	}
	int rc = w->be->writer_write(w, buf, len);
	if (rc < 0) {
		w->dead = rc;
		return rc;
	}
	w->size += len;
	return 0;
}

uint64_t store_writer_size(const struct store_writer *w)
{
	return w ? w->size : 0;
}

int store_writer_readable(const struct store_writer *w)
{
	return w && !w->dead && w->be->writer_pread != NULL;
}

ssize_t store_writer_pread(struct store_writer *w, void *buf, size_t len,
			   uint64_t offset)
{
	if (!store_writer_readable(w) || (!buf && len))
		return STORE_EINVAL;
	if (offset >= w->size || len == 0)
		return 0;
	if (len > w->size - offset)
		len = (size_t)(w->size - offset);
	return w->be->writer_pread(w, buf, len, offset);
}

int store_writer_set_md5(struct store_writer *w, const unsigned char md5[16])
{
	if (!w || !md5)
		return STORE_EINVAL;
	memcpy(w->md5, md5, sizeof w->md5);
	w->has_md5 = 1;
	return 0;
}

int store_writer_commit(struct store_writer *w)
{
	if (!w)
		return STORE_EINVAL;
	if (w->dead || w->staged) {
		int rc = w->dead < 0 ? w->dead : w->dead ? STORE_EIO
							  : STORE_EINVAL;
		store_writer_abort(w);
		return rc;
	}
	struct store *st = w->st;
	char *name = w->name;
	if (!st)
		return w->be->writer_commit(w);
	/* Reserve the change, then commit; give it back if the backend
	 * fails. The reservation is one catalog transaction, so writers
	 * racing to cross the quota are decided one at a time. */
	int64_t dobj = w->old_size < 0 ? 1 : 0;
	int64_t dbytes =
	    (int64_t)w->size - (w->old_size > 0 ? w->old_size : 0);
	int rc = meter_account(st, name, dobj, dbytes, 1);
	if (rc < 0) {
		w->be->writer_abort(w);
		free(name);
		return rc;
	}
	rc = w->be->writer_commit(w);
	if (rc < 0)
		meter_account(st, name, -dobj, -dbytes, 0);
	free(name);
	return rc;
}

void store_writer_abort(struct store_writer *w)
{
	if (!w)
		return;
	free(w->name);
	w->name = NULL;
	w->be->writer_abort(w);
}

int store_put(struct store *st, const char *name, const void *buf,
	      size_t len, const struct store_put_opts *opts)
{
	struct store_put_opts o = { 0 };
	if (opts)
		o = *opts;
	if (!o.size_hint)
		o.size_hint = len;
	struct store_writer *w;
	int rc = store_writer_open(st, name, &o, &w);
	if (rc < 0)
		return rc;
	rc = store_writer_write(w, buf, len);
	if (rc < 0) {
		store_writer_abort(w);
		return rc;
	}
	return store_writer_commit(w);
}

int store_list(struct store *st, const char *prefix, char delim,
	       const char *start_after, store_list_cb cb, void *arg)
{
	if (!st || !cb)
		return STORE_EINVAL;
	if (!prefix)
		prefix = "";
	if (!prefix_ok(prefix) || (delim != 0 && delim != '/'))
		return STORE_EINVAL;
	if (start_after && (!*start_after ||
			    strnlen(start_after, STORE_NAME_MAX) >=
				    STORE_NAME_MAX))
		start_after = NULL;
	return st->be->list(st, prefix, delim, start_after, cb, arg);
}

/* store_list_tree for a backend without its own: each level's listing,
 * and the listing of every directory in it from within its callback. */
struct tree_walk {
	struct store *st;
	store_list_cb cb;
	void *arg;
};

static int tree_walk_cb(void *arg, const struct store_entry *e)
{
	struct tree_walk *tw = arg;
	int rc = tw->cb(tw->arg, e);
	if (rc || !e->is_dir)
		return rc;
	rc = tw->st->be->list(tw->st, e->name, '/', NULL, tree_walk_cb, tw);
	return rc == STORE_ENOENT ? 0 : rc; /* removed meanwhile */
}

int store_list_tree(struct store *st, const char *prefix, store_list_cb cb,
		    void *arg)
{
	if (!st || !cb)
		return STORE_EINVAL;
	if (!prefix)
		prefix = "";
	if (!prefix_ok(prefix))
		return STORE_EINVAL;
	if (st->be->list_tree)
		return st->be->list_tree(st, prefix, cb, arg);
	struct tree_walk tw = { st, cb, arg };
	return st->be->list(st, prefix, '/', NULL, tree_walk_cb, &tw);
}

int store_list_reads_tree(struct store *st)
{
	return st && st->be->list_reads_tree ? st->be->list_reads_tree(st) : 0;
}

/* A paged one-level listing: the backend's cursor when it has one, else
 * store_list resumed after the last name reported. */
struct store_lister {
	struct store *st;
	void *cur;                      /* the backend's cursor, or NULL */
	int done;
	store_list_cb cb;
	void *arg;
	char prefix[STORE_NAME_MAX];
	char last[STORE_NAME_MAX];      /* last name seen ("" = none yet) */
};

int store_lister_open(struct store *st, const char *prefix,
		      struct store_lister **out)
{
	*out = NULL;
	if (!st)
		return STORE_EINVAL;
	if (!prefix)
		prefix = "";
	if (!prefix_ok(prefix) || strlen(prefix) >= STORE_NAME_MAX)
		return STORE_EINVAL;
	struct store_lister *l = calloc(1, sizeof *l);
	if (!l)
		return STORE_ENOMEM;
	l->st = st;
	memcpy(l->prefix, prefix, strlen(prefix) + 1);
	if (st->be->list_open) {
		int rc = st->be->list_open(st, prefix, &l->cur);
		if (rc < 0) {
			free(l);
			return rc;
		}
	}
	*out = l;
	return 0;
}

static int lister_cb(void *arg, const struct store_entry *e)
{
	struct store_lister *l = arg;
	/* A resumed listing may repeat the name it resumed at (a folder is
	 * reported again while its keys follow START_AFTER). */
	if (l->last[0] && strcmp(e->name, l->last) <= 0)
		return 0;
	snprintf(l->last, sizeof l->last, "%s", e->name);
	return l->cb(l->arg, e);
}

int store_lister_next(struct store_lister *l, store_list_cb cb, void *arg)
{
	if (!l || !cb)
		return STORE_EINVAL;
	if (l->done)
		return 0;
	int rc;
	if (l->cur) {
		rc = l->st->be->list_next(l->cur, cb, arg);
	} else {
		char after[STORE_NAME_MAX + 8];
		size_t ll = strlen(l->last);
		/* After a folder, resume past the largest name it could
		 * hold, so that its keys are not walked again. */
		snprintf(after, sizeof after, "%s%s", l->last,
			 ll && l->last[ll - 1] == '/' ? "\xf4\x8f\xbf\xbf" : "");
		l->cb = cb;
		l->arg = arg;
		rc = store_list(l->st, l->prefix, '/', ll ? after : NULL,
				lister_cb, l);
	}
	if (rc == 0)
		l->done = 1;
	return rc;
}

void store_lister_close(struct store_lister *l)
{
	if (!l)
		return;
	if (l->cur)
		l->st->be->list_close(l->cur);
	free(l);
}

int store_delete(struct store *st, const char *name)
{
	if (!st || !store_name_valid(name))
		return STORE_EINVAL;
	IF_TEMP_RETURN(name, STORE_ENOENT);
	if (!st->meter.account)
		return st->be->delete_object(st, name);
	int rc;
	int64_t old = object_size(st, name, &rc); /* -1 if unknown */
	rc = st->be->delete_object(st, name);
	if (rc == 0 && old >= 0)
		meter_account(st, name, -1, -old, 0);
	return rc;
}

int store_mkdir(struct store *st, const char *name)
{
	char n[STORE_NAME_MAX];
	if (!st || !name || !dir_name_ok(name, n, sizeof n))
		return STORE_EINVAL;
	if (!n[0])
		return STORE_EEXIST; /* the root always exists */
	IF_TEMP_RETURN(n, STORE_EINVAL);
	return st->be->mkdir(st, n);
}

int store_mkdir_new(struct store *st, const char *name)
{
	char n[STORE_NAME_MAX];
	if (!st || !name || !dir_name_ok(name, n, sizeof n))
		return STORE_EINVAL;
	if (!n[0])
		return STORE_EEXIST;
	IF_TEMP_RETURN(n, STORE_EINVAL);
	return st->be->mkdir_new ? st->be->mkdir_new(st, n)
				 : st->be->mkdir(st, n);
}

int store_rmdir(struct store *st, const char *name)
{
	char n[STORE_NAME_MAX];
	if (!st || !name || !dir_name_ok(name, n, sizeof n) || !n[0])
		return STORE_EINVAL; /* the root is not removable */
	IF_TEMP_RETURN(n, STORE_ENOENT);
	return st->be->rmdir(st, n);
}

struct tally {
	int64_t objects, bytes;
};

static int tally_one(void *arg, const struct store_entry *e)
{
	struct tally *t = arg;
	if (!e->is_dir) {
		t->objects++;
		t->bytes += (int64_t)e->size;
	}
	return 0;
}

/* A metered rename: what moves from F to T (a file, or everything below a
 * directory) and what T replaced are accounted once the rename is done. */
static int rename_metered(struct store *st, const char *f, const char *t,
			  int noreplace)
{
	struct store_stat fs;
	memset(&fs, 0, sizeof fs);
	int rc = st->be->stat(st, f, &fs);
	if (rc < 0)
		return rc;
	struct tally moved = { 0, 0 };
	int64_t replaced = -1;
	char fdir[STORE_NAME_MAX + 1], tdir[STORE_NAME_MAX + 1];
	if (fs.is_dir) {
		/* Names below a directory share its top-level folder, so the
		 * directory's own name ("a/b/") stands for all of them. */
		snprintf(fdir, sizeof fdir, "%s/", f);
		snprintf(tdir, sizeof tdir, "%s/", t);
		rc = st->be->list(st, fdir, 0, NULL, tally_one, &moved);
		if (rc < 0)
			return rc;
	} else {
		moved.objects = 1;
		moved.bytes = (int64_t)fs.size;
		replaced = object_size(st, t, &rc);
		if (rc < 0)
			return rc;
		snprintf(fdir, sizeof fdir, "%s", f);
		snprintf(tdir, sizeof tdir, "%s", t);
	}
	rc = st->be->rename(st, f, t, noreplace ? 1 : 0);
	if (rc < 0)
		return rc;
	if (replaced >= 0)
		meter_account(st, t, -1, -replaced, 0);
	meter_account(st, fdir, -moved.objects, -moved.bytes, 0);
	meter_account(st, tdir, moved.objects, moved.bytes, 0);
	return 0;
}

int store_rename(struct store *st, const char *from, const char *to,
		 int noreplace)
{
	char f[STORE_NAME_MAX], t[STORE_NAME_MAX];
	if (!st || !from || !to || !dir_name_ok(from, f, sizeof f) ||
	    !dir_name_ok(to, t, sizeof t) || !f[0] || !t[0])
		return STORE_EINVAL;
	IF_TEMP_RETURN(f, STORE_ENOENT);
	IF_TEMP_RETURN(t, STORE_EINVAL);
	if (!strcmp(f, t)) {
		/* posix rename onto itself: nothing to do if it exists */
		struct store_stat ss;
		int rc = st->be->stat(st, f, &ss);
		if (rc < 0)
			return rc;
		return noreplace ? STORE_EEXIST : 0;
	}
	/* A directory cannot move into itself. */
	size_t fl = strlen(f);
	if (!strncmp(t, f, fl) && t[fl] == '/')
		return STORE_EINVAL;
	if (st->meter.account)
		return rename_metered(st, f, t, noreplace);
	return st->be->rename(st, f, t, noreplace ? 1 : 0);
}

/* Streamed copy through a reader and a writer: for pairs of stores that
 * cannot copy server-side. Keeps the client mtime and content type. */
static int copy_streamed(struct store *src, const char *from,
			 struct store *dst, const char *to)
{
	struct store_stat sst;
	struct store_reader *r;
	int rc = store_reader_open(src, from, 0, UINT64_MAX, &r, &sst);
	if (rc < 0)
		return rc;
	struct store_put_opts po = {
		.mtime = sst.mtime,
		.content_type = sst.content_type[0] ? sst.content_type : NULL,
		.size_hint = sst.size,
	};
	struct store_writer *w;
	rc = store_writer_open(dst, to, &po, &w);
	if (rc < 0) {
		store_reader_close(r);
		return rc;
	}
	/* page-aligned: the kernel copies into and out of it several times
	 * faster than into a misaligned heap block */
	char *buf = aligned_alloc(4096, STORE_COPY_BUF);
	if (!buf) {
		store_writer_abort(w);
		store_reader_close(r);
		return STORE_ENOMEM;
	}
	for (;;) {
		ssize_t n = store_reader_read(r, buf, STORE_COPY_BUF);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0) {
			rc = 0;
			break;
		}
		rc = store_writer_write(w, buf, (size_t)n);
		if (rc < 0)
			break;
	}
	free(buf);
	store_reader_close(r);
	if (rc == 0 && store_writer_size(w) != sst.size)
		rc = STORE_EIO; /* the source changed or was cut short */
	if (rc < 0) {
		store_writer_abort(w);
		return rc;
	}
	return store_writer_commit(w);
}

/* The backend's server-side copy; SIZE < 0: the source's size unknown. */
static int be_copy(struct store *src, const char *from, struct store *dst,
		   const char *to, int64_t size)
{
	if (size >= 0 && src->be->copy_sized)
		return src->be->copy_sized(src, from, dst, to, (uint64_t)size);
	return src->be->copy(src, from, dst, to);
}

/* A server-side copy into a metered store: reserve what it adds (as a
 * writer's commit would), give it back if the copy fails. */
static int copy_metered(struct store *src, const char *from,
			struct store *dst, const char *to, int64_t size)
{
	int rc;
	if (size < 0)
		size = object_size(src, from, &rc);
	if (size < 0)
		return src->be->copy(src, from, dst, to); /* its own error */
	int64_t old = object_size(dst, to, &rc); /* -1: counts as new */
	int64_t dobj = old < 0 ? 1 : 0;
	int64_t dbytes = size - (old > 0 ? old : 0);
	rc = meter_account(dst, to, dobj, dbytes, 1);
	if (rc < 0)
		return rc;
	rc = be_copy(src, from, dst, to, size);
	if (rc < 0)
		meter_account(dst, to, -dobj, -dbytes, 0);
	return rc;
}

static int copy_any(struct store *src, const char *from, struct store *dst,
		    const char *to, int64_t size)
{
	if (!src || !dst || !store_name_valid(from) || !store_name_valid(to))
		return STORE_EINVAL;
	IF_TEMP_RETURN(from, STORE_ENOENT);
	IF_TEMP_RETURN(to, STORE_EINVAL);
	/* ASSETD_STORE_STREAMED_COPY=1 forces the streamed path, so that the
	 * tests exercise it on a single backend too. */
	const char *force = getenv("ASSETD_STORE_STREAMED_COPY");
	if (src->be == dst->be && src->be->copy &&
	    !(force && force[0] == '1')) {
		int rc = dst->meter.account
				 ? copy_metered(src, from, dst, to, size)
				 : be_copy(src, from, dst, to, size);
		if (rc != STORE_EINVAL)
			return rc;
	}
	/* The streamed copy's writer accounts for itself. */
	return copy_streamed(src, from, dst, to);
}

int store_copy(struct store *src, const char *from, struct store *dst,
	       const char *to)
{
	return copy_any(src, from, dst, to, -1);
}

int store_copy_sized(struct store *src, const char *from, struct store *dst,
		     const char *to, uint64_t size)
{
	return copy_any(src, from, dst, to,
			size > (uint64_t)INT64_MAX ? -1 : (int64_t)size);
}

int store_statfs(struct store *st, uint64_t *total, uint64_t *avail)
{
	if (!st || !total || !avail)
		return STORE_EINVAL;
	int rc = st->be->statfs(st, total, avail);
	struct store_usage u;
	if (rc == 0 && st->meter.usage && store_usage(st, &u) == 0 &&
	    u.quota_bytes > 0) {
		*total = (uint64_t)u.quota_bytes;
		*avail = u.bytes < u.quota_bytes
			     ? (uint64_t)(u.quota_bytes - u.bytes)
			     : 0;
	}
	return rc;
}

int store_cleanup(struct store *st, int min_age)
{
	if (!st || min_age < 0)
		return STORE_EINVAL;
	return st->be->cleanup(st, min_age);
}
