/*
 * sigv4.c - AWS Signature Version 4, our own, on OpenSSL's SHA-256/HMAC.
 *
 * curl 7.88's built-in signer mis-signs S3 requests (unsorted query,
 * valueless parameters, unencoded paths), so the S3 backend signs every
 * request here and hands curl a finished Authorization header.
 *
 * Signing is four steps: the canonical request (method, encoded path,
 * sorted encoded query, sorted trimmed headers, signed header list, payload
 * hash), the string to sign (algorithm, date, scope, hash of the canonical
 * request), the signing key (HMAC chain over date, region, service,
 * "aws4_request") and the HMAC of the string to sign. All texts are built
 * in fixed buffers of the result struct; anything that does not fit is an
 * error, never a truncation.
 */
#include "sigv4.h"
#include "store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

/* A growing text in a fixed buffer; ok drops to 0 on overflow. */
struct sbuf {
	char *p;
	size_t len, cap;
	int ok;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (!b->ok)
		return;
	if (b->len + n + 1 > b->cap) {
		b->ok = 0;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static int is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

int sigv4_uri_encode(const char *in, size_t len, int keep_slash, char *out,
		     size_t outcap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			if (o + 2 > outcap)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 4 > outcap)
				return -1;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o + 1 > outcap)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/* Percent-decode LEN bytes of IN into OUT (same or smaller size). A '%' not
 * followed by two hex digits is kept as it is. Returns the decoded length. */
static size_t pct_decode(const char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '%' && i + 2 < len &&
		    store_hex_digit((unsigned char)in[i + 1]) >= 0 && store_hex_digit((unsigned char)in[i + 2]) >= 0) {
			out[o++] = (char)(store_hex_digit((unsigned char)in[i + 1]) * 16 +
					  store_hex_digit((unsigned char)in[i + 2]));
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	return o;
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, len, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

void sigv4_amz_date(long long t, char out[17])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- the canonical query ---------------------------------------------- */

struct qparam {
	char name[1024];
	char value[2048];
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

/* Split QUERY at '&', decode each name and value, encode them canonically,
 * sort, and append "n=v&n=v" to B. */
static int canonical_query(const char *query, struct sbuf *b)
{
	struct qparam *ps;
	size_t n = 0;
	int rc = -1;
	if (!query || !*query)
		return 0;
	ps = calloc(SIGV4_MAX_PARAMS, sizeof *ps);
	if (!ps)
		return -1;
	const char *p = query;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		if (plen > 0) {
			const char *eq = memchr(p, '=', plen);
			size_t nlen = eq ? (size_t)(eq - p) : plen;
			const char *v = eq ? eq + 1 : "";
			size_t vlen = eq ? plen - nlen - 1 : 0;
			char tmp[2048];
			if (n == SIGV4_MAX_PARAMS || nlen >= sizeof tmp ||
			    vlen >= sizeof tmp)
				goto out;
			size_t dl = pct_decode(p, nlen, tmp);
			if (sigv4_uri_encode(tmp, dl, 0, ps[n].name,
					     sizeof ps[n].name) < 0)
				goto out;
			dl = pct_decode(v, vlen, tmp);
			if (sigv4_uri_encode(tmp, dl, 0, ps[n].value,
					     sizeof ps[n].value) < 0)
				goto out;
			n++;
		}
		p += plen;
		if (*p == '&')
			p++;
	}
	qsort(ps, n, sizeof *ps, qparam_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_add(b, "&");
		sb_add(b, ps[i].name);
		sb_add(b, "=");
		sb_add(b, ps[i].value);
	}
	rc = b->ok ? 0 : -1;
out:
	free(ps);
	return rc;
}

/* ---- canonical headers -------------------------------------------------- */

struct chdr {
	char name[128];
	const char *value;
	size_t order;           /* original position: keeps repeats in order */
};

static int chdr_cmp(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Append VALUE trimmed, with runs of spaces/tabs collapsed to one space. */
static void add_trimmed(struct sbuf *b, const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	int pending_space = 0;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			pending_space = 1;
			continue;
		}
		if (pending_space)
			sb_addn(b, " ", 1);
		pending_space = 0;
		sb_addn(b, v, 1);
	}
}

/* Canonical headers into B and the signed-header list into SIGNED. */
static int canonical_headers(const struct sigv4_request *req, struct sbuf *b,
			     struct sbuf *signed_list)
{
	struct chdr h[SIGV4_MAX_HEADERS];
	size_t n = req->n_headers;
	if (n > SIGV4_MAX_HEADERS)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *nm = req->headers[i].name;
		size_t l = strlen(nm);
		if (l == 0 || l >= sizeof h[i].name || !req->headers[i].value)
			return -1;
		for (size_t j = 0; j <= l; j++)
			h[i].name[j] = (char)tolower((unsigned char)nm[j]);
		h[i].value = req->headers[i].value;
		h[i].order = i;
	}
	qsort(h, n, sizeof *h, chdr_cmp);
	for (size_t i = 0; i < n; i++) {
		int repeat = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
		if (repeat) {
			sb_add(b, ",");
		} else {
			if (i > 0) {
				sb_add(b, "\n");
				sb_add(signed_list, ";");
			}
			sb_add(b, h[i].name);
			sb_add(b, ":");
			sb_add(signed_list, h[i].name);
		}
		add_trimmed(b, h[i].value);
	}
	if (n > 0)
		sb_add(b, "\n");
	return b->ok && signed_list->ok ? 0 : -1;
}

/* ---- signing ------------------------------------------------------------ */

static void hmac(const void *key, size_t klen, const char *msg,
		 unsigned char out[32])
{
	unsigned int olen = 32;
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
	     strlen(msg), out, &olen);
}

int sigv4_sign(const struct sigv4_request *req, const struct sigv4_key *key,
	       const char *amz_date, struct sigv4_result *out)
{
	char signed_headers[1024];
	char scope[256];
	char date[9];
	char creq_hash[65];
	static const char hex[] = "0123456789abcdef";

	if (!req || !key || !amz_date || !out || !req->method || !req->path ||
	    !req->payload_hash || !key->access_key || !key->secret_key ||
	    !key->region || !key->service || strlen(amz_date) != 16)
		return -1;

	struct sbuf cr = { out->canonical_request,
			   0, sizeof out->canonical_request, 1 };
	struct sbuf sh = { signed_headers, 0, sizeof signed_headers, 1 };
	cr.p[0] = '\0';
	sh.p[0] = '\0';

	sb_add(&cr, req->method);
	sb_add(&cr, "\n");
	if (req->flags & SIGV4_PATH_ENCODED) {
		sb_add(&cr, req->path);
	} else {
		size_t room = cr.cap - cr.len;
		int l = sigv4_uri_encode(req->path, strlen(req->path), 1,
					 cr.p + cr.len, room);
		if (l < 0)
			return -1;
		cr.len += (size_t)l;
	}
	sb_add(&cr, "\n");
	if (canonical_query(req->query, &cr) < 0)
		return -1;
	sb_add(&cr, "\n");
	if (canonical_headers(req, &cr, &sh) < 0)
		return -1;
	sb_add(&cr, "\n");
	sb_add(&cr, signed_headers);
	sb_add(&cr, "\n");
	sb_add(&cr, req->payload_hash);
	if (!cr.ok)
		return -1;

	memcpy(date, amz_date, 8);
	date[8] = '\0';
	if (snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date,
		     key->region, key->service) >= (int)sizeof scope)
		return -1;
	sigv4_sha256_hex(cr.p, cr.len, creq_hash);
	if (snprintf(out->string_to_sign, sizeof out->string_to_sign,
		     "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope,
		     creq_hash) >= (int)sizeof out->string_to_sign)
		return -1;

	/* The signing key: HMAC chain seeded with "AWS4" + secret. */
	char seed[256];
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	if (snprintf(seed, sizeof seed, "AWS4%s", key->secret_key) >=
	    (int)sizeof seed)
		return -1;
	hmac(seed, strlen(seed), date, k1);
	hmac(k1, 32, key->region, k2);
	hmac(k2, 32, key->service, k3);
	hmac(k3, 32, "aws4_request", k4);
	hmac(k4, 32, out->string_to_sign, sig);
	for (int i = 0; i < 32; i++) {
		out->signature[2 * i] = hex[sig[i] >> 4];
		out->signature[2 * i + 1] = hex[sig[i] & 15];
	}
	out->signature[64] = '\0';
	/* Wipe key material from the stack. */
	OPENSSL_cleanse(seed, sizeof seed);
	OPENSSL_cleanse(k1, sizeof k1);
	OPENSSL_cleanse(k2, sizeof k2);
	OPENSSL_cleanse(k3, sizeof k3);
	OPENSSL_cleanse(k4, sizeof k4);

	if (snprintf(out->authorization, sizeof out->authorization,
		     "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
		     "Signature=%s",
		     key->access_key, scope, signed_headers,
		     out->signature) >= (int)sizeof out->authorization)
		return -1;
	return 0;
}
