/*
 * sigv4.h - AWS Signature Version 4 (header-based), on OpenSSL.
 *
 * The S3 backend builds a request description (method, path, query pairs,
 * the headers it will send) and asks for the Authorization header. The
 * signer produces the canonical request and the string to sign too, so the
 * unit tests can check every step against AWS's published test suite.
 *
 * Rules implemented (AWS "Create a canonical request"):
 *  - the path is URI-encoded once per byte, '/' kept (S3 style: no
 *    normalisation of "." or "//"); a path given already encoded is not
 *    encoded again when SIGV4_PATH_ENCODED is set;
 *  - query parameters are decoded, re-encoded with the unreserved set
 *    A-Z a-z 0-9 - _ . ~, and sorted by name then value; a parameter with
 *    no '=' ("?uploads") signs as "uploads=";
 *  - header names are lower-cased, values trimmed with inner runs of
 *    spaces collapsed, repeated headers joined with ',', sorted by name;
 *    every header given is signed.
 */
#ifndef ASSETD_SIGV4_H
#define ASSETD_SIGV4_H

#include <stddef.h>

#define SIGV4_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"

/* Bounds on the texts the signer builds; a request beyond them is refused
 * with -1 (keys are at most 1,024 bytes, so these are generous). */
#define SIGV4_CREQ_MAX 16384
#define SIGV4_STS_MAX 512
#define SIGV4_AUTH_MAX 1024
#define SIGV4_MAX_HEADERS 32
#define SIGV4_MAX_PARAMS 32

struct sigv4_header {
	const char *name;       /* any case */
	const char *value;      /* raw; trimmed and collapsed when signed */
};

enum {
	SIGV4_PATH_ENCODED = 1, /* path is already URI-encoded as it goes on
				   the wire (the AWS test suite's form) */
};

struct sigv4_request {
	const char *method;     /* "GET" */
	const char *path;       /* "/bucket/key", raw bytes unless flagged */
	const char *query;      /* "a=b&uploads" as on the wire, or NULL */
	const struct sigv4_header *headers; /* must include host, x-amz-date */
	size_t n_headers;
	const char *payload_hash; /* lower hex SHA-256 or SIGV4_UNSIGNED */
	int flags;              /* SIGV4_PATH_ENCODED */
};

struct sigv4_key {
	const char *access_key;
	const char *secret_key;
	const char *region;     /* "us-east-1" */
	const char *service;    /* "s3" */
};

/* What sigv4_sign() computes. */
struct sigv4_result {
	char canonical_request[SIGV4_CREQ_MAX];
	char string_to_sign[SIGV4_STS_MAX];
	char signature[65];     /* lower hex */
	char authorization[SIGV4_AUTH_MAX]; /* the Authorization value */
};

/* Sign REQ at AMZ_DATE ("20150830T123600Z", which must equal the request's
 * x-amz-date header). Returns 0, or -1 when something does not fit or a
 * field is missing. */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_key *key,
	       const char *amz_date, struct sigv4_result *out);

/* URI-encode LEN bytes of IN the SigV4 way (unreserved kept, everything else
 * %XX upper-case; '/' kept when KEEP_SLASH). Writes a NUL-terminated string.
 * Returns its length, or -1 if it does not fit in OUTCAP. */
int sigv4_uri_encode(const char *in, size_t len, int keep_slash, char *out,
		     size_t outcap);

/* Lower-hex SHA-256 of LEN bytes (65 bytes out, NUL included). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* The x-amz-date form of T (UTC): "20150830T123600Z" (17 bytes out). */
void sigv4_amz_date(long long t, char out[17]);

#endif
