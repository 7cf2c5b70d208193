/*
 * usage_bench.c - what usage accounting costs a write: N small objects put
 * through a client's metered store (tenant_get, as the front ends get it)
 * and N through the same location opened plainly (one and the other in
 * turn), plus N bare catalog updates. For tests/bench/scenarios/usage.py.
 *
 * usage: usage_bench DIR N SIZE [QUOTA_BYTES]
 * DIR is an empty scratch directory (a catalog and a location are made in
 * it). Prints one JSON object: microseconds per put, metered and plain,
 * and per catalog_usage_add().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "catalog.h"
#include "store.h"
#include "tenant.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Put N objects of SIZE bytes from BUF into each store, alternating one
 * and the other so that both see the same disk (fsync times drift with
 * whatever else the machine does). Seconds spent in each, or -1. */
static int put_many(struct store *plain, struct store *metered, int n,
		    const char *buf, size_t size, double *tp, double *tm)
{
	char name[128];
	*tp = *tm = 0;
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "d%03d/f%05d.bin", i / 100, i);
		for (int k = 0; k < 2; k++) {
			struct store *st = (i + k) % 2 ? metered : plain;
			char full[160];
			snprintf(full, sizeof full, "%s/%s",
				 st == plain ? "plain" : "metered", name);
			double t0 = now();
			int rc = store_put(st, full, buf, size, NULL);
			double dt = now() - t0;
			if (rc) {
				fprintf(stderr, "usage_bench: put %s: %s\n",
					full, store_strerror(rc));
				return -1;
			}
			*(st == plain ? tp : tm) += dt;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: usage_bench DIR N SIZE [QUOTA_BYTES]\n");
		return 2;
	}
	const char *dir = argv[1];
	int n = atoi(argv[2]);
	size_t size = (size_t)strtoull(argv[3], NULL, 10);
	int64_t quota = argc > 4 ? strtoll(argv[4], NULL, 10) : 0;
	char path[1024], url[1100], err[256];
	struct catalog *cat = NULL;
	struct tenant_cache *tc = NULL;
	struct store *metered = NULL, *plain = NULL;
	if (n <= 0 || size > (1 << 20))
		return 2;

	snprintf(path, sizeof path, "%s/loc/bench", dir);
	snprintf(url, sizeof url, "%s/loc", dir);
	mkdir(url, 0755);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	if (catalog_open(path, &cat, err, sizeof err)) {
		fprintf(stderr, "usage_bench: %s\n", err);
		return 1;
	}
	struct catalog_region r = { 0 };
	struct catalog_client c = { 0 };
	snprintf(r.name, sizeof r.name, "bench");
	snprintf(r.assets, sizeof r.assets, "file://%s/loc/", dir);
	snprintf(c.name, sizeof c.name, "bench");
	snprintf(c.region, sizeof c.region, "bench");
	c.quota_bytes = quota;
	snprintf(url, sizeof url, "file://%s/loc/bench/", dir);
	if (catalog_region_add(cat, &r) || catalog_client_add(cat, &c) ||
	    tenant_cache_new(cat, 5, &tc) ||
	    tenant_get(tc, "bench", &c, &metered) ||
	    store_open(url, NULL, &plain)) {
		fprintf(stderr, "usage_bench: setup failed: %s\n",
			catalog_errmsg(NULL));
		return 1;
	}
	char *buf = malloc(size + 1);
	if (!buf)
		return 1;
	memset(buf, 'x', size);
	double tp, tm;
	int prc = put_many(plain, metered, n, buf, size, &tp, &tm);
	double t0 = now();
	for (int i = 0; i < n; i++)
		catalog_usage_add(cat, "bench", "other", 1, 1, 1);
	double ta = now() - t0;
	free(buf);
	store_close(plain);
	tenant_cache_free(tc);
	catalog_close(cat);
	if (prc < 0)
		return 1;
	printf("{\"n\": %d, \"size\": %zu, \"quota_bytes\": %lld, "
	       "\"plain_us\": %.1f, \"metered_us\": %.1f, "
	       "\"catalog_add_us\": %.1f}\n",
	       n, size, (long long)quota, tp / n * 1e6, tm / n * 1e6,
	       ta / n * 1e6);
	return 0;
}
