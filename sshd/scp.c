/*
 * scp.c - exec requests: the legacy scp protocol ("scp -t" / "scp -f",
 * what OpenSSH's "scp -O" runs on the server), rsync's server mode (handed
 * to exec_rsync.c) and the refusal of anything else.
 *
 * The protocol: the receiving side ("sink", -t) acknowledges each step with
 * a zero byte or answers "\1message\n" (an error the other side prints and
 * goes on from) or "\2message\n" (fatal). The sending side ("source", -f)
 * announces a file with "C<mode> <size> <name>", optionally preceded by
 * "T<mtime> 0 <atime> 0" (-p), then sends the bytes and a zero byte; it
 * enters and leaves folders with "D<mode> 0 <name>" and "E" (-r).
 *
 * Files received stream into a store_writer and are committed only after
 * all their bytes and the sender's final zero byte arrived: an interrupted
 * copy leaves nothing. Files sent stream from a store_reader. A recursive
 * send lists the folder flat, in byte order, and derives the D/E lines from
 * how consecutive names differ: all names below "a/" are contiguous in that
 * order, so memory does not grow with the tree.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "rsync.h"
#include "scp.h"
#include "session.h"
#include "vfs.h"

#define IO_CHUNK (256u * 1024u)

struct scp {
	struct sshd_session *s;
	struct scp_command cmd;
	int errors;                     /* files that failed: exit 1 */
	uint8_t *buf;                   /* IO_CHUNK bytes */
	int dead;                       /* the channel failed: stop */
	int op_rc;                      /* store outcome of the file being
					   moved, for metrics and audit */
};

/* ---- protocol helpers -------------------------------------------------- */

static int send_bytes(struct scp *c, const void *p, size_t n)
{
	if (c->dead)
		return -1;
	if (sshd_io_write(c->s, p, n) != 0) {
		c->dead = 1;
		return -1;
	}
	return 0;
}

static int send_ack(struct scp *c)
{
	return send_bytes(c, "", 1);
}

/* Send "\1scp: PATH: WHY\n" (the client prints it and goes on). */
static int send_error(struct scp *c, const char *path, const char *why)
{
	char msg[SCP_ARG_MAX + 256];
	int n = snprintf(msg, sizeof msg, "\1scp: %s: %s\n", path, why);
	if (n < 0 || (size_t)n >= sizeof msg) {
		n = snprintf(msg, sizeof msg, "\1scp: %s\n", why);
	}
	c->errors++;
	log_info("scp_error", "client=%s path=%s msg=%s", log_q(c->s->client),
		 log_q(path), log_q(why));
	return send_bytes(c, msg, (size_t)n);
}

/* Read one '\n'-terminated line (without it) into BUF. 0, 1 at EOF before
 * any byte, -1 on error or overlong line. */
static int read_line(struct scp *c, char *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	for (;;) {
		char ch;
		ssize_t r = sshd_io_read(c->s, &ch, 1);
		if (r == 0 && n == 0)
			return 1;
		if (r <= 0) {
			c->dead = 1;
			return -1;
		}
		if (ch == '\n')
			break;
		if (n + 1 >= cap) {
			c->dead = 1;
			return -1;
		}
		buf[n++] = ch;
	}
	buf[n] = '\0';
	*len = n;
	return 0;
}

/* Wait for the peer's answer: 0 ok, 1 it reported an error (printed on its
 * side), -1 fatal or the channel failed. */
static int read_response(struct scp *c)
{
	uint8_t b;
	char line[SCP_LINE_MAX];
	size_t n;
	if (sshd_io_read_full(c->s, &b, 1) != 0) {
		c->dead = 1;
		return -1;
	}
	if (b == 0)
		return 0;
	if (b == 1 || b == 2) {
		if (read_line(c, line, sizeof line, &n) != 0)
			return -1;
		return b == 1 ? 1 : -1;
	}
	c->dead = 1;
	return -1;
}

static const char *why_of(int err)
{
	switch (err) {
	case STORE_ENOENT: return "No such file or directory";
	case STORE_EACCES: return "Permission denied";
	case STORE_EISDIR: return "Is a directory";
	case STORE_ENOTDIR: return "Not a directory";
	case STORE_EEXIST: return "File exists";
	case STORE_EINVAL: return "Invalid file name";
	case STORE_ENOSPC: return "No space left (quota or disk full)";
	default: return store_strerror(err);
	}
}

/* Stat a path of the virtual tree: 0 (ST filled) or a store error. */
static int tree_stat(struct scp *c, const struct vfs_path *vp,
		     struct store_stat *st)
{
	struct catalog_archive ar;
	memset(st, 0, sizeof *st);
	switch (vp->kind) {
	case VFS_ROOT:
	case VFS_BACKUPS:
		st->is_dir = 1;
		return 0;
	case VFS_FILES:
		return store_stat(c->s->store, vp->name, st);
	case VFS_BACKUP:
	case VFS_LATEST: {
		int rc = vfs_archive_find(c->s->cat, c->s->client,
					  vp->kind == VFS_BACKUP ? vp->name :
								   NULL, &ar);
		if (rc)
			return rc;
		st->size = (uint64_t)(ar.size > 0 ? ar.size : 0);
		st->mtime = ar.created;
		return 0;
	}
	default:
		return STORE_ENOENT;
	}
}

/* ---- sink: the client uploads ------------------------------------------ */

static int parent_dir_exists(struct scp *c, const struct vfs_path *vp)
{
	char parent[STORE_NAME_MAX];
	struct store_stat st;
	const char *slash = strrchr(vp->name, '/');
	if (!slash)
		return 0;
	memcpy(parent, vp->name, (size_t)(slash - vp->name));
	parent[slash - vp->name] = '\0';
	int rc = store_stat(c->s->store, parent, &st);
	if (rc == 0 && !st.is_dir)
		rc = STORE_ENOTDIR;
	return rc;
}

/* Receive SIZE bytes into NAME, then the sender's zero byte; commit. */
static int sink_file_io(struct scp *c, const struct vfs_path *vp,
			const struct scp_line *ln, int64_t mtime)
{
	struct store_writer *w = NULL;
	struct store_put_opts po;
	int rc;

	memset(&po, 0, sizeof po);
	po.mtime = mtime;
	po.size_hint = ln->size;
	po.size_exact = 1; /* refused before a byte is read if over quota */
	if (!vfs_writable(vp)) {
		c->op_rc = STORE_EACCES;
		return send_error(c, vp->abs, why_of(STORE_EACCES));
	}
	rc = store_writer_open(c->s->store, vp->name, &po, &w);
	if (rc) {
		c->op_rc = rc;
		return send_error(c, vp->abs, why_of(rc));
	}
	if (send_ack(c) != 0) {
		store_writer_abort(w);
		return -1;
	}
	uint64_t left = ln->size;
	int werr = 0;
	while (left > 0) {
		size_t want = left < IO_CHUNK ? (size_t)left : IO_CHUNK;
		ssize_t n = sshd_io_read(c->s, c->buf, want);
		if (n <= 0) {
			c->dead = 1;
			store_writer_abort(w);
			log_warn("scp_put_aborted", "client=%s path=%s",
				 log_q(c->s->client), log_q(vp->abs));
			return -1;
		}
		/* After a store error keep reading: the protocol needs the
		 * bytes consumed before the error can be reported. */
		if (!werr)
			werr = store_writer_write(w, c->buf, (size_t)n);
		left -= (uint64_t)n;
	}
	/* The sender ends the file with a zero byte (or its own error). */
	int resp = read_response(c);
	if (resp != 0 || werr) {
		store_writer_abort(w);
		if (resp < 0)
			return -1;
		if (resp > 0) {
			c->errors++;
			return 0; /* the sender already said why */
		}
		c->op_rc = werr;
		return send_error(c, vp->abs, why_of(werr));
	}
	rc = store_writer_commit(w);
	c->op_rc = rc;
	if (rc)
		return send_error(c, vp->abs, why_of(rc));
	log_info("scp_put", "client=%s path=%s bytes=%llu", log_q(c->s->client),
		 log_q(vp->abs), (unsigned long long)ln->size);
	return send_ack(c);
}

/* Receive one file, counted and audited once whatever its outcome. */
static int sink_file(struct scp *c, const struct vfs_path *vp,
		     const struct scp_line *ln, int64_t mtime)
{
	c->op_rc = STORE_ECANCELED;
	sshd_transfer(c->s, 1);
	int r = sink_file_io(c, vp, ln, mtime);
	sshd_transfer(c->s, -1);
	sshd_record(c->s, "write", vp->abs, NULL, c->op_rc,
		    c->op_rc ? 0 : ln->size, 1);
	return r;
}

static int sink(struct scp *c)
{
	struct vfs_path target, cur, vp;
	struct store_stat st;
	char line[SCP_LINE_MAX], err[128];
	size_t n;
	int64_t mtime = 0;
	int depth = 0, rc;

	rc = vfs_resolve(c->s->client, "/", c->cmd.paths[0], &target);
	if (rc) {
		send_error(c, c->cmd.paths[0], why_of(rc));
		return 1;
	}
	rc = tree_stat(c, &target, &st);
	int targ_is_dir = rc == 0 && st.is_dir;
	size_t tl = strlen(c->cmd.paths[0]);
	int wants_dir = c->cmd.target_dir ||
			(tl > 0 && c->cmd.paths[0][tl - 1] == '/');
	if (wants_dir && !targ_is_dir) {
		send_error(c, target.abs, rc == 0 ? "Not a directory" :
							why_of(rc));
		return 1;
	}
	if (!targ_is_dir && target.kind == VFS_FILES) {
		/* A new file's folder must exist, as on a filesystem. */
		rc = parent_dir_exists(c, &target);
		if (rc) {
			send_error(c, target.abs, why_of(rc));
			return 1;
		}
	}
	cur = target;
	if (send_ack(c) != 0)
		return 1;
	for (;;) {
		struct scp_line ln;
		rc = read_line(c, line, sizeof line, &n);
		if (rc == 1)
			break; /* the sender is done */
		if (rc < 0)
			return 1;
		if (scp_parse_line(line, n, &ln, err, sizeof err) != 0) {
			/* A broken stream cannot be resynchronised. */
			char fatal[160];
			int m = snprintf(fatal, sizeof fatal, "\2scp: %s\n", err);
			send_bytes(c, fatal, (size_t)m);
			log_warn("scp_protocol", "client=%s msg=%s",
				 log_q(c->s->client), log_q(err));
			return 1;
		}
		switch (ln.type) {
		case SCP_LINE_WARN:
			c->errors++;
			continue;
		case SCP_LINE_FATAL:
			return 1;
		case SCP_LINE_TIME:
			mtime = ln.mtime;
			if (send_ack(c) != 0)
				return 1;
			continue;
		case SCP_LINE_END:
			if (depth == 0) {
				send_error(c, cur.abs, "unexpected E line");
				return 1;
			}
			depth--;
			if (vfs_resolve(c->s->client, cur.abs, "..", &vp))
				return 1;
			cur = vp;
			if (send_ack(c) != 0)
				return 1;
			continue;
		default:
			break;
		}
		/* C or D: where does NAME go? Into the target folder (or a
		 * folder entered since), or onto the target itself. */
		if (depth > 0 || targ_is_dir)
			rc = vfs_resolve(c->s->client, cur.abs, ln.name, &vp);
		else {
			vp = target;
			rc = 0;
		}
		if (rc) {
			if (send_error(c, ln.name, why_of(rc)) != 0)
				return 1;
			mtime = 0;
			continue;
		}
		if (ln.type == SCP_LINE_DIR) {
			if (!c->cmd.recursive) {
				send_error(c, vp.abs, "received directory "
						      "without -r");
				return 1;
			}
			rc = tree_stat(c, &vp, &st);
			if (rc == 0 && !st.is_dir)
				rc = STORE_ENOTDIR;
			else if (rc == STORE_ENOENT) {
				rc = vfs_writable(&vp) ?
					     store_mkdir(c->s->store, vp.name) :
					     STORE_EACCES;
				sshd_record(c->s, "mkdir", vp.abs, NULL, rc, 0, 1);
			}
			if (rc && rc != STORE_EEXIST) {
				/* OpenSSH's sink gives up on the tree here. */
				send_error(c, vp.abs, why_of(rc));
				return 1;
			}
			if (mtime > 0 && vp.kind == VFS_FILES)
				store_set_mtime(c->s->store, vp.name, mtime);
			mtime = 0;
			cur = vp;
			depth++;
			if (send_ack(c) != 0)
				return 1;
			continue;
		}
		rc = tree_stat(c, &vp, &st);
		if (rc == 0 && st.is_dir) {
			if (send_error(c, vp.abs, why_of(STORE_EISDIR)) != 0)
				return 1;
		} else if (sink_file(c, &vp, &ln, mtime) != 0) {
			return 1;
		}
		mtime = 0;
		if (c->dead)
			return 1;
	}
	return c->errors ? 1 : 0;
}

/* ---- source: the client downloads --------------------------------------- */

static int send_times(struct scp *c, int64_t mtime)
{
	char t[80];
	int n = snprintf(t, sizeof t, "T%lld 0 %lld 0\n", (long long)mtime,
			 (long long)mtime);
	if (send_bytes(c, t, (size_t)n) != 0)
		return -1;
	return read_response(c);
}

/* Send one object NAME of ST as BASENAME. 0, or -1 if the channel died. */
static int source_object_io(struct scp *c, struct store *st,
			    const char *name, const char *shown,
			    const char *basename, int64_t *sent)
{
	struct store_reader *r = NULL;
	struct store_stat ss;
	char hdr[400];
	int rc = store_reader_open(st, name, 0, UINT64_MAX, &r, &ss);
	if (rc)
		return send_error(c, shown, why_of(rc));
	if (ss.is_dir) {
		store_reader_close(r);
		return send_error(c, shown, "not a regular file");
	}
	if (c->cmd.preserve) {
		int resp = send_times(c, ss.mtime);
		if (resp != 0) {
			store_reader_close(r);
			return resp < 0 ? -1 : 0;
		}
	}
	int n = snprintf(hdr, sizeof hdr, "C0644 %llu %s\n",
			 (unsigned long long)ss.size, basename);
	if (n < 0 || (size_t)n >= sizeof hdr) {
		store_reader_close(r);
		return send_error(c, shown, "name too long");
	}
	if (send_bytes(c, hdr, (size_t)n) != 0) {
		store_reader_close(r);
		return -1;
	}
	int resp = read_response(c);
	if (resp != 0) {
		store_reader_close(r);
		return resp < 0 ? -1 : 0;
	}
	uint64_t left = ss.size;
	int rerr = 0;
	while (left > 0) {
		size_t want = left < IO_CHUNK ? (size_t)left : IO_CHUNK;
		ssize_t got = rerr ? 0 : store_reader_read(r, c->buf, want);
		if (got < 0)
			rerr = (int)got;
		if (got <= 0) {
			/* Keep the stream in step: pad with zeros, then
			 * report the error instead of the final ack. */
			if (!rerr)
				rerr = STORE_EIO;
			memset(c->buf, 0, want);
			got = (ssize_t)want;
		}
		if (send_bytes(c, c->buf, (size_t)got) != 0) {
			store_reader_close(r);
			return -1;
		}
		left -= (uint64_t)got;
	}
	store_reader_close(r);
	if (rerr)
		send_error(c, shown, why_of(rerr));
	else if (send_ack(c) != 0)
		return -1;
	if (!rerr)
		*sent = (int64_t)ss.size;
	resp = read_response(c);
	if (resp < 0)
		return -1;
	if (!rerr)
		log_info("scp_get", "client=%s path=%s bytes=%llu",
			 log_q(c->s->client), log_q(shown),
			 (unsigned long long)ss.size);
	return 0;
}

/* Send one file, counted once. */
static int source_object(struct scp *c, struct store *st, const char *name,
			 const char *shown, const char *basename)
{
	int64_t sent = -1; /* set once the whole file went out */
	sshd_transfer(c->s, 1);
	int r = source_object_io(c, st, name, shown, basename, &sent);
	sshd_transfer(c->s, -1);
	sshd_record(c->s, "read", shown, NULL, sent >= 0 ? 0 : STORE_EIO,
		    sent >= 0 ? (uint64_t)sent : 0, 0);
	return r;
}

/* Recursive send of a folder below /attachments. */
struct walk {
	struct scp *c;
	const char *base;               /* "" or "dir/" */
	size_t blen;
	char open[STORE_NAME_MAX];      /* folders entered, relative, "a/b/" */
	const char *shown_root;
	int failed;
};

static int enter_dir(struct scp *c, const char *name)
{
	char line[300];
	int n = snprintf(line, sizeof line, "D0755 0 %s\n", name);
	if (n < 0 || (size_t)n >= sizeof line)
		return -1;
	if (send_bytes(c, line, (size_t)n) != 0)
		return -1;
	return read_response(c) < 0 ? -1 : 0;
}

static int leave_dir(struct scp *c)
{
	if (send_bytes(c, "E\n", 2) != 0)
		return -1;
	return read_response(c) < 0 ? -1 : 0;
}

static int walk_cb(void *arg, const struct store_entry *e)
{
	struct walk *wk = arg;
	struct scp *c = wk->c;
	if (strncmp(e->name, wk->base, wk->blen) != 0 || e->is_dir)
		return 0;
	const char *rel = e->name + wk->blen;
	/* Leave the folders this name is not in. */
	size_t ol = strlen(wk->open);
	while (ol > 0 && strncmp(rel, wk->open, ol) != 0) {
		if (leave_dir(c) != 0)
			return wk->failed = -1;
		wk->open[--ol] = '\0';
		while (ol > 0 && wk->open[ol - 1] != '/')
			wk->open[--ol] = '\0';
	}
	/* Enter the ones it is in. */
	const char *p = rel + ol, *slash;
	while ((slash = strchr(p, '/'))) {
		char seg[256];
		size_t sl = (size_t)(slash - p);
		if (sl >= sizeof seg || ol + sl + 1 >= sizeof wk->open)
			return 0;
		memcpy(seg, p, sl);
		seg[sl] = '\0';
		if (enter_dir(c, seg) != 0)
			return wk->failed = -1;
		memcpy(wk->open + ol, p, sl + 1);
		ol += sl + 1;
		wk->open[ol] = '\0';
		p = slash + 1;
	}
	char shown[STORE_NAME_MAX + 64];
	snprintf(shown, sizeof shown, "%s/%s", wk->shown_root, rel);
	if (source_object(c, c->s->store, e->name, shown, p) != 0)
		return wk->failed = -1;
	return 0;
}

static int source_tree(struct scp *c, const struct vfs_path *vp,
		       const char *basename, int64_t mtime)
{
	char prefix[STORE_NAME_MAX + 1];
	struct walk wk;

	if (c->cmd.preserve) {
		int resp = send_times(c, mtime);
		if (resp != 0)
			return resp < 0 ? -1 : 0;
	}
	if (enter_dir(c, basename) != 0)
		return -1;
	if (vp->name[0])
		snprintf(prefix, sizeof prefix, "%s/", vp->name);
	else
		prefix[0] = '\0';
	memset(&wk, 0, sizeof wk);
	wk.c = c;
	wk.base = prefix;
	wk.blen = strlen(prefix);
	wk.shown_root = vp->abs;
	int rc = store_list(c->s->store, prefix, 0, NULL, walk_cb, &wk);
	if (wk.failed)
		return -1;
	if (rc < 0)
		send_error(c, vp->abs, why_of(rc));
	/* Close what is still open, then the folder itself. */
	size_t ol = strlen(wk.open);
	for (size_t i = 0; i < ol; i++)
		if (wk.open[i] == '/' && leave_dir(c) != 0)
			return -1;
	return leave_dir(c);
}

struct arch_walk {
	struct scp *c;
	int failed;
};

static int source_archive(struct scp *c, const struct vfs_path *vp,
			  const char *shown);

static int arch_cb(void *arg, const char *name,
		   const struct catalog_archive *a)
{
	struct arch_walk *aw = arg;
	struct vfs_path vp;
	char path[STORE_NAME_MAX + 16];
	(void)a;
	snprintf(path, sizeof path, "/backups/%s", name);
	if (vfs_resolve(aw->c->s->client, "/", path, &vp) == 0 &&
	    source_archive(aw->c, &vp, vp.abs) != 0)
		return aw->failed = -1;
	return 0;
}

static int source_archive(struct scp *c, const struct vfs_path *vp,
			  const char *shown)
{
	struct catalog_archive ar;
	char dir[CATALOG_URL_MAX], base[STORE_NAME_MAX];
	struct store *st = NULL;
	int rc = vfs_archive_find(c->s->cat, c->s->client,
				  vp->kind == VFS_BACKUP ? vp->name : NULL,
				  &ar);
	if (rc == 0)
		rc = vfs_archive_split(ar.location, dir, sizeof dir, base,
				       sizeof base);
	if (rc == 0 && tenant_open_location(c->s->cat, dir, &st) != 0)
		rc = STORE_EIO;
	if (rc)
		return send_error(c, shown, why_of(rc));
	const char *slash = strrchr(vp->abs, '/');
	rc = source_object(c, st, base, shown, slash ? slash + 1 : vp->abs);
	store_close(st);
	return rc;
}

static int source_path(struct scp *c, const struct vfs_path *vp)
{
	struct store_stat st;
	const char *slash = strrchr(vp->abs, '/');
	const char *base = slash && slash[1] ? slash + 1 : vp->abs;
	int rc = tree_stat(c, vp, &st);

	if (rc)
		return send_error(c, vp->abs, why_of(rc));
	if (st.is_dir) {
		if (!c->cmd.recursive)
			return send_error(c, vp->abs, "not a regular file");
		if (vp->kind == VFS_FILES)
			return source_tree(c, vp, base, st.mtime);
		if (vp->kind == VFS_BACKUPS) {
			struct arch_walk aw = { c, 0 };
			if (enter_dir(c, "backups") != 0)
				return -1;
			vfs_archive_list(c->s->cat, c->s->client, arch_cb, &aw);
			if (aw.failed)
				return -1;
			return leave_dir(c);
		}
		return send_error(c, vp->abs, "copy /attachments or /backups");
	}
	if (vp->kind == VFS_BACKUP || vp->kind == VFS_LATEST)
		return source_archive(c, vp, vp->abs);
	return source_object(c, c->s->store, vp->name, vp->abs, base);
}

/* Expand a glob in the last segment of PATH below /attachments. */
struct glob_walk {
	struct scp *c;
	const char *pattern;
	const char *dir_abs;
	int matched;
	int failed;
};

static int glob_cb(void *arg, const struct store_entry *e)
{
	struct glob_walk *g = arg;
	struct vfs_path vp;
	char full[VFS_PATH_MAX];
	const char *base = strrchr(e->name, '/');
	char seg[256];
	size_t n;

	/* A folder comes as "dir/sub/": take its last segment. */
	n = strlen(e->name);
	if (n && e->name[n - 1] == '/') {
		const char *s = e->name + n - 1;
		while (s > e->name && s[-1] != '/')
			s--;
		base = s;
		n = (size_t)(e->name + n - 1 - s);
	} else {
		base = base ? base + 1 : e->name;
		n = strlen(base);
	}
	if (n == 0 || n >= sizeof seg)
		return 0;
	memcpy(seg, base, n);
	seg[n] = '\0';
	if (fnmatch(g->pattern, seg, FNM_PERIOD) != 0)
		return 0;
	snprintf(full, sizeof full, "%s/%s", g->dir_abs, seg);
	if (vfs_resolve(g->c->s->client, "/", full, &vp) != 0)
		return 0;
	g->matched++;
	if (source_path(g->c, &vp) != 0)
		return g->failed = -1;
	return 0;
}

static int source_glob(struct scp *c, const char *path)
{
	struct vfs_path dir;
	char dpath[VFS_PATH_MAX], prefix[STORE_NAME_MAX + 1];
	const char *slash = strrchr(path, '/');
	const char *pattern = slash ? slash + 1 : path;

	if (slash) {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dpath)
			return send_error(c, path, "name too long");
		memcpy(dpath, path, n);
		dpath[n] = '\0';
		if (n == 0)
			strcpy(dpath, "/");
	} else {
		strcpy(dpath, ".");
	}
	if (strpbrk(dpath, "*?[") ||
	    vfs_resolve(c->s->client, "/", dpath, &dir) != 0 ||
	    dir.kind != VFS_FILES)
		return send_error(c, path,
				  "wildcards work only in the last part of a "
				  "path below /attachments");
	if (dir.name[0])
		snprintf(prefix, sizeof prefix, "%s/", dir.name);
	else
		prefix[0] = '\0';
	struct glob_walk g = { c, pattern, dir.abs, 0, 0 };
	int rc = store_list(c->s->store, prefix, '/', NULL, glob_cb, &g);
	if (g.failed)
		return -1;
	if (rc < 0)
		return send_error(c, path, why_of(rc));
	if (g.matched == 0)
		return send_error(c, path, "No such file or directory");
	return 0;
}

static int source(struct scp *c)
{
	/* The sink speaks first: one zero byte when it is ready. */
	if (read_response(c) != 0)
		return 1;
	for (int i = 0; i < c->cmd.npaths; i++) {
		struct vfs_path vp;
		const char *p = c->cmd.paths[i];
		int rc;
		if (c->cmd.glob[i]) {
			rc = source_glob(c, p);
		} else if (vfs_resolve(c->s->client, "/", p, &vp) != 0) {
			rc = send_error(c, p, why_of(STORE_EINVAL));
		} else {
			rc = source_path(c, &vp);
		}
		if (rc != 0 || c->dead)
			return 1;
	}
	return c->errors ? 1 : 0;
}

/* ---- exec dispatch ------------------------------------------------------- */

int sshd_scp_serve(struct sshd_session *s, const char *command)
{
	struct scp_words *words = malloc(sizeof *words);
	struct scp c;
	char err[160], msg[320];
	int status = 1;

	memset(&c, 0, sizeof c);
	c.s = s;
	if (!words)
		return 1;
	if (rsync_is_server_command(command)) {
		/* The engine splits its own command line. */
		status = sshd_rsync_serve(s, command);
		goto out;
	}
	if (scp_split_words(command, words, err, sizeof err) != 0) {
		snprintf(msg, sizeof msg, "assetd: %s\n", err);
		sshd_io_stderr(s, msg);
		goto out;
	}
	if (words->n == 0) {
		sshd_io_stderr(s, "assetd: empty command\n");
		goto out;
	}
	if (!strcmp(words->w[0], "rsync")) {
		sshd_io_stderr(s, "assetd: only rsync's server mode is served "
				  "here (run rsync on your side)\n");
		status = 1;
		goto out;
	}
	if (strcmp(words->w[0], "scp") != 0) {
		snprintf(msg, sizeof msg,
			 "assetd: command not allowed: this server offers sftp, "
			 "scp and rsync only\n");
		sshd_io_stderr(s, msg);
		status = 127;
		goto out;
	}
	if (scp_parse_command(words, &c.cmd, err, sizeof err) != 0) {
		snprintf(msg, sizeof msg, "scp: %s\n", err);
		/* The client waits for a protocol byte: answer with a fatal
		 * error it will print. */
		char fatal[340];
		int n = snprintf(fatal, sizeof fatal, "\2%s", msg);
		sshd_io_write(s, fatal, (size_t)n);
		goto out;
	}
	c.buf = malloc(IO_CHUNK);
	if (!c.buf)
		goto out;
	status = c.cmd.mode == SCP_SINK ? sink(&c) : source(&c);
	free(c.buf);
out:
	free(words);
	return status;
}
