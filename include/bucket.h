/*
 * bucket.h - client-owned buckets: the bucket policy to hand over, and the
 * check of a location before a client uses it (store/bucket.c).
 *
 * The policy grants the server's AWS identity what assetd needs on a
 * client's bucket, or on one folder of it: Get/Put/Delete on the objects,
 * List on the bucket (narrowed by an s3:prefix condition to the folder).
 *
 * The check runs against any location (S3 or fs) and reports findings, one
 * per problem:
 *  - access: list, write a uniquely named probe object, read it back and
 *    delete it (the probe is always removed when the backend lets us);
 *    a refusal names the permission and the ARN the policy lacks;
 *  - layout: originals/ and thumbnails/ in each collection folder (the
 *    root, or the subfolders given), nothing else there (warnings), no
 *    object directly under the root;
 *  - file types: thumbnails are jpeg/png/gif named <root>_<scale>.<ext>
 *    with an original beside them (an orphan is a warning); originals have
 *    single-segment names Specify can use, and contents whose first bytes
 *    (one ranged read each) agree with their extension.
 * A location with no error is usable; warnings do not make it unusable.
 */
#ifndef ASSETD_BUCKET_H
#define ASSETD_BUCKET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct store;
struct catalog;
struct conf;

/* Write the policy JSON for location URL ("s3://bucket[/prefix/]") and
 * PRINCIPAL (an ARN) to F. READ_ONLY drops Put and Delete. Returns 0, or -1
 * with ERR set when the URL or the principal is not valid. */
int bucket_policy_write(FILE *f, const char *url, const char *principal,
			int read_only, char *err, size_t errlen);

enum bucket_level { BUCKET_OK = 0, BUCKET_WARN = 1, BUCKET_ERROR = 2 };

struct bucket_finding {
	int level;              /* enum bucket_level */
	const char *check;      /* "access", "layout", "type", "name" */
	const char *name;       /* the object or folder concerned, or "" */
	const char *message;    /* one line, for people */
};

typedef void (*bucket_finding_cb)(void *arg, const struct bucket_finding *f);

struct bucket_check_opts {
	/* Collection folders to check, relative to the location ("" = the
	 * root); NULL/0 = the root, or, when the root has no originals/ and
	 * no thumbnails/ but subfolders that do, those subfolders. */
	const char *const *folders;
	int nfolders;
	int fix;                /* create missing originals/ thumbnails/ */
	bucket_finding_cb cb;   /* every finding, OK lines included */
	void *cb_arg;
	volatile int *cancel;
};

struct bucket_report {
	int errors, warnings;
	int64_t objects;        /* objects looked at */
	int64_t fixed;          /* folders created by fix */
};

/* Check ST. Returns 0 when the check ran (REP says what it found), or a
 * negative store_error when it could not run at all. */
int bucket_check(struct store *st, const struct bucket_check_opts *o,
		 struct bucket_report *rep);

/* For `client add|set --location`: check client C's location (reached
 * with C's endpoint, region and profile; with its collections' subfolders
 * when it has any), creating missing originals/ and thumbnails/ as the
 * add would anyway, and print the findings that are not OK to OUT (may be
 * NULL). Returns 1 if usable, 0 if not, or a negative store_error if the
 * location cannot be opened. */
struct catalog_client;
int bucket_client_usable(struct catalog *cat, const struct catalog_client *c,
			 FILE *out);

/* assetctl's verb:
 *   bucket policy s3://BUCKET[/PREFIX/] [--principal ARN] [--read-only]
 *   bucket check LOCATION|--client NAME [--collection DIR]... [--fix]
 *                [--json]
 * Returns the exit status (check: 0 usable, 1 not, 2 usage). */
int bucket_cli(struct catalog *cat, const struct conf *cf, int json, int argc,
	       char **argv);

#endif
