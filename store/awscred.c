/*
 * awscred.c - the AWS credentials chain: configured profile, environment,
 * shared credentials file, EC2 instance role (IMDSv2).
 *
 * The first awscred_get() walks the chain once and remembers which source
 * answered; environment and file credentials are then kept for the life of
 * the process (as the AWS CLI does for one invocation). Instance-role
 * credentials expire, so they are fetched again when less than five minutes
 * remain; if that refresh fails while the old ones are still valid, the old
 * ones are used and the refresh is tried again on the next request. When no
 * source answers, the failure is remembered for a few seconds so a
 * misconfigured host does not probe IMDS before every request.
 *
 * IMDS is spoken over a private curl easy handle with short timeouts: a
 * token from PUT /latest/api/token (TTL 6 hours), the role name from
 * GET /latest/meta-data/iam/security-credentials/, then the JSON document of
 * that role. Only version 2 (token) is used: IMDSv1 is what instance
 * policies now disable.
 */
#include "awscred.h"
#include "log.h"
#include "s3xml.h"
#include "store.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#define REFRESH_MARGIN 300      /* seconds before expiry to refetch */
#define NEGATIVE_CACHE 5        /* seconds a failed resolution is kept */
#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_BODY_MAX 16384

enum src_kind { SRC_NONE, SRC_STATIC, SRC_IMDS };

struct awscred_source {
	pthread_mutex_t lock;
	char *profile;                  /* configured profile or NULL */
	enum src_kind kind;
	struct awscred cred;            /* the current credentials */
	int64_t failed_at;              /* time of the last failed resolution */
};

int awscred_source_new(const char *profile, struct awscred_source **out)
{
	struct awscred_source *s = calloc(1, sizeof *s);
	if (!s)
		return STORE_ENOMEM;
	if (profile && *profile) {
		s->profile = strdup(profile);
		if (!s->profile) {
			free(s);
			return STORE_ENOMEM;
		}
	}
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

void awscred_source_free(struct awscred_source *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(&s->cred, sizeof s->cred);
	pthread_mutex_destroy(&s->lock);
	free(s->profile);
	free(s);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* ---- the shared credentials file ---------------------------------------- */

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int awscred_read_file(const char *path, const char *profile,
		      struct awscred *out)
{
	FILE *f = fopen(path, "r");
	char line[4096 + 64];
	int in = 0, found = 0;
	if (!f)
		return -1;
	memset(out, 0, sizeof *out);
	while (fgets(line, sizeof line, f)) {
		char *s = trim(line);
		if (*s == '#' || *s == ';' || *s == '\0')
			continue;
		if (*s == '[') {
			char *e = strchr(s, ']');
			if (!e)
				continue;
			*e = '\0';
			in = strcmp(trim(s + 1), profile) == 0;
			found |= in;
			continue;
		}
		if (!in)
			continue;
		char *eq = strchr(s, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char *k = trim(s), *v = trim(eq + 1);
		if (strcasecmp(k, "aws_access_key_id") == 0)
			copy_str(out->access_key, sizeof out->access_key, v);
		else if (strcasecmp(k, "aws_secret_access_key") == 0)
			copy_str(out->secret_key, sizeof out->secret_key, v);
		else if (strcasecmp(k, "aws_session_token") == 0)
			copy_str(out->session_token, sizeof out->session_token,
				 v);
	}
	OPENSSL_cleanse(line, sizeof line);
	fclose(f);
	if (!found || !out->access_key[0] || !out->secret_key[0])
		return -1;
	return 0;
}

static void credentials_path(char *out, size_t cap)
{
	const char *p = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *home = getenv("HOME");
	if (p && *p)
		copy_str(out, cap, p);
	else
		snprintf(out, cap, "%s/.aws/credentials", home ? home : "");
}

/* ---- JSON (IMDS) -------------------------------------------------------- */

int awscred_json_string(const char *json, size_t len, const char *name,
			char *out, size_t cap)
{
	size_t nl = strlen(name);
	if (cap == 0)
		return -1;
	for (size_t i = 0; i + nl + 2 <= len; i++) {
		if (json[i] != '"' || memcmp(json + i + 1, name, nl) != 0 ||
		    json[i + 1 + nl] != '"')
			continue;
		size_t j = i + nl + 2;
		while (j < len && isspace((unsigned char)json[j]))
			j++;
		if (j >= len || json[j] != ':')
			continue;
		j++;
		while (j < len && isspace((unsigned char)json[j]))
			j++;
		if (j >= len || json[j] != '"')
			return -1;
		j++;
		size_t o = 0;
		while (j < len && json[j] != '"') {
			char c = json[j];
			if (c == '\\') {
				if (++j >= len)
					return -1;
				switch (json[j]) {
				case '"': c = '"'; break;
				case '\\': c = '\\'; break;
				case '/': c = '/'; break;
				case 'n': c = '\n'; break;
				case 't': c = '\t'; break;
				default: return -1; /* not in IMDS replies */
				}
			} else if ((unsigned char)c < 0x20) {
				return -1;
			}
			if (o + 1 >= cap)
				return -1;
			out[o++] = c;
			j++;
		}
		if (j >= len)
			return -1;
		out[o] = '\0';
		return 0;
	}
	return -1;
}

/* ---- IMDSv2 ------------------------------------------------------------- */

struct body {
	char buf[IMDS_BODY_MAX];
	size_t len;
	int overflow;
};

static size_t body_write(char *p, size_t sz, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = sz * n;
	if (b->len + len >= sizeof b->buf) {
		b->overflow = 1;
		return 0;
	}
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return len;
}

/* One IMDS request; returns the HTTP status (200...) or -1. */
static long imds_call(CURL *c, const char *method, const char *url,
		      const char *header, struct body *b)
{
	struct curl_slist *h = NULL;
	long status = -1;
	b->len = 0;
	b->overflow = 0;
	b->buf[0] = '\0';
	curl_easy_reset(c);
	if (header)
		h = curl_slist_append(h, header);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (curl_easy_perform(c) == CURLE_OK && !b->overflow)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

static int imds_fetch(struct awscred *out)
{
	const char *ep = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	char base[512], url[1024], hdr[1024], role[256];
	struct body *b = malloc(sizeof *b);
	CURL *c = curl_easy_init();
	int rc = -1;
	if (!b || !c)
		goto out;
	copy_str(base, sizeof base, ep && *ep ? ep : IMDS_DEFAULT);
	size_t bl = strlen(base);
	while (bl > 0 && base[bl - 1] == '/')
		base[--bl] = '\0';

	snprintf(url, sizeof url, "%s/latest/api/token", base);
	if (imds_call(c, "PUT", url,
		      "X-aws-ec2-metadata-token-ttl-seconds: 21600", b) != 200 ||
	    b->len == 0 || b->len > 512)
		goto out;
	snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %s", trim(b->buf));

	snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/",
		 base);
	if (imds_call(c, "GET", url, hdr, b) != 200)
		goto out;
	/* The first line names the role. */
	char *nl = strchr(b->buf, '\n');
	if (nl)
		*nl = '\0';
	char *r = trim(b->buf);
	if (!*r || strlen(r) >= sizeof role || strchr(r, '/'))
		goto out;
	copy_str(role, sizeof role, r);

	char *er = curl_easy_escape(c, role, 0);
	if (!er)
		goto out;
	snprintf(url, sizeof url,
		 "%s/latest/meta-data/iam/security-credentials/%s", base, er);
	curl_free(er);
	if (imds_call(c, "GET", url, hdr, b) != 200)
		goto out;
	char code[64] = "", exp[64] = "";
	if (awscred_json_string(b->buf, b->len, "Code", code, sizeof code) ==
		    0 &&
	    strcmp(code, "Success") != 0)
		goto out;
	memset(out, 0, sizeof *out);
	if (awscred_json_string(b->buf, b->len, "AccessKeyId", out->access_key,
				sizeof out->access_key) < 0 ||
	    awscred_json_string(b->buf, b->len, "SecretAccessKey",
				out->secret_key, sizeof out->secret_key) < 0)
		goto out;
	awscred_json_string(b->buf, b->len, "Token", out->session_token,
			    sizeof out->session_token);
	if (awscred_json_string(b->buf, b->len, "Expiration", exp, sizeof exp) ==
	    0)
		out->expires = s3xml_parse_time(exp);
	if (out->expires < 0)
		out->expires = 0;
	out->source = "imds";
	rc = 0;
out:
	if (b) {
		OPENSSL_cleanse(b, sizeof *b);
		free(b);
	}
	if (c)
		curl_easy_cleanup(c);
	return rc;
}

/* Instance-role credentials are the instance's, not a location's: one
 * process-wide copy, so a thousand client locations make one IMDS fetch
 * per refresh, not a thousand. */
static pthread_mutex_t imds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct awscred imds_cache;

/* Current instance-role credentials, fetched again when they are within
 * REFRESH_MARGIN of expiry (or FORCE). 0 or -1. */
static int imds_get(struct awscred *out, int force)
{
	int64_t now = (int64_t)time(NULL);
	int rc = 0;
	pthread_mutex_lock(&imds_lock);
	if (force || !imds_cache.access_key[0] ||
	    (imds_cache.expires && imds_cache.expires - now < REFRESH_MARGIN)) {
		struct awscred fresh;
		if (imds_fetch(&fresh) == 0) {
			imds_cache = fresh;
			log_info("s3_credentials", "source=imds fetched=1");
		} else if (!imds_cache.access_key[0] ||
			   (imds_cache.expires && imds_cache.expires <= now)) {
			rc = -1;
		} else {
			log_warn("s3_credentials",
				 "source=imds error=\"refresh failed\"");
		}
		OPENSSL_cleanse(&fresh, sizeof fresh);
	}
	if (rc == 0)
		*out = imds_cache;
	pthread_mutex_unlock(&imds_lock);
	return rc;
}

/* ---- the chain ---------------------------------------------------------- */

static int imds_disabled(void)
{
	const char *d = getenv("AWS_EC2_METADATA_DISABLED");
	return d && strcasecmp(d, "true") == 0;
}

static int resolve(struct awscred_source *s)
{
	char path[1024];
	credentials_path(path, sizeof path);
	if (s->profile) {
		if (awscred_read_file(path, s->profile, &s->cred) == 0) {
			s->cred.source = "profile";
			s->kind = SRC_STATIC;
			return 0;
		}
		log_error("s3_credentials", "source=profile profile=%s file=%s "
			  "error=\"profile not found or incomplete\"",
			  log_q(s->profile), log_q(path));
		return STORE_EAUTH;
	}
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	if (ak && *ak && sk && *sk) {
		memset(&s->cred, 0, sizeof s->cred);
		copy_str(s->cred.access_key, sizeof s->cred.access_key, ak);
		copy_str(s->cred.secret_key, sizeof s->cred.secret_key, sk);
		copy_str(s->cred.session_token, sizeof s->cred.session_token,
			 getenv("AWS_SESSION_TOKEN"));
		s->cred.source = "env";
		s->kind = SRC_STATIC;
		return 0;
	}
	const char *prof = getenv("AWS_PROFILE");
	if (awscred_read_file(path, prof && *prof ? prof : "default",
			      &s->cred) == 0) {
		s->cred.source = "file";
		s->kind = SRC_STATIC;
		return 0;
	}
	if (!imds_disabled() && imds_get(&s->cred, 0) == 0) {
		s->kind = SRC_IMDS;
		return 0;
	}
	return STORE_EAUTH;
}

int awscred_get(struct awscred_source *s, struct awscred *out)
{
	int rc = 0;
	int64_t now = (int64_t)time(NULL);
	pthread_mutex_lock(&s->lock);
	if (s->kind == SRC_NONE) {
		if (s->failed_at && now - s->failed_at < NEGATIVE_CACHE) {
			rc = STORE_EAUTH;
		} else if ((rc = resolve(s)) == 0) {
			log_info("s3_credentials", "source=%s", s->cred.source);
			s->failed_at = 0;
		} else {
			s->failed_at = now;
			log_error("s3_credentials",
				  "error=\"no credentials found\"");
		}
	} else if (s->kind == SRC_IMDS && s->cred.expires &&
		   s->cred.expires - now < REFRESH_MARGIN) {
		if (imds_get(&s->cred, 0) < 0) {
			log_error("s3_credentials",
				  "source=imds error=\"expired, refresh failed\"");
			rc = STORE_EAUTH;
		}
	}
	if (rc == 0)
		*out = s->cred;
	pthread_mutex_unlock(&s->lock);
	return rc;
}
