/* test_rsync_dirlist.c - a push's listings taken ahead (sshd/rsync/
 * dirlist.c), on a real directory: whatever was queued, skipped or never
 * asked for, each rs_dirlist_get() returns exactly what listing that
 * directory then gives, finished by the caller's hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../sshd/rsync/rsync_int.h"
#include "scratch.h"

#define NDIRS 30

static char g_root[64];
static struct store *g_st;

static void put(const char *name, size_t len)
{
	char buf[64];
	memset(buf, 'x', sizeof buf);
	assert_int_equal(store_put(g_st, name, buf, len, NULL), 0);
}

static int setup(void **state)
{
	(void)state;
	scratch_dir(g_root, sizeof g_root, "/tmp/test_rsync_dirlist.XXXXXX");
	scratch_store(g_root, &g_st);
	/* Every folder holds other names and sizes; d05 is empty; d07 has
	 * a folder inside. */
	for (int i = 0; i < NDIRS; i++) {
		char name[64];
		snprintf(name, sizeof name, "d%02d", i);
		assert_int_equal(store_mkdir(g_st, name), 0);
		for (int j = 0; i != 5 && j <= i % 4; j++) {
			snprintf(name, sizeof name, "d%02d/f%d_%d", i, i, j);
			put(name, (size_t)(i + j));
		}
	}
	put("d07/sub/deep", 3);
	put("top", 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	store_close(g_st);
	return scratch_remove(g_root);
}

static int add_cb(void *arg, const struct store_entry *e)
{
	struct rs_listing *l = arg;
	const char *base;
	size_t bl;

	/* a directory's name ends in '/': its base is before that */
	bl = strlen(e->name);
	if (e->is_dir)
		bl--;
	base = e->name + bl;
	while (base > e->name && base[-1] != '/')
		base--;
	l->v = realloc(l->v, (l->n + 1) * sizeof *l->v);
	memset(&l->v[l->n], 0, sizeof l->v[l->n]);
	l->v[l->n].name = strndup(base, (size_t)(e->name + bl - base));
	l->v[l->n].size = e->size;
	l->v[l->n].is_dir = e->is_dir;
	l->n++;
	return 0;
}

/* The finishing hook: checks it is given the name that goes with the
 * prefix, and marks every entry so the test sees it ran on each listing
 * handed over. */
static void finish(void *arg, const char *name, const char *prefix,
		   struct rs_listing *l)
{
	char want[64];

	(void)arg;
	snprintf(want, sizeof want, "%s%s", name, *name ? "/" : "");
	assert_string_equal(prefix, want);
	for (size_t i = 0; i < l->n; i++)
		l->v[i].mtime = 12345;
}

/* What store_list says of PREFIX, against what the dirlist gave. */
static void same_as_store(const char *prefix, const struct rs_listing *got)
{
	struct rs_listing want = { 0 };
	int rc = store_list(g_st, prefix, '/', NULL, add_cb, &want);

	if (rc == STORE_ENOENT)
		rc = 0;
	assert_int_equal(rc, 0);
	assert_int_equal(got->n, want.n);
	for (size_t i = 0; i < want.n; i++) {
		assert_string_equal(got->v[i].name, want.v[i].name);
		assert_int_equal(got->v[i].size, want.v[i].size);
		assert_int_equal(got->v[i].is_dir, want.v[i].is_dir);
		assert_int_equal(got->v[i].mtime, 12345);
	}
	rs_listing_free(&want);
}

/* "dNN" of "dNN/" (a static buffer). */
static const char *name_of(const char *prefix)
{
	static char buf[64];
	snprintf(buf, sizeof buf, "%.*s", (int)strlen(prefix) - 1, prefix);
	return buf;
}

static void test_each_listing_is_its_own(void **state)
{
	struct rs_dirlist *d = rs_dirlist_new(g_st, finish, NULL);
	struct rs_listing l = { 0 };
	char prefix[32];
	int queued = 0;

	(void)state;
	assert_non_null(d);
	assert_int_equal(rs_dirlist_get(d, 0, "", "", &l), 0);
	same_as_store("", &l);
	/* the window takes what it can; the rest is not queued */
	for (int i = 1; i <= NDIRS; i++) {
		snprintf(prefix, sizeof prefix, "d%02d/", i - 1);
		if (rs_dirlist_ahead(d, (size_t)i, prefix, name_of(prefix)) == 0)
			queued++;
	}
	assert_true(queued > 0 && queued < NDIRS);
	assert_int_equal(rs_dirlist_waiting(d), (size_t)queued);
	for (int i = 1; i <= NDIRS; i++) {
		if (i % 6 == 3)
			continue; /* skipped by the caller: dropped */
		snprintf(prefix, sizeof prefix, "d%02d/", i - 1);
		assert_int_equal(rs_dirlist_get(d, (size_t)i, prefix,
						name_of(prefix), &l), 0);
		same_as_store(prefix, &l);
		if (i == 8) {
			assert_int_equal(rs_dirlist_get(d, 100, "d07/sub/",
							"d07/sub", &l), 0);
			same_as_store("d07/sub/", &l);
		}
	}
	assert_int_equal(rs_dirlist_waiting(d), 0);
	/* a directory that is not there lists empty */
	assert_int_equal(rs_dirlist_get(d, 200, "nothing/", "nothing", &l), 0);
	assert_int_equal(l.n, 0);
	assert_null(rs_listing_find(&l, "x"));
	rs_listing_free(&l);
	rs_dirlist_free(d);
}

static void test_freed_with_listings_in_flight(void **state)
{
	struct rs_dirlist *d = rs_dirlist_new(g_st, finish, NULL);
	struct rs_listing l = { 0 };
	char prefix[32];

	(void)state;
	for (int i = 0; i < NDIRS; i++) {
		snprintf(prefix, sizeof prefix, "d%02d/", i);
		rs_dirlist_ahead(d, (size_t)i, prefix, name_of(prefix));
	}
	assert_int_equal(rs_dirlist_get(d, 2, "d02/", "d02", &l), 0);
	same_as_store("d02/", &l);
	assert_non_null(rs_listing_find(&l, "f2_2"));
	assert_null(rs_listing_find(&l, "f3_0"));
	rs_listing_free(&l);
	rs_dirlist_free(d); /* the rest are still queued or running */
}

/* Background listings past the entry budget give up, and the caller
 * lists those directories itself: the results are the same. */
static void test_over_the_budget(void **state)
{
	struct rs_dirlist *d;
	struct rs_listing l = { 0 };
	char prefix[32];

	(void)state;
	setenv("ASSETD_RSYNC_LIST_BUDGET", "3", 1);
	d = rs_dirlist_new(g_st, finish, NULL);
	unsetenv("ASSETD_RSYNC_LIST_BUDGET");
	for (int i = 0; i < NDIRS; i++) {
		snprintf(prefix, sizeof prefix, "d%02d/", i);
		rs_dirlist_ahead(d, (size_t)i, prefix, name_of(prefix));
	}
	for (int i = 0; i < NDIRS; i++) {
		snprintf(prefix, sizeof prefix, "d%02d/", i);
		assert_int_equal(rs_dirlist_get(d, (size_t)i, prefix,
						name_of(prefix), &l), 0);
		same_as_store(prefix, &l);
		if (rs_dirlist_waiting(d) == 0 && i + 1 < NDIRS) {
			snprintf(prefix, sizeof prefix, "d%02d/", i + 1);
			rs_dirlist_ahead(d, (size_t)i + 1, prefix,
					 name_of(prefix));
		}
	}
	rs_listing_free(&l);
	rs_dirlist_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_listing_is_its_own),
		cmocka_unit_test(test_freed_with_listings_in_flight),
		cmocka_unit_test(test_over_the_budget),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
