/*
 * catalog.h - the SQLite catalog: regions, clients, collections, SSH keys,
 * archives, runs and usage.
 *
 * One file (default var/assetd.db), WAL mode, foreign keys on, a busy
 * timeout so that the daemon's threads and assetctl can use it at once.
 * Opening an older schema migrates it forward in one transaction; a newer
 * schema is refused. A struct catalog is one connection guarded by a mutex:
 * any thread may call any function.
 *
 * All functions return 0 on success or a negative CATALOG_E* value; on error
 * catalog_errmsg() tells what went wrong in words fit for a user.
 * Text fields are copied into fixed buffers; inputs that do not fit are
 * refused with CATALOG_EINVAL rather than truncated.
 */
#ifndef ASSETD_CATALOG_H
#define ASSETD_CATALOG_H

#include <stddef.h>
#include <stdint.h>

enum catalog_error {
	CATALOG_OK = 0,
	CATALOG_ENOENT = -1,    /* no such row */
	CATALOG_EEXIST = -2,    /* duplicate name / key */
	CATALOG_EINVAL = -3,    /* invalid input (name, location, ...) */
	CATALOG_EINUSE = -4,    /* still referenced (region with clients) */
	CATALOG_EDB = -5,       /* SQLite failure */
	CATALOG_EVERSION = -6,  /* schema newer than this program */
	CATALOG_ENOMEM = -7,
	CATALOG_EQUOTA = -8,    /* a change would exceed the client's quota */
};

#define CATALOG_SCHEMA_VERSION 2

#define CATALOG_NAME_MAX 64     /* region / client names, incl. NUL */
#define CATALOG_URL_MAX 2048
#define CATALOG_TEXT_MAX 256
#define CATALOG_KEYBLOB_MAX 8192 /* base64 public key */

struct catalog;

/* Open (creating if needed) the catalog at PATH. On failure *out is NULL and
 * ERR (if not NULL) receives a message. */
int catalog_open(const char *path, struct catalog **out, char *err,
		 size_t errlen);
void catalog_close(struct catalog *cat);

/* The message of the last failure on this thread (CAT may be NULL: the
 * message is kept per thread, not per connection). */
const char *catalog_errmsg(struct catalog *cat);

/* Run PRAGMA integrity_check; 0 if "ok". */
int catalog_check(struct catalog *cat);

/* 1 if NAME is a safe identifier for a region or client:
 * [a-z0-9][a-z0-9_-]{0,62}. */
int catalog_name_valid(const char *name);

/* The schema version of the opened catalog (CATALOG_SCHEMA_VERSION once
 * catalog_open() succeeded). 0 or CATALOG_EDB. */
int catalog_schema_version(struct catalog *cat, int *out);

/* Check and normalise a location URL: file:///absolute/path/ or
 * s3://bucket[/prefix]/ (a valid S3 bucket name; no empty, "." or ".."
 * segment; no control character). OUT receives it ending in '/'.
 * 0 or CATALOG_EINVAL with the reason in catalog_errmsg(NULL). */
int catalog_location_normalise(const char *in, char *out, size_t outlen);

/* ---- regions -------------------------------------------------------- */

struct catalog_region {
	int64_t id;
	char name[CATALOG_NAME_MAX];
	char assets[CATALOG_URL_MAX];   /* location URL, ends in '/' */
	char snapshot[CATALOG_URL_MAX]; /* location URL or "" */
	char endpoint[CATALOG_URL_MAX]; /* S3 endpoint URL or "" for AWS */
	char s3_region[CATALOG_NAME_MAX]; /* "us-east-1" or "" */
	char profile[CATALOG_NAME_MAX]; /* credentials profile or "" */
};

int catalog_region_add(struct catalog *cat, const struct catalog_region *r);
int catalog_region_get(struct catalog *cat, const char *name,
		       struct catalog_region *out);
/* Update every field of the row named R->name. */
int catalog_region_update(struct catalog *cat, const struct catalog_region *r);
/* CATALOG_EINUSE while clients use it. */
int catalog_region_remove(struct catalog *cat, const char *name);
typedef int (*catalog_region_cb)(void *arg, const struct catalog_region *r);
int catalog_region_list(struct catalog *cat, catalog_region_cb cb, void *arg);

/* ---- clients -------------------------------------------------------- */

struct catalog_client {
	int64_t id;
	char name[CATALOG_NAME_MAX];
	char region[CATALOG_NAME_MAX];  /* "" if none */
	char location[CATALOG_URL_MAX]; /* its folder, ends in '/' */
	char attachment_key[CATALOG_TEXT_MAX]; /* "" = the server's key */
	int disabled;                   /* 1 = refused everywhere */
	int64_t quota_bytes;            /* 0 = none */
	int64_t quota_objects;          /* 0 = none */
	int64_t created;                /* unix seconds */
	/* How to reach the location: copied from the region on reads, or the
	 * client's own values when it brings its own bucket. */
	char endpoint[CATALOG_URL_MAX];
	char s3_region[CATALOG_NAME_MAX];
	char profile[CATALOG_NAME_MAX];
};

/* Add a client. If C->location is "", it becomes <region assets><name>/.
 * If C->attachment_key is "", one is generated (32 random bytes as hex) and
 * written back into C so the caller can show it once. */
int catalog_client_add(struct catalog *cat, struct catalog_client *c);
/* A new attachment key: 32 random bytes (OpenSSL RAND_bytes) as 64 hex
 * digits into OUT (at least 65 bytes). 0 or CATALOG_EDB. */
int catalog_attachment_key_generate(char *out, size_t outlen);
int catalog_client_get(struct catalog *cat, const char *name,
		       struct catalog_client *out);
int catalog_client_update(struct catalog *cat, const struct catalog_client *c);
/* Removes the client's keys and collections too; never touches files. */
int catalog_client_remove(struct catalog *cat, const char *name);
typedef int (*catalog_client_cb)(void *arg, const struct catalog_client *c);
int catalog_client_list(struct catalog *cat, catalog_client_cb cb, void *arg);

/* ---- collections ---------------------------------------------------- */

struct catalog_collection {
	int64_t id;
	char name[CATALOG_TEXT_MAX];    /* Specify collection name */
	char client[CATALOG_NAME_MAX];
	char subfolder[CATALOG_URL_MAX]; /* relative, "" = client root */
};

int catalog_collection_add(struct catalog *cat,
			   const struct catalog_collection *c);
/* Remove collection NAME of CLIENT. */
int catalog_collection_remove(struct catalog *cat, const char *client,
			      const char *name);
/* Find collection NAME. If CLIENT is not NULL, only that client's. Returns
 * CATALOG_ENOENT if none, CATALOG_EEXIST if CLIENT is NULL and more than one
 * client has a collection of that name (ambiguous). */
int catalog_collection_find(struct catalog *cat, const char *client,
			    const char *name, struct catalog_collection *out);
typedef int (*catalog_collection_cb)(void *arg,
				     const struct catalog_collection *c);
/* CLIENT NULL = all. */
int catalog_collection_list(struct catalog *cat, const char *client,
			    catalog_collection_cb cb, void *arg);

/* ---- SSH keys ------------------------------------------------------- */

struct catalog_key {
	int64_t id;
	char client[CATALOG_NAME_MAX];
	char type[CATALOG_NAME_MAX];    /* "ssh-ed25519", "ssh-rsa", ... */
	char blob[CATALOG_KEYBLOB_MAX]; /* base64 of the public key */
	char fingerprint[CATALOG_TEXT_MAX]; /* "SHA256:..." as OpenSSH prints */
	char comment[CATALOG_TEXT_MAX];
	int64_t added;                  /* unix seconds */
	int64_t last_used;              /* unix seconds, 0 = never */
};

/* Add a key; K->fingerprint is computed by the caller (sshd/keys code or
 * assetctl via libssh). CATALOG_EEXIST if the client already has it. */
int catalog_key_add(struct catalog *cat, const struct catalog_key *k);
/* Add N keys in one transaction: all or none. On failure *FAILED (if not
 * NULL) is the index of the key that was refused. */
int catalog_key_add_many(struct catalog *cat, const struct catalog_key *keys,
			 size_t n, size_t *failed);
/* Remove by fingerprint ("SHA256:...") or by id given as decimal text. */
int catalog_key_remove(struct catalog *cat, const char *client,
		       const char *fingerprint_or_id);
/* Find CLIENT's key with this type and blob; CATALOG_ENOENT if none. */
int catalog_key_find(struct catalog *cat, const char *client,
		     const char *type, const char *blob,
		     struct catalog_key *out);
/* Find CLIENT's key with this fingerprint ("SHA256:..." as
 * sshkey_fingerprint() computes it from the key a client offers): the
 * lookup that does not depend on how the blob was encoded. */
int catalog_key_find_fingerprint(struct catalog *cat, const char *client,
				 const char *fingerprint,
				 struct catalog_key *out);
/* Record a successful login with key ID at time NOW. */
int catalog_key_touch(struct catalog *cat, int64_t id, int64_t now);
typedef int (*catalog_key_cb)(void *arg, const struct catalog_key *k);
/* CLIENT NULL = all. */
int catalog_key_list(struct catalog *cat, const char *client,
		     catalog_key_cb cb, void *arg);

/* ---- archives ------------------------------------------------------- */

enum catalog_state { CATALOG_RUNNING = 0, CATALOG_DONE = 1, CATALOG_FAILED = 2 };

struct catalog_archive {
	int64_t id;
	char client[CATALOG_NAME_MAX];
	char location[CATALOG_URL_MAX]; /* URL of the archive object */
	char format[16];                /* "tar.xz", "tar.zst" */
	int64_t created;
	int64_t size;
	int64_t objects;
	char sha256[65];                /* hex, "" until done */
	int state;                      /* enum catalog_state */
	char error[CATALOG_TEXT_MAX];
};

/* Insert; A->id is set. */
int catalog_archive_add(struct catalog *cat, struct catalog_archive *a);
int catalog_archive_update(struct catalog *cat, const struct catalog_archive *a);
int catalog_archive_get(struct catalog *cat, int64_t id,
			struct catalog_archive *out);
int catalog_archive_remove(struct catalog *cat, int64_t id);
typedef int (*catalog_archive_cb)(void *arg, const struct catalog_archive *a);
/* Newest first. CLIENT NULL = all. */
int catalog_archive_list(struct catalog *cat, const char *client,
			 catalog_archive_cb cb, void *arg);

/* ---- usage ----------------------------------------------------------- */

/* What a client stores, kept per top-level folder of its location (a
 * collection's subfolder, "originals", ...; "" for objects at the root).
 * The daemon's stores add to it as writes commit (store_meter, tenant.c);
 * a recount (assetctl client usage --recount) lists the store and writes
 * the figures afresh. */
struct catalog_usage {
	char client[CATALOG_NAME_MAX];
	char folder[CATALOG_TEXT_MAX];  /* top-level folder, "" = root */
	int64_t objects;
	int64_t bytes;
	int64_t updated;                /* unix seconds of the last change */
};

/* A client's totals, its quotas and when it was last recounted. */
struct catalog_usage_total {
	int64_t objects;
	int64_t bytes;
	int64_t quota_objects;          /* 0 = none */
	int64_t quota_bytes;            /* 0 = none */
	int64_t recounted;              /* unix seconds, 0 = never */
};

/* Add OBJECTS and BYTES (either may be negative; a figure never goes
 * below 0) to CLIENT's usage under FOLDER. With CHECK set, an increase
 * that would take the client's total above one of its quotas is refused
 * with CATALOG_EQUOTA and nothing changes. One BEGIN IMMEDIATE
 * transaction: concurrent changes (threads or processes) are decided one
 * after the other, so two cannot both pass the same remaining room. */
int catalog_usage_add(struct catalog *cat, const char *client,
		      const char *folder, int64_t objects, int64_t bytes,
		      int check);
int catalog_usage_total(struct catalog *cat, const char *client,
			struct catalog_usage_total *out);
/* Replace CLIENT's figures with the N rows given (a recount made at
 * NOW), in one transaction. Rows' client fields are ignored. */
int catalog_usage_set(struct catalog *cat, const char *client,
		      const struct catalog_usage *rows, size_t n, int64_t now);
typedef int (*catalog_usage_cb)(void *arg, const struct catalog_usage *u);
/* CLIENT NULL = all; by client, then folder. */
int catalog_usage_list(struct catalog *cat, const char *client,
		       catalog_usage_cb cb, void *arg);

/* ---- runs ----------------------------------------------------------- */

struct catalog_run {
	int64_t id;
	char kind[32];                  /* "sync", "archive", ... */
	char what[CATALOG_URL_MAX];     /* "us" or "SRC -> DST", client, ... */
	int64_t started;
	int64_t finished;               /* 0 while running */
	int state;                      /* enum catalog_state */
	int64_t listed, copied, skipped, deleted, failed;
	int64_t bytes;
	char summary[CATALOG_TEXT_MAX];
};

int catalog_run_add(struct catalog *cat, struct catalog_run *r);
int catalog_run_update(struct catalog *cat, const struct catalog_run *r);
typedef int (*catalog_run_cb)(void *arg, const struct catalog_run *r);
/* Newest first, at most LIMIT (0 = all). KIND NULL = all. */
int catalog_run_list(struct catalog *cat, const char *kind, int limit,
		     catalog_run_cb cb, void *arg);

#endif
