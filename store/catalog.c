/*
 * catalog.c - the SQLite catalog: schema, migrations, queries.
 *
 * One struct catalog is one SQLite connection, shared by the daemon's
 * threads under one mutex; assetctl opens its own connection in its own
 * process. The file is in WAL mode, so readers never wait for a writer, and
 * writers wait for each other through a busy timeout: every change runs in a
 * BEGIN IMMEDIATE transaction (which takes the write lock up front, so that
 * SQLite can honour the timeout instead of failing a deferred upgrade), and
 * if the lock is still busy after the timeout the whole attempt is retried a
 * few times before "database is locked" would reach a user.
 *
 * Every change is one transaction: a refused input (unknown name, invalid
 * location, duplicate, region in use) rolls back and leaves the file as it
 * was. Statements are prepared once per connection and kept.
 *
 * Schema: migrations[] holds one SQL script per version step; opening a file
 * at version V runs steps V..CATALOG_SCHEMA_VERSION-1 and records the new
 * version, all in one transaction. A newer version is refused. To add
 * version 2, append its step to migrations[] and bump CATALOG_SCHEMA_VERSION.
 *
 * List functions copy the rows into memory first and call the callback with
 * the mutex released, so a callback may call the catalog again.
 */
#include "catalog.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

/* How long one attempt waits for another writer, and how many attempts. */
#define BUSY_TIMEOUT_MS 5000
#define BUSY_ATTEMPTS	8

/* ---- schema ----------------------------------------------------------- */

/* migrations[v] brings a catalog from version v to v+1. */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema. */
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "  version INTEGER NOT NULL);"
    "CREATE TABLE regions ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  assets TEXT NOT NULL,"
    "  snapshot TEXT NOT NULL DEFAULT '',"
    "  endpoint TEXT NOT NULL DEFAULT '',"
    "  s3_region TEXT NOT NULL DEFAULT '',"
    "  profile TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE clients ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  region_id INTEGER REFERENCES regions(id) ON DELETE RESTRICT,"
    "  location TEXT NOT NULL,"
    "  attachment_key TEXT NOT NULL DEFAULT '',"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  quota_bytes INTEGER NOT NULL DEFAULT 0,"
    "  quota_objects INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  endpoint TEXT NOT NULL DEFAULT '',"
    "  s3_region TEXT NOT NULL DEFAULT '',"
    "  profile TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX clients_region ON clients(region_id);"
    "CREATE TABLE collections ("
    "  id INTEGER PRIMARY KEY,"
    "  client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  subfolder TEXT NOT NULL DEFAULT '',"
    "  UNIQUE (client_id, name));"
    "CREATE INDEX collections_name ON collections(name);"
    "CREATE TABLE keys ("
    "  id INTEGER PRIMARY KEY,"
    "  client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,"
    "  type TEXT NOT NULL,"
    "  blob TEXT NOT NULL,"
    "  fingerprint TEXT NOT NULL,"
    "  comment TEXT NOT NULL DEFAULT '',"
    "  added INTEGER NOT NULL,"
    "  last_used INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (client_id, fingerprint));"
    "CREATE INDEX keys_blob ON keys(client_id, blob);"
    /* Archives and runs are history: they name the client as text so the
     * record of an archive outlives a removed client, like its files. */
    "CREATE TABLE archives ("
    "  id INTEGER PRIMARY KEY,"
    "  client TEXT NOT NULL,"
    "  location TEXT NOT NULL,"
    "  format TEXT NOT NULL DEFAULT 'tar.xz',"
    "  created INTEGER NOT NULL,"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  objects INTEGER NOT NULL DEFAULT 0,"
    "  sha256 TEXT NOT NULL DEFAULT '',"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX archives_client ON archives(client, created);"
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  what TEXT NOT NULL DEFAULT '',"
    "  started INTEGER NOT NULL,"
    "  finished INTEGER NOT NULL DEFAULT 0,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  listed INTEGER NOT NULL DEFAULT 0,"
    "  copied INTEGER NOT NULL DEFAULT 0,"
    "  skipped INTEGER NOT NULL DEFAULT 0,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0,"
    "  bytes INTEGER NOT NULL DEFAULT 0,"
    "  summary TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX runs_started ON runs(kind, started);",
    /* 1 -> 2: usage per client and top-level folder; when each client
     * was last recounted (0: never, its figures cover only the writes
     * seen since the upgrade). */
    "CREATE TABLE usage ("
    "  client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,"
    "  folder TEXT NOT NULL,"
    "  objects INTEGER NOT NULL DEFAULT 0,"
    "  bytes INTEGER NOT NULL DEFAULT 0,"
    "  updated INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (client_id, folder)) WITHOUT ROWID;"
    "ALTER TABLE clients ADD COLUMN usage_recounted INTEGER NOT NULL "
    "DEFAULT 0;",
};

_Static_assert(sizeof migrations / sizeof migrations[0] ==
		   CATALOG_SCHEMA_VERSION,
	       "one migration step per schema version");

/* ---- prepared statements ---------------------------------------------- */

enum stmt_id {
	S_REGION_ID,
	S_REGION_INSERT,
	S_REGION_GET,
	S_REGION_UPDATE,
	S_REGION_INUSE,
	S_REGION_DELETE,
	S_REGION_LIST,
	S_CLIENT_ID,
	S_CLIENT_INSERT,
	S_CLIENT_GET,
	S_CLIENT_UPDATE,
	S_CLIENT_DELETE,
	S_CLIENT_LIST,
	S_CLIENT_LOCATIONS,
	S_COLL_INSERT,
	S_COLL_DELETE,
	S_COLL_FIND,
	S_COLL_LIST,
	S_KEY_INSERT,
	S_KEY_DEL_FP,
	S_KEY_DEL_ID,
	S_KEY_FIND,
	S_KEY_FIND_FP,
	S_KEY_TOUCH,
	S_KEY_LIST,
	S_ARCH_INSERT,
	S_ARCH_UPDATE,
	S_ARCH_GET,
	S_ARCH_DELETE,
	S_ARCH_LIST,
	S_RUN_INSERT,
	S_RUN_UPDATE,
	S_RUN_LIST,
	S_USAGE_TOTAL,
	S_USAGE_UPSERT,
	S_USAGE_CLEAR,
	S_USAGE_RECOUNTED,
	S_USAGE_LIST,
	S_COUNT
};

#define REGION_COLS "id, name, assets, snapshot, endpoint, s3_region, profile"
#define CLIENT_COLS                                                            \
	"c.id, c.name, COALESCE(r.name, ''), c.location, c.attachment_key, "   \
	"c.disabled, c.quota_bytes, c.quota_objects, c.created, "              \
	"c.endpoint, c.s3_region, c.profile, COALESCE(r.endpoint, ''), "       \
	"COALESCE(r.s3_region, ''), COALESCE(r.profile, '') "                  \
	"FROM clients c LEFT JOIN regions r ON r.id = c.region_id"
#define COLL_COLS                                                              \
	"co.id, co.name, c.name, co.subfolder FROM collections co "            \
	"JOIN clients c ON c.id = co.client_id"
#define KEY_COLS                                                               \
	"k.id, c.name, k.type, k.blob, k.fingerprint, k.comment, k.added, "    \
	"k.last_used FROM keys k JOIN clients c ON c.id = k.client_id"
#define ARCH_COLS                                                              \
	"id, client, location, format, created, size, objects, sha256, "       \
	"state, error FROM archives"
#define RUN_COLS                                                               \
	"id, kind, what, started, finished, state, listed, copied, "           \
	"skipped, deleted, failed, bytes, summary FROM runs"

static const char *const stmt_sql[S_COUNT] = {
    [S_REGION_ID] = "SELECT id FROM regions WHERE name = ?1",
    [S_REGION_INSERT] = "INSERT INTO regions (name, assets, snapshot, "
			"endpoint, s3_region, profile) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_REGION_GET] = "SELECT " REGION_COLS " FROM regions WHERE name = ?1",
    [S_REGION_UPDATE] = "UPDATE regions SET assets = ?2, snapshot = ?3, "
			"endpoint = ?4, s3_region = ?5, profile = ?6 "
			"WHERE name = ?1",
    [S_REGION_INUSE] = "SELECT c.name FROM clients c JOIN regions r "
		       "ON r.id = c.region_id WHERE r.name = ?1 "
		       "ORDER BY c.name",
    [S_REGION_DELETE] = "DELETE FROM regions WHERE name = ?1",
    [S_REGION_LIST] = "SELECT " REGION_COLS " FROM regions ORDER BY name",
    [S_CLIENT_ID] = "SELECT id FROM clients WHERE name = ?1",
    [S_CLIENT_INSERT] = "INSERT INTO clients (name, region_id, location, "
			"attachment_key, disabled, quota_bytes, "
			"quota_objects, created, endpoint, s3_region, "
			"profile) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
			"?9, ?10, ?11)",
    [S_CLIENT_GET] = "SELECT " CLIENT_COLS " WHERE c.name = ?1",
    [S_CLIENT_UPDATE] = "UPDATE clients SET region_id = ?2, location = ?3, "
			"attachment_key = ?4, disabled = ?5, "
			"quota_bytes = ?6, quota_objects = ?7, "
			"endpoint = ?9, s3_region = ?10, profile = ?11 "
			"WHERE name = ?1", /* ?8, created, stays */
    [S_CLIENT_DELETE] = "DELETE FROM clients WHERE name = ?1",
    [S_CLIENT_LIST] = "SELECT " CLIENT_COLS " ORDER BY c.name",
    [S_CLIENT_LOCATIONS] = "SELECT name, location FROM clients "
			   "WHERE name <> ?1",
    [S_COLL_INSERT] = "INSERT INTO collections (client_id, name, "
		      "subfolder) VALUES (?1, ?2, ?3)",
    [S_COLL_DELETE] = "DELETE FROM collections WHERE client_id = ?1 "
		      "AND name = ?2",
    [S_COLL_FIND] = "SELECT " COLL_COLS " WHERE co.name = ?1 AND "
		    "(?2 IS NULL OR c.name = ?2) ORDER BY c.name LIMIT 2",
    [S_COLL_LIST] = "SELECT " COLL_COLS " WHERE ?1 IS NULL OR c.name = ?1 "
		    "ORDER BY c.name, co.name",
    [S_KEY_INSERT] = "INSERT INTO keys (client_id, type, blob, "
		     "fingerprint, comment, added, last_used) "
		     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_KEY_DEL_FP] = "DELETE FROM keys WHERE client_id = ?1 AND "
		     "fingerprint = ?2",
    [S_KEY_DEL_ID] = "DELETE FROM keys WHERE client_id = ?1 AND id = ?2",
    [S_KEY_FIND] = "SELECT " KEY_COLS " WHERE c.name = ?1 AND "
		   "k.type = ?2 AND k.blob = ?3",
    [S_KEY_FIND_FP] = "SELECT " KEY_COLS " WHERE c.name = ?1 AND "
		      "k.fingerprint = ?2",
    [S_KEY_TOUCH] = "UPDATE keys SET last_used = ?2 WHERE id = ?1",
    [S_KEY_LIST] = "SELECT " KEY_COLS " WHERE ?1 IS NULL OR c.name = ?1 "
		   "ORDER BY c.name, k.id",
    [S_ARCH_INSERT] = "INSERT INTO archives (client, location, format, "
		      "created, size, objects, sha256, state, error) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_ARCH_UPDATE] = "UPDATE archives SET client = ?1, location = ?2, "
		      "format = ?3, created = ?4, size = ?5, "
		      "objects = ?6, sha256 = ?7, state = ?8, "
		      "error = ?9 WHERE id = ?10",
    [S_ARCH_GET] = "SELECT " ARCH_COLS " WHERE id = ?1",
    [S_ARCH_DELETE] = "DELETE FROM archives WHERE id = ?1",
    [S_ARCH_LIST] = "SELECT " ARCH_COLS " WHERE ?1 IS NULL OR client = ?1 "
		    "ORDER BY created DESC, id DESC",
    [S_RUN_INSERT] = "INSERT INTO runs (kind, what, started, finished, "
		     "state, listed, copied, skipped, deleted, failed, "
		     "bytes, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
		     "?8, ?9, ?10, ?11, ?12)",
    [S_RUN_UPDATE] = "UPDATE runs SET kind = ?1, what = ?2, started = ?3, "
		     "finished = ?4, state = ?5, listed = ?6, copied = ?7, "
		     "skipped = ?8, deleted = ?9, failed = ?10, "
		     "bytes = ?11, summary = ?12 WHERE id = ?13",
    [S_RUN_LIST] = "SELECT " RUN_COLS " WHERE ?1 IS NULL OR kind = ?1 "
		   "ORDER BY started DESC, id DESC LIMIT ?2",
    [S_USAGE_TOTAL] = "SELECT c.id, COALESCE(SUM(u.objects), 0), "
		      "COALESCE(SUM(u.bytes), 0), c.quota_objects, "
		      "c.quota_bytes, c.usage_recounted FROM clients c "
		      "LEFT JOIN usage u ON u.client_id = c.id "
		      "WHERE c.name = ?1 GROUP BY c.id",
    [S_USAGE_UPSERT] = "INSERT INTO usage (client_id, folder, objects, "
		       "bytes, updated) VALUES (?1, ?2, max(?3, 0), "
		       "max(?4, 0), ?5) ON CONFLICT (client_id, folder) DO "
		       "UPDATE SET objects = max(objects + ?3, 0), "
		       "bytes = max(bytes + ?4, 0), updated = ?5",
    [S_USAGE_CLEAR] = "DELETE FROM usage WHERE client_id = ?1",
    [S_USAGE_RECOUNTED] = "UPDATE clients SET usage_recounted = ?2 "
			  "WHERE id = ?1",
    [S_USAGE_LIST] = "SELECT c.name, u.folder, u.objects, u.bytes, "
		     "u.updated FROM usage u JOIN clients c ON "
		     "c.id = u.client_id WHERE ?1 IS NULL OR c.name = ?1 "
		     "ORDER BY c.name, u.folder",
};

struct catalog {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *stmt[S_COUNT];
	char path[1024];
};

/* ---- errors ----------------------------------------------------------- */

static _Thread_local char errbuf[512];

static int fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof errbuf, fmt, ap);
	va_end(ap);
	return code;
}

const char *catalog_errmsg(struct catalog *cat)
{
	(void)cat;
	return errbuf[0] ? errbuf : "no error";
}

/* Map a failed SQLite call to our codes, with SQLite's own words. */
static int db_fail(struct catalog *cat, int rc, const char *what)
{
	const char *msg =
	    cat && cat->db ? sqlite3_errmsg(cat->db) : sqlite3_errstr(rc);
	if (rc == SQLITE_NOMEM)
		return fail(CATALOG_ENOMEM, "%s: out of memory", what);
	if (rc == SQLITE_CONSTRAINT_UNIQUE ||
	    rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return fail(CATALOG_EEXIST, "%s: already exists", what);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return fail(CATALOG_EINUSE, "%s: still referenced", what);
	return fail(CATALOG_EDB, "%s: %s", what, msg);
}

static int is_busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* ---- statements and transactions ---------------------------------------- */

/* The prepared statement ID, reset and unbound, or NULL (error set). */
static sqlite3_stmt *stmt(struct catalog *cat, enum stmt_id id)
{
	sqlite3_stmt *s = cat->stmt[id];
	if (!s) {
		int rc =
		    sqlite3_prepare_v3(cat->db, stmt_sql[id], -1,
				       SQLITE_PREPARE_PERSISTENT, &s, NULL);
		if (rc != SQLITE_OK) {
			db_fail(cat, rc, "preparing a query");
			return NULL;
		}
		cat->stmt[id] = s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* sqlite3_step, retrying a statement that found the file busy even after
 * the busy timeout. Only a statement that has produced nothing yet is
 * retried (restarting one midway would repeat rows), and only outside a
 * transaction (inside one we hold the write lock already). */
/* SQLite answers some lock conflicts (switching a fresh file to WAL while
 * another process creates it, a deadlock-avoiding upgrade) with SQLITE_BUSY
 * at once, without calling the busy handler: wait a little before retrying,
 * longer each time (5, 10, 20, ... ms). */
static void busy_pause(int attempt)
{
	struct timespec ts = { 0, (long)(5L << (attempt < 8 ? attempt : 8)) * 1000000L };
	nanosleep(&ts, NULL);
}

static int step(struct catalog *cat, sqlite3_stmt *s)
{
	int fresh = !sqlite3_stmt_busy(s);
	int rc = SQLITE_BUSY;
	for (int i = 0; i < BUSY_ATTEMPTS; i++) {
		rc = sqlite3_step(s);
		if (!is_busy(rc) || !fresh || !sqlite3_get_autocommit(cat->db))
			return rc;
		sqlite3_reset(s);
		busy_pause(i);
	}
	return rc;
}

/* Run SQL (no results wanted), retrying while busy. */
static int exec_retry(struct catalog *cat, const char *sql)
{
	int rc = SQLITE_OK;
	for (int i = 0; i < BUSY_ATTEMPTS; i++) {
		rc = sqlite3_exec(cat->db, sql, NULL, NULL, NULL);
		if (!is_busy(rc))
			break;
		busy_pause(i);
	}
	return rc;
}

static int tx_begin(struct catalog *cat)
{
	int rc = exec_retry(cat, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		return db_fail(cat, rc, "starting a transaction");
	return 0;
}

/* Commit if RC is 0, else roll back; returns RC or the commit's failure. */
static int tx_end(struct catalog *cat, int rc)
{
	if (rc == 0) {
		int src = exec_retry(cat, "COMMIT");
		if (src == SQLITE_OK)
			return 0;
		rc = db_fail(cat, src, "committing");
	}
	if (!sqlite3_get_autocommit(cat->db))
		sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Step a statement that changes rows; SQLITE_DONE -> 0. */
static int step_done(struct catalog *cat, sqlite3_stmt *s, const char *what)
{
	int rc = step(cat, s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_fail(cat, rc, what);
	return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

static void bind_opt_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static void col_text(sqlite3_stmt *s, int i, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	snprintf(buf, size, "%s", t ? (const char *)t : "");
}

/* Look up the id of NAME with statement ID (a region or client).
 * CATALOG_ENOENT with the message "no KIND NAME" if missing. */
static int lookup_id(struct catalog *cat, enum stmt_id id, const char *kind,
		     const char *name, int64_t *out)
{
	sqlite3_stmt *s = stmt(cat, id);
	if (!s)
		return CATALOG_EDB;
	bind_text(s, 1, name);
	int rc = step(cat, s);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		return 0;
	}
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return fail(CATALOG_ENOENT, "no %s named '%s'", kind, name);
	return db_fail(cat, rc, "looking up a name");
}

/* ---- validation --------------------------------------------------------- */

int catalog_name_valid(const char *name)
{
	if (!name || !name[0])
		return 0;
	size_t n = strlen(name);
	if (n > CATALOG_NAME_MAX - 1)
		return 0;
	if (!(islower((unsigned char)name[0]) ||
	      isdigit((unsigned char)name[0])))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int check_name(const char *what, const char *name)
{
	if (!catalog_name_valid(name))
		return fail(CATALOG_EINVAL,
			    "invalid %s name '%s': use 1 to 63 of a-z, 0-9, "
			    "'_' and '-', starting with a letter or digit",
			    what, name ? name : "");
	return 0;
}

/* Text that must fit a buffer of SIZE and hold no control character. */
static int check_text(const char *what, const char *v, size_t size,
		      int allow_empty)
{
	if (!v)
		v = "";
	if (!allow_empty && !v[0])
		return fail(CATALOG_EINVAL, "%s must not be empty", what);
	size_t n = strlen(v);
	if (n >= size)
		return fail(CATALOG_EINVAL,
			    "%s is too long (%zu bytes, at most %zu)", what, n,
			    size - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return fail(CATALOG_EINVAL,
				    "%s contains a control character", what);
	return 0;
}

/* One '/'-separated relative path: no empty, "." or ".." segment, no
 * backslash. Used for S3 prefixes, file paths and subfolders. */
static int path_segments_ok(const char *p, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/') {
			if (p[i] == '\\' || (unsigned char)p[i] < 0x20 ||
			    p[i] == 0x7f)
				return 0;
			continue;
		}
		size_t len = i - start;
		if (len == 0 || (len == 1 && p[start] == '.') ||
		    (len == 2 && p[start] == '.' && p[start + 1] == '.'))
			return 0;
		if (len > 255)
			return 0;
		start = i + 1;
	}
	return 1;
}

static int bucket_valid(const char *b, size_t n)
{
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return 0;
	}
	if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
		return 0;
	return 1;
}

int catalog_location_normalise(const char *in, char *out, size_t outlen)
{
	if (!in || !in[0])
		return fail(CATALOG_EINVAL, "empty location");
	size_t n = strlen(in);
	if (n + 2 > outlen || n + 2 > CATALOG_URL_MAX)
		return fail(CATALOG_EINVAL, "location too long");
	/* Strip one or more trailing '/', remembered as the folder mark. */
	size_t end = n;
	if (strncmp(in, "file://", 7) == 0) {
		if (in[7] != '/')
			return fail(CATALOG_EINVAL,
				    "invalid location '%s': a file location is "
				    "file:///absolute/path/",
				    in);
		while (end > 8 && in[end - 1] == '/')
			end--;
		if (end > 8 && !path_segments_ok(in + 8, end - 8))
			return fail(CATALOG_EINVAL,
				    "invalid location '%s': empty, '.' or '..' "
				    "path segment, or a control character",
				    in);
		if (end == 8 && n > 8)
			return fail(CATALOG_EINVAL, "invalid location '%s'",
				    in);
	} else if (strncmp(in, "s3://", 5) == 0) {
		const char *b = in + 5;
		const char *slash = strchr(b, '/');
		size_t blen = slash ? (size_t)(slash - b) : strlen(b);
		if (!bucket_valid(b, blen))
			return fail(CATALOG_EINVAL,
				    "invalid location '%s': '%.*s' is not a "
				    "valid S3 bucket name",
				    in, (int)blen, b);
		while (end > 5 + blen + 1 && in[end - 1] == '/')
			end--;
		if (slash && end > 5 + blen + 1 &&
		    !path_segments_ok(slash + 1, end - (5 + blen + 1)))
			return fail(CATALOG_EINVAL,
				    "invalid location '%s': empty, '.' or '..' "
				    "prefix segment, or a control character",
				    in);
		if (slash && end == 5 + blen + 1 && n > end)
			return fail(CATALOG_EINVAL, "invalid location '%s'",
				    in);
		if (!slash)
			end = n;
	} else {
		return fail(CATALOG_EINVAL,
			    "invalid location '%s': use file:///absolute/path/ "
			    "or s3://bucket/prefix/",
			    in);
	}
	memmove(out, in, end);
	if (out[end - 1] != '/')
		out[end++] = '/';
	out[end] = '\0';
	return 0;
}

/* An S3 endpoint: http(s)://host[:port][/], stored without a trailing '/'. */
static int endpoint_normalise(const char *in, char *out, size_t outlen)
{
	if (!in || !in[0]) {
		out[0] = '\0';
		return 0;
	}
	int rc = check_text("endpoint", in, outlen, 0);
	if (rc)
		return rc;
	if (strncmp(in, "http://", 7) != 0 && strncmp(in, "https://", 8) != 0)
		return fail(CATALOG_EINVAL,
			    "invalid endpoint '%s': use http://host:port or "
			    "https://host",
			    in);
	const char *host = in + (in[4] == 's' ? 8 : 7);
	if (!host[0] || host[0] == '/' || strpbrk(in, " \t"))
		return fail(CATALOG_EINVAL, "invalid endpoint '%s'", in);
	size_t n = strlen(in);
	while (n > 0 && in[n - 1] == '/')
		n--;
	memmove(out, in, n);
	out[n] = '\0';
	return 0;
}

/* An S3 region name or a credentials profile name. */
static int word_valid(const char *what, const char *v, size_t size,
		      const char *extra)
{
	if (!v || !v[0])
		return 0;
	if (strlen(v) >= size)
		return fail(CATALOG_EINVAL, "%s '%s' is too long", what, v);
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(extra, *p))
			return fail(CATALOG_EINVAL, "invalid %s '%s'", what, v);
	return 0;
}

/* Validate and normalise a region in place (a copy the caller owns). */
static int region_check(struct catalog_region *r)
{
	int rc = check_name("region", r->name);
	if (!rc && !r->assets[0])
		rc = fail(CATALOG_EINVAL,
			  "region '%s' needs an assets location", r->name);
	if (!rc)
		rc = catalog_location_normalise(r->assets, r->assets,
						sizeof r->assets);
	if (!rc && r->snapshot[0])
		rc = catalog_location_normalise(r->snapshot, r->snapshot,
						sizeof r->snapshot);
	if (!rc && r->snapshot[0] && strcmp(r->snapshot, r->assets) == 0)
		rc = fail(CATALOG_EINVAL,
			  "the snapshot location must differ from the assets "
			  "location");
	if (!rc)
		rc = endpoint_normalise(r->endpoint, r->endpoint,
					sizeof r->endpoint);
	if (!rc)
		rc = word_valid("S3 region", r->s3_region, sizeof r->s3_region,
				"-");
	if (!rc)
		rc =
		    word_valid("profile", r->profile, sizeof r->profile, "-_.");
	return rc;
}

/* ---- open / close ------------------------------------------------------- */

/* The version recorded in the file: 0 for an empty file, -1 (error set) if
 * the file holds tables but no schema_version (not a catalog). */
static int read_version(struct catalog *cat, int *out)
{
	sqlite3_stmt *s = NULL;
	int rc =
	    sqlite3_prepare_v2(cat->db,
			       "SELECT count(*) FROM sqlite_master WHERE "
			       "type = 'table' AND name = 'schema_version'",
			       -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(cat, rc, "reading the schema");
	rc = step(cat, s);
	int have = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (have < 0)
		return db_fail(cat, rc, "reading the schema");
	if (have == 0) {
		rc = sqlite3_prepare_v2(cat->db,
					"SELECT count(*) FROM sqlite_master "
					"WHERE name NOT LIKE 'sqlite_%'",
					-1, &s, NULL);
		if (rc != SQLITE_OK)
			return db_fail(cat, rc, "reading the schema");
		rc = step(cat, s);
		int other = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
		sqlite3_finalize(s);
		if (other < 0)
			return db_fail(cat, rc, "reading the schema");
		if (other > 0)
			return fail(CATALOG_EINVAL,
				    "%s is a SQLite file but not an assetd "
				    "catalog (no schema_version table)",
				    cat->path);
		*out = 0;
		return 0;
	}
	rc = sqlite3_prepare_v2(
	    cat->db, "SELECT max(version) FROM schema_version", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(cat, rc, "reading the schema version");
	rc = step(cat, s);
	int v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (v < 0)
		return db_fail(cat, rc, "reading the schema version");
	*out = v;
	return 0;
}

static int refuse_newer(struct catalog *cat, int v)
{
	return fail(CATALOG_EVERSION,
		    "catalog %s has schema version %d, newer than this "
		    "program's %d: use a newer assetd/assetctl",
		    cat->path, v, CATALOG_SCHEMA_VERSION);
}

/* Bring the file to CATALOG_SCHEMA_VERSION in one transaction. */
static int migrate(struct catalog *cat)
{
	int v = 0;
	int rc = read_version(cat, &v);
	if (rc)
		return rc;
	if (v > CATALOG_SCHEMA_VERSION)
		return refuse_newer(cat, v);
	if (v == CATALOG_SCHEMA_VERSION)
		return 0;
	rc = tx_begin(cat);
	if (rc)
		return rc;
	/* Another process may have migrated while we waited for the lock. */
	rc = read_version(cat, &v);
	if (!rc && v > CATALOG_SCHEMA_VERSION)
		rc = refuse_newer(cat, v);
	int from = v;
	for (; !rc && v < CATALOG_SCHEMA_VERSION; v++) {
		char *msg = NULL;
		int src =
		    sqlite3_exec(cat->db, migrations[v], NULL, NULL, &msg);
		if (src != SQLITE_OK) {
			rc = fail(CATALOG_EDB,
				  "migrating catalog %s from schema version %d "
				  "to %d failed: %s",
				  cat->path, v, v + 1,
				  msg ? msg : sqlite3_errstr(src));
		}
		sqlite3_free(msg);
	}
	if (!rc && from != CATALOG_SCHEMA_VERSION) {
		char sql[128];
		snprintf(sql, sizeof sql,
			 "DELETE FROM schema_version; "
			 "INSERT INTO schema_version (version) VALUES (%d)",
			 CATALOG_SCHEMA_VERSION);
		int src = sqlite3_exec(cat->db, sql, NULL, NULL, NULL);
		if (src != SQLITE_OK)
			rc = db_fail(cat, src, "recording the schema version");
	}
	/* A migration must leave every foreign key satisfied. */
	if (!rc) {
		sqlite3_stmt *s = NULL;
		int src = sqlite3_prepare_v2(
		    cat->db, "PRAGMA foreign_key_check", -1, &s, NULL);
		if (src == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
			rc = fail(CATALOG_EDB,
				  "migrating catalog %s: foreign keys broken",
				  cat->path);
		sqlite3_finalize(s);
	}
	return tx_end(cat, rc);
}

int catalog_open(const char *path, struct catalog **out, char *err,
		 size_t errlen)
{
	*out = NULL;
	struct catalog *cat = calloc(1, sizeof *cat);
	int rc;
	if (!cat) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return CATALOG_ENOMEM;
	}
	pthread_mutex_init(&cat->lock, NULL);
	if (snprintf(cat->path, sizeof cat->path, "%s", path) >=
	    (int)sizeof cat->path) {
		rc = fail(CATALOG_EINVAL, "catalog path too long");
		goto out;
	}
	/* Create the file ourselves, mode 0600: it holds attachment keys.
	 * SQLite gives the -wal and -shm files the same mode. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		rc = fail(CATALOG_EDB, "cannot open catalog %s: %s%s", path,
			  strerror(e),
			  e == ENOENT ? " (its directory does not exist: "
					"check DataDir/Catalog)"
				      : "");
		goto out;
	}
	close(fd);
	int src = sqlite3_open_v2(path, &cat->db,
				  SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				      SQLITE_OPEN_NOMUTEX,
				  NULL);
	if (src != SQLITE_OK) {
		rc = fail(CATALOG_EDB, "cannot open catalog %s: %s", path,
			  cat->db ? sqlite3_errmsg(cat->db)
				  : sqlite3_errstr(src));
		goto out;
	}
	sqlite3_extended_result_codes(cat->db, 1);
	sqlite3_busy_timeout(cat->db, BUSY_TIMEOUT_MS);

	/* WAL: readers never block the writer nor it them. */
	sqlite3_stmt *s = NULL;
	src = sqlite3_prepare_v2(cat->db, "PRAGMA journal_mode = WAL", -1, &s,
				 NULL);
	if (src == SQLITE_OK)
		src = step(cat, s);
	if (src != SQLITE_ROW) {
		rc = fail(CATALOG_EDB, "cannot open catalog %s: %s", path,
			  sqlite3_errmsg(cat->db));
		sqlite3_finalize(s);
		goto out;
	}
	const unsigned char *mode = sqlite3_column_text(s, 0);
	int wal = mode && strcmp((const char *)mode, "wal") == 0;
	sqlite3_finalize(s);
	if (!wal) {
		rc = fail(CATALOG_EDB, "catalog %s: cannot switch to WAL mode",
			  path);
		goto out;
	}
	src = exec_retry(cat, "PRAGMA foreign_keys = ON; "
			      "PRAGMA synchronous = FULL");
	if (src != SQLITE_OK) {
		rc = db_fail(cat, src, "configuring the catalog");
		goto out;
	}
	rc = migrate(cat);
out:
	if (rc) {
		if (err && errlen)
			snprintf(err, errlen, "%s", errbuf);
		catalog_close(cat);
		return rc;
	}
	*out = cat;
	return 0;
}

void catalog_close(struct catalog *cat)
{
	if (!cat)
		return;
	if (cat->db) {
		for (int i = 0; i < S_COUNT; i++)
			sqlite3_finalize(cat->stmt[i]);
		sqlite3_close(cat->db);
	}
	pthread_mutex_destroy(&cat->lock);
	free(cat);
}

static void lock(struct catalog *cat)
{
	pthread_mutex_lock(&cat->lock);
}

static void unlock(struct catalog *cat)
{
	pthread_mutex_unlock(&cat->lock);
}

int catalog_schema_version(struct catalog *cat, int *out)
{
	lock(cat);
	int rc = read_version(cat, out);
	unlock(cat);
	return rc;
}

int catalog_check(struct catalog *cat)
{
	lock(cat);
	sqlite3_stmt *s = NULL;
	int rc =
	    sqlite3_prepare_v2(cat->db, "PRAGMA integrity_check", -1, &s, NULL);
	int res = 0;
	if (rc != SQLITE_OK) {
		res = db_fail(cat, rc, "integrity check");
	} else {
		rc = step(cat, s);
		const unsigned char *t =
		    rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
		if (!t)
			res = db_fail(cat, rc, "integrity check");
		else if (strcmp((const char *)t, "ok") != 0)
			res = fail(CATALOG_EDB, "catalog %s is damaged: %s",
				   cat->path, t);
	}
	sqlite3_finalize(s);
	if (!res) {
		rc = sqlite3_prepare_v2(cat->db, "PRAGMA foreign_key_check", -1,
					&s, NULL);
		if (rc != SQLITE_OK)
			res = db_fail(cat, rc, "foreign key check");
		else if (step(cat, s) == SQLITE_ROW)
			res = fail(CATALOG_EDB,
				   "catalog %s: a row references a missing "
				   "%s row",
				   cat->path, sqlite3_column_text(s, 2));
		sqlite3_finalize(s);
	}
	unlock(cat);
	return res;
}

/* ---- listing helper ------------------------------------------------------ */

typedef void (*row_reader)(sqlite3_stmt *s, void *out);

/* Step S to the end, reading each row with READ into a growing array of
 * ELSIZE-byte elements. */
static int collect(struct catalog *cat, sqlite3_stmt *s, size_t elsize,
		   row_reader read, void **out, size_t *count)
{
	char *arr = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = step(cat, s)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char *na = realloc(arr, ncap * elsize);
			if (!na) {
				free(arr);
				sqlite3_reset(s);
				return fail(CATALOG_ENOMEM, "out of memory");
			}
			arr = na;
			cap = ncap;
		}
		memset(arr + n * elsize, 0, elsize);
		read(s, arr + n * elsize);
		n++;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		free(arr);
		return db_fail(cat, rc, "listing");
	}
	*out = arr;
	*count = n;
	return 0;
}

/* The rows of a list, copied under the lock so that the callbacks can run
 * without it: statement WHICH, its ?1 bound to FILTER (NULL: every row)
 * when it takes a parameter, its ?2 to LIMIT when it takes two. OWNER, if
 * set, names a client that must exist: an unknown one is an error rather
 * than an empty list. *OUT is an array of *COUNT ELSIZE-byte rows. */
static int list_copy(struct catalog *cat, enum stmt_id which,
		     const char *owner, const char *filter, int limit,
		     row_reader read, size_t elsize, void **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	lock(cat);
	int rc = 0;
	if (owner) {
		int64_t cid;
		rc = lookup_id(cat, S_CLIENT_ID, "client", owner, &cid);
	}
	sqlite3_stmt *s = rc ? NULL : stmt(cat, which);
	if (!rc && !s)
		rc = CATALOG_EDB;
	if (!rc) {
		int params = sqlite3_bind_parameter_count(s);
		if (params >= 1)
			bind_opt_text(s, 1, filter);
		if (params >= 2)
			sqlite3_bind_int(s, 2, limit);
		rc = collect(cat, s, elsize, read, out, count);
	}
	unlock(cat);
	return rc;
}

/* Step S, its parameters bound, for the one row it selects, into OUT
 * (SIZE bytes, zeroed first) with READ; S is reset. 0 with the row, 1
 * when there is none, or the error of WHAT ("reading the region"). */
static int read_one(struct catalog *cat, sqlite3_stmt *s, row_reader read,
		    void *out, size_t size, const char *what)
{
	int src = step(cat, s);
	int rc = 1;
	if (src == SQLITE_ROW) {
		memset(out, 0, size);
		read(s, out);
		rc = 0;
	} else if (src != SQLITE_DONE) {
		rc = db_fail(cat, src, what);
	}
	sqlite3_reset(s);
	return rc;
}

/* One row of TABLE by name, or by id when NAME is NULL: statement WHICH
 * with that as ?1, read into OUT (SIZE bytes) with READ. The errors say
 * "no region named 'x'" or "no archive with id 3". */
static int row_get(struct catalog *cat, enum stmt_id which, const char *table,
		   const char *name, int64_t id, row_reader read, void *out,
		   size_t size)
{
	char what[64];
	snprintf(what, sizeof what, "reading the %s", table);
	lock(cat);
	int rc;
	sqlite3_stmt *s = stmt(cat, which);
	if (!s) {
		rc = CATALOG_EDB;
	} else {
		if (name)
			bind_text(s, 1, name);
		else
			sqlite3_bind_int64(s, 1, id);
		rc = read_one(cat, s, read, out, size, what);
		if (rc == 1)
			rc = name ? fail(CATALOG_ENOENT, "no %s named '%s'",
					 table, name)
				  : fail(CATALOG_ENOENT,
					 "no %s with id %" PRId64, table, id);
	}
	unlock(cat);
	return rc;
}

/* ---- regions --------------------------------------------------------------
 */

static void read_region(sqlite3_stmt *s, void *out)
{
	struct catalog_region *r = out;
	r->id = sqlite3_column_int64(s, 0);
	col_text(s, 1, r->name, sizeof r->name);
	col_text(s, 2, r->assets, sizeof r->assets);
	col_text(s, 3, r->snapshot, sizeof r->snapshot);
	col_text(s, 4, r->endpoint, sizeof r->endpoint);
	col_text(s, 5, r->s3_region, sizeof r->s3_region);
	col_text(s, 6, r->profile, sizeof r->profile);
}

static void bind_region(sqlite3_stmt *s, const struct catalog_region *r)
{
	bind_text(s, 1, r->name);
	bind_text(s, 2, r->assets);
	bind_text(s, 3, r->snapshot);
	bind_text(s, 4, r->endpoint);
	bind_text(s, 5, r->s3_region);
	bind_text(s, 6, r->profile);
}

/* Add region IN (UPDATE 0) or change the one of its name (UPDATE 1). */
static int region_write(struct catalog *cat, const struct catalog_region *in,
			int update)
{
	struct catalog_region *r = malloc(sizeof *r);
	if (!r)
		return fail(CATALOG_ENOMEM, "out of memory");
	*r = *in;
	int rc = region_check(r);
	if (rc) {
		free(r);
		return rc;
	}
	lock(cat);
	rc = tx_begin(cat);
	if (!rc) {
		sqlite3_stmt *s =
		    stmt(cat, update ? S_REGION_UPDATE : S_REGION_INSERT);
		if (!s) {
			rc = CATALOG_EDB;
		} else {
			bind_region(s, r);
			rc = step_done(cat, s,
				       update ? "changing the region"
					      : "adding the region");
			if (!update && rc == CATALOG_EEXIST)
				rc =
				    fail(CATALOG_EEXIST,
					 "region '%s' already exists", r->name);
			if (update && !rc && sqlite3_changes(cat->db) == 0)
				rc = fail(CATALOG_ENOENT,
					  "no region named '%s'", r->name);
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	free(r);
	return rc;
}

int catalog_region_add(struct catalog *cat, const struct catalog_region *in)
{
	return region_write(cat, in, 0);
}

int catalog_region_get(struct catalog *cat, const char *name,
		       struct catalog_region *out)
{
	return row_get(cat, S_REGION_GET, "region", name, 0, read_region, out,
		       sizeof *out);
}

int catalog_region_update(struct catalog *cat, const struct catalog_region *in)
{
	return region_write(cat, in, 1);
}

int catalog_region_remove(struct catalog *cat, const char *name)
{
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		int64_t id;
		rc = lookup_id(cat, S_REGION_ID, "region", name, &id);
		sqlite3_stmt *s = rc ? NULL : stmt(cat, S_REGION_INUSE);
		if (!rc && !s)
			rc = CATALOG_EDB;
		if (!rc) {
			bind_text(s, 1, name);
			int src = step(cat, s);
			if (src == SQLITE_ROW) {
				char first[CATALOG_NAME_MAX];
				col_text(s, 0, first, sizeof first);
				int more = 0;
				while (step(cat, s) == SQLITE_ROW)
					more++;
				rc = fail(CATALOG_EINUSE,
					  "region '%s' is in use by client "
					  "'%s'%s: move or remove its clients "
					  "first",
					  name, first,
					  more ? " and others" : "");
			} else if (src != SQLITE_DONE) {
				rc = db_fail(cat, src, "checking the region");
			}
			sqlite3_reset(s);
		}
		if (!rc) {
			s = stmt(cat, S_REGION_DELETE);
			if (!s) {
				rc = CATALOG_EDB;
			} else {
				bind_text(s, 1, name);
				rc = step_done(cat, s, "removing the region");
			}
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	return rc;
}

int catalog_region_list(struct catalog *cat, catalog_region_cb cb, void *arg)
{
	void *arr;
	size_t n;
	int rc = list_copy(cat, S_REGION_LIST, NULL, NULL, 0, read_region,
			   sizeof(struct catalog_region), &arr, &n);
	struct catalog_region *r = arr;
	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(arg, &r[i]);
	free(arr);
	return rc;
}

/* ---- clients ----------------------------------------------------------------
 */

static void read_client(sqlite3_stmt *s, void *out)
{
	struct catalog_client *c = out;
	c->id = sqlite3_column_int64(s, 0);
	col_text(s, 1, c->name, sizeof c->name);
	col_text(s, 2, c->region, sizeof c->region);
	col_text(s, 3, c->location, sizeof c->location);
	col_text(s, 4, c->attachment_key, sizeof c->attachment_key);
	c->disabled = sqlite3_column_int(s, 5);
	c->quota_bytes = sqlite3_column_int64(s, 6);
	c->quota_objects = sqlite3_column_int64(s, 7);
	c->created = sqlite3_column_int64(s, 8);
	/* The client's own S3 settings if it has any, else its region's. */
	const unsigned char *e = sqlite3_column_text(s, 9);
	const unsigned char *g = sqlite3_column_text(s, 10);
	const unsigned char *p = sqlite3_column_text(s, 11);
	int own = (e && e[0]) || (g && g[0]) || (p && p[0]);
	int base = own ? 9 : 12;
	col_text(s, base, c->endpoint, sizeof c->endpoint);
	col_text(s, base + 1, c->s3_region, sizeof c->s3_region);
	col_text(s, base + 2, c->profile, sizeof c->profile);
}

static int key_valid(const char *k)
{
	if (!k[0])
		return 0;
	for (const char *p = k; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

int catalog_attachment_key_generate(char *out, size_t outlen)
{
	unsigned char raw[32];
	if (outlen < 65 || RAND_bytes(raw, sizeof raw) != 1)
		return fail(CATALOG_EDB, "cannot generate an attachment key");
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* Is A inside B or B inside A (both ending in '/')? */
static int overlaps(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	return strncmp(a, b, la < lb ? la : lb) == 0;
}

/* Refuse a location that another client's contains or lies inside: one
 * client must never see another's files. */
static int check_overlap(struct catalog *cat, const char *name,
			 const char *location)
{
	sqlite3_stmt *s = stmt(cat, S_CLIENT_LOCATIONS);
	if (!s)
		return CATALOG_EDB;
	bind_text(s, 1, name);
	int rc = 0, src;
	while ((src = step(cat, s)) == SQLITE_ROW) {
		const char *other = (const char *)sqlite3_column_text(s, 1);
		if (other && overlaps(other, location)) {
			rc = fail(CATALOG_EEXIST,
				  "location %s overlaps client '%s''s "
				  "location %s",
				  location, sqlite3_column_text(s, 0), other);
			break;
		}
	}
	if (!rc && src != SQLITE_DONE)
		rc = db_fail(cat, src, "checking locations");
	sqlite3_reset(s);
	return rc;
}

/* Validate C (in place: normalised location), resolve its region id
 * (0 = none) and derive the default location. Called inside the
 * transaction. REGION receives the region row, if any. */
static int client_prepare(struct catalog *cat, struct catalog_client *c,
			  int64_t *region_id, struct catalog_region *region)
{
	int rc = check_name("client", c->name);
	if (rc)
		return rc;
	*region_id = 0;
	memset(region, 0, sizeof *region);
	if (c->region[0]) {
		sqlite3_stmt *s = stmt(cat, S_REGION_GET);
		if (!s)
			return CATALOG_EDB;
		bind_text(s, 1, c->region);
		rc = read_one(cat, s, read_region, region, sizeof *region,
			      "reading the region");
		if (rc == 1)
			return fail(CATALOG_ENOENT, "no region named '%s'",
				    c->region);
		if (rc)
			return rc;
		*region_id = region->id;
	}
	if (!c->location[0]) {
		if (!c->region[0])
			return fail(CATALOG_EINVAL,
				    "client '%s' needs a region or a location",
				    c->name);
		if (snprintf(c->location, sizeof c->location, "%s%s/",
			     region->assets,
			     c->name) >= (int)sizeof c->location)
			return fail(CATALOG_EINVAL, "location too long");
	}
	rc = catalog_location_normalise(c->location, c->location,
					sizeof c->location);
	if (rc)
		return rc;
	if (c->attachment_key[0] && !key_valid(c->attachment_key))
		return fail(CATALOG_EINVAL,
			    "invalid attachment key: printable characters "
			    "without spaces only");
	rc = check_text("attachment key", c->attachment_key,
			sizeof c->attachment_key, 1);
	if (rc)
		return rc;
	if (c->quota_bytes < 0 || c->quota_objects < 0)
		return fail(CATALOG_EINVAL, "a quota cannot be negative");
	rc = endpoint_normalise(c->endpoint, c->endpoint, sizeof c->endpoint);
	if (!rc)
		rc = word_valid("S3 region", c->s3_region, sizeof c->s3_region,
				"-");
	if (!rc)
		rc =
		    word_valid("profile", c->profile, sizeof c->profile, "-_.");
	if (rc)
		return rc;
	/* S3 settings equal to the region's are the region's: store none, so
	 * that a later change of the region reaches the client too. */
	if (*region_id && strcmp(c->endpoint, region->endpoint) == 0 &&
	    strcmp(c->s3_region, region->s3_region) == 0 &&
	    strcmp(c->profile, region->profile) == 0) {
		c->endpoint[0] = c->s3_region[0] = c->profile[0] = '\0';
	}
	return check_overlap(cat, c->name, c->location);
}

/* A client row into S_CLIENT_INSERT or S_CLIENT_UPDATE: both number the
 * columns alike (the update leaves ?8, the creation time, unused). */
static void bind_client(sqlite3_stmt *s, const struct catalog_client *c,
			int64_t region_id)
{
	bind_text(s, 1, c->name);
	if (region_id)
		sqlite3_bind_int64(s, 2, region_id);
	else
		sqlite3_bind_null(s, 2);
	bind_text(s, 3, c->location);
	bind_text(s, 4, c->attachment_key);
	sqlite3_bind_int(s, 5, c->disabled ? 1 : 0);
	sqlite3_bind_int64(s, 6, c->quota_bytes);
	sqlite3_bind_int64(s, 7, c->quota_objects);
	sqlite3_bind_int64(s, 8, c->created);
	bind_text(s, 9, c->endpoint);
	bind_text(s, 10, c->s3_region);
	bind_text(s, 11, c->profile);
}

int catalog_client_add(struct catalog *cat, struct catalog_client *c)
{
	struct catalog_client *w = malloc(sizeof *w);
	struct catalog_region *reg = malloc(sizeof *reg);
	if (!w || !reg) {
		free(w);
		free(reg);
		return fail(CATALOG_ENOMEM, "out of memory");
	}
	*w = *c;
	int rc = 0;
	if (!w->attachment_key[0])
		rc = catalog_attachment_key_generate(w->attachment_key,
						     sizeof w->attachment_key);
	if (!w->created)
		w->created = (int64_t)time(NULL);
	lock(cat);
	if (!rc)
		rc = tx_begin(cat);
	if (!rc) {
		int64_t region_id = 0;
		rc = client_prepare(cat, w, &region_id, reg);
		sqlite3_stmt *s = rc ? NULL : stmt(cat, S_CLIENT_INSERT);
		if (!rc && !s)
			rc = CATALOG_EDB;
		if (!rc) {
			bind_client(s, w, region_id);
			rc = step_done(cat, s, "adding the client");
			if (rc == CATALOG_EEXIST)
				rc =
				    fail(CATALOG_EEXIST,
					 "client '%s' already exists", w->name);
			if (!rc)
				w->id = sqlite3_last_insert_rowid(cat->db);
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	if (!rc) {
		/* Hand back what was stored, with the region's S3 settings
		 * filled in as a read would. */
		if (!w->endpoint[0] && !w->s3_region[0] && !w->profile[0] &&
		    w->region[0]) {
			snprintf(w->endpoint, sizeof w->endpoint, "%s",
				 reg->endpoint);
			snprintf(w->s3_region, sizeof w->s3_region, "%s",
				 reg->s3_region);
			snprintf(w->profile, sizeof w->profile, "%s",
				 reg->profile);
		}
		*c = *w;
	}
	free(w);
	free(reg);
	return rc;
}

int catalog_client_get(struct catalog *cat, const char *name,
		       struct catalog_client *out)
{
	return row_get(cat, S_CLIENT_GET, "client", name, 0, read_client, out,
		       sizeof *out);
}

int catalog_client_update(struct catalog *cat, const struct catalog_client *c)
{
	struct catalog_client *w = malloc(sizeof *w);
	struct catalog_region *reg = malloc(sizeof *reg);
	if (!w || !reg) {
		free(w);
		free(reg);
		return fail(CATALOG_ENOMEM, "out of memory");
	}
	*w = *c;
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		int64_t id, region_id = 0;
		rc = lookup_id(cat, S_CLIENT_ID, "client", w->name, &id);
		if (!rc && !w->attachment_key[0])
			rc = fail(CATALOG_EINVAL,
				  "the attachment key cannot be empty");
		if (!rc)
			rc = client_prepare(cat, w, &region_id, reg);
		sqlite3_stmt *s = rc ? NULL : stmt(cat, S_CLIENT_UPDATE);
		if (!rc && !s)
			rc = CATALOG_EDB;
		if (!rc) {
			bind_client(s, w, region_id);
			rc = step_done(cat, s, "changing the client");
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	free(w);
	free(reg);
	return rc;
}

int catalog_client_remove(struct catalog *cat, const char *name)
{
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		int64_t id;
		rc = lookup_id(cat, S_CLIENT_ID, "client", name, &id);
		if (!rc) {
			sqlite3_stmt *s = stmt(cat, S_CLIENT_DELETE);
			if (!s) {
				rc = CATALOG_EDB;
			} else {
				bind_text(s, 1, name);
				rc = step_done(cat, s, "removing the client");
			}
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	return rc;
}

int catalog_client_list(struct catalog *cat, catalog_client_cb cb, void *arg)
{
	void *arr;
	size_t n;
	int rc = list_copy(cat, S_CLIENT_LIST, NULL, NULL, 0, read_client,
			   sizeof(struct catalog_client), &arr, &n);
	struct catalog_client *c = arr;
	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(arg, &c[i]);
	free(arr);
	return rc;
}

/* ---- collections -----------------------------------------------------------
 */

static void read_collection(sqlite3_stmt *s, void *out)
{
	struct catalog_collection *c = out;
	c->id = sqlite3_column_int64(s, 0);
	col_text(s, 1, c->name, sizeof c->name);
	col_text(s, 2, c->client, sizeof c->client);
	col_text(s, 3, c->subfolder, sizeof c->subfolder);
}

/* A subfolder: "" or a relative path without empty, "." or ".." segments;
 * stored without leading or trailing '/'. */
static int subfolder_normalise(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in);
	while (n > 0 && in[n - 1] == '/')
		n--;
	if (n == 0) {
		if (in[0])
			return fail(CATALOG_EINVAL, "invalid subfolder '%s'",
				    in);
		out[0] = '\0';
		return 0;
	}
	if (in[0] == '/' || !path_segments_ok(in, n))
		return fail(CATALOG_EINVAL,
			    "invalid subfolder '%s': a relative path without "
			    "empty, '.' or '..' segments",
			    in);
	if (n >= outlen)
		return fail(CATALOG_EINVAL, "subfolder too long");
	memmove(out, in, n);
	out[n] = '\0';
	return 0;
}

int catalog_collection_add(struct catalog *cat,
			   const struct catalog_collection *in)
{
	struct catalog_collection *c = malloc(sizeof *c);
	if (!c)
		return fail(CATALOG_ENOMEM, "out of memory");
	*c = *in;
	int rc = check_text("collection name", c->name, sizeof c->name, 0);
	if (!rc)
		rc = subfolder_normalise(c->subfolder, c->subfolder,
					 sizeof c->subfolder);
	if (rc) {
		free(c);
		return rc;
	}
	lock(cat);
	rc = tx_begin(cat);
	if (!rc) {
		int64_t cid;
		rc = lookup_id(cat, S_CLIENT_ID, "client", c->client, &cid);
		sqlite3_stmt *s = rc ? NULL : stmt(cat, S_COLL_INSERT);
		if (!rc && !s)
			rc = CATALOG_EDB;
		if (!rc) {
			sqlite3_bind_int64(s, 1, cid);
			bind_text(s, 2, c->name);
			bind_text(s, 3, c->subfolder);
			rc = step_done(cat, s, "adding the collection");
			if (rc == CATALOG_EEXIST)
				rc =
				    fail(CATALOG_EEXIST,
					 "client '%s' already has a collection "
					 "'%s'",
					 c->client, c->name);
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	free(c);
	return rc;
}

int catalog_collection_remove(struct catalog *cat, const char *client,
			      const char *name)
{
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		int64_t cid;
		rc = lookup_id(cat, S_CLIENT_ID, "client", client, &cid);
		sqlite3_stmt *s = rc ? NULL : stmt(cat, S_COLL_DELETE);
		if (!rc && !s)
			rc = CATALOG_EDB;
		if (!rc) {
			sqlite3_bind_int64(s, 1, cid);
			bind_text(s, 2, name);
			rc = step_done(cat, s, "removing the collection");
			if (!rc && sqlite3_changes(cat->db) == 0)
				rc = fail(CATALOG_ENOENT,
					  "client '%s' has no collection '%s'",
					  client, name);
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	return rc;
}

int catalog_collection_find(struct catalog *cat, const char *client,
			    const char *name, struct catalog_collection *out)
{
	lock(cat);
	int rc = 0;
	sqlite3_stmt *s = stmt(cat, S_COLL_FIND);
	if (!s) {
		rc = CATALOG_EDB;
	} else {
		bind_text(s, 1, name);
		bind_opt_text(s, 2, client);
		int src = step(cat, s);
		if (src == SQLITE_ROW) {
			memset(out, 0, sizeof *out);
			read_collection(s, out);
			src = step(cat, s);
			if (src == SQLITE_ROW)
				rc = fail(CATALOG_EEXIST,
					  "collection '%s' belongs to more "
					  "than one client",
					  name);
			else if (src != SQLITE_DONE)
				rc =
				    db_fail(cat, src, "finding the collection");
		} else if (src == SQLITE_DONE) {
			rc = client ? fail(CATALOG_ENOENT,
					   "client '%s' has no collection '%s'",
					   client, name)
				    : fail(CATALOG_ENOENT,
					   "no collection named '%s'", name);
		} else {
			rc = db_fail(cat, src, "finding the collection");
		}
		sqlite3_reset(s);
	}
	unlock(cat);
	return rc;
}

int catalog_collection_list(struct catalog *cat, const char *client,
			    catalog_collection_cb cb, void *arg)
{
	void *arr;
	size_t n;
	int rc = list_copy(cat, S_COLL_LIST, client, client, 0, read_collection,
			   sizeof(struct catalog_collection), &arr, &n);
	struct catalog_collection *c = arr;
	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(arg, &c[i]);
	free(arr);
	return rc;
}

/* ---- SSH keys ------------------------------------------------------------ */

static void read_key(sqlite3_stmt *s, void *out)
{
	struct catalog_key *k = out;
	k->id = sqlite3_column_int64(s, 0);
	col_text(s, 1, k->client, sizeof k->client);
	col_text(s, 2, k->type, sizeof k->type);
	col_text(s, 3, k->blob, sizeof k->blob);
	col_text(s, 4, k->fingerprint, sizeof k->fingerprint);
	col_text(s, 5, k->comment, sizeof k->comment);
	k->added = sqlite3_column_int64(s, 6);
	k->last_used = sqlite3_column_int64(s, 7);
}

static int key_check(const struct catalog_key *k)
{
	int rc = check_text("key type", k->type, sizeof k->type, 0);
	if (!rc)
		rc = check_text("key", k->blob, sizeof k->blob, 0);
	if (!rc)
		rc = check_text("fingerprint", k->fingerprint,
				sizeof k->fingerprint, 0);
	if (!rc)
		rc =
		    check_text("key comment", k->comment, sizeof k->comment, 1);
	if (rc)
		return rc;
	if (strncmp(k->fingerprint, "SHA256:", 7) != 0)
		return fail(CATALOG_EINVAL,
			    "a fingerprint starts with SHA256:");
	for (const char *p = k->blob; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '+' && *p != '/' &&
		    *p != '=')
			return fail(CATALOG_EINVAL, "the key is not base64");
	return 0;
}

/* Insert one key; inside a transaction. */
static int key_insert(struct catalog *cat, const struct catalog_key *k,
		      int64_t now)
{
	int rc = key_check(k);
	if (rc)
		return rc;
	int64_t cid;
	rc = lookup_id(cat, S_CLIENT_ID, "client", k->client, &cid);
	if (rc)
		return rc;
	sqlite3_stmt *s = stmt(cat, S_KEY_INSERT);
	if (!s)
		return CATALOG_EDB;
	sqlite3_bind_int64(s, 1, cid);
	bind_text(s, 2, k->type);
	bind_text(s, 3, k->blob);
	bind_text(s, 4, k->fingerprint);
	bind_text(s, 5, k->comment);
	sqlite3_bind_int64(s, 6, k->added ? k->added : now);
	sqlite3_bind_int64(s, 7, k->last_used);
	rc = step_done(cat, s, "adding the key");
	if (rc == CATALOG_EEXIST)
		rc = fail(CATALOG_EEXIST,
			  "key %s is already registered for client '%s'",
			  k->fingerprint, k->client);
	return rc;
}

int catalog_key_add_many(struct catalog *cat, const struct catalog_key *keys,
			 size_t n, size_t *failed)
{
	int64_t now = (int64_t)time(NULL);
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		for (size_t i = 0; !rc && i < n; i++) {
			rc = key_insert(cat, &keys[i], now);
			if (rc && failed)
				*failed = i;
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	return rc;
}

int catalog_key_add(struct catalog *cat, const struct catalog_key *k)
{
	return catalog_key_add_many(cat, k, 1, NULL);
}

static int all_digits(const char *s)
{
	if (!s[0])
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

int catalog_key_remove(struct catalog *cat, const char *client,
		       const char *fingerprint_or_id)
{
	const char *what = fingerprint_or_id;
	int by_id = all_digits(what);
	char fp[CATALOG_TEXT_MAX];
	if (!by_id) {
		/* Accept the fingerprint with or without its "SHA256:". */
		if (strncmp(what, "SHA256:", 7) == 0)
			snprintf(fp, sizeof fp, "%s", what);
		else if (snprintf(fp, sizeof fp, "SHA256:%s", what) >=
			 (int)sizeof fp)
			return fail(CATALOG_EINVAL, "fingerprint too long");
	}
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		int64_t cid;
		rc = lookup_id(cat, S_CLIENT_ID, "client", client, &cid);
		sqlite3_stmt *s =
		    rc ? NULL : stmt(cat, by_id ? S_KEY_DEL_ID : S_KEY_DEL_FP);
		if (!rc && !s)
			rc = CATALOG_EDB;
		if (!rc) {
			sqlite3_bind_int64(s, 1, cid);
			if (by_id)
				sqlite3_bind_int64(s, 2,
						   strtoll(what, NULL, 10));
			else
				bind_text(s, 2, fp);
			rc = step_done(cat, s, "removing the key");
			if (!rc && sqlite3_changes(cat->db) == 0)
				rc = fail(CATALOG_ENOENT,
					  "client '%s' has no key %s", client,
					  what);
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	return rc;
}

/* One key row by statement ID with up to two more text parameters. */
static int key_lookup(struct catalog *cat, enum stmt_id id, const char *client,
		      const char *p2, const char *p3, struct catalog_key *out)
{
	lock(cat);
	int rc;
	sqlite3_stmt *s = stmt(cat, id);
	if (!s) {
		rc = CATALOG_EDB;
	} else {
		bind_text(s, 1, client);
		bind_text(s, 2, p2);
		if (p3)
			bind_text(s, 3, p3);
		rc = read_one(cat, s, read_key, out, sizeof *out,
			      "finding the key");
		if (rc == 1)
			rc = fail(CATALOG_ENOENT, "no such key for client '%s'",
				  client);
	}
	unlock(cat);
	return rc;
}

int catalog_key_find(struct catalog *cat, const char *client, const char *type,
		     const char *blob, struct catalog_key *out)
{
	return key_lookup(cat, S_KEY_FIND, client, type, blob, out);
}

int catalog_key_find_fingerprint(struct catalog *cat, const char *client,
				 const char *fingerprint,
				 struct catalog_key *out)
{
	return key_lookup(cat, S_KEY_FIND_FP, client, fingerprint, NULL, out);
}

int catalog_key_touch(struct catalog *cat, int64_t id, int64_t now)
{
	lock(cat);
	int rc;
	sqlite3_stmt *s = stmt(cat, S_KEY_TOUCH);
	if (!s) {
		rc = CATALOG_EDB;
	} else {
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, now);
		rc = step_done(cat, s, "recording the key's use");
		if (!rc && sqlite3_changes(cat->db) == 0)
			rc =
			    fail(CATALOG_ENOENT, "no key with id %" PRId64, id);
	}
	unlock(cat);
	return rc;
}

int catalog_key_list(struct catalog *cat, const char *client, catalog_key_cb cb,
		     void *arg)
{
	void *arr;
	size_t n;
	int rc = list_copy(cat, S_KEY_LIST, client, client, 0, read_key,
			   sizeof(struct catalog_key), &arr, &n);
	struct catalog_key *k = arr;
	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(arg, &k[i]);
	free(arr);
	return rc;
}

/* ---- archives --------------------------------------------------------------
 */

static void read_archive(sqlite3_stmt *s, void *out)
{
	struct catalog_archive *a = out;
	a->id = sqlite3_column_int64(s, 0);
	col_text(s, 1, a->client, sizeof a->client);
	col_text(s, 2, a->location, sizeof a->location);
	col_text(s, 3, a->format, sizeof a->format);
	a->created = sqlite3_column_int64(s, 4);
	a->size = sqlite3_column_int64(s, 5);
	a->objects = sqlite3_column_int64(s, 6);
	col_text(s, 7, a->sha256, sizeof a->sha256);
	a->state = sqlite3_column_int(s, 8);
	col_text(s, 9, a->error, sizeof a->error);
}

static int archive_check(const struct catalog_archive *a)
{
	int rc = check_name("client", a->client);
	if (!rc)
		rc = check_text("archive location", a->location,
				sizeof a->location, 0);
	if (!rc)
		rc = check_text("archive format", a->format, sizeof a->format,
				0);
	if (!rc)
		rc = check_text("archive checksum", a->sha256, sizeof a->sha256,
				1);
	if (!rc)
		rc = check_text("archive error", a->error, sizeof a->error, 1);
	if (!rc && (a->state < CATALOG_RUNNING || a->state > CATALOG_FAILED))
		rc = fail(CATALOG_EINVAL, "invalid archive state %d", a->state);
	return rc;
}

/* Write one row of a table in its own transaction: BIND fills statement
 * WHICH from ROW. An insert (ID_COL 0) stores the new row's id in *NEW_ID;
 * an update binds ID at column ID_COL and is CATALOG_ENOENT, with TABLE in
 * the message, when no row has that id. WHAT names the action for errors. */
typedef void (*row_binder)(sqlite3_stmt *s, const void *row);

static int row_write(struct catalog *cat, enum stmt_id which,
		     row_binder bind, const void *row, int id_col, int64_t id,
		     const char *what, const char *table, int64_t *new_id)
{
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		sqlite3_stmt *s = stmt(cat, which);
		if (!s) {
			rc = CATALOG_EDB;
		} else {
			bind(s, row);
			if (id_col)
				sqlite3_bind_int64(s, id_col, id);
			rc = step_done(cat, s, what);
			if (!rc && id_col && sqlite3_changes(cat->db) == 0)
				rc = fail(CATALOG_ENOENT,
					  "no %s with id %" PRId64, table, id);
			if (!rc && !id_col && new_id)
				*new_id = sqlite3_last_insert_rowid(cat->db);
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	return rc;
}

static void bind_archive(sqlite3_stmt *s, const void *row)
{
	const struct catalog_archive *a = row;
	bind_text(s, 1, a->client);
	bind_text(s, 2, a->location);
	bind_text(s, 3, a->format);
	sqlite3_bind_int64(s, 4, a->created);
	sqlite3_bind_int64(s, 5, a->size);
	sqlite3_bind_int64(s, 6, a->objects);
	bind_text(s, 7, a->sha256);
	sqlite3_bind_int(s, 8, a->state);
	bind_text(s, 9, a->error);
}

int catalog_archive_add(struct catalog *cat, struct catalog_archive *a)
{
	int rc = archive_check(a);
	if (rc)
		return rc;
	if (!a->created)
		a->created = (int64_t)time(NULL);
	return row_write(cat, S_ARCH_INSERT, bind_archive, a, 0, 0,
			 "recording the archive", "archive", &a->id);
}

int catalog_archive_update(struct catalog *cat, const struct catalog_archive *a)
{
	int rc = archive_check(a);
	if (rc)
		return rc;
	return row_write(cat, S_ARCH_UPDATE, bind_archive, a, 10, a->id,
			 "updating the archive", "archive", NULL);
}

int catalog_archive_get(struct catalog *cat, int64_t id,
			struct catalog_archive *out)
{
	return row_get(cat, S_ARCH_GET, "archive", NULL, id, read_archive, out,
		       sizeof *out);
}

int catalog_archive_remove(struct catalog *cat, int64_t id)
{
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		sqlite3_stmt *s = stmt(cat, S_ARCH_DELETE);
		if (!s) {
			rc = CATALOG_EDB;
		} else {
			sqlite3_bind_int64(s, 1, id);
			rc = step_done(cat, s, "removing the archive");
			if (!rc && sqlite3_changes(cat->db) == 0)
				rc = fail(CATALOG_ENOENT,
					  "no archive with id %" PRId64, id);
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	return rc;
}

int catalog_archive_list(struct catalog *cat, const char *client,
			 catalog_archive_cb cb, void *arg)
{
	void *arr;
	size_t n;
	/* Archives outlive their client: an unknown one lists its past. */
	int rc = list_copy(cat, S_ARCH_LIST, NULL, client, 0, read_archive,
			   sizeof(struct catalog_archive), &arr, &n);
	struct catalog_archive *a = arr;
	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(arg, &a[i]);
	free(arr);
	return rc;
}

/* ---- runs ------------------------------------------------------------------
 */

static void read_run(sqlite3_stmt *s, void *out)
{
	struct catalog_run *r = out;
	r->id = sqlite3_column_int64(s, 0);
	col_text(s, 1, r->kind, sizeof r->kind);
	col_text(s, 2, r->what, sizeof r->what);
	r->started = sqlite3_column_int64(s, 3);
	r->finished = sqlite3_column_int64(s, 4);
	r->state = sqlite3_column_int(s, 5);
	r->listed = sqlite3_column_int64(s, 6);
	r->copied = sqlite3_column_int64(s, 7);
	r->skipped = sqlite3_column_int64(s, 8);
	r->deleted = sqlite3_column_int64(s, 9);
	r->failed = sqlite3_column_int64(s, 10);
	r->bytes = sqlite3_column_int64(s, 11);
	col_text(s, 12, r->summary, sizeof r->summary);
}

static int run_check(const struct catalog_run *r)
{
	int rc = check_text("run kind", r->kind, sizeof r->kind, 0);
	if (!rc)
		rc = check_text("run subject", r->what, sizeof r->what, 1);
	if (!rc)
		rc =
		    check_text("run summary", r->summary, sizeof r->summary, 1);
	if (!rc && (r->state < CATALOG_RUNNING || r->state > CATALOG_FAILED))
		rc = fail(CATALOG_EINVAL, "invalid run state %d", r->state);
	return rc;
}

static void bind_run(sqlite3_stmt *s, const void *row)
{
	const struct catalog_run *r = row;
	bind_text(s, 1, r->kind);
	bind_text(s, 2, r->what);
	sqlite3_bind_int64(s, 3, r->started ? r->started : (int64_t)time(NULL));
	sqlite3_bind_int64(s, 4, r->finished);
	sqlite3_bind_int(s, 5, r->state);
	sqlite3_bind_int64(s, 6, r->listed);
	sqlite3_bind_int64(s, 7, r->copied);
	sqlite3_bind_int64(s, 8, r->skipped);
	sqlite3_bind_int64(s, 9, r->deleted);
	sqlite3_bind_int64(s, 10, r->failed);
	sqlite3_bind_int64(s, 11, r->bytes);
	bind_text(s, 12, r->summary);
}

int catalog_run_add(struct catalog *cat, struct catalog_run *r)
{
	int rc = run_check(r);
	if (rc)
		return rc;
	if (!r->started)
		r->started = (int64_t)time(NULL);
	return row_write(cat, S_RUN_INSERT, bind_run, r, 0, 0,
			 "recording the run", "run", &r->id);
}

int catalog_run_update(struct catalog *cat, const struct catalog_run *r)
{
	int rc = run_check(r);
	if (rc)
		return rc;
	return row_write(cat, S_RUN_UPDATE, bind_run, r, 13, r->id,
			 "updating the run", "run", NULL);
}

int catalog_run_list(struct catalog *cat, const char *kind, int limit,
		     catalog_run_cb cb, void *arg)
{
	void *arr;
	size_t n;
	int rc = list_copy(cat, S_RUN_LIST, NULL, kind, limit > 0 ? limit : -1,
			   read_run, sizeof(struct catalog_run), &arr, &n);
	struct catalog_run *r = arr;
	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(arg, &r[i]);
	free(arr);
	return rc;
}

/* ---- usage ---------------------------------------------------------------
 */

/* CLIENT's id and totals (caller holds the lock). */
static int usage_total_locked(struct catalog *cat, const char *client,
			      int64_t *id, struct catalog_usage_total *out)
{
	sqlite3_stmt *s = stmt(cat, S_USAGE_TOTAL);
	if (!s)
		return CATALOG_EDB;
	bind_text(s, 1, client);
	int src = step(cat, s);
	int rc = 0;
	if (src == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		out->objects = sqlite3_column_int64(s, 1);
		out->bytes = sqlite3_column_int64(s, 2);
		out->quota_objects = sqlite3_column_int64(s, 3);
		out->quota_bytes = sqlite3_column_int64(s, 4);
		out->recounted = sqlite3_column_int64(s, 5);
	} else if (src == SQLITE_DONE) {
		rc = fail(CATALOG_ENOENT, "no client named '%s'", client);
	} else {
		rc = db_fail(cat, src, "reading the usage");
	}
	sqlite3_reset(s);
	return rc;
}

static int usage_upsert(struct catalog *cat, int64_t id, const char *folder,
			int64_t objects, int64_t bytes, int64_t now)
{
	sqlite3_stmt *s = stmt(cat, S_USAGE_UPSERT);
	if (!s)
		return CATALOG_EDB;
	sqlite3_bind_int64(s, 1, id);
	bind_text(s, 2, folder);
	sqlite3_bind_int64(s, 3, objects);
	sqlite3_bind_int64(s, 4, bytes);
	sqlite3_bind_int64(s, 5, now);
	return step_done(cat, s, "recording the usage");
}

int catalog_usage_add(struct catalog *cat, const char *client,
		      const char *folder, int64_t objects, int64_t bytes,
		      int check)
{
	int rc = check_text("folder", folder, CATALOG_TEXT_MAX, 1);
	if (rc)
		return rc;
	if (objects == 0 && bytes == 0)
		return 0;
	lock(cat);
	/* Usage changes with every object written: at synchronous = FULL
	 * each would wait for an fsync of the WAL. NORMAL keeps WAL commits
	 * atomic and consistent, and loses at most the last changes on a
	 * power cut (never on a crash of the process) - figures a recount
	 * restores. Everything else keeps FULL. */
	exec_retry(cat, "PRAGMA synchronous = NORMAL");
	rc = tx_begin(cat);
	if (!rc) {
		struct catalog_usage_total t;
		int64_t id = 0;
		memset(&t, 0, sizeof t);
		rc = usage_total_locked(cat, client, &id, &t);
		if (!rc && check &&
		    ((objects > 0 && t.quota_objects > 0 &&
		      t.objects + objects > t.quota_objects) ||
		     (bytes > 0 && t.quota_bytes > 0 &&
		      t.bytes + bytes > t.quota_bytes)))
			rc = fail(CATALOG_EQUOTA,
				  "client %s: quota exceeded", client);
		if (!rc)
			rc = usage_upsert(cat, id, folder, objects, bytes,
					  (int64_t)time(NULL));
		rc = tx_end(cat, rc);
	}
	exec_retry(cat, "PRAGMA synchronous = FULL");
	unlock(cat);
	return rc;
}

int catalog_usage_total(struct catalog *cat, const char *client,
			struct catalog_usage_total *out)
{
	int64_t id;
	memset(out, 0, sizeof *out);
	lock(cat);
	int rc = usage_total_locked(cat, client, &id, out);
	unlock(cat);
	return rc;
}

int catalog_usage_set(struct catalog *cat, const char *client,
		      const struct catalog_usage *rows, size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++) {
		int rc = check_text("folder", rows[i].folder,
				    sizeof rows[i].folder, 1);
		if (rc)
			return rc;
		if (rows[i].objects < 0 || rows[i].bytes < 0)
			return fail(CATALOG_EINVAL,
				    "usage figures cannot be negative");
	}
	lock(cat);
	int rc = tx_begin(cat);
	if (!rc) {
		int64_t id = 0;
		rc = lookup_id(cat, S_CLIENT_ID, "client", client, &id);
		sqlite3_stmt *s = rc ? NULL : stmt(cat, S_USAGE_CLEAR);
		if (!rc && !s)
			rc = CATALOG_EDB;
		if (!rc) {
			sqlite3_bind_int64(s, 1, id);
			rc = step_done(cat, s, "clearing the usage");
		}
		for (size_t i = 0; !rc && i < n; i++)
			if (rows[i].objects || rows[i].bytes)
				rc = usage_upsert(cat, id, rows[i].folder,
						  rows[i].objects,
						  rows[i].bytes, now);
		s = rc ? NULL : stmt(cat, S_USAGE_RECOUNTED);
		if (!rc && !s)
			rc = CATALOG_EDB;
		if (!rc) {
			sqlite3_bind_int64(s, 1, id);
			sqlite3_bind_int64(s, 2, now);
			rc = step_done(cat, s, "recording the recount");
		}
		rc = tx_end(cat, rc);
	}
	unlock(cat);
	return rc;
}

static void read_usage(sqlite3_stmt *s, void *out)
{
	struct catalog_usage *u = out;
	col_text(s, 0, u->client, sizeof u->client);
	col_text(s, 1, u->folder, sizeof u->folder);
	u->objects = sqlite3_column_int64(s, 2);
	u->bytes = sqlite3_column_int64(s, 3);
	u->updated = sqlite3_column_int64(s, 4);
}

int catalog_usage_list(struct catalog *cat, const char *client,
		       catalog_usage_cb cb, void *arg)
{
	void *arr;
	size_t n;
	int rc = list_copy(cat, S_USAGE_LIST, NULL, client, 0, read_usage,
			   sizeof(struct catalog_usage), &arr, &n);
	struct catalog_usage *u = arr;
	for (size_t i = 0; !rc && i < n; i++)
		rc = cb(arg, &u[i]);
	free(arr);
	return rc;
}
