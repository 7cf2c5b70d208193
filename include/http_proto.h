/*
 * http_proto.h - pure helpers of the Specify endpoint: the parts of HTTP and
 * of the protocol that are plain functions over bytes (ranges, conditional
 * requests, dates, stored names, thumbnail names, form bodies, escaping).
 * No I/O, no allocation; each is unit-tested and a fuzz target.
 */
#ifndef ASSETD_HTTP_PROTO_H
#define ASSETD_HTTP_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- Range (RFC 9110 14.2), a single range ---------------------------- */

enum http_range_result {
	HTTP_RANGE_NONE = 0,       /* no usable Range: send the whole (200) */
	HTTP_RANGE_OK = 1,         /* START and LEN set: send 206 */
	HTTP_RANGE_UNSATISFIABLE = 2, /* 416 with Content-Range: bytes (wildcard)/SIZE */
};

/* Parse a Range header value for an object of SIZE bytes. Malformed values
 * and multiple ranges yield HTTP_RANGE_NONE (a server may ignore Range). */
int http_range_parse(const char *value, uint64_t size, uint64_t *start,
		     uint64_t *len);

/* ---- dates and validators --------------------------------------------- */

/* Format T as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). */
void http_date_format(int64_t t, char *out, size_t outlen);

/* Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime). 0 or -1. */
int http_date_parse(const char *s, int64_t *out);

/* 1 if the If-None-Match value VALUE matches ETAG (a quoted entity tag,
 * weak comparison; "*" matches anything). */
int http_etag_match(const char *value, const char *etag);

/* ---- names -------------------------------------------------------------- */

/* 1 if NAME (LEN bytes) is a safe stored name: one path segment, 1..255
 * bytes, valid UTF-8, no '/', '\\', NUL or control character, not "." or
 * "..". Specify's "<uuid4><ext>" and "sp6...att.jpg" names pass. */
int http_name_valid(const char *name, size_t len);

/* Thumbnail kinds by the original's extension. */
enum http_thumb_kind {
	HTTP_THUMB_NONE = 0,  /* cannot be thumbnailed */
	HTTP_THUMB_JPEG, HTTP_THUMB_PNG, HTTP_THUMB_GIF,
	HTTP_THUMB_TIFF, HTTP_THUMB_PDF, HTTP_THUMB_HEIF,
};

/* The kind for stored name NAME (case-insensitive extension). */
int http_thumb_kind(const char *name);

/* The cached thumbnail's name for original NAME at scale S:
 * "<root>_<S><ext>", <root> = NAME without its last extension, <ext> = the
 * original's extension as written, or ".png" for pdf/tiff/heic/heif.
 * 0, or -1 if it does not fit. */
int http_thumb_name(const char *name, int scale, char *out, size_t outlen);

/* 1 if CANDIDATE is a thumbnail name that http_thumb_name(NAME, S) yields
 * for some S >= 1 (the exact set a delete of NAME must remove). */
int http_thumb_is_of(const char *name, const char *candidate);

/* ---- query strings and form bodies ------------------------------------ */

/* Called for each field of an application/x-www-form-urlencoded body with
 * the decoded name and value (NUL-terminated; lengths given, since a value
 * may contain %00). Return non-zero to stop. */
typedef int (*http_form_cb)(void *arg, const char *name, size_t nlen,
			    const char *value, size_t vlen);

/* Parse a form body of LEN bytes. Each decoded name/value is bounded by
 * 4096 bytes (longer: -1). 0, -1 for malformed/overlong, or the callback's
 * value. */
int http_form_parse(const char *body, size_t len, http_form_cb cb, void *arg);

/* Percent-decode SRC (LEN bytes; '+' becomes ' ' if PLUS) into OUT.
 * Returns the decoded length, or -1 on bad escapes or overflow. OUT is
 * NUL-terminated. */
long http_pct_decode(const char *src, size_t len, int plus, char *out,
		     size_t outlen);

/* Percent-encode S for RFC 8187 ext-value (attr-char kept). 0 or -1. */
int http_pct_encode_attr(const char *s, char *out, size_t outlen);

/* Percent-encode S for a URL path segment or query value. 0 or -1. */
int http_pct_encode_url(const char *s, char *out, size_t outlen);

/* Content-Disposition for downloadname D: "inline; filename*=utf-8''<enc>"
 * of D's basename (after the last '/' or '\\'). 0 or -1. */
int http_content_disposition(const char *d, char *out, size_t outlen);

/* XML-escape S (&, <, >, ", '). 0 or -1. */
int http_xml_escape(const char *s, char *out, size_t outlen);

/* ---- base URL ------------------------------------------------------------ */

/* The public base URL (no trailing '/'): PUBLIC_URL if not empty, else
 * "<proto>://<host>" from X-Forwarded-Proto / X-Forwarded-Host / Host
 * (each may be NULL; the first value of a comma list is used; proto is
 * "http" or "https", else TLS ? "https" : "http"), then PREFIX appended
 * ("" or "/c/<client>"). Hosts with characters outside a host[:port]
 * grammar are refused (-1) so the XML cannot be poisoned. 0 or -1. */
int http_base_url(const char *public_url, const char *xf_proto,
		  const char *xf_host, const char *host, int tls,
		  const char *prefix, char *out, size_t outlen);

/* Split a request path into an optional client prefix and the route:
 * "/c/kufish/fileget" -> client "kufish", route "/fileget". Returns 1 with a
 * prefix, 0 without (ROUTE = PATH), -1 for a malformed prefix. */
int http_split_prefix(const char *path, char *client, size_t clientlen,
		      const char **route);

/* Parse a thumbnail scale: decimal 1..99999 with nothing else. 0 or -1. */
int http_scale_parse(const char *s, int *out);

#endif
