/*
 * sftp.c - the SFTP v3 server of one session, over the store.
 *
 * We read and write the SFTP packets ourselves (libssh's SFTP server cannot
 * advertise limits@openssh.com and mangles binary writes). The loop reads a
 * packet, decodes it with sftp_codec.c, looks the type up in one dispatch
 * table and calls a short handler that answers with exactly one reply.
 * Requests are answered in the order they arrive; clients pipeline (OpenSSH
 * keeps 64 in flight) so the channel stays full without threads.
 *
 * Paths go through vfs_resolve() only. Store errors become SFTP statuses in
 * status_of(), the one place that maps them.
 *
 * Reading: on fs the object's fd is pread() straight into the reply; on S3 a
 * handle keeps one ranged GET open and serves sequential READs from it. The
 * range asked for grows (1 MiB, doubling to 64 MiB) while the client keeps
 * reading in order - read-ahead that costs little when it reads at random.
 *
 * Writing: the object becomes visible only at CLOSE (or fsync), atomically,
 * through a store_writer. Bytes that arrive at the writer's end stream
 * straight in (S3 multipart as the parts fill); on S3 they are also
 * mirrored into the handle's spool, an unlinked sparse file under SpoolDir
 * (on fs the writer's temp file can give them back, so no mirror is kept:
 * it would double the disk writes of every upload). Bytes that
 * arrive ahead of the writer (out-of-order writes) are parked in the same
 * spool with a list of the extents held, and drained into the writer as
 * soon as the gap before them is filled. A write (or a truncation) behind
 * the writer's end cannot be given to the writer, which cannot rewind: the
 * writer is then aborted and the handle goes on in the spool alone, which
 * holds every byte written so far (from the mirror, or copied back out of
 * the fs writer before it is aborted); at CLOSE the whole
 * spool is streamed into a fresh writer. So no write is ever refused and
 * nothing half-written is ever visible. Gaps still open at close read as
 * the old object's bytes (resume) or zeros, as on a POSIX file. A handle
 * opened on an existing object without TRUNC (OpenSSH "reput") copies the
 * old bytes first and then takes the appended ones. A session that drops
 * aborts every writer: nothing partial is ever visible. If the spool cannot
 * be written (SpoolDir full), in-order uploads still stream; only a later
 * rewrite then fails, with a clear message.
 *
 * Truncation (SETSTAT/FSETSTAT with a size) works on the same state: it
 * trims the extents and the old object's part that are kept, and extends
 * with zeros; on a closed file it rewrites the object through a writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "session.h"
#include "sftp.h"
#include "vfs.h"

#define READ_WINDOW_MIN (1u << 20)
#define READ_WINDOW_MAX (64u << 20)
#define DIR_BATCH 256                   /* names per READDIR reply */
#define DIR_BATCH_BYTES (192u * 1024u)
/* Open listings per session: each holds its folder's sorted names (fs:
 * ~5 MiB for 100,000), so a session may not hold hundreds of them. Stock
 * clients read one folder to its end before they open the next. */
#define DIR_LISTERS_MAX 16
#define SPOOL_CHUNK (256u * 1024u)
#define MAX_EXTENTS 65536

enum hkind { H_FREE = 0, H_READ, H_WRITE, H_DIR };

struct extent {
	uint64_t start, end;            /* [start, end) held in the spool */
};

struct wstate {
	struct store_writer *w;         /* opened on first need */
	uint64_t cursor;                /* bytes given to the writer */
	int base_exists;                /* overlaying an existing object */
	uint64_t base_size;             /* its bytes kept (after truncation) */
	uint64_t max_end;               /* logical end the client made */
	int spool_fd;                   /* -1 until the first byte */
	struct extent *ext;             /* sorted, disjoint, beyond cursor */
	size_t next, capx;
	int mirror_ok;                  /* spool holds [0, cursor) too */
	int readback;                   /* W can give [0, cursor) back
					   (fs): no mirror is kept */
	int spooled;                    /* writer given up: all in the spool
					   until commit */
	int dirty;                      /* written or truncated since open
					   or the last commit */
	int append;                     /* SSH_FXF_APPEND */
	int exclusive;
	int64_t mtime;                  /* from FSETSTAT, applied at commit */
	int failed;                     /* a store error: only abort remains */
};

struct handle {
	enum hkind kind;
	uint32_t gen;
	struct vfs_path vp;
	/* reading */
	struct store *st;               /* the store the object is in */
	int st_owned;                   /* opened for this handle (archives) */
	char name[STORE_NAME_MAX];      /* object name within ST */
	struct store_stat stat;
	struct store_reader *rd;
	int fd;                         /* fs: pread() target, else -1 */
	uint64_t rd_pos;                /* where RD's stream is */
	uint64_t rd_end;                /* where RD's range ends */
	uint32_t window;
	/* writing */
	struct wstate ws;
	uint64_t moved;                 /* bytes read through this handle,
					   reported once at close */
	/* directories */
	int dir_done;
	int dir_index;                  /* root and /backups: entries sent */
	struct store_lister *lister;    /* /attachments: the open listing */
};

struct sftp {
	struct sshd_session *s;
	uint8_t *in;                    /* one request */
	uint8_t *outbuf;                /* one reply */
	struct sftp_out out;
	struct sftp_request rq;
	struct handle *h[SFTP_MAX_HANDLES]; /* allocated on first use, kept
					       for reuse, freed at the end */
	uint32_t gen;
	int initialised;
};

/* ---- replies ---------------------------------------------------------- */

static int send_out(struct sftp *f)
{
	long n = sftp_out_end(&f->out);
	if (n < 0) {
		/* Cannot happen with the bounds above; answer something. */
		n = sftp_encode_status(&f->out, f->rq.id, SFTP_FX_FAILURE,
				       "reply too large");
		if (n < 0)
			return -1;
	}
	return sshd_io_write(f->s, f->out.buf, (size_t)n);
}

static int reply_status(struct sftp *f, uint32_t code, const char *msg)
{
	long n = sftp_encode_status(&f->out, f->rq.id, code, msg);
	if (n < 0)
		return -1;
	return sshd_io_write(f->s, f->out.buf, (size_t)n);
}

/* The one mapping from store errors to SFTP statuses. */
static uint32_t status_of(int err)
{
	switch (err) {
	case STORE_OK: return SFTP_FX_OK;
	case STORE_ENOENT: return SFTP_FX_NO_SUCH_FILE;
	case STORE_EACCES: return SFTP_FX_PERMISSION_DENIED;
	case STORE_EINVAL: return SFTP_FX_FAILURE;
	default: return SFTP_FX_FAILURE;
	}
}

static const char *message_of(int err)
{
	switch (err) {
	case STORE_EINVAL: return "Invalid file name";
	case STORE_EEXIST: return "File exists";
	case STORE_ENOTEMPTY: return "Directory not empty";
	case STORE_EISDIR: return "Is a directory";
	case STORE_ENOTDIR: return "Not a directory";
	case STORE_ENOSPC: return "No space left (quota or disk full)";
	case STORE_EQUOTA: return "Quota exceeded";
	case STORE_ETHROTTLED: return "Storage busy, try again later";
	case STORE_EUNAVAIL: return "Storage unavailable, try again later";
	default: return store_strerror(err);
	}
}

static int reply_err(struct sftp *f, int err)
{
	/* SFTP v3 has no quota status and OpenSSH's client prints only the
	 * status code ("Failure"): say why on the channel's stderr too,
	 * which the client shows. */
	if (err == STORE_EQUOTA) {
		char line[160];
		snprintf(line, sizeof line,
			 "assetd: quota exceeded for client %s\n",
			 f->s->client);
		sshd_io_stderr(f->s, line);
	}
	return reply_status(f, status_of(err), message_of(err));
}

static int reply_ok(struct sftp *f)
{
	return reply_status(f, SFTP_FX_OK, "Success");
}

/* ---- attributes ------------------------------------------------------- */

static void attrs_dir(struct sftp_attrs *a, uint32_t perm, int64_t mtime)
{
	memset(a, 0, sizeof *a);
	a->flags = SFTP_ATTR_SIZE | SFTP_ATTR_UIDGID | SFTP_ATTR_PERMISSIONS |
		   SFTP_ATTR_ACMODTIME;
	a->permissions = 0040000 | perm;
	a->atime = a->mtime = (uint32_t)(mtime > 0 ? mtime : 0);
}

static void attrs_file(struct sftp_attrs *a, uint32_t perm, uint64_t size,
		       int64_t mtime)
{
	memset(a, 0, sizeof *a);
	a->flags = SFTP_ATTR_SIZE | SFTP_ATTR_UIDGID | SFTP_ATTR_PERMISSIONS |
		   SFTP_ATTR_ACMODTIME;
	a->permissions = 0100000 | perm;
	a->size = size;
	a->atime = a->mtime = (uint32_t)(mtime > 0 ? mtime : 0);
}

static void attrs_of_stat(struct sftp_attrs *a, const struct store_stat *st,
			  int writable)
{
	if (st->is_dir)
		attrs_dir(a, writable ? 0755 : 0555, st->mtime);
	else
		attrs_file(a, writable ? 0644 : 0444, st->size, st->mtime);
}

/* Stat what VP names. 0 or a store error. */
static int vfs_stat(struct sftp *f, const struct vfs_path *vp,
		    struct sftp_attrs *a)
{
	struct sshd_session *s = f->s;
	struct catalog_archive ar;
	struct store_stat st;
	int rc;

	switch (vp->kind) {
	case VFS_ROOT:
		attrs_dir(a, 0555, 0);
		return 0;
	case VFS_BACKUPS:
		attrs_dir(a, 0555, 0);
		return 0;
	case VFS_FILES:
		rc = store_stat(s->store, vp->name, &st);
		if (rc)
			return rc;
		attrs_of_stat(a, &st, 1);
		return 0;
	case VFS_BACKUP:
	case VFS_LATEST:
		rc = vfs_archive_find(s->cat, s->client,
				      vp->kind == VFS_BACKUP ? vp->name : NULL,
				      &ar);
		if (rc)
			return rc;
		attrs_file(a, 0444, (uint64_t)(ar.size > 0 ? ar.size : 0),
			   ar.created);
		return 0;
	default:
		return STORE_ENOENT;
	}
}

/* Resolve request path P; on failure answers the request and returns -1
 * (with *SENT set to the send result). */
static int resolve(struct sftp *f, const char *p, struct vfs_path *vp,
		   int *sent)
{
	int rc;
	if (f->rq.path_invalid) {
		*sent = reply_status(f, SFTP_FX_FAILURE, "Invalid file name");
		return -1;
	}
	rc = vfs_resolve(f->s->client, "/", p[0] ? p : ".", vp);
	if (rc) {
		*sent = reply_err(f, rc);
		return -1;
	}
	return 0;
}

/* The parent directory of a writable path must exist (like a real
 * filesystem; S3 would accept anything). 0 or a store error. */
static int parent_exists(struct sftp *f, const struct vfs_path *vp)
{
	char parent[STORE_NAME_MAX];
	struct store_stat st;
	const char *slash = strrchr(vp->name, '/');
	if (!slash)
		return 0; /* /attachments itself */
	size_t n = (size_t)(slash - vp->name);
	memcpy(parent, vp->name, n);
	parent[n] = '\0';
	int rc = store_stat(f->s->store, parent, &st);
	if (rc)
		return rc;
	return st.is_dir ? 0 : STORE_ENOTDIR;
}

/* ---- handles ---------------------------------------------------------- */

static struct handle *handle_new(struct sftp *f, int *idx)
{
	int slot = -1;
	for (int i = 0; i < SFTP_MAX_HANDLES; i++) {
		if (f->h[i] && f->h[i]->kind == H_FREE) {
			slot = i;
			break;
		}
		if (!f->h[i] && slot < 0)
			slot = i;
	}
	if (slot < 0)
		return NULL;
	if (!f->h[slot] && !(f->h[slot] = malloc(sizeof *f->h[slot])))
		return NULL;
	struct handle *h = f->h[slot];
	memset(h, 0, sizeof *h);
	h->fd = -1;
	h->ws.spool_fd = -1;
	h->ws.mirror_ok = 1;
	h->gen = ++f->gen;
	*idx = slot;
	return h;
}

static struct handle *handle_get(struct sftp *f, enum hkind want)
{
	uint8_t *p = f->rq.handle;
	if (f->rq.handle_len != 8)
		return NULL;
	uint32_t idx = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		       (uint32_t)p[2] << 8 | p[3];
	uint32_t gen = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 |
		       (uint32_t)p[6] << 8 | p[7];
	if (idx >= SFTP_MAX_HANDLES)
		return NULL;
	struct handle *h = f->h[idx];
	if (!h || h->kind == H_FREE || h->gen != gen)
		return NULL;
	if (want != H_FREE && h->kind != want)
		return NULL;
	return h;
}

static int reply_handle(struct sftp *f, int idx)
{
	uint8_t hb[8];
	uint32_t gen = f->h[idx]->gen;
	hb[0] = (uint8_t)(idx >> 24); hb[1] = (uint8_t)(idx >> 16);
	hb[2] = (uint8_t)(idx >> 8);  hb[3] = (uint8_t)idx;
	hb[4] = (uint8_t)(gen >> 24); hb[5] = (uint8_t)(gen >> 16);
	hb[6] = (uint8_t)(gen >> 8);  hb[7] = (uint8_t)gen;
	sftp_out_begin(&f->out, SFTP_HANDLE, f->rq.id);
	sftp_out_string(&f->out, hb, sizeof hb);
	return send_out(f);
}

static void wstate_discard(struct wstate *ws)
{
	if (ws->w)
		store_writer_abort(ws->w);
	ws->w = NULL;
	if (ws->spool_fd >= 0)
		close(ws->spool_fd);
	ws->spool_fd = -1;
	free(ws->ext);
	ws->ext = NULL;
	ws->next = ws->capx = 0;
}

static void handle_free(struct sftp *f, struct handle *h)
{
	if (h->kind == H_READ || h->kind == H_WRITE)
		sshd_transfer(f->s, -1);
	if (h->rd)
		store_reader_close(h->rd);
	h->rd = NULL;
	if (h->st_owned && h->st)
		store_close(h->st);
	store_lister_close(h->lister);
	h->lister = NULL;
	wstate_discard(&h->ws);
	h->kind = H_FREE;
}

/* ---- writing ---------------------------------------------------------- */

static int ws_open_writer(struct sftp *f, struct handle *h)
{
	struct store_put_opts po;
	if (h->ws.w)
		return 0;
	memset(&po, 0, sizeof po);
	po.exclusive = h->ws.exclusive;
	int rc = store_writer_open(f->s->store, h->name, &po, &h->ws.w);
	h->ws.readback = rc == 0 && store_writer_readable(h->ws.w);
	return rc;
}

static int spool_open(struct sftp *f)
{
	const char *dir = f->s->spool_dir && f->s->spool_dir[0] ?
				  f->s->spool_dir : "/tmp";
	mkdir(dir, 0700);
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	char path[CONF_PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/sftp-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path); /* nothing is left behind, whatever happens */
	return fd;
}

/* The handle's spool, opened on first need. 0 or a store error. */
static int ws_spool_fd(struct sftp *f, struct handle *h)
{
	if (h->ws.spool_fd >= 0)
		return 0;
	h->ws.spool_fd = spool_open(f);
	if (h->ws.spool_fd >= 0)
		return 0;
	log_error("sftp_spool", "dir=%s msg=%s", log_q(f->s->spool_dir),
		  log_q(strerror(errno)));
	return STORE_EIO;
}

static int spool_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;
	size_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(fd, p + done, n - done, (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return errno == ENOSPC ? STORE_ENOSPC : STORE_EIO;
		done += (size_t)w;
	}
	return 0;
}

/* Keep the copy of streamed bytes that lets a later rewrite go back,
 * unless the writer keeps them readable itself (fs). A failure costs only
 * that ability: the upload itself goes on. */
static void ws_mirror(struct sftp *f, struct handle *h, const void *p,
		      size_t n)
{
	struct wstate *ws = &h->ws;
	if (!ws->mirror_ok || ws->readback)
		return;
	if (ws_spool_fd(f, h) == 0 &&
	    spool_pwrite(ws->spool_fd, p, n, ws->cursor) == 0)
		return;
	ws->mirror_ok = 0;
	log_warn("sftp_spool_full", "client=%s path=%s msg=%s",
		 log_q(f->s->client), log_q(h->vp.abs),
		 log_q("no room in SpoolDir for a copy of this upload; "
		       "a rewrite of bytes already sent will fail"));
}

/* Give N bytes at the cursor to the writer, and to the mirror unless they
 * come out of the spool already. */
static int ws_stream(struct sftp *f, struct handle *h, const void *p,
		     size_t n, int from_spool)
{
	int rc = ws_open_writer(f, h);
	if (rc == 0 && n) {
		if (!from_spool)
			ws_mirror(f, h, p, n);
		rc = store_writer_write(h->ws.w, p, n);
	}
	if (rc == 0)
		h->ws.cursor += n;
	return rc;
}

/* Copy the old object's bytes [cursor, until) into the writer. */
static int ws_copy_base(struct sftp *f, struct handle *h, uint64_t until)
{
	struct store_reader *r = NULL;
	uint8_t *buf;
	int rc;

	if (until <= h->ws.cursor)
		return 0;
	buf = malloc(SPOOL_CHUNK);
	if (!buf)
		return STORE_ENOMEM;
	rc = store_reader_open(f->s->store, h->name, h->ws.cursor,
			       until - h->ws.cursor, &r, NULL);
	while (rc == 0 && h->ws.cursor < until) {
		uint64_t want = until - h->ws.cursor;
		ssize_t n = store_reader_read(r, buf, want < SPOOL_CHUNK ?
						      (size_t)want : SPOOL_CHUNK);
		if (n < 0)
			rc = (int)n;
		else if (n == 0)
			break; /* the old object is shorter: zeros follow */
		else
			rc = ws_stream(f, h, buf, (size_t)n, 0);
	}
	if (r)
		store_reader_close(r);
	free(buf);
	return rc;
}

static int ws_zeros(struct sftp *f, struct handle *h, uint64_t until)
{
	static const uint8_t zero[65536];
	int rc = 0;
	while (rc == 0 && h->ws.cursor < until) {
		uint64_t n = until - h->ws.cursor;
		rc = ws_stream(f, h, zero,
			       n < sizeof zero ? (size_t)n : sizeof zero, 0);
	}
	return rc;
}

/* Move spooled extents that now touch the cursor into the writer. */
static int ws_drain(struct sftp *f, struct handle *h)
{
	struct wstate *ws = &h->ws;
	uint8_t *buf = NULL;
	int rc = 0;
	size_t i = 0;

	while (rc == 0 && i < ws->next && ws->ext[i].start <= ws->cursor) {
		struct extent e = ws->ext[i++];
		while (rc == 0 && ws->cursor < e.end) {
			if (!buf && !(buf = malloc(SPOOL_CHUNK))) {
				rc = STORE_ENOMEM;
				break;
			}
			uint64_t want = e.end - ws->cursor;
			size_t n = want < SPOOL_CHUNK ? (size_t)want : SPOOL_CHUNK;
			ssize_t got = pread(ws->spool_fd, buf, n,
					    (off_t)ws->cursor);
			if (got != (ssize_t)n) {
				rc = STORE_EIO;
				break;
			}
			rc = ws_stream(f, h, buf, n, 1);
		}
	}
	if (i) {
		memmove(ws->ext, ws->ext + i, (ws->next - i) * sizeof *ws->ext);
		ws->next -= i;
	}
	free(buf);
	return rc;
}

/* Record [start, end) as held in the spool, keeping the list sorted and
 * merged. 0 or a store error. */
static int ext_add(struct wstate *ws, uint64_t start, uint64_t end)
{
	size_t i = 0;
	while (i < ws->next && ws->ext[i].end < start)
		i++;
	size_t j = i;
	while (j < ws->next && ws->ext[j].start <= end) {
		if (ws->ext[j].start < start)
			start = ws->ext[j].start;
		if (ws->ext[j].end > end)
			end = ws->ext[j].end;
		j++;
	}
	if (j == i) { /* no overlap: insert at i */
		if (ws->next == ws->capx) {
			if (ws->capx >= MAX_EXTENTS)
				return STORE_ENOMEM;
			size_t nc = ws->capx ? ws->capx * 2 : 16;
			struct extent *ne = realloc(ws->ext, nc * sizeof *ne);
			if (!ne)
				return STORE_ENOMEM;
			ws->ext = ne;
			ws->capx = nc;
		}
		memmove(ws->ext + i + 1, ws->ext + i,
			(ws->next - i) * sizeof *ws->ext);
		ws->next++;
	} else if (j > i + 1) { /* merged several: close the gap */
		memmove(ws->ext + i + 1, ws->ext + j,
			(ws->next - j) * sizeof *ws->ext);
		ws->next -= j - i - 1;
	}
	ws->ext[i].start = start;
	ws->ext[i].end = end;
	return 0;
}

/* Park [off, off+n) in the spool. */
static int ws_spool(struct sftp *f, struct handle *h, uint64_t off,
		    const uint8_t *p, size_t n)
{
	int rc = ws_spool_fd(f, h);
	if (rc == 0)
		rc = spool_pwrite(h->ws.spool_fd, p, n, off);
	if (rc == 0)
		rc = ext_add(&h->ws, off, off + n);
	return rc;
}

/* Copy the writer's bytes [0, cursor) into the spool (the writer keeps
 * them readable; nothing mirrored them). The writer is left as it was, so
 * a failure (SpoolDir full) fails only the write that needed it. */
static int ws_spool_back(struct sftp *f, struct handle *h)
{
	struct wstate *ws = &h->ws;
	uint8_t *buf = malloc(SPOOL_CHUNK);
	uint64_t off = 0;
	int rc = buf ? ws_spool_fd(f, h) : STORE_ENOMEM;

	while (rc == 0 && off < ws->cursor) {
		uint64_t want = ws->cursor - off;
		ssize_t n = store_writer_pread(ws->w, buf, want < SPOOL_CHUNK ?
							   (size_t)want : SPOOL_CHUNK,
					       off);
		if (n <= 0)
			rc = n < 0 ? (int)n : STORE_EIO;
		else
			rc = spool_pwrite(ws->spool_fd, buf, (size_t)n, off);
		if (rc == 0)
			off += (uint64_t)n;
	}
	free(buf);
	if (rc)
		log_warn("sftp_spool_full", "client=%s path=%s msg=%s",
			 log_q(f->s->client), log_q(h->vp.abs),
			 log_q("no room in SpoolDir for the bytes already sent; "
			       "this rewrite fails"));
	return rc ? STORE_ECANCELED : 0;
}

/* A write or a truncation behind the cursor: the writer cannot rewind, so
 * give it up and go on in the spool alone, which then holds every byte the
 * writer was given (mirrored, or copied back from the writer).
 * STORE_ECANCELED if that copy could not be kept. */
static int ws_to_spool(struct sftp *f, struct handle *h)
{
	struct wstate *ws = &h->ws;
	int rc;

	if (ws->spooled)
		return 0;
	if (ws->cursor && ws->readback) {
		rc = ws_spool_back(f, h);
		if (rc)
			return rc;
	} else if (!ws->mirror_ok) {
		return STORE_ECANCELED;
	}
	if (ws->cursor) {
		rc = ext_add(ws, 0, ws->cursor);
		if (rc)
			return rc;
	}
	if (ws->w)
		store_writer_abort(ws->w);
	ws->w = NULL;
	ws->readback = 0;
	log_debug("sftp_spooled", "client=%s path=%s streamed=%llu",
		  log_q(f->s->client), log_q(h->vp.abs),
		  (unsigned long long)ws->cursor);
	ws->cursor = 0;
	ws->spooled = 1;
	return 0;
}

static uint64_t ws_size(const struct wstate *ws)
{
	uint64_t sz = ws->max_end;
	if (ws->base_exists && ws->base_size > sz)
		sz = ws->base_size;
	if (ws->cursor > sz)
		sz = ws->cursor;
	return sz;
}

/* Nothing written or truncated since the open or the last commit: the
 * stored object (if any) already is what the handle holds. */
static int ws_untouched(const struct wstate *ws)
{
	return ws->base_exists && !ws->dirty;
}

static int ws_write(struct sftp *f, struct handle *h, uint64_t off,
		    const uint8_t *p, size_t n)
{
	struct wstate *ws = &h->ws;
	int rc;

	if (ws->failed)
		return STORE_EIO;
	if (ws->append)
		off = ws_size(ws);
	if (n == 0)
		return 0;
	if (off + n < off)
		return STORE_EINVAL;
	ws->dirty = 1;
	if (off < ws->cursor) {
		rc = ws_to_spool(f, h);
		if (rc)
			return rc;
	}
	if (ws->spooled) {
		rc = ws_spool(f, h, off, p, n);
	} else {
		/* Resume/append onto an existing object: its bytes first. */
		if (ws->base_exists && !ws->w && ws->cursor == 0 &&
		    ws->next == 0 && off >= ws->base_size) {
			rc = ws_copy_base(f, h, ws->base_size);
			if (rc)
				return rc;
		}
		if (off == ws->cursor) {
			rc = ws_stream(f, h, p, n, 0);
			if (rc == 0 && ws->next)
				rc = ws_drain(f, h);
		} else {
			rc = ws_spool(f, h, off, p, n);
		}
	}
	if (rc == 0 && off + n > ws->max_end)
		ws->max_end = off + n;
	return rc;
}

/* Make the handle's file SIZE bytes long: later bytes (spooled, or the
 * old object's) are dropped, a longer file reads zeros at its end. */
static int ws_truncate(struct sftp *f, struct handle *h, uint64_t size)
{
	struct wstate *ws = &h->ws;
	size_t k = 0;

	if (ws->failed)
		return STORE_EIO;
	if (size < ws->cursor) {
		int rc = ws_to_spool(f, h);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < ws->next; i++) {
		if (ws->ext[i].start >= size)
			continue;
		ws->ext[k] = ws->ext[i];
		if (ws->ext[k].end > size)
			ws->ext[k].end = size;
		k++;
	}
	ws->next = k;
	if (ws->spool_fd >= 0 && ftruncate(ws->spool_fd, (off_t)size) != 0) {
		/* only space is lost: the extents say what is held */
	}
	if (ws->base_size > size)
		ws->base_size = size;
	ws->max_end = size;
	ws->dirty = 1;
	return 0;
}

/* Make everything written so far the object: fill gaps, commit. Leaves the
 * handle ready for more writes onto the new object. */
static int ws_commit(struct sftp *f, struct handle *h)
{
	struct wstate *ws = &h->ws;
	uint64_t final = ws_size(ws);
	int rc = 0;

	if (ws->failed)
		return STORE_EIO;
	ws->mirror_ok = 0; /* nothing rewinds while the commit runs */
	while (rc == 0 && ws->cursor < final) {
		rc = ws_drain(f, h);
		if (rc || ws->cursor >= final)
			break;
		uint64_t next = ws->next ? ws->ext[0].start : final;
		if (ws->base_exists && ws->cursor < ws->base_size) {
			uint64_t until = next < ws->base_size ? next :
								ws->base_size;
			uint64_t before = ws->cursor;
			rc = ws_copy_base(f, h, until);
			if (rc == 0 && ws->cursor == before)
				rc = ws_zeros(f, h, until);
		} else {
			rc = ws_zeros(f, h, next);
		}
	}
	if (rc == 0)
		rc = ws_open_writer(f, h); /* an empty or truncated file */
	if (rc) {
		ws->failed = 1;
		return rc;
	}
	rc = store_writer_commit(ws->w);
	ws->w = NULL;
	if (rc) {
		ws->failed = 1;
		return rc;
	}
	if (ws->mtime > 0) {
		int mr = store_set_mtime(f->s->store, h->name, ws->mtime);
		if (mr)
			log_warn("sftp_mtime", "client=%s path=%s msg=%s",
				 log_q(f->s->client), log_q(h->vp.abs),
				 log_q(store_strerror(mr)));
	}
	log_info("sftp_put", "client=%s path=%s bytes=%llu",
		 log_q(f->s->client), log_q(h->vp.abs),
		 (unsigned long long)final);
	sshd_record(f->s, "write", h->vp.abs, NULL, 0, final, 1);
	/* Further writes overlay the object just committed. */
	if (ws->spool_fd >= 0)
		close(ws->spool_fd);
	ws->spool_fd = -1;
	ws->next = 0;
	ws->base_exists = 1;
	ws->base_size = final;
	ws->cursor = 0;
	ws->max_end = 0;
	ws->exclusive = 0;
	ws->spooled = 0;
	ws->mirror_ok = 1;
	ws->readback = 0;
	ws->dirty = 0;
	return 0;
}

/* ---- handlers --------------------------------------------------------- */

static int do_init(struct sftp *f)
{
	static const char *const ext[][2] = {
		{ "posix-rename@openssh.com", "1" },
		{ "statvfs@openssh.com", "2" },
		{ "fstatvfs@openssh.com", "2" },
		{ "fsync@openssh.com", "1" },
		{ "limits@openssh.com", "1" },
		{ "expand-path@openssh.com", "1" },
		{ "lsetstat@openssh.com", "1" },
	};
	f->initialised = 1;
	sftp_out_begin(&f->out, SFTP_VERSION, 3);
	/* sftp_out_begin wrote TYPE and the "id", which is the version. */
	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		sftp_out_cstring(&f->out, ext[i][0]);
		sftp_out_cstring(&f->out, ext[i][1]);
	}
	return send_out(f);
}

static int open_archive(struct sftp *f, struct handle *h)
{
	struct catalog_archive ar;
	char dir[CATALOG_URL_MAX];
	int rc = vfs_archive_find(f->s->cat, f->s->client,
				  h->vp.kind == VFS_BACKUP ? h->vp.name : NULL,
				  &ar);
	if (rc)
		return rc;
	rc = vfs_archive_split(ar.location, dir, sizeof dir, h->name,
			       sizeof h->name);
	if (rc)
		return rc;
	rc = tenant_open_location(f->s->cat, dir, &h->st);
	if (rc) {
		h->st = NULL;
		return rc < 0 && rc >= STORE_ECANCELED ? rc : STORE_EIO;
	}
	h->st_owned = 1;
	return 0;
}

static int open_for_read(struct sftp *f, struct handle *h)
{
	int rc;
	if (h->vp.kind == VFS_BACKUP || h->vp.kind == VFS_LATEST) {
		rc = open_archive(f, h);
	} else {
		h->st = f->s->store;
		strcpy(h->name, h->vp.name);
		rc = 0;
	}
	if (rc)
		return rc;
	rc = store_stat(h->st, h->name, &h->stat);
	if (rc)
		return rc;
	if (h->stat.is_dir)
		return STORE_EISDIR;
	if (!store_is_s3(h->st)) {
		/* fs: keep the file open, serve READs with pread(). */
		rc = store_reader_open(h->st, h->name, 0, UINT64_MAX, &h->rd,
				       &h->stat);
		if (rc)
			return rc;
		h->fd = store_reader_fd(h->rd);
	}
	h->window = READ_WINDOW_MIN;
	h->kind = H_READ;
	return 0;
}

static int open_for_write(struct sftp *f, struct handle *h, uint32_t pf)
{
	struct store_stat st;
	int rc;

	if (!vfs_writable(&h->vp))
		return h->vp.kind == VFS_FILES ? STORE_EISDIR : STORE_EACCES;
	strcpy(h->name, h->vp.name);
	h->st = f->s->store;
	rc = store_stat(h->st, h->name, &st);
	if (rc == 0) {
		if (st.is_dir)
			return STORE_EISDIR;
		if ((pf & SFTP_FXF_CREAT) && (pf & SFTP_FXF_EXCL))
			return STORE_EEXIST;
		if (!(pf & SFTP_FXF_TRUNC)) {
			h->ws.base_exists = 1;
			h->ws.base_size = st.size;
		}
	} else if (rc == STORE_ENOENT) {
		if (!(pf & SFTP_FXF_CREAT))
			return STORE_ENOENT;
		rc = parent_exists(f, &h->vp);
		if (rc)
			return rc;
		h->ws.exclusive = (pf & SFTP_FXF_EXCL) != 0;
	} else {
		return rc;
	}
	h->ws.append = (pf & SFTP_FXF_APPEND) != 0;
	h->kind = H_WRITE;
	return 0;
}

static int do_open(struct sftp *f)
{
	struct sftp_request *rq = &f->rq;
	struct vfs_path vp;
	struct handle *h;
	int idx, sent, rc;

	if (resolve(f, rq->path, &vp, &sent))
		return sent;
	if (vp.kind == VFS_OTHER)
		return reply_err(f, (rq->pflags & SFTP_FXF_WRITE) ?
					    STORE_EACCES : STORE_ENOENT);
	if (vp.kind == VFS_ROOT || vp.kind == VFS_BACKUPS)
		return reply_err(f, (rq->pflags & SFTP_FXF_WRITE) ?
					    STORE_EACCES : STORE_EISDIR);
	h = handle_new(f, &idx);
	if (!h)
		return reply_status(f, SFTP_FX_FAILURE, "Too many open files");
	h->vp = vp;
	if (rq->pflags & SFTP_FXF_WRITE)
		rc = open_for_write(f, h, rq->pflags);
	else
		rc = open_for_read(f, h);
	if (rc) {
		handle_free(f, h);
		if (rq->pflags & SFTP_FXF_WRITE)
			sshd_record(f->s, "write", vp.abs, NULL, rc, 0, 1);
		return reply_err(f, rc);
	}
	sshd_transfer(f->s, 1);
	return reply_handle(f, idx);
}

static int do_close(struct sftp *f)
{
	struct handle *h = handle_get(f, H_FREE);
	int rc = 0;
	if (!h)
		return reply_status(f, SFTP_FX_FAILURE, "Invalid handle");
	if (h->kind == H_WRITE) {
		/* Opened on an existing object (or committed by fsync) and
		 * nothing changed since: leave it be. */
		if (!ws_untouched(&h->ws))
			rc = ws_commit(f, h);
		if (rc) {
			log_warn("sftp_put_failed", "client=%s path=%s msg=%s",
				 log_q(f->s->client), log_q(h->vp.abs),
				 log_q(store_strerror(rc)));
			sshd_record(f->s, "write", h->vp.abs, NULL, rc,
				    ws_size(&h->ws), 1);
		}
	} else if (h->kind == H_READ) {
		log_debug("sftp_get", "client=%s path=%s", log_q(f->s->client),
			  log_q(h->vp.abs));
		sshd_record(f->s, "read", h->vp.abs, NULL, 0, h->moved, 0);
	}
	handle_free(f, h);
	return rc ? reply_err(f, rc) : reply_ok(f);
}

static int do_read(struct sftp *f)
{
	struct sftp_request *rq = &f->rq;
	struct handle *h = handle_get(f, H_FREE);
	uint32_t want = rq->len;
	size_t got = 0;

	if (!h)
		return reply_status(f, SFTP_FX_FAILURE, "Invalid handle");
	if (h->kind != H_READ)
		return reply_status(f, SFTP_FX_FAILURE,
				    h->kind == H_WRITE ?
					    "File is open for writing only" :
					    "Not a file handle");
	if (want > SFTP_MAX_DATA)
		want = SFTP_MAX_DATA;
	if (rq->offset >= h->stat.size || want == 0)
		return reply_status(f, SFTP_FX_EOF, "End of file");

	/* DATA header, then the bytes read straight into the reply. */
	sftp_out_begin(&f->out, SFTP_DATA, rq->id);
	sftp_out_u32(&f->out, 0);
	uint8_t *dst = f->out.buf + f->out.len;
	if (h->fd >= 0) {
		while (got < want) {
			ssize_t n = pread(h->fd, dst + got, want - got,
					  (off_t)(rq->offset + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return reply_err(f, STORE_EIO);
			if (n == 0)
				break;
			got += (size_t)n;
		}
	} else {
		if (h->rd && h->rd_pos != rq->offset) {
			store_reader_close(h->rd);
			h->rd = NULL;
			h->window = READ_WINDOW_MIN;
		}
		while (got < want) {
			int fresh = 0;
			if (!h->rd || h->rd_pos >= h->rd_end) {
				uint64_t len = h->window < want ? want :
								  h->window;
				if (h->rd) {
					/* Still reading in order: read
					 * further ahead next time. */
					store_reader_close(h->rd);
					h->rd = NULL;
					if (h->window < READ_WINDOW_MAX)
						h->window *= 2;
				}
				int rc = store_reader_open(h->st, h->name,
							   rq->offset + got,
							   len, &h->rd, NULL);
				if (rc)
					return reply_err(f, rc);
				h->rd_pos = rq->offset + got;
				h->rd_end = h->rd_pos + len;
				fresh = 1;
			}
			ssize_t n = store_reader_read(h->rd, dst + got,
						      want - got);
			if (n < 0) {
				store_reader_close(h->rd);
				h->rd = NULL;
				return reply_err(f, (int)n);
			}
			if (n == 0) {
				/* The range (or the object, if it shrank
				 * since it was opened) ended: reopen next
				 * time, unless a fresh range was empty. */
				h->rd_end = h->rd_pos;
				if (fresh || got || h->rd_pos >= h->stat.size)
					break;
				continue;
			}
			got += (size_t)n;
			h->rd_pos += (uint64_t)n;
		}
	}
	if (got == 0)
		return reply_status(f, SFTP_FX_EOF, "End of file");
	/* Patch the data length and finish. */
	uint8_t *lenp = dst - 4;
	lenp[0] = (uint8_t)(got >> 24);
	lenp[1] = (uint8_t)(got >> 16);
	lenp[2] = (uint8_t)(got >> 8);
	lenp[3] = (uint8_t)got;
	f->out.len += got;
	h->moved += got;
	return send_out(f);
}

/* The answer to a WRITE or a size change on a write handle. */
static int reply_write(struct sftp *f, int rc)
{
	if (rc == STORE_ECANCELED)
		return reply_status(f, SFTP_FX_FAILURE,
				    "No room in SpoolDir to rewrite bytes "
				    "already sent; the upload so far is kept");
	return rc ? reply_err(f, rc) : reply_ok(f);
}

static int do_write(struct sftp *f)
{
	struct sftp_request *rq = &f->rq;
	struct handle *h = handle_get(f, H_FREE);
	if (!h)
		return reply_status(f, SFTP_FX_FAILURE, "Invalid handle");
	if (h->kind != H_WRITE)
		return reply_status(f, SFTP_FX_PERMISSION_DENIED,
				    "File is not open for writing");
	int rc = ws_write(f, h, rq->offset, rq->data, rq->data_len);
	if (rc && rc != STORE_ECANCELED)
		h->ws.failed = 1;
	return reply_write(f, rc);
}

static int send_attrs(struct sftp *f, const struct sftp_attrs *a)
{
	sftp_out_begin(&f->out, SFTP_ATTRS, f->rq.id);
	sftp_out_attrs(&f->out, a);
	return send_out(f);
}

static int do_stat(struct sftp *f)
{
	struct vfs_path vp;
	struct sftp_attrs a;
	int sent, rc;
	if (resolve(f, f->rq.path, &vp, &sent))
		return sent;
	rc = vfs_stat(f, &vp, &a);
	if (rc)
		return reply_err(f, rc);
	return send_attrs(f, &a);
}

static int do_fstat(struct sftp *f)
{
	struct handle *h = handle_get(f, H_FREE);
	struct sftp_attrs a;
	if (!h)
		return reply_status(f, SFTP_FX_FAILURE, "Invalid handle");
	if (h->kind == H_READ) {
		attrs_of_stat(&a, &h->stat, h->vp.kind == VFS_FILES);
	} else if (h->kind == H_WRITE) {
		attrs_file(&a, 0644, ws_size(&h->ws),
			   h->ws.mtime ? h->ws.mtime : (int64_t)time(NULL));
	} else {
		int rc = vfs_stat(f, &h->vp, &a);
		if (rc)
			return reply_err(f, rc);
	}
	return send_attrs(f, &a);
}

/* Truncate or extend a stored object to SIZE. No backend cuts an object in
 * place, so it is rewritten through a writer: its first bytes are copied,
 * zeros added, and the new version replaces the old one atomically. */
static int truncate_object(struct sftp *f, const struct vfs_path *vp,
			   uint64_t old_size, uint64_t size)
{
	struct handle *t = calloc(1, sizeof *t);
	int rc;
	if (!t)
		return STORE_ENOMEM;
	t->kind = H_FREE; /* not a client's handle: no transfer counted */
	t->vp = *vp;
	t->st = f->s->store;
	snprintf(t->name, sizeof t->name, "%s", vp->name);
	t->fd = -1;
	t->ws.spool_fd = -1;
	t->ws.base_exists = 1;
	t->ws.base_size = old_size;
	rc = ws_truncate(f, t, size);
	if (rc == 0)
		rc = ws_commit(f, t);
	handle_free(f, t);
	free(t);
	return rc;
}

/* SETSTAT on a path: the size truncates or extends the file, the mtime is
 * kept; mode and owner are accepted without effect (there are none to
 * keep on S3). */
static int setstat_path(struct sftp *f, const struct vfs_path *vp,
			const struct sftp_attrs *a)
{
	struct store_stat st;
	int rc;

	if (vp->kind != VFS_FILES)
		return vp->kind == VFS_OTHER ? STORE_ENOENT : STORE_EACCES;
	rc = store_stat(f->s->store, vp->name, &st);
	if (rc)
		return rc;
	if (a->flags & SFTP_ATTR_SIZE) {
		if (st.is_dir)
			return STORE_EISDIR;
		if (a->size != st.size) {
			rc = truncate_object(f, vp, st.size, a->size);
			if (rc)
				return rc;
		}
	}
	if (a->flags & SFTP_ATTR_ACMODTIME) {
		if (!vp->name[0])
			return 0; /* /attachments itself: nothing to keep */
		rc = store_set_mtime(f->s->store, vp->name, (int64_t)a->mtime);
		if (rc)
			return rc;
	}
	return 0;
}

static int do_setstat(struct sftp *f)
{
	struct vfs_path vp;
	int sent, rc;
	if (resolve(f, f->rq.path, &vp, &sent))
		return sent;
	rc = setstat_path(f, &vp, &f->rq.attrs);
	return rc ? reply_err(f, rc) : reply_ok(f);
}

static int do_fsetstat(struct sftp *f)
{
	struct handle *h = handle_get(f, H_FREE);
	const struct sftp_attrs *a = &f->rq.attrs;
	int rc = 0;
	if (!h)
		return reply_status(f, SFTP_FX_FAILURE, "Invalid handle");
	if (h->kind != H_WRITE) {
		rc = setstat_path(f, &h->vp, a);
		return rc ? reply_err(f, rc) : reply_ok(f);
	}
	/* After a failed write OpenSSH's clients truncate the file to what
	 * was written ("remote fsetstat"): the upload is lost anyway and
	 * will be abandoned at close, so say so. */
	if (h->ws.failed)
		return reply_status(f, SFTP_FX_FAILURE,
				    "The upload already failed");
	if ((a->flags & SFTP_ATTR_SIZE) && a->size != ws_size(&h->ws))
		rc = ws_truncate(f, h, a->size);
	if (rc == 0 && (a->flags & SFTP_ATTR_ACMODTIME))
		h->ws.mtime = (int64_t)a->mtime;
	return reply_write(f, rc);
}

static int do_opendir(struct sftp *f)
{
	struct vfs_path vp;
	struct store_stat st;
	struct handle *h;
	int idx, sent, rc;

	if (resolve(f, f->rq.path, &vp, &sent))
		return sent;
	switch (vp.kind) {
	case VFS_ROOT:
	case VFS_BACKUPS:
		break;
	case VFS_FILES:
		rc = store_stat(f->s->store, vp.name, &st);
		if (rc)
			return reply_err(f, rc);
		if (!st.is_dir)
			return reply_err(f, STORE_ENOTDIR);
		break;
	case VFS_BACKUP:
	case VFS_LATEST:
		return reply_err(f, STORE_ENOTDIR);
	default:
		return reply_err(f, STORE_ENOENT);
	}
	h = handle_new(f, &idx);
	if (!h)
		return reply_status(f, SFTP_FX_FAILURE, "Too many open files");
	if (vp.kind == VFS_FILES) {
		/* One listing per handle, paged by READDIR: the fs backend
		 * reads and sorts the directory once, here. */
		char prefix[STORE_NAME_MAX + 1];
		int open_listers = 0;
		for (int i = 0; i < SFTP_MAX_HANDLES; i++)
			if (f->h[i] && f->h[i]->kind == H_DIR &&
			    f->h[i]->lister)
				open_listers++;
		if (open_listers >= DIR_LISTERS_MAX)
			return reply_status(f, SFTP_FX_FAILURE,
					    "Too many open directories");
		snprintf(prefix, sizeof prefix, "%s%s", vp.name,
			 vp.name[0] ? "/" : "");
		rc = store_lister_open(f->s->store, prefix, &h->lister);
		if (rc)
			return reply_err(f, rc);
	}
	h->vp = vp;
	h->kind = H_DIR;
	return reply_handle(f, idx);
}

/* A READDIR reply being filled. */
struct dirfill {
	struct sftp *f;
	struct handle *h;
	const char *prefix;             /* listed prefix ("" or "dir/") */
	size_t plen;
	int count;
	int64_t now;
};

static void name_entry(struct dirfill *d, const char *name,
		       const struct sftp_attrs *a)
{
	char longname[STORE_NAME_MAX + 128];
	sftp_longname(longname, sizeof longname, name, a, d->f->s->client,
		      d->now);
	sftp_out_cstring(&d->f->out, name);
	sftp_out_cstring(&d->f->out, longname);
	sftp_out_attrs(&d->f->out, a);
	d->count++;
}

static int dir_list_cb(void *arg, const struct store_entry *e)
{
	struct dirfill *d = arg;
	char name[STORE_NAME_MAX];
	struct sftp_attrs a;

	if (strncmp(e->name, d->prefix, d->plen) != 0)
		return 0;
	size_t n = strlen(e->name + d->plen);
	if (n == 0 || n >= sizeof name)
		return 0;
	memcpy(name, e->name + d->plen, n + 1);
	if (name[n - 1] == '/')
		name[n - 1] = '\0';
	if (!name[0] || strchr(name, '/'))
		return 0;
	if (e->is_dir)
		attrs_dir(&a, 0755, e->mtime);
	else
		attrs_file(&a, 0644, e->size, e->mtime);
	name_entry(d, name, &a);
	if (d->count >= DIR_BATCH || d->f->out.len >= DIR_BATCH_BYTES)
		return 1;
	return 0;
}

static int archive_entry_cb(void *arg, const char *name,
			    const struct catalog_archive *ar)
{
	struct dirfill *d = arg;
	struct sftp_attrs a;
	if (d->h->dir_index-- > 0)
		return 0; /* sent in an earlier batch */
	attrs_file(&a, 0444, (uint64_t)(ar->size > 0 ? ar->size : 0),
		   ar->created);
	name_entry(d, name, &a);
	return d->count >= DIR_BATCH ? 1 : 0;
}

static int do_readdir(struct sftp *f)
{
	struct handle *h = handle_get(f, H_DIR);
	struct dirfill d;
	struct sftp_attrs a;
	char prefix[STORE_NAME_MAX + 1];
	size_t count_at;
	int rc = 0;

	if (!h)
		return reply_status(f, SFTP_FX_FAILURE, "Invalid handle");
	if (h->dir_done)
		return reply_status(f, SFTP_FX_EOF, "End of directory");
	memset(&d, 0, sizeof d);
	d.f = f;
	d.h = h;
	d.now = (int64_t)time(NULL);
	sftp_out_begin(&f->out, SFTP_NAME, f->rq.id);
	count_at = f->out.len;
	sftp_out_u32(&f->out, 0);

	if (h->vp.kind == VFS_ROOT) {
		struct catalog_archive ar;
		char latest[CATALOG_NAME_MAX + 32];
		attrs_dir(&a, 0555, 0);
		name_entry(&d, ".", &a);
		attrs_dir(&a, 0755, 0);
		name_entry(&d, "attachments", &a);
		attrs_dir(&a, 0555, 0);
		name_entry(&d, "backups", &a);
		if (vfs_archive_find(f->s->cat, f->s->client, NULL, &ar) == 0) {
			vfs_latest_name(f->s->client, latest, sizeof latest);
			attrs_file(&a, 0444,
				   (uint64_t)(ar.size > 0 ? ar.size : 0),
				   ar.created);
			name_entry(&d, latest, &a);
		}
		h->dir_done = 1;
	} else if (h->vp.kind == VFS_BACKUPS) {
		int skip = h->dir_index;
		rc = vfs_archive_list(f->s->cat, f->s->client, archive_entry_cb,
				      &d);
		h->dir_index = skip + d.count;
		if (d.count < DIR_BATCH)
			h->dir_done = 1;
		rc = rc < 0 ? rc : 0;
	} else {
		snprintf(prefix, sizeof prefix, "%s%s", h->vp.name,
			 h->vp.name[0] ? "/" : "");
		d.prefix = prefix;
		d.plen = strlen(prefix);
		/* Continues where the previous READDIR stopped. */
		rc = store_lister_next(h->lister, dir_list_cb, &d);
		if (rc == 0)
			h->dir_done = 1;
		rc = rc < 0 ? rc : 0;
	}
	if (rc)
		return reply_err(f, rc);
	if (d.count == 0)
		return reply_status(f, SFTP_FX_EOF, "End of directory");
	uint8_t *cp = f->out.buf + count_at;
	cp[0] = (uint8_t)(d.count >> 24);
	cp[1] = (uint8_t)(d.count >> 16);
	cp[2] = (uint8_t)(d.count >> 8);
	cp[3] = (uint8_t)d.count;
	return send_out(f);
}

/* Resolve the request path P of a request that changes what it names;
 * answers and returns -1 when P is outside the writable tree (a name that
 * does not exist there is "no such file", the read-only parts "denied"). */
static int resolve_writable(struct sftp *f, const char *p,
			    struct vfs_path *vp, int *sent)
{
	if (resolve(f, p, vp, sent))
		return -1;
	if (!vfs_writable(vp)) {
		*sent = reply_err(f, vp->kind == VFS_OTHER ? STORE_ENOENT :
							     STORE_EACCES);
		return -1;
	}
	return 0;
}

static int do_remove(struct sftp *f)
{
	struct vfs_path vp;
	int sent, rc;
	if (resolve_writable(f, f->rq.path, &vp, &sent))
		return sent;
	rc = store_delete(f->s->store, vp.name);
	if (rc == 0)
		log_info("sftp_remove", "client=%s path=%s",
			 log_q(f->s->client), log_q(vp.abs));
	sshd_record(f->s, "delete", vp.abs, NULL, rc, 0, 1);
	return rc ? reply_err(f, rc) : reply_ok(f);
}

static int do_mkdir(struct sftp *f)
{
	struct vfs_path vp;
	int sent, rc;
	if (resolve(f, f->rq.path, &vp, &sent))
		return sent;
	if (!vfs_writable(&vp))
		return reply_err(f, vp.kind == VFS_FILES ||
					    vp.kind == VFS_ROOT ||
					    vp.kind == VFS_BACKUPS ?
					    STORE_EEXIST : STORE_EACCES);
	rc = parent_exists(f, &vp);
	if (rc == 0)
		rc = store_mkdir(f->s->store, vp.name);
	sshd_record(f->s, "mkdir", vp.abs, NULL, rc, 0, 1);
	return rc ? reply_err(f, rc) : reply_ok(f);
}

static int do_rmdir(struct sftp *f)
{
	struct vfs_path vp;
	int sent, rc;
	if (resolve_writable(f, f->rq.path, &vp, &sent))
		return sent;
	rc = store_rmdir(f->s->store, vp.name);
	sshd_record(f->s, "rmdir", vp.abs, NULL, rc, 0, 1);
	return rc ? reply_err(f, rc) : reply_ok(f);
}

static int rename_common(struct sftp *f, int noreplace)
{
	struct vfs_path from, to;
	int sent, rc;
	if (resolve_writable(f, f->rq.path, &from, &sent) ||
	    resolve(f, f->rq.path2, &to, &sent))
		return sent;
	if (!vfs_writable(&to))
		return reply_err(f, STORE_EACCES);
	rc = parent_exists(f, &to);
	if (rc == 0)
		rc = store_rename(f->s->store, from.name, to.name, noreplace);
	if (rc == 0)
		log_info("sftp_rename", "client=%s from=%s to=%s",
			 log_q(f->s->client), log_q(from.abs), log_q(to.abs));
	sshd_record(f->s, "rename", from.abs, to.abs, rc, 0, 1);
	return rc ? reply_err(f, rc) : reply_ok(f);
}

static int do_rename(struct sftp *f)
{
	/* SFTP v3 RENAME must not replace an existing target. */
	return rename_common(f, 1);
}

static int do_realpath(struct sftp *f)
{
	struct vfs_path vp;
	struct sftp_attrs a;
	int sent;
	if (resolve(f, f->rq.path, &vp, &sent))
		return sent;
	memset(&a, 0, sizeof a);
	sftp_out_begin(&f->out, SFTP_NAME, f->rq.id);
	sftp_out_u32(&f->out, 1);
	sftp_out_cstring(&f->out, vp.abs);
	sftp_out_cstring(&f->out, vp.abs);
	sftp_out_attrs(&f->out, &a);
	return send_out(f);
}

static int do_links(struct sftp *f)
{
	return reply_status(f, SFTP_FX_OP_UNSUPPORTED,
			    "Links are not supported here");
}

static int do_statvfs_common(struct sftp *f, const struct vfs_path *vp)
{
	uint64_t total = 0, avail = 0;
	/* The client's byte quota, when it has one, is the disk's size and
	 * what remains of it the free space (store_statfs); an object quota
	 * likewise gives the inode figures. */
	struct store_usage u;
	uint64_t files = 1u << 30, ffree = 1u << 30;
	int rc = store_statfs(f->s->store, &total, &avail);
	if (rc)
		return reply_err(f, rc);
	if (store_usage(f->s->store, &u) == 0 && u.quota_objects > 0) {
		files = (uint64_t)u.quota_objects;
		ffree = u.objects < u.quota_objects
			    ? (uint64_t)(u.quota_objects - u.objects)
			    : 0;
	}
	const uint64_t bs = 4096;
	sftp_out_begin(&f->out, SFTP_EXTENDED_REPLY, f->rq.id);
	sftp_out_u64(&f->out, bs);              /* f_bsize */
	sftp_out_u64(&f->out, bs);              /* f_frsize */
	sftp_out_u64(&f->out, total / bs);      /* f_blocks */
	sftp_out_u64(&f->out, avail / bs);      /* f_bfree */
	sftp_out_u64(&f->out, avail / bs);      /* f_bavail */
	sftp_out_u64(&f->out, files);           /* f_files */
	sftp_out_u64(&f->out, ffree);           /* f_ffree */
	sftp_out_u64(&f->out, ffree);           /* f_favail */
	sftp_out_u64(&f->out, 0);               /* f_fsid */
	sftp_out_u64(&f->out, vp && vp->kind != VFS_FILES ? 1 : 0); /* RDONLY */
	sftp_out_u64(&f->out, 255);             /* f_namemax */
	return send_out(f);
}

static int do_extended(struct sftp *f)
{
	const char *e = f->rq.ext;
	struct vfs_path vp;
	int sent;

	if (!strcmp(e, "posix-rename@openssh.com"))
		return rename_common(f, 0);
	if (!strcmp(e, "statvfs@openssh.com")) {
		if (resolve(f, f->rq.path, &vp, &sent))
			return sent;
		return do_statvfs_common(f, &vp);
	}
	if (!strcmp(e, "fstatvfs@openssh.com")) {
		struct handle *h = handle_get(f, H_FREE);
		if (!h)
			return reply_status(f, SFTP_FX_FAILURE, "Invalid handle");
		return do_statvfs_common(f, &h->vp);
	}
	if (!strcmp(e, "fsync@openssh.com")) {
		struct handle *h = handle_get(f, H_FREE);
		if (!h)
			return reply_status(f, SFTP_FX_FAILURE, "Invalid handle");
		if (h->kind != H_WRITE)
			return reply_ok(f);
		/* Durable means stored: commit what we have now. */
		int rc = ws_untouched(&h->ws) ? 0 : ws_commit(f, h);
		return rc ? reply_err(f, rc) : reply_ok(f);
	}
	if (!strcmp(e, "limits@openssh.com")) {
		sftp_out_begin(&f->out, SFTP_EXTENDED_REPLY, f->rq.id);
		sftp_out_u64(&f->out, SFTP_MAX_PACKET);  /* max packet */
		sftp_out_u64(&f->out, SFTP_MAX_DATA);    /* max read */
		sftp_out_u64(&f->out, SFTP_MAX_DATA);    /* max write */
		sftp_out_u64(&f->out, SFTP_MAX_HANDLES); /* max open handles */
		return send_out(f);
	}
	if (!strcmp(e, "expand-path@openssh.com"))
		return do_realpath(f);
	if (!strcmp(e, "lsetstat@openssh.com"))
		return do_setstat(f);
	if (!strcmp(e, "hardlink@openssh.com"))
		return do_links(f);
	return reply_status(f, SFTP_FX_OP_UNSUPPORTED,
			    "Unsupported extension");
}

/* ---- dispatch ---------------------------------------------------------- */

struct op {
	uint8_t type;
	const char *name;
	int (*fn)(struct sftp *f);
};

static const struct op ops[] = {
	{ SFTP_OPEN, "open", do_open },
	{ SFTP_CLOSE, "close", do_close },
	{ SFTP_READ, "read", do_read },
	{ SFTP_WRITE, "write", do_write },
	{ SFTP_LSTAT, "lstat", do_stat },
	{ SFTP_FSTAT, "fstat", do_fstat },
	{ SFTP_SETSTAT, "setstat", do_setstat },
	{ SFTP_FSETSTAT, "fsetstat", do_fsetstat },
	{ SFTP_OPENDIR, "opendir", do_opendir },
	{ SFTP_READDIR, "readdir", do_readdir },
	{ SFTP_REMOVE, "remove", do_remove },
	{ SFTP_MKDIR, "mkdir", do_mkdir },
	{ SFTP_RMDIR, "rmdir", do_rmdir },
	{ SFTP_REALPATH, "realpath", do_realpath },
	{ SFTP_STAT, "stat", do_stat },
	{ SFTP_RENAME, "rename", do_rename },
	{ SFTP_READLINK, "readlink", do_links },
	{ SFTP_SYMLINK, "symlink", do_links },
	{ SFTP_EXTENDED, "extended", do_extended },
};

static int dispatch(struct sftp *f, size_t len)
{
	int rc = sftp_decode_request(f->in, len, &f->rq);
	if (rc == SFTP_DECODE_FATAL)
		return -1;
	if (!f->initialised) {
		if (f->rq.type != SFTP_INIT)
			return -1;
		return do_init(f);
	}
	if (rc == SFTP_DECODE_BAD)
		return reply_status(f, SFTP_FX_BAD_MESSAGE, "Bad message");
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (ops[i].type == f->rq.type)
			return ops[i].fn(f);
	return reply_status(f, SFTP_FX_OP_UNSUPPORTED, "Unsupported request");
}

int sshd_sftp_serve(struct sshd_session *s)
{
	struct sftp *f = calloc(1, sizeof *f);
	int status = 1;

	if (!f)
		return 1;
	f->s = s;
	f->in = malloc(SFTP_MAX_PACKET);
	f->outbuf = malloc(SFTP_MAX_PACKET + 4);
	if (!f->in || !f->outbuf)
		goto out;
	f->out.buf = f->outbuf;
	f->out.cap = SFTP_MAX_PACKET + 4;
	for (;;) {
		uint8_t lb[4];
		ssize_t r = sshd_io_read(s, lb, 1);
		if (r == 0) {
			status = 0; /* the client closed: a clean end */
			break;
		}
		if (r < 0 || sshd_io_read_full(s, lb + 1, 3) != 0)
			break;
		uint32_t len = (uint32_t)lb[0] << 24 | (uint32_t)lb[1] << 16 |
			       (uint32_t)lb[2] << 8 | lb[3];
		if (len == 0 || len > SFTP_MAX_PACKET) {
			log_warn("sftp_bad_packet", "client=%s addr=%s len=%u",
				 log_q(s->client), log_q(s->addr), len);
			break;
		}
		if (sshd_io_read_full(s, f->in, len) != 0)
			break;
		if (dispatch(f, len) != 0)
			break;
	}
out:
	/* Whatever was still open is dropped: writers abort, nothing
	 * partial becomes visible. */
	for (int i = 0; i < SFTP_MAX_HANDLES; i++) {
		struct handle *h = f->h[i];
		if (!h)
			continue;
		if (h->kind == H_WRITE && h->ws.dirty) {
			log_warn("sftp_put_aborted", "client=%s path=%s",
				 log_q(s->client), log_q(h->vp.abs));
			sshd_record(s, "write", h->vp.abs, NULL,
				    STORE_ECANCELED, ws_size(&h->ws), 1);
		}
		if (h->kind != H_FREE)
			handle_free(f, h);
		free(h);
	}
	free(f->in);
	free(f->outbuf);
	free(f);
	return status;
}
