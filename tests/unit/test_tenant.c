/* test_tenant.c - the tenant cache over a real catalog and real fs
 * locations: lookups, the TTL, location changes that keep the old store
 * alive, unknown and disabled clients, concurrent lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "scratch.h"
#include "store.h"
#include "tenant.h"

struct fixture {
	char dir[64];
	char assets[300]; /* file://DIR/assets/ */
	struct catalog *cat;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/assetd-tenant-XXXXXX");
	if (!mkdtemp(f->dir) ||
	    scratch_catalog(f->dir, f->assets, sizeof f->assets, &f->cat) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	catalog_close(f->cat);
	if (scratch_remove(f->dir) != 0)
		return -1;
	free(f);
	return 0;
}

/* Add client NAME in region "test" and make its folder. */
static void add_client(struct fixture *f, const char *name)
{
	struct catalog_client c = { 0 };
	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.region, sizeof c.region, "test");
	assert_int_equal(catalog_client_add(f->cat, &c), 0);
	char path[200];
	snprintf(path, sizeof path, "%s/assets/%s", f->dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void test_get(void **state)
{
	struct fixture *f = *state;
	add_client(f, "kufish");
	struct tenant_cache *tc;
	assert_int_equal(tenant_cache_new(f->cat, 30, &tc), 0);
	struct catalog_client c;
	struct store *st;
	assert_int_equal(tenant_get(tc, "kufish", &c, &st), 0);
	assert_string_equal(c.name, "kufish");
	assert_false(c.disabled);
	char want[1024];
	snprintf(want, sizeof want, "%skufish/", f->assets);
	assert_string_equal(c.location, want);
	assert_string_equal(store_url(st), want);
	/* the store is the client's folder */
	assert_int_equal(store_put(st, "originals/a.jpg", "jpg", 3, NULL), 0);
	char path[200];
	snprintf(path, sizeof path, "%s/assets/kufish/originals/a.jpg", f->dir);
	assert_int_equal(access(path, F_OK), 0);
	/* cached: the same store again */
	struct store *st2;
	assert_int_equal(tenant_get(tc, "kufish", &c, &st2), 0);
	assert_ptr_equal(st, st2);
	tenant_cache_free(tc);
}

static void test_unknown(void **state)
{
	struct fixture *f = *state;
	struct tenant_cache *tc;
	assert_int_equal(tenant_cache_new(f->cat, 30, &tc), 0);
	struct catalog_client c;
	struct store *st = (struct store *)&c; /* must be reset */
	assert_int_equal(tenant_get(tc, "nobody", &c, &st), CATALOG_ENOENT);
	assert_null(st);
	tenant_cache_free(tc);
}

static void test_ttl(void **state)
{
	struct fixture *f = *state;
	add_client(f, "kuento");
	struct tenant_cache *cached, *fresh;
	assert_int_equal(tenant_cache_new(f->cat, 3600, &cached), 0);
	assert_int_equal(tenant_cache_new(f->cat, 0, &fresh), 0);
	struct catalog_client c;
	struct store *st;
	assert_int_equal(tenant_get(cached, "kuento", &c, &st), 0);
	assert_int_equal(tenant_get(fresh, "kuento", &c, &st), 0);

	/* disable it in the catalog (as assetctl would) */
	assert_int_equal(catalog_client_get(f->cat, "kuento", &c), 0);
	c.disabled = 1;
	assert_int_equal(catalog_client_update(f->cat, &c), 0);

	assert_int_equal(tenant_get(cached, "kuento", &c, &st), 0);
	assert_false(c.disabled); /* trusted for the TTL */
	assert_int_equal(tenant_get(fresh, "kuento", &c, &st), 0);
	assert_true(c.disabled); /* TTL 0: read every time */
	assert_non_null(st);

	/* removed from the catalog: unknown at the next read */
	assert_int_equal(catalog_client_remove(f->cat, "kuento"), 0);
	assert_int_equal(tenant_get(fresh, "kuento", &c, &st), CATALOG_ENOENT);
	tenant_cache_free(cached);
	tenant_cache_free(fresh);
}

static void test_location_change(void **state)
{
	struct fixture *f = *state;
	add_client(f, "moved");
	struct tenant_cache *tc;
	assert_int_equal(tenant_cache_new(f->cat, 0, &tc), 0);
	struct catalog_client c;
	struct store *old, *now;
	assert_int_equal(tenant_get(tc, "moved", &c, &old), 0);
	assert_int_equal(store_put(old, "f.txt", "old", 3, NULL), 0);

	char path[200];
	snprintf(path, sizeof path, "%s/elsewhere", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(catalog_client_get(f->cat, "moved", &c), 0);
	snprintf(c.location, sizeof c.location, "file://%s/", path);
	assert_int_equal(catalog_client_update(f->cat, &c), 0);

	assert_int_equal(tenant_get(tc, "moved", &c, &now), 0);
	assert_ptr_not_equal(old, now);
	char want[1024];
	snprintf(want, sizeof want, "file://%s/", path);
	assert_string_equal(store_url(now), want);
	struct store_stat ss;
	assert_int_equal(store_stat(now, "f.txt", &ss), STORE_ENOENT);
	/* a session that looked the old store up may still use it */
	assert_int_equal(store_stat(old, "f.txt", &ss), 0);
	assert_int_equal(ss.size, 3);

	/* a location that cannot be opened is a store error, and the client
	 * is not reported as unknown */
	snprintf(c.location, sizeof c.location, "file://%s/missing/", f->dir);
	assert_int_equal(catalog_client_update(f->cat, &c), 0);
	struct store *bad = NULL;
	assert_int_equal(tenant_get(tc, "moved", &c, &bad), STORE_EUNAVAIL);
	assert_null(bad);
	tenant_cache_free(tc);
}

struct racer {
	struct tenant_cache *tc;
	const char *urls[2];
	int bad;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	for (int i = 0; i < 300; i++) {
		struct catalog_client c;
		struct store *st;
		const char *name = i % 2 ? "racea" : "raceb";
		if (tenant_get(r->tc, name, &c, &st) != 0) {
			r->bad++;
			continue;
		}
		const char *u = store_url(st);
		if (strcmp(u, r->urls[0]) != 0 && strcmp(u, r->urls[1]) != 0 &&
		    strstr(u, name) == NULL)
			r->bad++;
		struct store_stat ss;
		if (store_stat(st, "", &ss) != 0 || !ss.is_dir)
			r->bad++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fixture *f = *state;
	add_client(f, "racea");
	add_client(f, "raceb");
	char alt[200], alt_url[1024], base_url[1024];
	snprintf(alt, sizeof alt, "%s/alt", f->dir);
	assert_int_equal(mkdir(alt, 0755), 0);
	snprintf(alt_url, sizeof alt_url, "file://%s/", alt);
	snprintf(base_url, sizeof base_url, "%sracea/", f->assets);
	struct tenant_cache *tc;
	assert_int_equal(tenant_cache_new(f->cat, 0, &tc), 0);
	enum { T = 4 };
	pthread_t th[T];
	struct racer r[T];
	for (int i = 0; i < T; i++) {
		r[i] = (struct racer){ tc, { base_url, alt_url }, 0 };
		pthread_create(&th[i], NULL, racer_main, &r[i]);
	}
	/* meanwhile, move racea back and forth */
	for (int i = 0; i < 20; i++) {
		struct catalog_client c;
		assert_int_equal(catalog_client_get(f->cat, "racea", &c), 0);
		snprintf(c.location, sizeof c.location, "%s",
			 i % 2 ? base_url : alt_url);
		assert_int_equal(catalog_client_update(f->cat, &c), 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(r[i].bad, 0);
	}
	tenant_cache_free(tc);
}

static void test_open_location(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	char url[1024];
	snprintf(url, sizeof url, "%ssub/", f->assets);
	char path[200];
	snprintf(path, sizeof path, "%s/assets/sub", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(tenant_open_location(f->cat, url, &st), 0);
	assert_string_equal(store_url(st), url);
	store_close(st);
	snprintf(url, sizeof url, "%snone/", f->assets);
	st = (struct store *)f;
	assert_int_equal(tenant_open_location(f->cat, url, &st), STORE_ENOENT);
	assert_null(st);
	assert_int_equal(tenant_open_location(f->cat, "ftp://x/", &st),
			 STORE_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_location_change, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_location, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
