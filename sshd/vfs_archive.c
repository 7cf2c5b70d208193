/*
 * vfs_archive.c - the archives under /backups, from the catalog (see
 * include/vfs.h). Only finished archives are shown; an archive's file name
 * is the last segment of its location URL. Kept apart from vfs.c so that
 * the path resolver stays free of the catalog (unit tests, fuzzing).
 */
#include "vfs.h"

#include <string.h>

int vfs_archive_split(const char *url, char *dir, size_t dirlen, char *base,
		      size_t baselen)
{
	const char *slash = strrchr(url, '/');
	if (!slash || slash[1] == '\0')
		return STORE_EINVAL;
	size_t dl = (size_t)(slash - url) + 1;
	if (dl >= dirlen || strlen(slash + 1) >= baselen)
		return STORE_EINVAL;
	memcpy(dir, url, dl);
	dir[dl] = '\0';
	strcpy(base, slash + 1);
	if (!store_segment_valid(base))
		return STORE_EINVAL;
	return 0;
}

struct list_ctx {
	vfs_archive_cb cb;
	void *arg;
	const char *want;               /* find: the name, or NULL = newest */
	struct catalog_archive *found;
	int hit;
};

static int list_one(void *arg, const struct catalog_archive *a)
{
	struct list_ctx *lc = arg;
	char dir[CATALOG_URL_MAX], base[STORE_NAME_MAX];

	if (a->state != CATALOG_DONE)
		return 0;
	if (vfs_archive_split(a->location, dir, sizeof dir, base, sizeof base))
		return 0;
	if (lc->found) {
		if (lc->want && strcmp(lc->want, base))
			return 0;
		*lc->found = *a;
		lc->hit = 1;
		return 1; /* newest first: the first match is the one */
	}
	return lc->cb(lc->arg, base, a);
}

int vfs_archive_list(struct catalog *cat, const char *client,
		     vfs_archive_cb cb, void *arg)
{
	struct list_ctx lc = { cb, arg, NULL, NULL, 0 };
	int rc = catalog_archive_list(cat, client, list_one, &lc);
	return rc < 0 ? STORE_EIO : rc;
}

int vfs_archive_find(struct catalog *cat, const char *client,
		     const char *name, struct catalog_archive *out)
{
	struct list_ctx lc = { NULL, NULL, name, out, 0 };
	int rc = catalog_archive_list(cat, client, list_one, &lc);
	if (rc < 0)
		return STORE_EIO;
	return lc.hit ? 0 : STORE_ENOENT;
}
