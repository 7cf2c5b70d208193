/*
 * tenant.h - from a client's name to its opened store, for both front ends.
 *
 * The HTTP and SSH sides look a client up in the catalog on every request or
 * login; a tenant cache keeps each client's opened struct store (S3 handles
 * are worth reusing) and re-reads the catalog row after a short TTL, so that
 * assetctl changes (a new location, a disabled client) take effect within
 * seconds without a restart.
 *
 * The stores tenant_get() hands out are metered (see store.h, "usage and
 * quotas"): whatever a front end writes through them is accounted in the
 * catalog and held to the client's quota.
 */
#ifndef ASSETD_TENANT_H
#define ASSETD_TENANT_H

#include "catalog.h"
#include "store.h"

struct tenant_cache;

/* TTL_SECONDS: how long a looked-up row is trusted (0 = always re-read). */
int tenant_cache_new(struct catalog *cat, int ttl_seconds,
		     struct tenant_cache **out);
void tenant_cache_free(struct tenant_cache *tc);

/* A client's row and store. Returns 0, CATALOG_ENOENT for an unknown
 * client, or a store_error if its location cannot be opened (a missing fs
 * folder is STORE_EUNAVAIL, any other catalog failure STORE_EIO, so that
 * CATALOG_ENOENT always means "no such client"). *STORE stays
 * owned by the cache and valid until tenant_cache_free(): a changed location
 * opens a new store and keeps the old one alive until then. A disabled
 * client is returned with CLIENT->disabled set: callers refuse it. */
int tenant_get(struct tenant_cache *tc, const char *client_name,
	       struct catalog_client *client, struct store **store);

/* Open client C's location the way its row says to reach it (endpoint,
 * S3 region, profile). */
int tenant_open_client(const struct catalog_client *c, struct store **out);

/* Usage is kept per top-level folder of a client's location: the part of
 * object NAME before its first '/' ("originals", a collection's
 * subfolder), or "" for an object at the root. A directory name ending in
 * '/' stands for the objects below it. 0 or STORE_EINVAL if it does not
 * fit in OUTLEN. */
int tenant_usage_folder(const char *name, char *out, size_t outlen);

/* Count what CLIENT's store ST holds (a full listing; directory markers
 * and temp files aside) and replace the client's usage figures with it.
 * Writes committed while the listing runs may be missed or counted
 * twice: recount when the client is quiet. 0 or a store_error. */
int tenant_usage_recount(struct catalog *cat, const char *client,
			 struct store *st);

/* Open any location URL with options taken from the catalog's region whose
 * assets or snapshot location contains it (endpoint, region, profile), or
 * AWS defaults. For assetctl sync/archive/bucket check. */
int tenant_open_location(struct catalog *cat, const char *url,
			 struct store **out);

#endif
