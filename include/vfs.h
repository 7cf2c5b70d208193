/*
 * vfs.h - the virtual tree an SSH session sees, and the one place where a
 * client's path is turned into something the store understands.
 *
 *   /                          the session's home (read-only)
 *   /attachments/...           the client's location, read-write
 *   /backups/                  the client's finished archives, read-only
 *   /backups/NAME              one archive object
 *   /CLIENT-assets.tar.xz      the newest archive (the old weekly tarball)
 *
 * vfs_resolve() is pure: it normalises the path with store_path_resolve()
 * (".", "..", repeated slashes; ".." never climbs above "/"), then decides
 * which part of the tree it names and checks the object name with
 * store_name_valid(). No other code in sshd/ builds store names from client
 * paths. "~" and "~/x" are the home, as a shell would expand them, and the
 * old Linux home "/home/CLIENT/..." maps onto "/..." so that scripts written
 * for the old hosted setup keep working.
 */
#ifndef ASSETD_VFS_H
#define ASSETD_VFS_H

#include <stddef.h>

#include "catalog.h"
#include "store.h"

#define VFS_PATH_MAX 4096

enum vfs_kind {
	VFS_ROOT = 1,           /* "/" */
	VFS_FILES,              /* "/attachments[/NAME]": NAME in .name */
	VFS_BACKUPS,            /* "/backups" */
	VFS_BACKUP,             /* "/backups/NAME": archive file NAME */
	VFS_LATEST,             /* "/CLIENT-assets.tar.xz" */
	VFS_OTHER,              /* anything else: nothing there, and nothing
				   may be created there */
};

struct vfs_path {
	enum vfs_kind kind;
	char abs[VFS_PATH_MAX];         /* normalised absolute path */
	char name[STORE_NAME_MAX];      /* VFS_FILES: the object name below
					   the location ("" = its root);
					   VFS_BACKUP: the archive's name */
};

/* Resolve PATH (absolute or relative to CWD, itself absolute) for CLIENT.
 * Returns 0, or STORE_EINVAL when the path is malformed (control bytes,
 * over-long, a name the store refuses). */
int vfs_resolve(const char *client, const char *cwd, const char *path,
		struct vfs_path *out);

/* 1 if the path may be written (created, changed, removed): only objects
 * below /attachments/ ("/attachments" itself cannot be removed). */
int vfs_writable(const struct vfs_path *p);

/* The name of the newest-archive alias for CLIENT: "CLIENT-assets.tar.xz". */
void vfs_latest_name(const char *client, char *out, size_t outlen);

/* ---- archives (read-only, from the catalog) ------------------------- */

/* Find CLIENT's finished archive whose file name (the last segment of its
 * location) is NAME; NAME NULL = the newest. 0 or STORE_ENOENT. */
int vfs_archive_find(struct catalog *cat, const char *client,
		     const char *name, struct catalog_archive *out);

/* Split an archive's location URL into the URL of its folder and its file
 * name. 0 or STORE_EINVAL. */
int vfs_archive_split(const char *url, char *dir, size_t dirlen,
		      char *base, size_t baselen);

/* Call CB for each of CLIENT's finished archives, newest first, with the
 * archive's file name. */
typedef int (*vfs_archive_cb)(void *arg, const char *name,
			      const struct catalog_archive *a);
int vfs_archive_list(struct catalog *cat, const char *client,
		     vfs_archive_cb cb, void *arg);

#endif
