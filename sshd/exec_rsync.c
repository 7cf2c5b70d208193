/*
 * exec_rsync.c - "exec rsync --server ...": the rsync engine (sshd/rsync/,
 * include/rsync.h) over the session's channel, with the virtual tree as its
 * path resolver.
 *
 * The resolver is the same gate SFTP and scp use: vfs_resolve() decides what
 * a client path names. /attachments/... maps onto the client's location,
 * read-write; one archive (/backups/NAME or /CLIENT-assets.tar.xz) maps
 * read-only onto the folder its location URL names, opened for this
 * session and closed when the command ends. /backups itself is served as
 * a virtual read-only directory: its files are exactly this client's
 * finished archives from the catalog, each read from its own folder (an
 * archive folder may hold more than this client's archives, so it is never
 * listed as such). The root "/" is refused with a one-line reason.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "rsync.h"
#include "session.h"
#include "vfs.h"

#include <stdlib.h>

struct rsync_ctx {
	struct sshd_session *s;
	struct store **opened;  /* archive folders, closed after */
	int nopened, capopened;
};

/* The store of archive folder DIR, opened once per command. */
static struct store *open_folder(struct rsync_ctx *x, const char *dir)
{
	struct store *st;
	size_t dl = strlen(dir);

	for (int i = 0; i < x->nopened; i++) {
		const char *u = store_url(x->opened[i]);
		size_t ul = strlen(u);
		if ((ul == dl && !strcmp(u, dir)) ||
		    (ul == dl + 1 && !strncmp(u, dir, dl) && u[dl] == '/'))
			return x->opened[i];
	}
	if (x->nopened == x->capopened) {
		int cap = x->capopened ? x->capopened * 2 : 4;
		struct store **n = realloc(x->opened, (size_t)cap * sizeof *n);
		if (!n)
			return NULL;
		x->opened = n;
		x->capopened = cap;
	}
	if (tenant_open_location(x->s->cat, dir, &st) != 0)
		return NULL;
	x->opened[x->nopened++] = st;
	return st;
}

struct archive_walk {
	struct rsync_ctx *x;
	rsync_ventry_cb cb;
	void *cb_arg;
};

static int one_archive(void *arg, const char *name,
		       const struct catalog_archive *a)
{
	struct archive_walk *w = arg;
	char dir[CATALOG_URL_MAX], base[STORE_NAME_MAX];
	struct rsync_ventry e;

	if (vfs_archive_split(a->location, dir, sizeof dir, base,
			      sizeof base) != 0)
		return 0;
	e.store = open_folder(w->x, dir);
	if (!e.store)
		return 0;
	e.name = name;
	e.size = a->size > 0 ? (uint64_t)a->size : 0;
	e.mtime = a->created;
	e.object = base;
	return w->cb(w->cb_arg, &e);
}

/* The client's /backups for rsync: its finished archives. */
static int list_archives(void *arg, rsync_ventry_cb cb, void *cb_arg)
{
	struct rsync_ctx *x = arg;
	struct archive_walk w = { x, cb, cb_arg };
	return vfs_archive_list(x->s->cat, x->s->client, one_archive, &w) < 0
		       ? -1 : 0;
}

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

/* Pushes only write below /attachments/ (the resolver hands out nothing
 * else writable), so an object name is shown as /attachments/NAME. */
static void io_event(void *arg, const char *op, const char *object, int rc,
		     uint64_t bytes)
{
	struct rsync_ctx *x = arg;
	char path[STORE_NAME_MAX + 16];
	snprintf(path, sizeof path, "/attachments/%s", object);
	sshd_record(x->s, op, path, NULL, rc, bytes, 1);
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
		out->event = io_event;
		out->event_arg = x;
		return 0;
	case VFS_BACKUP:
	case VFS_LATEST:
		if (vfs_archive_find(s->cat, s->client,
				     vp.kind == VFS_BACKUP ? vp.name : NULL,
				     &ar) != 0) {
			snprintf(errbuf, errlen, "no such archive");
			return -1;
		}
		if (vfs_archive_split(ar.location, dir, sizeof dir, out->prefix,
				      sizeof out->prefix) != 0 ||
		    !(out->store = open_folder(x, dir))) {
			snprintf(errbuf, errlen, "archive unavailable");
			return -1;
		}
		out->read_only = 1;
		return 0;
	case VFS_ROOT:
		snprintf(errbuf, errlen, "permission denied: use attachments/ "
					 "or one archive under backups/");
		return -1;
	case VFS_BACKUPS:
		out->list = list_archives;
		out->list_arg = x;
		out->read_only = 1;
		return 0;
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
	sshd_transfer(s, 1);
	int rc = rsync_serve(command, &io, resolve, &x, &st);
	sshd_transfer(s, -1);
	/* The session as a whole: a push or a pull, with the bytes on the
	 * wire (files already counted one by one above). */
	{
		struct ops_actor who = { "rsync", s->client, s->fingerprint,
					 s->addr };
		struct ops_event e = {
			.op = st.sender ? "pull" : "push",
			.status = rc == 0 ? "ok" : "error",
			.bytes_in = st.bytes_read,
			.bytes_out = st.bytes_written,
		};
		ops_record(&who, &e);
	}
	for (int i = 0; i < x.nopened; i++)
		store_close(x.opened[i]);
	free(x.opened);
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
