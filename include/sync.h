/*
 * sync.h - snapshot sync between two locations (store/sync.c).
 *
 * Makes DST hold what SRC holds, the way `aws s3 sync --size-only` did for
 * the old snapshot crons: an object missing at DST, or there with another
 * size, is copied; with `checksum` objects of equal size are compared by
 * ETag (S3's MD5 for simple uploads) or by an MD5 of their bytes where no
 * comparable ETag exists, and copied when they differ; with `delete_extra`
 * objects only DST has are deleted. Nothing else is touched.
 *
 * Both listings are streamed by two threads and merged in key order, so
 * memory stays bounded whatever the number of objects. Copies run on
 * `concurrency` threads through store_copy(): server-side within one S3
 * endpoint, streamed otherwise. A failed object is reported and counted,
 * and the run goes on. A listing that fails, or that is not in key order,
 * stops the run before anything more is decided (nothing is deleted on
 * the strength of a partial listing).
 */
#ifndef ASSETD_SYNC_H
#define ASSETD_SYNC_H

#include <stdint.h>
#include <stdio.h>

struct store;
struct catalog;
struct conf;

struct sync_opts {
	int checksum;           /* compare contents of same-size objects */
	int delete_extra;       /* delete what only DST has */
	int dry_run;            /* print what would be done, do nothing */
	int verbose;            /* print every copy and delete */
	int concurrency;        /* copies in flight; 0 = 32 */
	int progress;           /* 1: a progress line on stderr (a tty) */
	FILE *out;              /* dry-run/verbose lines; NULL = stdout */
	FILE *err;              /* per-object errors; NULL = stderr */
	/* DST-relative prefixes that are never deleted (e.g. an archive
	 * folder inside the snapshot location); NULL-terminated or NULL. */
	const char *const *keep_prefixes;
	volatile int *cancel;   /* polled; non-zero stops the run */
};

struct sync_stats {
	int64_t listed;         /* objects listed at SRC */
	int64_t listed_dst;     /* objects listed at DST */
	int64_t copied;         /* copied (or, dry run, that would be) */
	int64_t bytes;          /* bytes of the objects copied */
	int64_t skipped;        /* already up to date */
	int64_t deleted;        /* deleted at DST (or would be) */
	int64_t failed;         /* objects that failed (copy, delete, read) */
	double seconds;         /* wall time of the run */
	char error[256];        /* a run-level failure (listing), or "" */
};

/* Sync SRC to DST. Returns 0 when every object went through, 1 when some
 * object failed (counted in STATS->failed), or a negative store_error when
 * the run itself failed (STATS->error tells why). STATS is always filled. */
int sync_run(struct store *src, struct store *dst, const struct sync_opts *o,
	     struct sync_stats *stats);

/* "listed 10 (dst 8), copied 3 (1.2 MiB), skipped 7, deleted 0, failed 0
 * in 0.4 s" into BUF. */
void sync_summary(const struct sync_stats *s, char *buf, size_t len);

/* 1 if the two location URLs overlap (one contains the other), which a
 * sync refuses. */
int sync_locations_overlap(const char *a, const char *b);

/* Sync region REGION's assets to its snapshot location, recorded in the
 * catalog's runs. Returns as sync_run; an unknown region or one without a
 * snapshot location is STORE_EINVAL with STATS->error set. */
int sync_region(struct catalog *cat, const struct conf *cf, const char *region,
		const struct sync_opts *o, struct sync_stats *stats);

/* Sync any two location URLs (options from the catalog's regions, see
 * tenant_open_location), recorded in runs. */
int sync_urls(struct catalog *cat, const char *src, const char *dst,
	      const struct sync_opts *o, struct sync_stats *stats);

/* assetctl's verbs. ARGV[0] is the verb; options are parsed here; output
 * goes to stdout/stderr; the return value is the exit status.
 *   sync REGION | sync SRC DST  [--size-only] [--checksum] [--delete]
 *        [--dry-run] [--concurrency N] [-v] [--json]
 *   runs [--kind sync|archive] [--limit N] [--json]
 * JSON is also chosen by passing JSON != 0 (assetctl's global --json). */
int sync_cli(struct catalog *cat, const struct conf *cf, int json, int argc,
	     char **argv);
int sync_runs_cli(struct catalog *cat, const struct conf *cf, int json,
		  int argc, char **argv);

#endif
