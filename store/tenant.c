/*
 * tenant.c - from a client's name to its opened store, for both front ends
 * and for assetctl.
 *
 * The cache is a short list of entries (one per client seen), guarded by one
 * mutex. An entry keeps the client's catalog row and its opened store; past
 * the TTL the row is read again, and when the location or the way to reach
 * it (endpoint, region, profile) changed, a new store is opened. The old
 * store may still be in use by a session that looked it up earlier, so it is
 * retired to a list and closed only when the cache is freed: a location
 * change costs one struct store, and no reader is ever left with a closed
 * handle.
 *
 * Each client's store carries a meter (store_set_meter) that adds every
 * committed change to the catalog's usage table under the object's
 * top-level folder, and reserves an increase against the client's quota in
 * the same transaction. The meter lives in the cache entry, which outlives
 * every store it ever opened. A catalog failure while accounting is logged
 * and does not fail the write: the figures drift until the next recount,
 * but an upload is never lost to bookkeeping.
 *
 * tenant_open_location() finds how to reach an arbitrary location URL (a
 * snapshot, an archive folder, a sync source): the region or client whose
 * assets, snapshot or location contains the URL, the longest such match
 * winning; failing that, one in the same S3 bucket; failing that, AWS's
 * defaults.
 */
#include "tenant.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct tenant_meter {
	struct catalog *cat;
	char client[CATALOG_NAME_MAX];
	/* The last usage read, reused for a second while it shows no quota:
	 * a writer's open only estimates its room from it (the commit's
	 * reservation reads the catalog afresh), and a push of many small
	 * files would otherwise read the catalog once per file. A client
	 * with a quota is read afresh at every open, so that a refusal
	 * there is never based on stale figures. */
	pthread_mutex_t mu;
	struct store_usage cached;
	struct timespec cached_at;      /* CLOCK_MONOTONIC; 0 = none */
};

struct tenant_entry {
	struct tenant_entry *next;
	struct tenant_meter meter;      /* for every store of this entry */
	struct catalog_client client;
	struct store *store;
	time_t fetched;
};

struct retired {
	struct retired *next;
	struct store *store;
};

struct tenant_cache {
	struct catalog *cat;
	int ttl;
	pthread_mutex_t mu;
	struct tenant_entry *entries;
	struct retired *retired;
};

int tenant_cache_new(struct catalog *cat, int ttl_seconds,
		     struct tenant_cache **out)
{
	struct tenant_cache *tc = calloc(1, sizeof *tc);
	*out = NULL;
	if (!tc)
		return STORE_ENOMEM;
	tc->cat = cat;
	tc->ttl = ttl_seconds < 0 ? 0 : ttl_seconds;
	pthread_mutex_init(&tc->mu, NULL);
	*out = tc;
	return 0;
}

void tenant_cache_free(struct tenant_cache *tc)
{
	if (!tc)
		return;
	while (tc->entries) {
		struct tenant_entry *e = tc->entries;
		tc->entries = e->next;
		store_close(e->store);
		pthread_mutex_destroy(&e->meter.mu);
		free(e);
	}
	while (tc->retired) {
		struct retired *r = tc->retired;
		tc->retired = r->next;
		store_close(r->store);
		free(r);
	}
	pthread_mutex_destroy(&tc->mu);
	free(tc);
}

/* ---- usage ------------------------------------------------------------- */

int tenant_usage_folder(const char *name, char *out, size_t outlen)
{
	const char *slash = strchr(name, '/');
	size_t n = slash ? (size_t)(slash - name) : 0;
	if (n >= outlen)
		return STORE_EINVAL;
	memcpy(out, name, n);
	out[n] = '\0';
	return 0;
}

static int64_t ms_since(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000 +
	       (b->tv_nsec - a->tv_nsec) / 1000000;
}

static int meter_account(void *arg, const char *name, int64_t objects,
			 int64_t bytes, int check)
{
	struct tenant_meter *m = arg;
	char folder[CATALOG_TEXT_MAX];
	if (tenant_usage_folder(name, folder, sizeof folder) < 0)
		return 0; /* cannot happen: a segment is at most 255 bytes */
	int rc = catalog_usage_add(m->cat, m->client, folder, objects, bytes,
				   check);
	if (rc == 0) {
		/* Keep the cached figures in step with our own changes. */
		pthread_mutex_lock(&m->mu);
		m->cached.objects += objects;
		m->cached.bytes += bytes;
		pthread_mutex_unlock(&m->mu);
	}
	if (rc == CATALOG_EQUOTA) {
		log_info("quota_exceeded",
			 "client=%s name=%s objects=%lld bytes=%lld",
			 log_q(m->client), log_q(name), (long long)objects,
			 (long long)bytes);
		return STORE_EQUOTA;
	}
	if (rc != 0)
		log_warn("usage_not_recorded",
			 "client=%s name=%s objects=%lld bytes=%lld error=%s",
			 log_q(m->client), log_q(name), (long long)objects,
			 (long long)bytes, log_q(catalog_errmsg(m->cat)));
	return 0;
}

static int meter_usage(void *arg, struct store_usage *out)
{
	struct tenant_meter *m = arg;
	struct catalog_usage_total t;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&m->mu);
	if (m->cached_at.tv_sec && ms_since(&m->cached_at, &now) < 1000 &&
	    m->cached.quota_bytes == 0 && m->cached.quota_objects == 0) {
		*out = m->cached;
		pthread_mutex_unlock(&m->mu);
		return 0;
	}
	pthread_mutex_unlock(&m->mu);
	if (catalog_usage_total(m->cat, m->client, &t) != 0)
		return STORE_EIO;
	out->objects = t.objects;
	out->bytes = t.bytes;
	out->quota_objects = t.quota_objects;
	out->quota_bytes = t.quota_bytes;
	pthread_mutex_lock(&m->mu);
	m->cached = *out;
	m->cached_at = now;
	pthread_mutex_unlock(&m->mu);
	return 0;
}



struct recount {
	struct catalog_usage *rows;
	size_t n, cap;
	int rc;
};

static int recount_one(void *arg, const struct store_entry *e)
{
	struct recount *r = arg;
	char folder[CATALOG_TEXT_MAX];
	if (e->is_dir)
		return 0;
	if (tenant_usage_folder(e->name, folder, sizeof folder) < 0)
		return 0;
	/* Listing is in name order, so one folder's names come together. */
	if (r->n == 0 || strcmp(r->rows[r->n - 1].folder, folder) != 0) {
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 16;
			struct catalog_usage *nr =
			    realloc(r->rows, cap * sizeof *nr);
			if (!nr) {
				r->rc = STORE_ENOMEM;
				return 1;
			}
			r->rows = nr;
			r->cap = cap;
		}
		memset(&r->rows[r->n], 0, sizeof r->rows[r->n]);
		snprintf(r->rows[r->n].folder, sizeof r->rows[r->n].folder,
			 "%s", folder);
		r->n++;
	}
	r->rows[r->n - 1].objects++;
	r->rows[r->n - 1].bytes += (int64_t)e->size;
	return 0;
}

int tenant_usage_recount(struct catalog *cat, const char *client,
			 struct store *st)
{
	struct recount r = { NULL, 0, 0, 0 };
	int rc = store_list(st, "", 0, NULL, recount_one, &r);
	if (rc > 0)
		rc = r.rc;
	if (rc == 0) {
		rc = catalog_usage_set(cat, client, r.rows, r.n,
				       (int64_t)time(NULL));
		if (rc == CATALOG_ENOENT)
			rc = STORE_ENOENT;
		else if (rc)
			rc = STORE_EIO;
	}
	free(r.rows);
	return rc;
}

/* ---- clients ------------------------------------------------------------ */

int tenant_open_client(const struct catalog_client *c, struct store **out)
{
	struct store_opts o = { 0 };
	o.endpoint = c->endpoint[0] ? c->endpoint : NULL;
	o.region = c->s3_region[0] ? c->s3_region : NULL;
	o.profile = c->profile[0] ? c->profile : NULL;
	o.path_style = -1;
	return store_open(c->location, &o, out);
}

/* 1 if the two rows reach their folder the same way. */
static int same_place(const struct catalog_client *a,
		      const struct catalog_client *b)
{
	return strcmp(a->location, b->location) == 0 &&
	       strcmp(a->endpoint, b->endpoint) == 0 &&
	       strcmp(a->s3_region, b->s3_region) == 0 &&
	       strcmp(a->profile, b->profile) == 0;
}

int tenant_get(struct tenant_cache *tc, const char *client_name,
	       struct catalog_client *client, struct store **store)
{
	time_t now = time(NULL);
	struct tenant_entry *e;
	int rc = 0;
	*store = NULL;
	pthread_mutex_lock(&tc->mu);
	for (e = tc->entries; e; e = e->next)
		if (strcmp(e->client.name, client_name) == 0)
			break;
	if (e && e->store && tc->ttl > 0 && now - e->fetched < tc->ttl) {
		*client = e->client;
		*store = e->store;
		pthread_mutex_unlock(&tc->mu);
		return 0;
	}
	struct catalog_client *row = malloc(sizeof *row);
	if (!row) {
		pthread_mutex_unlock(&tc->mu);
		return STORE_ENOMEM;
	}
	rc = catalog_client_get(tc->cat, client_name, row);
	if (rc != 0 && rc != CATALOG_ENOENT)
		rc = STORE_EIO; /* CATALOG_E* values overlap STORE_E* ones */
	if (rc != 0) {
		/* gone from the catalog: forget it (its store stays alive on
		 * the retired list for sessions still holding it) */
		if (e && rc == CATALOG_ENOENT)
			e->fetched = 0;
		free(row);
		pthread_mutex_unlock(&tc->mu);
		return rc;
	}
	if (!e) {
		e = calloc(1, sizeof *e);
		if (!e) {
			free(row);
			pthread_mutex_unlock(&tc->mu);
			return STORE_ENOMEM;
		}
		e->meter.cat = tc->cat;
		pthread_mutex_init(&e->meter.mu, NULL);
		snprintf(e->meter.client, sizeof e->meter.client, "%s",
			 client_name);
		e->next = tc->entries;
		tc->entries = e;
	}
	if (!e->store || !same_place(&e->client, row)) {
		struct store *st = NULL;
		rc = tenant_open_client(row, &st);
		/* A known client whose folder is missing must not read as an
		 * unknown client (STORE_ENOENT == CATALOG_ENOENT). */
		if (rc == STORE_ENOENT)
			rc = STORE_EUNAVAIL;
		if (rc != 0) {
			free(row);
			pthread_mutex_unlock(&tc->mu);
			return rc;
		}
		struct store_meter m = { meter_account, meter_usage,
					 &e->meter };
		store_set_meter(st, &m);
		if (e->store) {
			struct retired *r = malloc(sizeof *r);
			if (!r) {
				store_close(st);
				free(row);
				pthread_mutex_unlock(&tc->mu);
				return STORE_ENOMEM;
			}
			r->store = e->store;
			r->next = tc->retired;
			tc->retired = r;
		}
		e->store = st;
	}
	e->client = *row;
	e->fetched = now;
	*client = e->client;
	*store = e->store;
	free(row);
	pthread_mutex_unlock(&tc->mu);
	return 0;
}

/* ---- any location ------------------------------------------------------- */

struct reach {
	const char *url;
	size_t best;            /* length of the best containing match */
	int same_bucket;        /* best is only a same-bucket match */
	char endpoint[CATALOG_URL_MAX];
	char s3_region[CATALOG_NAME_MAX];
	char profile[CATALOG_NAME_MAX];
};

/* Length of "s3://bucket/" in U, or 0. */
static size_t bucket_len(const char *u)
{
	if (strncmp(u, "s3://", 5) != 0)
		return 0;
	const char *slash = strchr(u + 5, '/');
	return slash ? (size_t)(slash - u + 1) : strlen(u);
}

static void consider(struct reach *r, const char *loc, const char *endpoint,
		     const char *s3_region, const char *profile)
{
	size_t l = strlen(loc);
	if (l == 0)
		return;
	size_t score = 0;
	int same_bucket = 0;
	if (strncmp(r->url, loc, l) == 0 ||
	    (loc[l - 1] == '/' && strncmp(r->url, loc, l - 1) == 0 &&
	     r->url[l - 1] == '\0')) {
		score = l + 1; /* any containing match beats a bucket match */
	} else {
		size_t b = bucket_len(loc);
		if (b && b == bucket_len(r->url) && strncmp(loc, r->url, b) == 0) {
			score = 1;
			same_bucket = 1;
		}
	}
	if (score <= r->best)
		return;
	r->best = score;
	r->same_bucket = same_bucket;
	snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
	snprintf(r->s3_region, sizeof r->s3_region, "%s", s3_region);
	snprintf(r->profile, sizeof r->profile, "%s", profile);
}

static int region_cb(void *arg, const struct catalog_region *g)
{
	struct reach *r = arg;
	consider(r, g->assets, g->endpoint, g->s3_region, g->profile);
	consider(r, g->snapshot, g->endpoint, g->s3_region, g->profile);
	return 0;
}

static int client_cb(void *arg, const struct catalog_client *c)
{
	struct reach *r = arg;
	consider(r, c->location, c->endpoint, c->s3_region, c->profile);
	return 0;
}

int tenant_open_location(struct catalog *cat, const char *url,
			 struct store **out)
{
	struct reach *r = calloc(1, sizeof *r);
	*out = NULL;
	if (!r)
		return STORE_ENOMEM;
	r->url = url;
	if (cat && strncmp(url, "s3://", 5) == 0) {
		catalog_region_list(cat, region_cb, r);
		catalog_client_list(cat, client_cb, r);
	}
	struct store_opts o = { 0 };
	o.endpoint = r->endpoint[0] ? r->endpoint : NULL;
	o.region = r->s3_region[0] ? r->s3_region : NULL;
	o.profile = r->profile[0] ? r->profile : NULL;
	o.path_style = -1;
	int rc = store_open(url, &o, out);
	free(r);
	return rc;
}
