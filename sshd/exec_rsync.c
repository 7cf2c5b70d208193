/*
 * exec_rsync.c - "exec rsync --server ...": the rsync engine (sshd/rsync/,
 * include/rsync.h) over the session's channel, with the virtual tree as its
 * path resolver.
 *
 * The resolver is the same gate SFTP and scp use: vfs_resolve() decides what
 * a client path names. /attachments/... maps onto the client's location,
 * read-write; one archive (/backups/NAME or /CLIENT-assets.tar.xz) maps
 * read-only onto the folder its location URL names, opened for this
 * session and closed when the command ends. Whole-tree paths ("/",
 * "/backups") are refused with a one-line reason rather than guessed at:
 * an archive folder may hold more than this client's archives.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "rsync.h"
#include "session.h"
#include "vfs.h"

#define MAX_OPENED 8

struct rsync_ctx {
	struct sshd_session *s;
	struct store *opened[MAX_OPENED]; /* archive folders, closed after */
	int nopened;
};

static ssize_t io_read(void *arg, void *buf, size_t len)
{
	struct rsync_ctx *x = arg;
	return sshd_io_read(x->s, buf, len);
}

static int io_write(void *arg, const void *buf, size_t len)
{
	struct rsync_ctx *x = arg;
	return sshd_io_write(x->s, buf, len);
}

static void io_err(void *arg, const char *text, size_t len)
{
	struct rsync_ctx *x = arg;
	char line[512];
	if (len >= sizeof line)
		len = sizeof line - 1;
	memcpy(line, text, len);
	line[len] = '\0';
	sshd_io_stderr(x->s, line);
}

static int resolve(void *arg, const char *path, struct rsync_target *out,
		   char *errbuf, size_t errlen)
{
	struct rsync_ctx *x = arg;
	struct sshd_session *s = x->s;
	struct vfs_path vp;
	struct catalog_archive ar;
	char dir[CATALOG_URL_MAX];

	memset(out, 0, sizeof *out);
	if (vfs_resolve(s->client, "/", path[0] ? path : ".", &vp) != 0) {
		snprintf(errbuf, errlen, "invalid path");
		return -1;
	}
	switch (vp.kind) {
	case VFS_FILES:
		out->store = s->store;
		snprintf(out->prefix, sizeof out->prefix, "%s", vp.name);
		out->read_only = 0;
		return 0;
	case VFS_BACKUP:
	case VFS_LATEST:
		if (vfs_archive_find(s->cat, s->client,
				     vp.kind == VFS_BACKUP ? vp.name : NULL,
				     &ar) != 0) {
			snprintf(errbuf, errlen, "no such archive");
			return -1;
		}
		if (x->nopened >= MAX_OPENED ||
		    vfs_archive_split(ar.location, dir, sizeof dir, out->prefix,
				      sizeof out->prefix) != 0 ||
		    tenant_open_location(s->cat, dir,
					 &x->opened[x->nopened]) != 0) {
			snprintf(errbuf, errlen, "archive unavailable");
			return -1;
		}
		out->store = x->opened[x->nopened++];
		out->read_only = 1;
		return 0;
	case VFS_ROOT:
		snprintf(errbuf, errlen, "permission denied: use attachments/ "
					 "or one archive under backups/");
		return -1;
	case VFS_BACKUPS:
		snprintf(errbuf, errlen, "permission denied: name one archive "
					 "under backups/");
		return -1;
	default:
		snprintf(errbuf, errlen, "no such file or directory");
		return -1;
	}
}

int sshd_rsync_serve(struct sshd_session *s, const char *command)
{
	struct rsync_ctx x;
	struct rsync_stats st;
	memset(&x, 0, sizeof x);
	memset(&st, 0, sizeof st);
	x.s = s;
	struct rsync_io io = { &x, io_read, io_write, io_err };
	int rc = rsync_serve(command, &io, resolve, &x, &st);
	for (int i = 0; i < x.nopened; i++)
		store_close(x.opened[i]);
	log_info("rsync_end",
		 "client=%s addr=%s exit=%d sender=%d files=%llu transferred=%llu "
		 "deleted=%llu literal=%llu matched=%llu",
		 log_q(s->client), log_q(s->addr), rc, st.sender,
		 (unsigned long long)st.files,
		 (unsigned long long)st.files_transferred,
		 (unsigned long long)st.files_deleted,
		 (unsigned long long)st.literal_bytes,
		 (unsigned long long)st.matched_bytes);
	return rc;
}
