/* scratch.h - for the unit tests that work on real files: a scratch
 * directory under /tmp, files written into it with their parent folders,
 * a file:// store on a folder of it, its removal; and a catalog in it
 * whose region "test" keeps its assets in DIR/assets/. Include it after
 * cmocka.h; the functions are static inline, so a test takes what it uses
 * and the rest costs nothing. */
#ifndef ASSETD_TEST_SCRATCH_H
#define ASSETD_TEST_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "catalog.h"
#include "store.h"

/* Make DIR from a mkdtemp() template ("/tmp/test_sync.XXXXXX"). */
static inline void scratch_dir(char *dir, size_t len, const char *tmpl)
{
	snprintf(dir, len, "%s", tmpl);
	assert_non_null(mkdtemp(dir));
}

/* Write CONTENT as DIR/NAME, making the folders of NAME first. */
static inline void scratch_put(const char *dir, const char *name,
			       const char *content)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	for (char *p = path + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

/* The store on the folder DIR (file://DIR/). */
static inline void scratch_store(const char *dir, struct store **st)
{
	char url[1100];
	snprintf(url, sizeof url, "file://%s/", dir);
	assert_int_equal(store_open(url, NULL, st), 0);
}

/* Remove DIR and everything below it. 0, or -1. */
static inline int scratch_remove(const char *dir)
{
	char cmd[1100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Open DIR/cat.db with the region "test" over DIR/assets/ (made here);
 * ASSETS receives that location's URL. 0, or -1 with a message. */
static inline int scratch_catalog(const char *dir, char *assets,
				  size_t assets_len, struct catalog **cat)
{
	char path[256], err[256];
	if (snprintf(path, sizeof path, "%s/assets", dir) >= (int)sizeof path ||
	    snprintf(assets, assets_len, "file://%s/", path) >= (int)assets_len)
		return -1;
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/cat.db", dir);
	if (catalog_open(path, cat, err, sizeof err) != 0) {
		fprintf(stderr, "catalog_open: %s\n", err);
		return -1;
	}
	struct catalog_region r = { 0 };
	snprintf(r.name, sizeof r.name, "test");
	snprintf(r.assets, sizeof r.assets, "%s", assets);
	return catalog_region_add(*cat, &r) == 0 ? 0 : -1;
}

#endif
