/*
 * vfs.c - the client's virtual tree (see include/vfs.h).
 *
 * vfs_resolve() is the single gate between what a client types and what the
 * store is asked for: the path is normalised by store_path_resolve() (which
 * refuses control bytes and keeps ".." at the root), then classified by its
 * first segment, and the remainder below /attachments must pass
 * store_name_valid() before it becomes an object name. Nothing else in
 * sshd/ joins client text onto a location, so no path can leave the tree.
 *
 * The archives under /backups come from the catalog (finished rows only);
 * their file name is the last segment of the archive's location URL.
 */
#include "vfs.h"

#include <stdio.h>
#include <string.h>

#define ATTACH "/attachments"
#define BACKUPS "/backups"

void vfs_latest_name(const char *client, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s-assets.tar.xz", client);
}

/* "~", "~/x" -> the home; "/home/CLIENT[/x]" -> "/[x]". Writes the path to
 * resolve into BUF (or returns PATH unchanged). */
static const char *expand_home(const char *client, const char *path,
			       char *buf, size_t buflen, const char **cwd)
{
	if (path[0] == '~' && (path[1] == '\0' || path[1] == '/')) {
		*cwd = "/";
		return path[1] ? path + 2 : "";
	}
	size_t cl = strlen(client);
	if (!strncmp(path, "/home/", 6) && !strncmp(path + 6, client, cl) &&
	    (path[6 + cl] == '\0' || path[6 + cl] == '/')) {
		if (snprintf(buf, buflen, "/%s", path + 6 + cl +
			     (path[6 + cl] == '/')) >= (int)buflen)
			return NULL;
		return buf;
	}
	return path;
}

int vfs_resolve(const char *client, const char *cwd, const char *path,
		struct vfs_path *out)
{
	char tmp[VFS_PATH_MAX];
	char latest[CATALOG_NAME_MAX + 32];
	const char *p;
	int rc;

	char cwdbuf[VFS_PATH_MAX];
	char pathbuf[VFS_PATH_MAX];

	if (!client || !cwd || !path)
		return STORE_EINVAL;
	/* CWD or PATH may point into OUT (resolving relative to a previous
	 * result): copy them before OUT is cleared. */
	if (strlen(cwd) >= sizeof cwdbuf || strlen(path) >= sizeof pathbuf) {
		memset(out, 0, sizeof *out);
		return STORE_EINVAL;
	}
	strcpy(cwdbuf, cwd);
	strcpy(pathbuf, path);
	cwd = cwdbuf;
	path = pathbuf;
	memset(out, 0, sizeof *out);
	p = expand_home(client, path, tmp, sizeof tmp, &cwd);
	if (!p)
		return STORE_EINVAL;
	rc = store_path_resolve(cwd, p, out->abs, sizeof out->abs);
	if (rc != 0)
		return STORE_EINVAL;
	/* store_path_resolve promises an absolute path without a trailing '/'
	 * and without "." / ".." segments; check rather than trust. */
	if (out->abs[0] != '/' || strstr(out->abs, "/../") ||
	    strstr(out->abs, "/./"))
		return STORE_EINVAL;

	const char *a = out->abs;
	if (!strcmp(a, "/")) {
		out->kind = VFS_ROOT;
		return 0;
	}
	if (!strcmp(a, ATTACH)) {
		out->kind = VFS_FILES;
		return 0;
	}
	if (!strncmp(a, ATTACH "/", sizeof ATTACH)) {
		const char *rest = a + sizeof ATTACH;
		if (!store_name_valid(rest))
			return STORE_EINVAL;
		if (strlen(rest) >= sizeof out->name)
			return STORE_EINVAL;
		strcpy(out->name, rest);
		out->kind = VFS_FILES;
		return 0;
	}
	if (!strcmp(a, BACKUPS)) {
		out->kind = VFS_BACKUPS;
		return 0;
	}
	if (!strncmp(a, BACKUPS "/", sizeof BACKUPS)) {
		const char *rest = a + sizeof BACKUPS;
		if (strchr(rest, '/')) {
			out->kind = VFS_OTHER; /* archives are flat */
			return 0;
		}
		if (!store_segment_valid(rest) || strlen(rest) >= sizeof out->name)
			return STORE_EINVAL;
		strcpy(out->name, rest);
		out->kind = VFS_BACKUP;
		return 0;
	}
	vfs_latest_name(client, latest, sizeof latest);
	if (a[0] == '/' && !strcmp(a + 1, latest)) {
		out->kind = VFS_LATEST;
		return 0;
	}
	out->kind = VFS_OTHER;
	return 0;
}

int vfs_writable(const struct vfs_path *p)
{
	return p->kind == VFS_FILES && p->name[0] != '\0';
}
