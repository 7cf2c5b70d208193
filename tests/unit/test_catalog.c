/* test_catalog.c - the SQLite catalog: every function, its constraints,
 * migrations, refusal of a newer schema, concurrent writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catalog.h"
#include "scratch.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/test_catalog_XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/assetd.db", dir);
	return 0;
}

static int teardown(void **state)
{
	assert_int_equal(scratch_remove(dir), 0);
	return 0;
}

static struct catalog *open_ok(void)
{
	struct catalog *cat = NULL;
	char err[256] = "";
	int rc = catalog_open(path, &cat, err, sizeof err);
	if (rc)
		fail_msg("catalog_open: %s", err);
	assert_non_null(cat);
	return cat;
}

static void add_region(struct catalog *cat, const char *name,
		       const char *assets)
{
	struct catalog_region r;
	memset(&r, 0, sizeof r);
	snprintf(r.name, sizeof r.name, "%s", name);
	snprintf(r.assets, sizeof r.assets, "%s", assets);
	int rc = catalog_region_add(cat, &r);
	if (rc)
		fail_msg("region add %s: %s", name, catalog_errmsg(cat));
}

static int add_client(struct catalog *cat, const char *name, const char *region,
		      const char *location, struct catalog_client *out)
{
	struct catalog_client c;
	memset(&c, 0, sizeof c);
	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.region, sizeof c.region, "%s", region ? region : "");
	snprintf(c.location, sizeof c.location, "%s", location ? location : "");
	int rc = catalog_client_add(cat, &c);
	if (out)
		*out = c;
	return rc;
}

static struct catalog_key make_key(const char *client, int n)
{
	struct catalog_key k;
	memset(&k, 0, sizeof k);
	snprintf(k.client, sizeof k.client, "%s", client);
	snprintf(k.type, sizeof k.type, "ssh-ed25519");
	snprintf(k.blob, sizeof k.blob, "AAAAC3NzaC1lZDI1NTE5AAAAI%08d", n);
	snprintf(k.fingerprint, sizeof k.fingerprint, "SHA256:fp%08d", n);
	snprintf(k.comment, sizeof k.comment, "key %d", n);
	return k;
}

/* Run SQL on the file with a separate raw connection. */
static void raw_exec(const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static int raw_count(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	int n = -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/* ---- open, schema ----------------------------------------------------- */

static void test_open_creates_wal_0600(void **state)
{
	struct catalog *cat = open_ok();
	int v = -1;
	assert_int_equal(catalog_schema_version(cat, &v), 0);
	assert_int_equal(v, CATALOG_SCHEMA_VERSION);
	assert_int_equal(catalog_check(cat), 0);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	catalog_close(cat);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *s;
	sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);
	/* Reopening an up-to-date catalog changes nothing. */
	cat = open_ok();
	catalog_close(cat);
	assert_int_equal(raw_count("SELECT count(*) FROM schema_version"), 1);
}

static void test_open_missing_dir(void **state)
{
	struct catalog *cat = (struct catalog *)1;
	char err[256] = "";
	assert_int_equal(
	    catalog_open("/nonexistent/dir/x.db", &cat, err, sizeof err),
	    CATALOG_EDB);
	assert_null(cat);
	assert_non_null(strstr(err, "/nonexistent/dir/x.db"));
}

static void test_migrate_from_version_0(void **state)
{
	/* A catalog as the very first (pre-schema) release left it: only
	 * schema_version, at 0. */
	raw_exec("CREATE TABLE schema_version (version INTEGER NOT NULL);"
		 "INSERT INTO schema_version VALUES (0);");
	struct catalog *cat = open_ok();
	int v = -1;
	assert_int_equal(catalog_schema_version(cat, &v), 0);
	assert_int_equal(v, CATALOG_SCHEMA_VERSION);
	add_region(cat, "us", "s3://sp-assets-us/");
	catalog_close(cat);
	assert_int_equal(raw_count("SELECT version FROM schema_version"),
			 CATALOG_SCHEMA_VERSION);
	assert_int_equal(raw_count("SELECT count(*) FROM schema_version"), 1);
}

static void test_migration_failure_rolls_back(void **state)
{
	/* A version-0 file where a table of the new schema is in the way:
	 * the step fails, and nothing of it may remain. */
	raw_exec("CREATE TABLE schema_version (version INTEGER NOT NULL);"
		 "INSERT INTO schema_version VALUES (0);"
		 "CREATE TABLE archives (x INTEGER);");
	struct catalog *cat = NULL;
	char err[512] = "";
	assert_int_equal(catalog_open(path, &cat, err, sizeof err),
			 CATALOG_EDB);
	assert_null(cat);
	assert_non_null(strstr(err, "from schema version 0 to 1"));
	assert_int_equal(raw_count("SELECT version FROM schema_version"), 0);
	assert_int_equal(raw_count("SELECT count(*) FROM sqlite_master WHERE "
				   "name IN ('regions', 'clients', 'keys')"),
			 0);
}

static void test_newer_schema_refused(void **state)
{
	struct catalog *cat = open_ok();
	catalog_close(cat);
	raw_exec("UPDATE schema_version SET version = 99");
	char err[512] = "";
	assert_int_equal(catalog_open(path, &cat, err, sizeof err),
			 CATALOG_EVERSION);
	assert_null(cat);
	assert_non_null(strstr(err, "schema version 99"));
	assert_non_null(strstr(err, "newer"));
	assert_int_equal(raw_count("SELECT version FROM schema_version"), 99);
}

static void test_foreign_files_refused(void **state)
{
	raw_exec("CREATE TABLE something (x);");
	struct catalog *cat = NULL;
	char err[512] = "";
	assert_int_equal(catalog_open(path, &cat, err, sizeof err),
			 CATALOG_EINVAL);
	assert_non_null(strstr(err, "not an assetd catalog"));
	unlink(path);
	FILE *f = fopen(path, "w");
	fputs("this is not a database, just text that is long enough to "
	      "look like a header and more and more and more bytes\n",
	      f);
	fclose(f);
	assert_true(catalog_open(path, &cat, err, sizeof err) < 0);
	assert_null(cat);
}

/* ---- validation -------------------------------------------------------- */

static void test_name_valid(void **state)
{
	assert_true(catalog_name_valid("kufish"));
	assert_true(catalog_name_valid("a"));
	assert_true(catalog_name_valid("9lives_x-y"));
	assert_false(catalog_name_valid(""));
	assert_false(catalog_name_valid(NULL));
	assert_false(catalog_name_valid("-x"));
	assert_false(catalog_name_valid("_x"));
	assert_false(catalog_name_valid("KU"));
	assert_false(catalog_name_valid("a b"));
	assert_false(catalog_name_valid("a/b"));
	assert_false(catalog_name_valid("a.b"));
	char n[80];
	memset(n, 'a', 63);
	n[63] = '\0';
	assert_true(catalog_name_valid(n));
	n[63] = 'a';
	n[64] = '\0';
	assert_false(catalog_name_valid(n));
}

static void test_location_normalise(void **state)
{
	char out[CATALOG_URL_MAX];
	struct {
		const char *in, *out;
	} ok[] = {
	    {"file:///srv/assets", "file:///srv/assets/"},
	    {"file:///srv/assets/", "file:///srv/assets/"},
	    {"file:///srv/assets//", "file:///srv/assets/"},
	    {"s3://bucket", "s3://bucket/"},
	    {"s3://bucket/", "s3://bucket/"},
	    {"s3://my.bucket-1/a/b", "s3://my.bucket-1/a/b/"},
	    {"s3://sp-assets-il/asset-backups/",
	     "s3://sp-assets-il/asset-backups/"},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		if (catalog_location_normalise(ok[i].in, out, sizeof out))
			fail_msg("%s: %s", ok[i].in, catalog_errmsg(NULL));
		assert_string_equal(out, ok[i].out);
	}
	const char *bad[] = {
	    "",
	    "/srv/assets",
	    "file://srv/assets",
	    "file://host/x",
	    "file:///srv/../etc",
	    "file:///srv/./x",
	    "file:///a//b",
	    "s3://",
	    "s3://ab",
	    "s3://Bucket",
	    "s3://bucket/a//b",
	    "s3://bucket/../x",
	    "s3://-bucket",
	    "http://x/",
	    "s3://b_c/",
	    "file:///a\nb",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (catalog_location_normalise(bad[i], out, sizeof out) !=
		    CATALOG_EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		assert_true(strlen(catalog_errmsg(NULL)) > 0);
	}
}

/* ---- regions ----------------------------------------------------------- */

static int count_regions(void *arg, const struct catalog_region *r)
{
	(*(int *)arg)++;
	return 0;
}

static void test_regions(void **state)
{
	struct catalog *cat = open_ok();
	struct catalog_region r;
	memset(&r, 0, sizeof r);
	snprintf(r.name, sizeof r.name, "il");
	snprintf(r.assets, sizeof r.assets, "s3://sp-assets-il");
	snprintf(r.snapshot, sizeof r.snapshot,
		 "s3://specify-cloud-rds-backups-il/asset-backups");
	snprintf(r.endpoint, sizeof r.endpoint, "http://127.0.0.1:4569/");
	snprintf(r.s3_region, sizeof r.s3_region, "il-central-1");
	snprintf(r.profile, sizeof r.profile, "prod");
	assert_int_equal(catalog_region_add(cat, &r), 0);
	assert_int_equal(catalog_region_add(cat, &r), CATALOG_EEXIST);
	assert_non_null(strstr(catalog_errmsg(cat), "already exists"));

	struct catalog_region g;
	assert_int_equal(catalog_region_get(cat, "il", &g), 0);
	assert_true(g.id > 0);
	assert_string_equal(g.assets, "s3://sp-assets-il/");
	assert_string_equal(g.snapshot,
			    "s3://specify-cloud-rds-backups-il/asset-backups/");
	assert_string_equal(g.endpoint, "http://127.0.0.1:4569");
	assert_string_equal(g.s3_region, "il-central-1");
	assert_string_equal(g.profile, "prod");
	assert_int_equal(catalog_region_get(cat, "xx", &g), CATALOG_ENOENT);

	/* Invalid input is refused and changes nothing. */
	struct catalog_region bad = r;
	snprintf(bad.name, sizeof bad.name, "Bad Name");
	assert_int_equal(catalog_region_add(cat, &bad), CATALOG_EINVAL);
	bad = r;
	snprintf(bad.name, sizeof bad.name, "x");
	snprintf(bad.assets, sizeof bad.assets, "ftp://x/");
	assert_int_equal(catalog_region_add(cat, &bad), CATALOG_EINVAL);
	snprintf(bad.assets, sizeof bad.assets, "s3://okbucket/");
	snprintf(bad.endpoint, sizeof bad.endpoint, "localhost:9000");
	assert_int_equal(catalog_region_add(cat, &bad), CATALOG_EINVAL);
	bad.endpoint[0] = '\0';
	snprintf(bad.s3_region, sizeof bad.s3_region, "us east");
	assert_int_equal(catalog_region_add(cat, &bad), CATALOG_EINVAL);
	bad.s3_region[0] = '\0';
	snprintf(bad.snapshot, sizeof bad.snapshot, "s3://okbucket/");
	assert_int_equal(catalog_region_add(cat, &bad), CATALOG_EINVAL);
	int n = 0;
	assert_int_equal(catalog_region_list(cat, count_regions, &n), 0);
	assert_int_equal(n, 1);

	/* Update. */
	g.snapshot[0] = '\0';
	snprintf(g.assets, sizeof g.assets, "s3://sp-assets-il2/");
	assert_int_equal(catalog_region_update(cat, &g), 0);
	assert_int_equal(catalog_region_get(cat, "il", &r), 0);
	assert_string_equal(r.assets, "s3://sp-assets-il2/");
	assert_string_equal(r.snapshot, "");
	snprintf(g.name, sizeof g.name, "nope");
	assert_int_equal(catalog_region_update(cat, &g), CATALOG_ENOENT);
	snprintf(g.name, sizeof g.name, "il");
	snprintf(g.assets, sizeof g.assets, "bogus");
	assert_int_equal(catalog_region_update(cat, &g), CATALOG_EINVAL);
	assert_int_equal(catalog_region_get(cat, "il", &r), 0);
	assert_string_equal(r.assets, "s3://sp-assets-il2/");

	/* In use. */
	assert_int_equal(add_client(cat, "kufish", "il", NULL, NULL), 0);
	assert_int_equal(catalog_region_remove(cat, "il"), CATALOG_EINUSE);
	assert_non_null(strstr(catalog_errmsg(cat), "kufish"));
	assert_int_equal(catalog_region_get(cat, "il", &r), 0);
	assert_int_equal(catalog_client_remove(cat, "kufish"), 0);
	assert_int_equal(catalog_region_remove(cat, "il"), 0);
	assert_int_equal(catalog_region_remove(cat, "il"), CATALOG_ENOENT);
	n = 0;
	assert_int_equal(catalog_region_list(cat, count_regions, &n), 0);
	assert_int_equal(n, 0);
	catalog_close(cat);
}

/* ---- clients ----------------------------------------------------------- */

struct names {
	char n[8][CATALOG_NAME_MAX];
	int count;
};

static int collect_clients(void *arg, const struct catalog_client *c)
{
	struct names *nm = arg;
	if (nm->count < 8)
		snprintf(nm->n[nm->count], CATALOG_NAME_MAX, "%s", c->name);
	nm->count++;
	return 0;
}

static void test_clients(void **state)
{
	struct catalog *cat = open_ok();
	add_region(cat, "us", "s3://sp-assets-us/");
	struct catalog_region r;
	assert_int_equal(catalog_region_get(cat, "us", &r), 0);
	snprintf(r.endpoint, sizeof r.endpoint, "http://127.0.0.1:9000");
	snprintf(r.s3_region, sizeof r.s3_region, "us-east-1");
	assert_int_equal(catalog_region_update(cat, &r), 0);

	struct catalog_client c;
	assert_int_equal(add_client(cat, "kufish", "us", NULL, &c), 0);
	assert_true(c.id > 0);
	assert_string_equal(c.location, "s3://sp-assets-us/kufish/");
	assert_int_equal(strlen(c.attachment_key), 64);
	assert_int_equal(strspn(c.attachment_key, "0123456789abcdef"), 64);
	assert_true(c.created > 0);

	struct catalog_client g;
	assert_int_equal(catalog_client_get(cat, "kufish", &g), 0);
	assert_string_equal(g.name, "kufish");
	assert_string_equal(g.region, "us");
	assert_string_equal(g.location, "s3://sp-assets-us/kufish/");
	assert_string_equal(g.attachment_key, c.attachment_key);
	assert_string_equal(g.endpoint, "http://127.0.0.1:9000");
	assert_string_equal(g.s3_region, "us-east-1");
	assert_int_equal(g.disabled, 0);

	/* Two generated keys differ. */
	struct catalog_client c2;
	assert_int_equal(add_client(cat, "kuherps", "us", NULL, &c2), 0);
	assert_string_not_equal(c2.attachment_key, c.attachment_key);

	/* Own bucket, own settings, explicit key and quotas. */
	memset(&c, 0, sizeof c);
	snprintf(c.name, sizeof c.name, "ownbucket");
	snprintf(c.location, sizeof c.location, "s3://their-bucket/specify");
	snprintf(c.attachment_key, sizeof c.attachment_key, "secret-key");
	snprintf(c.s3_region, sizeof c.s3_region, "eu-west-1");
	c.quota_bytes = 1 << 30;
	c.quota_objects = 1000;
	assert_int_equal(catalog_client_add(cat, &c), 0);
	assert_int_equal(catalog_client_get(cat, "ownbucket", &g), 0);
	assert_string_equal(g.region, "");
	assert_string_equal(g.location, "s3://their-bucket/specify/");
	assert_string_equal(g.attachment_key, "secret-key");
	assert_string_equal(g.s3_region, "eu-west-1");
	assert_int_equal(g.quota_bytes, 1 << 30);
	assert_int_equal(g.quota_objects, 1000);

	/* Refusals. */
	assert_int_equal(add_client(cat, "kufish", "us", NULL, NULL),
			 CATALOG_EEXIST);
	assert_int_equal(add_client(cat, "x", "nowhere", NULL, NULL),
			 CATALOG_ENOENT);
	assert_non_null(strstr(catalog_errmsg(cat), "nowhere"));
	assert_int_equal(add_client(cat, "Bad", "us", NULL, NULL),
			 CATALOG_EINVAL);
	assert_int_equal(add_client(cat, "x", NULL, NULL, NULL),
			 CATALOG_EINVAL);
	assert_int_equal(add_client(cat, "x", NULL, "s3://Bad/", NULL),
			 CATALOG_EINVAL);
	/* A folder inside or around another client's is refused. */
	assert_int_equal(
	    add_client(cat, "x", NULL, "s3://sp-assets-us/kufish/sub/", NULL),
	    CATALOG_EEXIST);
	assert_int_equal(add_client(cat, "x", NULL, "s3://sp-assets-us/", NULL),
			 CATALOG_EEXIST);
	assert_non_null(strstr(catalog_errmsg(cat), "overlaps"));
	memset(&c, 0, sizeof c);
	snprintf(c.name, sizeof c.name, "x");
	snprintf(c.region, sizeof c.region, "us");
	snprintf(c.attachment_key, sizeof c.attachment_key, "has space");
	assert_int_equal(catalog_client_add(cat, &c), CATALOG_EINVAL);
	struct names nm = {.count = 0};
	assert_int_equal(catalog_client_list(cat, collect_clients, &nm), 0);
	assert_int_equal(nm.count, 3);
	assert_string_equal(nm.n[0], "kufish");
	assert_string_equal(nm.n[1], "kuherps");
	assert_string_equal(nm.n[2], "ownbucket");

	/* Update: disable, change quota; the region's settings stay the
	 * region's (a later region change reaches the client). */
	assert_int_equal(catalog_client_get(cat, "kufish", &g), 0);
	g.disabled = 1;
	g.quota_bytes = 5;
	assert_int_equal(catalog_client_update(cat, &g), 0);
	assert_int_equal(catalog_region_get(cat, "us", &r), 0);
	snprintf(r.s3_region, sizeof r.s3_region, "us-west-2");
	assert_int_equal(catalog_region_update(cat, &r), 0);
	assert_int_equal(catalog_client_get(cat, "kufish", &g), 0);
	assert_int_equal(g.disabled, 1);
	assert_int_equal(g.quota_bytes, 5);
	assert_string_equal(g.s3_region, "us-west-2");
	/* A bad update changes nothing. */
	snprintf(g.location, sizeof g.location, "s3://sp-assets-us/kuherps/");
	assert_int_equal(catalog_client_update(cat, &g), CATALOG_EEXIST);
	g.attachment_key[0] = '\0';
	assert_int_equal(catalog_client_update(cat, &g), CATALOG_EINVAL);
	assert_int_equal(catalog_client_get(cat, "kufish", &g), 0);
	assert_string_equal(g.location, "s3://sp-assets-us/kufish/");
	snprintf(g.name, sizeof g.name, "ghost");
	assert_int_equal(catalog_client_update(cat, &g), CATALOG_ENOENT);

	/* Remove cascades to keys and collections. */
	struct catalog_key k = make_key("kufish", 1);
	assert_int_equal(catalog_key_add(cat, &k), 0);
	struct catalog_collection co = {.name = "Fish", .client = "kufish"};
	assert_int_equal(catalog_collection_add(cat, &co), 0);
	assert_int_equal(catalog_client_remove(cat, "kufish"), 0);
	assert_int_equal(catalog_client_get(cat, "kufish", &g), CATALOG_ENOENT);
	assert_int_equal(catalog_client_remove(cat, "kufish"), CATALOG_ENOENT);
	catalog_close(cat);
	assert_int_equal(raw_count("SELECT count(*) FROM keys"), 0);
	assert_int_equal(raw_count("SELECT count(*) FROM collections"), 0);
	cat = open_ok();
	assert_int_equal(catalog_check(cat), 0);
	catalog_close(cat);
}

/* ---- collections --------------------------------------------------------- */

static int count_colls(void *arg, const struct catalog_collection *c)
{
	(*(int *)arg)++;
	return 0;
}

static int stop_at_first(void *arg, const struct catalog_collection *c)
{
	(*(int *)arg)++;
	return 42;
}

static void test_collections(void **state)
{
	struct catalog *cat = open_ok();
	add_region(cat, "test", "file:///srv/assets/");
	assert_int_equal(add_client(cat, "a", "test", NULL, NULL), 0);
	assert_int_equal(add_client(cat, "b", "test", NULL, NULL), 0);

	struct catalog_collection c = {.name = "KU Fish Tissue", .client = "a"};
	snprintf(c.subfolder, sizeof c.subfolder, "tissue/");
	assert_int_equal(catalog_collection_add(cat, &c), 0);
	assert_int_equal(catalog_collection_add(cat, &c), CATALOG_EEXIST);
	struct catalog_collection d = {.name = "Shared", .client = "a"};
	assert_int_equal(catalog_collection_add(cat, &d), 0);
	snprintf(d.client, sizeof d.client, "b");
	assert_int_equal(catalog_collection_add(cat, &d), 0);
	snprintf(d.client, sizeof d.client, "nobody");
	assert_int_equal(catalog_collection_add(cat, &d), CATALOG_ENOENT);
	struct catalog_collection bad = {.name = "X", .client = "a"};
	snprintf(bad.subfolder, sizeof bad.subfolder, "../up");
	assert_int_equal(catalog_collection_add(cat, &bad), CATALOG_EINVAL);
	snprintf(bad.subfolder, sizeof bad.subfolder, "/abs");
	assert_int_equal(catalog_collection_add(cat, &bad), CATALOG_EINVAL);
	bad.subfolder[0] = '\0';
	bad.name[0] = '\0';
	assert_int_equal(catalog_collection_add(cat, &bad), CATALOG_EINVAL);

	struct catalog_collection f;
	assert_int_equal(
	    catalog_collection_find(cat, NULL, "KU Fish Tissue", &f), 0);
	assert_string_equal(f.client, "a");
	assert_string_equal(f.subfolder, "tissue");
	assert_int_equal(catalog_collection_find(cat, NULL, "Shared", &f),
			 CATALOG_EEXIST);
	assert_int_equal(catalog_collection_find(cat, "b", "Shared", &f), 0);
	assert_string_equal(f.client, "b");
	assert_int_equal(catalog_collection_find(cat, NULL, "None", &f),
			 CATALOG_ENOENT);
	assert_int_equal(
	    catalog_collection_find(cat, "b", "KU Fish Tissue", &f),
	    CATALOG_ENOENT);

	int n = 0;
	assert_int_equal(catalog_collection_list(cat, NULL, count_colls, &n),
			 0);
	assert_int_equal(n, 3);
	n = 0;
	assert_int_equal(catalog_collection_list(cat, "a", count_colls, &n), 0);
	assert_int_equal(n, 2);
	n = 0;
	assert_int_equal(catalog_collection_list(cat, NULL, stop_at_first, &n),
			 42);
	assert_int_equal(n, 1);
	assert_int_equal(catalog_collection_list(cat, "zz", count_colls, &n),
			 CATALOG_ENOENT);

	assert_int_equal(catalog_collection_remove(cat, "a", "Shared"), 0);
	assert_int_equal(catalog_collection_remove(cat, "a", "Shared"),
			 CATALOG_ENOENT);
	assert_int_equal(catalog_collection_remove(cat, "zz", "Shared"),
			 CATALOG_ENOENT);
	assert_int_equal(catalog_collection_find(cat, NULL, "Shared", &f), 0);
	assert_string_equal(f.client, "b");
	catalog_close(cat);
}

/* ---- keys ---------------------------------------------------------------- */

static int count_keys(void *arg, const struct catalog_key *k)
{
	(*(int *)arg)++;
	return 0;
}

static void test_keys(void **state)
{
	struct catalog *cat = open_ok();
	add_region(cat, "test", "file:///srv/assets/");
	assert_int_equal(add_client(cat, "a", "test", NULL, NULL), 0);
	assert_int_equal(add_client(cat, "b", "test", NULL, NULL), 0);

	struct catalog_key k = make_key("a", 1);
	assert_int_equal(catalog_key_add(cat, &k), 0);
	assert_int_equal(catalog_key_add(cat, &k), CATALOG_EEXIST);
	assert_non_null(strstr(catalog_errmsg(cat), "already registered"));
	/* The same key may serve two clients. */
	snprintf(k.client, sizeof k.client, "b");
	assert_int_equal(catalog_key_add(cat, &k), 0);
	snprintf(k.client, sizeof k.client, "ghost");
	assert_int_equal(catalog_key_add(cat, &k), CATALOG_ENOENT);
	struct catalog_key bad = make_key("a", 9);
	snprintf(bad.fingerprint, sizeof bad.fingerprint, "MD5:xx");
	assert_int_equal(catalog_key_add(cat, &bad), CATALOG_EINVAL);
	bad = make_key("a", 9);
	snprintf(bad.blob, sizeof bad.blob, "not base64!");
	assert_int_equal(catalog_key_add(cat, &bad), CATALOG_EINVAL);

	struct catalog_key f;
	k = make_key("a", 1);
	assert_int_equal(catalog_key_find(cat, "a", k.type, k.blob, &f), 0);
	assert_string_equal(f.fingerprint, k.fingerprint);
	assert_string_equal(f.comment, "key 1");
	assert_true(f.added > 0);
	assert_int_equal(f.last_used, 0);
	assert_int_equal(catalog_key_find(cat, "a", "ssh-rsa", k.blob, &f),
			 CATALOG_ENOENT);
	struct catalog_key byfp;
	assert_int_equal(
	    catalog_key_find_fingerprint(cat, "a", k.fingerprint, &byfp), 0);
	assert_int_equal(byfp.id, f.id);
	assert_string_equal(byfp.blob, k.blob);
	assert_int_equal(
	    catalog_key_find_fingerprint(cat, "a", "SHA256:none", &byfp),
	    CATALOG_ENOENT);
	assert_int_equal(
	    catalog_key_find_fingerprint(cat, "ghost", k.fingerprint, &byfp),
	    CATALOG_ENOENT);
	assert_int_equal(catalog_key_touch(cat, f.id, 1234567), 0);
	assert_int_equal(catalog_key_find(cat, "a", k.type, k.blob, &f), 0);
	assert_int_equal(f.last_used, 1234567);
	assert_int_equal(catalog_key_touch(cat, 999999, 1), CATALOG_ENOENT);

	/* add_many is all or nothing. */
	struct catalog_key many[3] = {make_key("a", 2), make_key("a", 3),
				      make_key("a", 1)};
	size_t failed = 99;
	assert_int_equal(catalog_key_add_many(cat, many, 3, &failed),
			 CATALOG_EEXIST);
	assert_int_equal(failed, 2);
	int n = 0;
	assert_int_equal(catalog_key_list(cat, "a", count_keys, &n), 0);
	assert_int_equal(n, 1);
	many[2] = make_key("a", 4);
	assert_int_equal(catalog_key_add_many(cat, many, 3, NULL), 0);
	n = 0;
	assert_int_equal(catalog_key_list(cat, "a", count_keys, &n), 0);
	assert_int_equal(n, 4);
	n = 0;
	assert_int_equal(catalog_key_list(cat, NULL, count_keys, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(catalog_key_list(cat, "ghost", count_keys, &n),
			 CATALOG_ENOENT);

	/* Remove by fingerprint (with or without "SHA256:") and by id; only
	 * within the client named. */
	assert_int_equal(catalog_key_remove(cat, "a", "SHA256:fp00000002"), 0);
	assert_int_equal(catalog_key_remove(cat, "a", "fp00000003"), 0);
	assert_int_equal(catalog_key_remove(cat, "a", "SHA256:fp00000003"),
			 CATALOG_ENOENT);
	assert_int_equal(catalog_key_find(cat, "b", k.type, k.blob, &f), 0);
	char id[32];
	snprintf(id, sizeof id, "%lld", (long long)f.id);
	assert_int_equal(catalog_key_remove(cat, "a", id), CATALOG_ENOENT);
	assert_int_equal(catalog_key_remove(cat, "b", id), 0);
	assert_int_equal(catalog_key_find(cat, "b", k.type, k.blob, &f),
			 CATALOG_ENOENT);
	assert_int_equal(catalog_key_find(cat, "a", k.type, k.blob, &f), 0);
	catalog_close(cat);
}

/* ---- archives and runs ----------------------------------------------------
 */

static int collect_ids(void *arg, const struct catalog_archive *a)
{
	int64_t *ids = arg;
	ids[ids[0] + 1] = a->id;
	ids[0]++;
	return 0;
}

static void test_archives(void **state)
{
	struct catalog *cat = open_ok();
	struct catalog_archive a = {
	    .client = "kufish", .format = "tar.xz", .created = 100};
	snprintf(a.location, sizeof a.location,
		 "file:///srv/archives/kufish/1.tar.xz");
	assert_int_equal(catalog_archive_add(cat, &a), 0);
	int64_t first = a.id;
	assert_true(first > 0);
	a.created = 200;
	assert_int_equal(catalog_archive_add(cat, &a), 0);
	int64_t second = a.id;
	struct catalog_archive other = a;
	snprintf(other.client, sizeof other.client, "other");
	assert_int_equal(catalog_archive_add(cat, &other), 0);
	a.state = CATALOG_DONE;
	a.size = 12345;
	a.objects = 7;
	memset(a.sha256, 'a', 64);
	a.sha256[64] = '\0';
	assert_int_equal(catalog_archive_update(cat, &a), 0);
	struct catalog_archive g;
	assert_int_equal(catalog_archive_get(cat, second, &g), 0);
	assert_int_equal(g.state, CATALOG_DONE);
	assert_int_equal(g.size, 12345);
	assert_int_equal(g.objects, 7);
	assert_string_equal(g.sha256, a.sha256);
	assert_string_equal(g.format, "tar.xz");
	a.state = 7;
	assert_int_equal(catalog_archive_update(cat, &a), CATALOG_EINVAL);

	int64_t ids[8] = {0};
	assert_int_equal(catalog_archive_list(cat, "kufish", collect_ids, ids),
			 0);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], second); /* newest first */
	assert_int_equal(ids[2], first);
	memset(ids, 0, sizeof ids);
	assert_int_equal(catalog_archive_list(cat, NULL, collect_ids, ids), 0);
	assert_int_equal(ids[0], 3);
	assert_int_equal(catalog_archive_remove(cat, first), 0);
	assert_int_equal(catalog_archive_remove(cat, first), CATALOG_ENOENT);
	assert_int_equal(catalog_archive_get(cat, first, &g), CATALOG_ENOENT);
	catalog_close(cat);
}

static int collect_runs(void *arg, const struct catalog_run *r)
{
	int64_t *ids = arg;
	ids[ids[0] + 1] = r->id;
	ids[0]++;
	return 0;
}

static void test_runs(void **state)
{
	struct catalog *cat = open_ok();
	int64_t made[5];
	for (int i = 0; i < 5; i++) {
		struct catalog_run r = {.started = 1000 + i};
		snprintf(r.kind, sizeof r.kind, "%s",
			 i % 2 ? "archive" : "sync");
		snprintf(r.what, sizeof r.what, "us");
		assert_int_equal(catalog_run_add(cat, &r), 0);
		made[i] = r.id;
	}
	struct catalog_run r = {.id = made[4],
				.kind = "sync",
				.what = "us",
				.started = 1004,
				.finished = 1010,
				.state = CATALOG_DONE,
				.listed = 10,
				.copied = 3,
				.skipped = 7,
				.bytes = 999,
				.summary = "3 copied"};
	assert_int_equal(catalog_run_update(cat, &r), 0);
	r.id = 424242;
	assert_int_equal(catalog_run_update(cat, &r), CATALOG_ENOENT);
	struct catalog_run empty = {.started = 1};
	assert_int_equal(catalog_run_add(cat, &empty), CATALOG_EINVAL);

	int64_t ids[8] = {0};
	assert_int_equal(catalog_run_list(cat, NULL, 0, collect_runs, ids), 0);
	assert_int_equal(ids[0], 5);
	assert_int_equal(ids[1], made[4]);
	memset(ids, 0, sizeof ids);
	assert_int_equal(catalog_run_list(cat, "sync", 2, collect_runs, ids),
			 0);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], made[4]);
	assert_int_equal(ids[2], made[2]);
	catalog_close(cat);
	assert_int_equal(raw_count("SELECT copied FROM runs WHERE state = 1"),
			 3);
}

/* ---- concurrency ----------------------------------------------------------
 */

#define THREADS	   4
#define PER_THREAD 60

struct worker {
	struct catalog *cat;
	int id;
	int errors;
	char msg[256];
};

static void *thread_writer(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char name[CATALOG_NAME_MAX];
		snprintf(name, sizeof name, "t%d-%d", w->id, i);
		int rc = add_client(w->cat, name, "test", NULL, NULL);
		struct catalog_key k = make_key(name, w->id * 1000 + i);
		if (!rc)
			rc = catalog_key_add(w->cat, &k);
		struct catalog_client c;
		if (!rc)
			rc = catalog_client_get(w->cat, name, &c);
		if (rc) {
			w->errors++;
			snprintf(w->msg, sizeof w->msg, "%s",
				 catalog_errmsg(w->cat));
		}
	}
	return NULL;
}

/* The daemon's threads on one connection while another process (assetctl)
 * writes through its own: no "database is locked" may surface. */
static void test_concurrent_writers(void **state)
{
	struct catalog *cat = open_ok();
	add_region(cat, "test", "file:///srv/assets/");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct catalog *c2 = NULL;
		char err[256];
		if (catalog_open(path, &c2, err, sizeof err) != 0)
			_exit(10);
		for (int i = 0; i < 150; i++) {
			struct catalog_run r = {.kind = "sync", .what = "us"};
			if (catalog_run_add(c2, &r) != 0) {
				fprintf(stderr, "child: %s\n",
					catalog_errmsg(c2));
				_exit(11);
			}
			char name[32];
			snprintf(name, sizeof name, "p-%d", i);
			if (add_client(c2, name, "test", NULL, NULL) != 0) {
				fprintf(stderr, "child: %s\n",
					catalog_errmsg(c2));
				_exit(12);
			}
		}
		catalog_close(c2);
		_exit(0);
	}
	pthread_t th[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.cat = cat, .id = i};
		assert_int_equal(
		    pthread_create(&th[i], NULL, thread_writer, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		if (w[i].errors)
			fail_msg("thread %d: %d errors, last: %s", i,
				 w[i].errors, w[i].msg);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	struct names nm = {.count = 0};
	assert_int_equal(catalog_client_list(cat, collect_clients, &nm), 0);
	assert_int_equal(nm.count, THREADS * PER_THREAD + 150);
	assert_int_equal(catalog_check(cat), 0);
	catalog_close(cat);
	assert_int_equal(raw_count("SELECT count(*) FROM keys"),
			 THREADS * PER_THREAD);
	assert_int_equal(raw_count("SELECT count(*) FROM runs"), 150);
}

/* Two processes opening a fresh file at once: one creates the schema, the
 * other waits and finds it done. */
static void test_concurrent_first_open(void **state)
{
	pid_t pids[3];
	for (int i = 0; i < 3; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct catalog *c = NULL;
			char err[256];
			if (catalog_open(path, &c, err, sizeof err) != 0) {
				fprintf(stderr, "open: %s\n", err);
				_exit(1);
			}
			catalog_close(c);
			_exit(0);
		}
	}
	for (int i = 0; i < 3; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(raw_count("SELECT count(*) FROM schema_version"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_creates_wal_0600, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_open_missing_dir, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_version_0, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_migration_failure_rolls_back,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_files_refused, setup,
					    teardown),
	    cmocka_unit_test(test_name_valid),
	    cmocka_unit_test(test_location_normalise),
	    cmocka_unit_test_setup_teardown(test_regions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_collections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_archives, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_writers, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
