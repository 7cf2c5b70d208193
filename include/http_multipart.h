/*
 * http_multipart.h - a streaming multipart/form-data parser (RFC 7578).
 *
 * Bytes are fed in chunks of any size (one byte at a time works); the
 * parser calls back at each part's start (with its field name, file name
 * and content type), with each run of the part's body bytes as they arrive
 * (never buffered whole), and at each part's end. Memory is the struct
 * itself: part headers are bounded, body bytes pass straight through.
 * Pure: no I/O, no allocation.
 */
#ifndef ASSETD_HTTP_MULTIPART_H
#define ASSETD_HTTP_MULTIPART_H

#include <stddef.h>

#define HTTP_MP_BOUNDARY_MAX 70  /* RFC 2046 */
#define HTTP_MP_HEADERS_MAX 4096 /* all header lines of one part */
#define HTTP_MP_FIELD_MAX 1024   /* a decoded name or filename, with NUL */
#define HTTP_MP_PARTS_MAX 256

enum http_mp_error {
	HTTP_MP_OK = 0,
	HTTP_MP_EBOUNDARY = -1, /* no or invalid boundary in Content-Type */
	HTTP_MP_ESYNTAX = -2,   /* malformed body */
	HTTP_MP_EHEADERS = -3,  /* part headers too long or malformed */
	HTTP_MP_ETOOMANY = -4,  /* more than HTTP_MP_PARTS_MAX parts */
	HTTP_MP_ETRUNCATED = -5, /* finish() before the closing boundary */
	HTTP_MP_EABORTED = -6,  /* a callback returned non-zero (see rc) */
};

struct http_mp_part {
	char name[HTTP_MP_FIELD_MAX];     /* form field name, "" if none */
	char filename[HTTP_MP_FIELD_MAX]; /* "" if none */
	int has_filename;                 /* 1 if a filename parameter came */
	char content_type[128];           /* "" if none */
};

struct http_mp_callbacks {
	/* Each returns 0 to go on, non-zero to stop (kept in cb_rc). */
	int (*part_begin)(void *arg, const struct http_mp_part *part);
	int (*part_data)(void *arg, const char *data, size_t len);
	int (*part_end)(void *arg);
};

enum http_mp_state {
	HTTP_MP_PREAMBLE,   /* before the first delimiter */
	HTTP_MP_AFTER_DELIM, /* after a delimiter: "--" or CRLF follows */
	HTTP_MP_HEADERS,    /* reading a part's header block */
	HTTP_MP_BODY,       /* passing a part's body through */
	HTTP_MP_EPILOGUE,   /* after the closing delimiter: ignored */
	HTTP_MP_FAILED,
};

struct http_multipart {
	struct http_mp_callbacks cb;
	void *arg;
	char delim[HTTP_MP_BOUNDARY_MAX + 5]; /* "\r\n--" boundary */
	size_t delim_len;
	size_t match;           /* bytes of delim matched so far */
	enum http_mp_state state;
	int after_dashes;       /* AFTER_DELIM: 1 '-' seen, 2 = closing */
	int after_cr;           /* AFTER_DELIM: CR seen */
	char hdr[HTTP_MP_HEADERS_MAX];
	size_t hdr_len;
	unsigned parts;
	int cb_rc;              /* the non-zero value a callback returned */
	struct http_mp_part part;
};

/* Extract the boundary from a Content-Type value into OUT. 0 or -1. */
int http_mp_boundary(const char *content_type, char *out, size_t outlen);

/* Prepare MP for a body with CONTENT_TYPE. 0 or HTTP_MP_EBOUNDARY. */
int http_mp_init(struct http_multipart *mp, const char *content_type,
		 const struct http_mp_callbacks *cb, void *arg);

/* Feed LEN bytes. 0, or an http_mp_error (the parser is then dead). */
int http_mp_feed(struct http_multipart *mp, const char *data, size_t len);

/* The body has ended: 0 if the closing delimiter was seen. */
int http_mp_finish(struct http_multipart *mp);

/* Parse one parameter of a header value: in `form-data; name="a"`, the
 * value of PARAM ("name"), unquoting quoted-strings (backslash escapes)
 * and percent-decoding nothing. Returns 1 found, 0 not, -1 too long. */
int http_mp_header_param(const char *value, const char *param, char *out,
			 size_t outlen);

#endif
