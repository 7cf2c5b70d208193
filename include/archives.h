/*
 * archives.h - per-client archives (store/archive.c).
 *
 * (Named archives.h, prefix archives_, because <archive.h> and archive_*
 * belong to libarchive.)
 *
 * An archive is one tar.xz or tar.zst of every object under a client's
 * location, streamed object by object through libarchive straight into a
 * store_writer at the archive location: nothing is staged on local disk and
 * nothing is visible until the whole archive is committed. Entry names are
 * relative to the client's root ("originals/x.jpg"), mtimes are the
 * objects' (client) mtimes. xz compresses on as many threads as there are
 * cores; zstd is the fast format.
 *
 * Where archives go: ArchiveLocation when set; else, for a client whose
 * region has an S3 snapshot location, "archives/" at the root of that
 * snapshot bucket; else DataDir/archives/. Below it:
 * CLIENT/CLIENT-assets-YYYYMMDDTHHMMSSZ.tar.xz. Every archive has a row in
 * the catalog (running, then done with size, object count and SHA-256 of
 * the archive's bytes, or failed with the reason); the row's location is
 * the archive object's URL, openable with archives_open().
 */
#ifndef ASSETD_ARCHIVES_H
#define ASSETD_ARCHIVES_H

#include <stdint.h>
#include <stdio.h>

#include "catalog.h"

struct store;
struct conf;

/* Formats we write. */
#define ARCHIVES_FORMAT_DEFAULT "tar.xz"

/* 1 if FORMAT is "tar.xz" or "tar.zst". */
int archives_format_valid(const char *format);

/* The archive folder (URL ending in '/') for CLIENT, per the rules above. */
int archives_base_url(struct catalog *cat, const struct conf *cf,
		      const struct catalog_client *client, char *buf,
		      size_t len);

/* The same for every client of region R that has no location of its own
 * elsewhere: used by the region sync to keep archives kept inside the
 * snapshot location. */
int archives_region_base_url(struct catalog *cat, const struct conf *cf,
			     const struct catalog_region *r, char *buf,
			     size_t len);

/* What archives_write() made. */
struct archives_result {
	int64_t size;           /* bytes of the archive object */
	int64_t objects;        /* files in it */
	char sha256[65];        /* hex SHA-256 of the archive's bytes */
	char error[CATALOG_TEXT_MAX]; /* why it failed, or "" */
};

/* The engine: stream every object of SRC into archive NAME at DST in
 * FORMAT. Nothing is visible at DST unless it returns 0. */
int archives_write(struct store *src, struct store *dst, const char *name,
		   const char *format, volatile int *cancel,
		   struct archives_result *res);

/* Create an archive of CLIENT in FORMAT (NULL = ArchiveFormat from CF, or
 * tar.xz). OUT (may be NULL) receives the final row. CANCEL (may be NULL)
 * is polled between blocks: non-zero abandons the archive. Also recorded
 * in runs (kind "archive"). Returns 0, or a negative store_error /
 * catalog_error; on failure the row is "failed" and no archive object is
 * visible. */
int archives_create(struct catalog *cat, const struct conf *cf,
		    const char *client, const char *format,
		    volatile int *cancel, struct catalog_archive *out);

/* Open the folder holding archive A and give the object's name in it, so
 * that a front end can stream it (store_reader_open(*st, name, ...)). The
 * caller closes *ST. */
int archives_open(struct catalog *cat, const struct catalog_archive *a,
		  struct store **st, char *name, size_t namelen);

/* Delete archive ID's object (a missing object is fine) and its row. */
int archives_remove(struct catalog *cat, int64_t id);

/* Keep the newest KEEP done archives of CLIENT (NULL = every client),
 * remove the older ones and the failed rows older than the newest kept.
 * With DRY_RUN only print. Lines about what is removed go to OUT (may be
 * NULL). Returns the number removed, or a negative error. */
int archives_prune(struct catalog *cat, const char *client, int keep,
		   int dry_run, FILE *out);

/* Mark rows left "running" by a process that no longer exists as failed
 * ("interrupted"); returns how many. Called by list/prune/create. */
int archives_reap_interrupted(struct catalog *cat);

/* assetctl's verb:
 *   archive create CLIENT|--all [--format tar.xz|tar.zst]
 *   archive list [CLIENT] [--json]
 *   archive show ID [--json]
 *   archive remove ID
 *   archive prune [CLIENT] [--keep N] [--dry-run]
 * ARGV[0] is "archive". Returns the exit status. */
int archives_cli(struct catalog *cat, const struct conf *cf, int json,
		 int argc, char **argv);

#endif
