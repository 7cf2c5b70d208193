/*
 * http_token.h - Specify's attachment tokens: "<hex>:<ts>".
 *
 * hex is the lower-case hex HMAC-MD5, keyed with the attachment key, of the
 * decimal ts immediately followed by the protected name. A token is valid
 * when |now - ts| < tolerance and the whole string equals the recomputed
 * one (compared in constant time). Pure functions: no I/O, no logging.
 */
#ifndef ASSETD_HTTP_TOKEN_H
#define ASSETD_HTTP_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_TOKEN_MAX 64 /* 32 hex + ':' + up to 20 digits + NUL, rounded */

enum http_token_result {
	HTTP_TOKEN_OK = 0,
	HTTP_TOKEN_EMISSING = -1,   /* NULL or empty token */
	HTTP_TOKEN_EMALFORMED = -2, /* no colon, bad hex part, ts not an integer */
	HTTP_TOKEN_EEXPIRED = -3,   /* ts too far from now (past or future) */
	HTTP_TOKEN_EBAD = -4,       /* well formed, in time, wrong digest */
};

/* Write the token for KEY, TS and NAME (NAMELEN bytes) into OUT.
 * Returns 0, or -1 if OUTLEN is too small or KEY is empty. */
int http_token_make(const char *key, int64_t ts, const char *name,
		    size_t namelen, char *out, size_t outlen);

/* Check TOKEN for NAME against KEY at time NOW (the moment the request
 * started) with TOLERANCE seconds. Returns an enum http_token_result. */
int http_token_check(const char *key, const char *token, const char *name,
		     size_t namelen, int64_t now, int tolerance);

/* A short text for a result ("expired token", ...). Static. */
const char *http_token_strerror(int res);

#endif
