/*
 * token.c - Specify attachment tokens (HMAC-MD5 of ts + name).
 *
 * The token is the only thing that authorises an upload, a delete or a key
 * test, so it is checked in one place: the timestamp must be a canonical
 * decimal integer within the tolerance of the moment the request started
 * (not when its body finished, so that long uploads keep their token), and
 * the whole token string is compared with the recomputed one with
 * CRYPTO_memcmp so that the time taken says nothing about the digest.
 */
#include "http_token.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

int http_token_make(const char *key, int64_t ts, const char *name,
		    size_t namelen, char *out, size_t outlen)
{
	char tsbuf[24];
	unsigned char msg_head[24];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hex[] = "0123456789abcdef";

	if (key == NULL || key[0] == '\0' || out == NULL)
		return -1;
	int n = snprintf(tsbuf, sizeof tsbuf, "%" PRId64, ts);
	if (n <= 0 || (size_t)n >= sizeof tsbuf)
		return -1;
	memcpy(msg_head, tsbuf, (size_t)n);

	/* HMAC over ts || name without building the concatenation, so that a
	 * long name needs no buffer of its own. */
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL)
		return -1;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);
	if (ctx == NULL)
		return -1;
	OSSL_PARAM params[2];
	params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"MD5", 0);
	params[1] = OSSL_PARAM_construct_end();
	size_t got = 0;
	int ok = EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key),
			      params) == 1 &&
		 EVP_MAC_update(ctx, msg_head, (size_t)n) == 1 &&
		 EVP_MAC_update(ctx, (const unsigned char *)name, namelen) == 1 &&
		 EVP_MAC_final(ctx, md, &got, sizeof md) == 1;
	EVP_MAC_CTX_free(ctx);
	if (!ok || got != 16)
		return -1;
	mdlen = (unsigned int)got;

	if (outlen < 2 * (size_t)mdlen + 1 + (size_t)n + 1)
		return -1;
	size_t o = 0;
	for (unsigned int i = 0; i < mdlen; i++) {
		out[o++] = hex[md[i] >> 4];
		out[o++] = hex[md[i] & 15];
	}
	out[o++] = ':';
	memcpy(out + o, tsbuf, (size_t)n);
	out[o + (size_t)n] = '\0';
	return 0;
}

/* Parse the ts part: optional '-', then 1..19 digits, nothing else. Leading
 * zeros are accepted here; they then fail the string comparison, exactly as
 * the reference (which re-renders int(ts)) refuses them. */
static int parse_ts(const char *s, int64_t *out)
{
	int neg = 0;
	int64_t v = 0;
	size_t digits = 0;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (++digits > 18)
			return -1;
		v = v * 10 + (*s - '0');
	}
	if (digits == 0)
		return -1;
	*out = neg ? -v : v;
	return 0;
}

int http_token_check(const char *key, const char *token, const char *name,
		     size_t namelen, int64_t now, int tolerance)
{
	char want[HTTP_TOKEN_MAX];
	int64_t ts;

	if (token == NULL || token[0] == '\0')
		return HTTP_TOKEN_EMISSING;
	size_t len = strnlen(token, HTTP_TOKEN_MAX);
	if (len >= HTTP_TOKEN_MAX)
		return HTTP_TOKEN_EMALFORMED;
	const char *colon = strchr(token, ':');
	if (colon == NULL || colon - token != 32)
		return HTTP_TOKEN_EMALFORMED;
	if (parse_ts(colon + 1, &ts) != 0)
		return HTTP_TOKEN_EMALFORMED;
	int64_t age = now - ts;
	if (age < 0)
		age = -age;
	if (age >= tolerance)
		return HTTP_TOKEN_EEXPIRED;
	if (http_token_make(key, ts, name, namelen, want, sizeof want) != 0)
		return HTTP_TOKEN_EBAD;
	/* Lengths are public (the hex part is fixed); the digest is not. */
	if (strlen(want) != len || CRYPTO_memcmp(want, token, len) != 0)
		return HTTP_TOKEN_EBAD;
	return HTTP_TOKEN_OK;
}

const char *http_token_strerror(int res)
{
	switch (res) {
	case HTTP_TOKEN_OK: return "valid token";
	case HTTP_TOKEN_EMISSING: return "missing token";
	case HTTP_TOKEN_EMALFORMED: return "malformed token";
	case HTTP_TOKEN_EEXPIRED: return "expired token";
	case HTTP_TOKEN_EBAD: return "invalid token";
	}
	return "invalid token";
}
