/* test_usage.c - usage accounting and quotas through a metered store: a
 * real catalog and a real fs location reached with tenant_get(), the way
 * the front ends reach them. Every change through the store interface
 * (new object, replacement, delete, rename of a file or a directory, copy)
 * must leave the kept figures equal to a recount, and a quota must refuse
 * the change that would cross it - at open, mid-stream or at commit - with
 * nothing stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "scratch.h"
#include "store.h"
#include "tenant.h"

struct fixture {
	char dir[64];
	char assets[300];
	struct catalog *cat;
	struct tenant_cache *tc;
	struct store *st;       /* client "kufish", metered */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char path[200];
	snprintf(f->dir, sizeof f->dir, "/tmp/assetd-usage-XXXXXX");
	if (!mkdtemp(f->dir) ||
	    scratch_catalog(f->dir, f->assets, sizeof f->assets, &f->cat) != 0)
		return -1;
	struct catalog_client c = { 0 };
	snprintf(c.name, sizeof c.name, "kufish");
	snprintf(c.region, sizeof c.region, "test");
	snprintf(path, sizeof path, "%s/assets/kufish", f->dir);
	if (catalog_client_add(f->cat, &c) != 0 || mkdir(path, 0755) != 0 ||
	    tenant_cache_new(f->cat, 0, &f->tc) != 0 ||
	    tenant_get(f->tc, "kufish", &c, &f->st) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tenant_cache_free(f->tc);
	catalog_close(f->cat);
	if (scratch_remove(f->dir) != 0)
		return -1;
	free(f);
	return 0;
}

static void set_quota(struct fixture *f, int64_t bytes, int64_t objects)
{
	struct catalog_client c;
	assert_int_equal(catalog_client_get(f->cat, "kufish", &c), 0);
	c.quota_bytes = bytes;
	c.quota_objects = objects;
	assert_int_equal(catalog_client_update(f->cat, &c), 0);
}

static void put(struct fixture *f, const char *name, size_t len)
{
	char *buf = calloc(1, len + 1);
	assert_int_equal(store_put(f->st, name, buf, len, NULL), 0);
	free(buf);
}

static struct catalog_usage_total total(struct fixture *f)
{
	struct catalog_usage_total t;
	assert_int_equal(catalog_usage_total(f->cat, "kufish", &t), 0);
	return t;
}

struct folders {
	char names[8][CATALOG_TEXT_MAX];
	int64_t objects[8], bytes[8];
	int n;
};

static int folder_row(void *arg, const struct catalog_usage *u)
{
	struct folders *fs = arg;
	if (fs->n < 8) {
		snprintf(fs->names[fs->n], sizeof fs->names[0], "%s", u->folder);
		fs->objects[fs->n] = u->objects;
		fs->bytes[fs->n] = u->bytes;
		fs->n++;
	}
	return 0;
}

static struct folders folders(struct fixture *f)
{
	struct folders fs;
	memset(&fs, 0, sizeof fs);
	assert_int_equal(catalog_usage_list(f->cat, "kufish", folder_row, &fs),
			 0);
	return fs;
}

/* The kept figures, per folder, equal what a recount finds. */
static void assert_matches_recount(struct fixture *f)
{
	struct folders kept = folders(f), counted;
	struct catalog_usage_total before = total(f);
	assert_int_equal(tenant_usage_recount(f->cat, "kufish", f->st), 0);
	counted = folders(f);
	struct catalog_usage_total after = total(f);
	assert_int_equal(before.objects, after.objects);
	assert_int_equal(before.bytes, after.bytes);
	assert_true(after.recounted > 0);
	/* Kept rows may include folders that dropped to zero. */
	int j = 0;
	for (int i = 0; i < kept.n; i++) {
		if (kept.objects[i] == 0 && kept.bytes[i] == 0)
			continue;
		assert_true(j < counted.n);
		assert_string_equal(kept.names[i], counted.names[j]);
		assert_int_equal(kept.objects[i], counted.objects[j]);
		assert_int_equal(kept.bytes[i], counted.bytes[j]);
		j++;
	}
	assert_int_equal(j, counted.n);
}

static void test_folder_rule(void **state)
{
	(void)state;
	char out[CATALOG_TEXT_MAX];
	assert_int_equal(tenant_usage_folder("fish/originals/a.jpg", out,
					     sizeof out), 0);
	assert_string_equal(out, "fish");
	assert_int_equal(tenant_usage_folder("a.jpg", out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(tenant_usage_folder("fish/", out, sizeof out), 0);
	assert_string_equal(out, "fish");
	assert_int_equal(tenant_usage_folder("abcdef/x", out, 4),
			 STORE_EINVAL);
}

static void test_accounting(void **state)
{
	struct fixture *f = *state;
	put(f, "originals/a.jpg", 1000);
	put(f, "originals/b.jpg", 500);
	put(f, "fish/originals/c.jpg", 300);
	put(f, "top.txt", 7);
	struct catalog_usage_total t = total(f);
	assert_int_equal(t.objects, 4);
	assert_int_equal(t.bytes, 1807);
	assert_int_equal(t.recounted, 0);
	/* replacement: only the difference */
	put(f, "originals/a.jpg", 400);
	t = total(f);
	assert_int_equal(t.objects, 4);
	assert_int_equal(t.bytes, 1207);
	/* delete; a missing object changes nothing */
	assert_int_equal(store_delete(f->st, "originals/b.jpg"), 0);
	assert_int_equal(store_delete(f->st, "originals/b.jpg"), STORE_ENOENT);
	t = total(f);
	assert_int_equal(t.objects, 3);
	assert_int_equal(t.bytes, 707);
	/* rename across folders, onto an existing object */
	put(f, "fish/originals/d.jpg", 50);
	assert_int_equal(store_rename(f->st, "originals/a.jpg",
				      "fish/originals/d.jpg", 0), 0);
	t = total(f);
	assert_int_equal(t.objects, 3);
	assert_int_equal(t.bytes, 707);
	/* a directory moves between folders with all it holds */
	assert_int_equal(store_rename(f->st, "fish/originals", "birds", 0), 0);
	/* copy within the store adds a whole object */
	assert_int_equal(store_copy(f->st, "birds/c.jpg", f->st, "copy.jpg"),
			 0);
	t = total(f);
	assert_int_equal(t.objects, 4);
	assert_int_equal(t.bytes, 1007);
	struct folders fs = folders(f);
	int found = 0;
	for (int i = 0; i < fs.n; i++)
		if (!strcmp(fs.names[i], "birds")) {
			assert_int_equal(fs.objects[i], 2);
			assert_int_equal(fs.bytes[i], 700);
			found = 1;
		}
	assert_true(found);
	assert_matches_recount(f);
}

static void test_recount_replaces_drift(void **state)
{
	struct fixture *f = *state;
	put(f, "originals/a.jpg", 100);
	/* a file written behind the store's back, one removed likewise */
	char path[300];
	snprintf(path, sizeof path, "%s/assets/kufish/originals/x.jpg", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("12345", fp);
	fclose(fp);
	assert_int_equal(total(f).objects, 1);
	assert_int_equal(tenant_usage_recount(f->cat, "kufish", f->st), 0);
	assert_int_equal(total(f).objects, 2);
	assert_int_equal(total(f).bytes, 105);
	/* figures never go below zero, whatever drift says */
	assert_int_equal(catalog_usage_add(f->cat, "kufish", "originals", -5,
					   -1000, 0), 0);
	assert_int_equal(total(f).objects, 0);
	assert_int_equal(total(f).bytes, 0);
}

static int names_under(void *arg, const struct store_entry *e)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
}

static int objects_stored(struct fixture *f)
{
	int n = 0;
	assert_int_equal(store_list(f->st, "", 0, NULL, names_under, &n), 0);
	return n;
}

static void test_quota_bytes(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	struct store_writer *w;
	memset(buf, 'x', sizeof buf);
	set_quota(f, 10000, 0);
	put(f, "originals/a.jpg", 6000);

	/* refused at open: an announced size that cannot fit */
	struct store_put_opts po = { 0 };
	po.size_hint = 5000;
	po.size_exact = 1;
	assert_int_equal(store_writer_open(f->st, "originals/b.jpg", &po, &w),
			 STORE_EQUOTA);
	/* a mere hint (an HTTP body's length) is not refused */
	po.size_exact = 0;
	assert_int_equal(store_writer_open(f->st, "originals/b.jpg", &po, &w),
			 0);
	/* ... but the bytes are, once past the room left */
	assert_int_equal(store_writer_write(w, buf, 4000), 0);
	assert_int_equal(store_writer_write(w, buf, 1000), STORE_EQUOTA);
	store_writer_abort(w);
	assert_int_equal(objects_stored(f), 1);

	/* replacing costs only the difference: 6000 -> 10000 fits */
	po.size_hint = 10000;
	po.size_exact = 1;
	assert_int_equal(store_writer_open(f->st, "originals/a.jpg", &po, &w),
			 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(store_writer_write(w, buf, 4096), 0);
	assert_int_equal(store_writer_write(w, buf, 10000 - 8192), 0);
	assert_int_equal(store_writer_commit(w), 0);
	assert_int_equal(total(f).bytes, 10000);

	/* two writers racing for the same room: the first commit wins, the
	 * second is refused at its commit and leaves nothing */
	put(f, "originals/a.jpg", 2000);
	struct store_writer *w1, *w2;
	po.size_hint = 5000;
	assert_int_equal(store_writer_open(f->st, "originals/c.jpg", &po, &w1),
			 0);
	assert_int_equal(store_writer_open(f->st, "originals/d.jpg", &po, &w2),
			 0);
	assert_int_equal(store_writer_write(w1, buf, 4096), 0);
	assert_int_equal(store_writer_write(w1, buf, 904), 0);
	assert_int_equal(store_writer_write(w2, buf, 4096), 0);
	assert_int_equal(store_writer_write(w2, buf, 904), 0);
	assert_int_equal(store_writer_commit(w1), 0);
	assert_int_equal(store_writer_commit(w2), STORE_EQUOTA);
	struct store_stat ss;
	assert_int_equal(store_stat(f->st, "originals/d.jpg", &ss),
			 STORE_ENOENT);
	assert_int_equal(total(f).bytes, 7000);
	assert_int_equal(total(f).objects, 2);

	/* a copy that would cross is refused too; deletes always pass */
	assert_int_equal(store_copy(f->st, "originals/c.jpg", f->st,
				    "originals/e.jpg"), STORE_EQUOTA);
	assert_int_equal(store_stat(f->st, "originals/e.jpg", &ss),
			 STORE_ENOENT);
	assert_int_equal(store_delete(f->st, "originals/c.jpg"), 0);

	/* the early check rsync's generator makes: room for 8000 more */
	assert_int_equal(store_quota_check(f->st, 1, 8000), 0);
	assert_int_equal(store_quota_check(f->st, 1, 8001), STORE_EQUOTA);
	assert_int_equal(store_quota_check(f->st, 0, -100), 0);

	/* statfs: the quota is the disk */
	uint64_t tot = 0, avail = 0;
	assert_int_equal(store_statfs(f->st, &tot, &avail), 0);
	assert_int_equal(tot, 10000);
	assert_int_equal(avail, 8000);
	assert_string_equal(store_strerror(STORE_EQUOTA), "quota exceeded");
	assert_matches_recount(f);
}

static void test_quota_objects(void **state)
{
	struct fixture *f = *state;
	set_quota(f, 0, 2);
	put(f, "a", 1);
	put(f, "b", 1);
	struct store_writer *w;
	assert_int_equal(store_writer_open(f->st, "c", NULL, &w), STORE_EQUOTA);
	/* a replacement adds no object */
	put(f, "b", 100);
	assert_int_equal(store_put(f->st, "c", "x", 1, NULL), STORE_EQUOTA);
	assert_int_equal(objects_stored(f), 2);
	/* lifting the quota ("none") lets it through */
	set_quota(f, 0, 0);
	put(f, "c", 1);
	assert_int_equal(total(f).objects, 3);
}

/* A catalog of schema version 1 (before usage was kept), with a client in
 * it, migrates forward: the client keeps its row, starts with no figures
 * and "never recounted", and accounting works at once. */
static void test_migrate_from_version_1(void **state)
{
	struct fixture *f = *state;
	char path[200], err[256];
	sqlite3 *db;
	tenant_cache_free(f->tc);
	f->tc = NULL;
	catalog_close(f->cat);
	snprintf(path, sizeof path, "%s/cat.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "DROP TABLE usage;"
				      "ALTER TABLE clients DROP COLUMN "
				      "usage_recounted;"
				      "UPDATE schema_version SET version = 1;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(catalog_open(path, &f->cat, err, sizeof err), 0);
	int v = 0;
	assert_int_equal(catalog_schema_version(f->cat, &v), 0);
	assert_int_equal(v, CATALOG_SCHEMA_VERSION);
	struct catalog_usage_total t = total(f);
	assert_int_equal(t.objects, 0);
	assert_int_equal(t.recounted, 0);
	assert_int_equal(catalog_usage_add(f->cat, "kufish", "originals", 1,
					   10, 1), 0);
	assert_int_equal(total(f).bytes, 10);
	/* removing the client removes its figures */
	assert_int_equal(catalog_client_remove(f->cat, "kufish"), 0);
	assert_int_equal(catalog_usage_total(f->cat, "kufish", &t),
			 CATALOG_ENOENT);
	assert_int_equal(tenant_cache_new(f->cat, 0, &f->tc), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_folder_rule),
		cmocka_unit_test_setup_teardown(test_accounting, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_recount_replaces_drift,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_bytes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_quota_objects, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_version_1,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
