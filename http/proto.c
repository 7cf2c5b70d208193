/*
 * proto.c - the pure parts of the Specify endpoint: HTTP ranges, dates and
 * entity tags, the stored-name rule, thumbnail naming, form bodies, escaping
 * and the public base URL.
 *
 * Everything here is a function over bytes with bounded output, kept apart
 * from libmicrohttpd and the store so that it can be unit-tested and
 * fuzzed. The server files call these and map results to statuses.
 */
#include "http_proto.h"
#include "store.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- Range ---------------------------------------------------------- */

static int parse_u64(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*pp = p;
	*out = v;
	return 0;
}

int http_range_parse(const char *value, uint64_t size, uint64_t *start,
		     uint64_t *len)
{
	const char *p = value;
	uint64_t a, b;

	if (p == NULL)
		return HTTP_RANGE_NONE;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "bytes", 5) != 0)
		return HTTP_RANGE_NONE;
	p += 5;
	while (*p == ' ')
		p++;
	if (*p++ != '=')
		return HTTP_RANGE_NONE;
	while (*p == ' ')
		p++;
	if (*p == '-') {
		/* suffix: the last B bytes */
		p++;
		if (parse_u64(&p, &b) != 0)
			return HTTP_RANGE_NONE;
		while (*p == ' ')
			p++;
		if (*p != '\0')
			return HTTP_RANGE_NONE; /* several ranges: ignore */
		if (b == 0 || size == 0)
			return HTTP_RANGE_UNSATISFIABLE;
		if (b > size)
			b = size;
		*start = size - b;
		*len = b;
		return HTTP_RANGE_OK;
	}
	if (parse_u64(&p, &a) != 0)
		return HTTP_RANGE_NONE;
	if (*p++ != '-')
		return HTTP_RANGE_NONE;
	int open_end = 1;
	b = 0;
	if (isdigit((unsigned char)*p)) {
		if (parse_u64(&p, &b) != 0)
			return HTTP_RANGE_NONE;
		open_end = 0;
	}
	while (*p == ' ')
		p++;
	if (*p != '\0')
		return HTTP_RANGE_NONE;
	if (!open_end && b < a)
		return HTTP_RANGE_NONE; /* invalid: ignored per RFC 9110 */
	if (a >= size)
		return HTTP_RANGE_UNSATISFIABLE;
	if (open_end || b >= size)
		b = size - 1;
	*start = a;
	*len = b - a + 1;
	return HTTP_RANGE_OK;
}

/* ---- dates ---------------------------------------------------------- */

void http_date_format(int64_t t, char *out, size_t outlen)
{
	struct tm tm;
	time_t tt = (time_t)t;
	static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	if (gmtime_r(&tt, &tm) == NULL) {
		snprintf(out, outlen, "Thu, 01 Jan 1970 00:00:00 GMT");
		return;
	}
	snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d GMT",
		 days[tm.tm_wday % 7], tm.tm_mday, mons[tm.tm_mon % 12],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int month_index(const char *m)
{
	static const char *mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	for (int i = 0; i < 12; i++)
		if (strncmp(m, mons[i], 3) == 0)
			return i;
	return -1;
}

/* Locale-independent: the three formats of RFC 9110 5.6.7. */
int http_date_parse(const char *s, int64_t *out)
{
	struct tm tm;
	char wd[16], mon[4];
	int d, y, H, M, S;
	char tail[8];

	if (s == NULL)
		return -1;
	memset(&tm, 0, sizeof tm);
	if (sscanf(s, "%15[A-Za-z], %2d %3s %4d %2d:%2d:%2d %7s", wd, &d, mon, &y,
		   &H, &M, &S, tail) == 8 && strcmp(tail, "GMT") == 0) {
		/* IMF-fixdate */
	} else if (sscanf(s, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %7s", wd, &d,
			  mon, &y, &H, &M, &S, tail) == 8 &&
		   strcmp(tail, "GMT") == 0) {
		y += y < 70 ? 2000 : 1900; /* RFC 850 */
	} else if (sscanf(s, "%15[A-Za-z] %3s %2d %2d:%2d:%2d %4d", wd, mon, &d,
			  &H, &M, &S, &y) == 7) {
		/* asctime */
	} else {
		return -1;
	}
	int m = month_index(mon);
	if (m < 0 || d < 1 || d > 31 || H > 23 || M > 59 || S > 60 || y < 1970)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = m;
	tm.tm_mday = d;
	tm.tm_hour = H;
	tm.tm_min = M;
	tm.tm_sec = S;
	*out = (int64_t)timegm(&tm);
	return 0;
}

int http_etag_match(const char *value, const char *etag)
{
	const char *p = value;
	size_t el;

	if (value == NULL || etag == NULL)
		return 0;
	if (strncmp(etag, "W/", 2) == 0)
		etag += 2;
	el = strlen(etag);
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return 0;
		if (*p == '*')
			return 1;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		const char *q = p;
		if (*q == '"') {
			q = strchr(p + 1, '"');
			if (q == NULL)
				return 0;
			q++;
		} else {
			while (*q && *q != ',' && *q != ' ')
				q++;
		}
		if ((size_t)(q - p) == el && memcmp(p, etag, el) == 0)
			return 1;
		p = q;
	}
}

/* ---- names ---------------------------------------------------------- */

/* 1 if [S, S+LEN) is valid UTF-8 (no overlongs, no surrogates). */
static int utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + n >= len)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += n + 1;
	}
	return 1;
}

int http_name_valid(const char *name, size_t len)
{
	if (name == NULL || len == 0 || len > 255)
		return 0;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7F || c == '/' || c == '\\')
			return 0;
	}
	return utf8_valid((const unsigned char *)name, len);
}

/* The last extension of NAME (".jpg"), or NULL. A leading dot alone (".x")
 * is a hidden name's first character, not an extension. */
static const char *last_ext(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot == NULL || dot == name)
		return NULL;
	return dot;
}

int http_thumb_kind(const char *name)
{
	static const struct {
		const char *ext;
		int kind;
	} map[] = {
		{".jpg", HTTP_THUMB_JPEG}, {".jpeg", HTTP_THUMB_JPEG},
		{".jpe", HTTP_THUMB_JPEG}, {".jfif", HTTP_THUMB_JPEG},
		{".png", HTTP_THUMB_PNG},  {".gif", HTTP_THUMB_GIF},
		{".tif", HTTP_THUMB_TIFF}, {".tiff", HTTP_THUMB_TIFF},
		{".pdf", HTTP_THUMB_PDF},  {".heic", HTTP_THUMB_HEIF},
		{".heif", HTTP_THUMB_HEIF},
	};
	const char *ext = last_ext(name);
	if (ext == NULL)
		return HTTP_THUMB_NONE;
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcasecmp(ext, map[i].ext) == 0)
			return map[i].kind;
	return HTTP_THUMB_NONE;
}

/* The thumbnail extension for NAME: ".png" for the kinds browsers cannot
 * show, else the original's extension as written ("" if none). */
static const char *thumb_ext(const char *name)
{
	int k = http_thumb_kind(name);
	if (k == HTTP_THUMB_TIFF || k == HTTP_THUMB_PDF || k == HTTP_THUMB_HEIF)
		return ".png";
	const char *ext = last_ext(name);
	return ext ? ext : "";
}

int http_thumb_name(const char *name, int scale, char *out, size_t outlen)
{
	const char *ext = last_ext(name);
	size_t rootlen = ext ? (size_t)(ext - name) : strlen(name);
	int n = snprintf(out, outlen, "%.*s_%d%s", (int)rootlen, name, scale,
			 thumb_ext(name));
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int http_thumb_is_of(const char *name, const char *candidate)
{
	const char *ext = last_ext(name);
	size_t rootlen = ext ? (size_t)(ext - name) : strlen(name);
	const char *te = thumb_ext(name);

	if (strncmp(candidate, name, rootlen) != 0 || candidate[rootlen] != '_')
		return 0;
	const char *p = candidate + rootlen + 1;
	if (*p < '1' || *p > '9')
		return 0; /* S >= 1 and rendered without leading zeros */
	size_t digits = 0;
	while (isdigit((unsigned char)*p)) {
		p++;
		if (++digits > 9)
			return 0;
	}
	return strcmp(p, te) == 0;
}

/* ---- forms and escaping --------------------------------------------- */

long http_pct_decode(const char *src, size_t len, int plus, char *out,
		     size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)src[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			int h = store_hex_digit((unsigned char)src[i + 1]);
			int l = store_hex_digit((unsigned char)src[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return (long)o;
}

int http_form_parse(const char *body, size_t len, http_form_cb cb, void *arg)
{
	char name[4096], value[4096];
	size_t i = 0;

	while (i < len) {
		const char *amp = memchr(body + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - body) : len;
		const char *eq = memchr(body + i, '=', end - i);
		size_t nend = eq ? (size_t)(eq - body) : end;
		if (nend > i) {
			long nl = http_pct_decode(body + i, nend - i, 1, name,
						  sizeof name);
			if (nl < 0)
				return -1;
			long vl = 0;
			value[0] = '\0';
			if (eq) {
				vl = http_pct_decode(eq + 1, end - nend - 1, 1,
						     value, sizeof value);
				if (vl < 0)
					return -1;
			}
			int rc = cb(arg, name, (size_t)nl, value, (size_t)vl);
			if (rc)
				return rc;
		}
		i = end + 1;
	}
	return 0;
}

static int encode(const char *s, char *out, size_t outlen, const char *keep)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || strchr(keep, *p)) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)*p;
		} else {
			if (o + 3 >= outlen)
				return -1;
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

int http_pct_encode_attr(const char *s, char *out, size_t outlen)
{
	return encode(s, out, outlen, "!#$&+-.^_`|~");
}

int http_pct_encode_url(const char *s, char *out, size_t outlen)
{
	return encode(s, out, outlen, "-._~");
}

int http_content_disposition(const char *d, char *out, size_t outlen)
{
	const char *base = d;
	for (const char *p = d; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	static const char head[] = "inline; filename*=utf-8''";
	size_t hl = sizeof head - 1;
	if (outlen <= hl)
		return -1;
	memcpy(out, head, hl);
	return http_pct_encode_attr(base, out + hl, outlen - hl);
}

int http_xml_escape(const char *s, char *out, size_t outlen)
{
	size_t o = 0;
	for (; *s; s++) {
		const char *rep = NULL;
		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		}
		size_t rl = rep ? strlen(rep) : 1;
		if (o + rl >= outlen)
			return -1;
		if (rep)
			memcpy(out + o, rep, rl);
		else
			out[o] = *s;
		o += rl;
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return 0;
}

/* ---- base URL ------------------------------------------------------- */

/* Copy the first comma-separated item of V, trimmed, into OUT. */
static int first_item(const char *v, char *out, size_t outlen)
{
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strcspn(v, ", \t");
	if (n == 0 || n >= outlen)
		return -1;
	memcpy(out, v, n);
	out[n] = '\0';
	return 0;
}

/* host[:port] with a DNS name, IPv4 or [IPv6]: nothing that could break
 * out of a URL or the XML. */
static int host_ok(const char *h)
{
	if (*h == '\0')
		return 0;
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-:[]_", *p))
			return 0;
	return 1;
}

int http_base_url(const char *public_url, const char *xf_proto,
		  const char *xf_host, const char *host, int tls,
		  const char *prefix, char *out, size_t outlen)
{
	char proto[16], h[256];
	int n;

	if (prefix == NULL)
		prefix = "";
	if (public_url != NULL && public_url[0] != '\0') {
		size_t pl = strlen(public_url);
		while (pl > 0 && public_url[pl - 1] == '/')
			pl--;
		n = snprintf(out, outlen, "%.*s%s", (int)pl, public_url, prefix);
		return n < 0 || (size_t)n >= outlen ? -1 : 0;
	}
	snprintf(proto, sizeof proto, "%s", tls ? "https" : "http");
	if (xf_proto != NULL) {
		char p[16];
		if (first_item(xf_proto, p, sizeof p) == 0) {
			if (strcasecmp(p, "https") == 0)
				snprintf(proto, sizeof proto, "https");
			else if (strcasecmp(p, "http") == 0)
				snprintf(proto, sizeof proto, "http");
		}
	}
	const char *src = xf_host != NULL ? xf_host : host;
	if (src == NULL || first_item(src, h, sizeof h) != 0 || !host_ok(h))
		return -1;
	n = snprintf(out, outlen, "%s://%s%s", proto, h, prefix);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int http_split_prefix(const char *path, char *client, size_t clientlen,
		      const char **route)
{
	if (strncmp(path, "/c/", 3) != 0) {
		*route = path;
		return 0;
	}
	const char *c = path + 3;
	const char *slash = strchr(c, '/');
	size_t n = slash ? (size_t)(slash - c) : strlen(c);
	if (n == 0 || n >= clientlen)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)c[i];
		if (!(islower(ch) || isdigit(ch) || ch == '_' || ch == '-'))
			return -1;
	}
	memcpy(client, c, n);
	client[n] = '\0';
	*route = slash ? slash : "/";
	return 1;
}

int http_scale_parse(const char *s, int *out)
{
	int v = 0;
	if (s == NULL || *s < '1' || *s > '9')
		return -1;
	for (int i = 0; s[i]; i++) {
		if (!isdigit((unsigned char)s[i]) || i >= 5)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}
