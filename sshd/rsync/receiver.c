/*
 * receiver.c - serving a push: the generator and the receiver in one loop.
 *
 * rsync's own server forks a generator (decides what to ask for, sends the
 * old file's block sums) and a receiver (rebuilds files from the delta).
 * Here both run on one thread over one channel: the generator walks the
 * sorted file list and writes requests; the receiver reads the client's
 * answers in the same order. To keep the two directions from blocking each
 * other, the generator may only run ahead by a bounded amount of request
 * bytes (RUN_AHEAD) unless nothing is outstanding: the client can always
 * buffer that much of our output even while it is itself stuck writing,
 * so one of us is always making progress.
 *
 * Per directory the generator lists the destination once (one level): the
 * listing gives the quick check (size + mtime, with S3 mtimes from
 * mtimes.c), and, with --delete, what to remove (never outside the target,
 * never what the client's receiver-side filters protect). The listings of
 * the directories coming next in the list that are known to exist are
 * taken ahead, in parallel (dirlist.c), with the mtime lookups of their
 * files (HEADs where the cache misses), so on S3 a tree of many folders
 * does not wait for one round trip per folder in turn. What a listing
 * shows is used for every later question it answers, since on S3 each
 * question is a request: the size a file replaces goes to the quota meter
 * with the writer (no HEAD per file), and whether each subdirectory of the
 * file list exists is kept until the generator reaches it (no probe per
 * directory; a new one is made with a single marker PUT). A changed file's
 * old object is read once, block by block, to send its sums; nothing of it
 * is kept. The receiver streams the rebuilt file into a store writer,
 * copying matched blocks from the old object with sequential ranged reads,
 * and commits only once the MD5 of what it wrote equals the sender's; a
 * mismatch aborts the writer (the old object stays) and the file is asked
 * for again with full-length sums in the redo phase. A dropped connection
 * aborts the writer in flight: no partial object ever becomes visible,
 * which is also what --partial gets (there is no partial state to keep).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rsync_int.h"

#define RUN_AHEAD (32 * 1024)   /* request bytes ahead of the receiver */
#define MAX_PENDING 4096        /* requests ahead of the receiver */
#define WBUF_SIZE (256 * 1024)  /* gather buffer for the store writer */

/* What the listing of its parent said of a directory in the file list. */
enum { DS_UNKNOWN, DS_ABSENT, DS_DIR, DS_FILE };

struct dstate {
	const char *name;       /* flist name (not owned) */
	int state;
};

struct pend {
	int32_t ndx;
	uint8_t transfer;       /* 1: data follows the echo */
	uint8_t no_send;        /* the client could not open it */
	uint8_t has_basis;
	uint8_t old_known;      /* old_size is known from a listing */
	int64_t old_size;       /* what the object replaces; -1: none */
	int32_t count, blength, s2length, remainder;
	size_t bytes;           /* request size, for RUN_AHEAD */
};

struct push {
	struct rs_sess *s;
	/* the current directory's existing entries, sorted by name */
	struct rs_listing cur;
	char curdir[RS_MAX_PATH]; /* flist name of the listed directory */
	int curdir_valid;
	struct rs_dirlist *dl;  /* the listings, taken ahead */
	size_t ahead;           /* file-list index the look-ahead got to */
	/* names in the file list, for --delete: a sorted array */
	char **names;
	size_t nnames;
	/* the directories of the file list, sorted by name, with what the
	 * listing of each one's parent showed: a directory the generator
	 * comes to later needs no lookup of its own */
	struct dstate *dirs;
	size_t ndirs;
	/* requests not yet answered */
	struct pend ring[MAX_PENDING];
	size_t head, npend;
	size_t pend_bytes;
	int local_name;         /* the list is one file written as PREFIX */
	int dest_is_new;        /* PREFIX did not exist */
	uint64_t del_files, del_dirs;
	int deletes_left;
	int redo_count;
	int errors;             /* files that failed: exit 23 */
	unsigned char *wbuf;
	unsigned char *seebuf;  /* one block, for zlib's history; or NULL */
	struct rs_commits *commits; /* background commits, or NULL */
};

/* ---- names -------------------------------------------------------------- */

static int object_name(struct push *p, const char *name, char *out, size_t cap)
{
	const char *prefix = p->s->target.prefix;
	int n;

	if (p->local_name || strcmp(name, ".") == 0)
		n = snprintf(out, cap, "%s", prefix);
	else if (!*prefix)
		n = snprintf(out, cap, "%s", name);
	else
		n = snprintf(out, cap, "%s/%s", prefix, name);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int in_flist(struct push *p, const char *name)
{
	const char *key = name;
	if (p->nnames == 0)
		return 0;
	return bsearch(&key, p->names, p->nnames, sizeof *p->names, cmp_str) != NULL;
}

static const char *parent_of(const char *name, char *buf, size_t cap)
{
	const char *slash = strrchr(name, '/');
	if (!slash)
		return ".";
	snprintf(buf, cap, "%.*s", (int)(slash - name), name);
	return buf;
}

static const char *base_of(const char *name)
{
	const char *slash = strrchr(name, '/');
	return slash ? slash + 1 : name;
}

/* ---- the destination directory listing ------------------------------- */

static void free_dents(struct push *p)
{
	rs_listing_clear(&p->cur);
	p->curdir_valid = 0;
}

/* Where the listing lacks the client's mtimes (S3), fetch those of the
 * files the client is sending, for the whole directory at once. */
static void resolve_mtimes(void *arg, const char *name, const char *prefix,
			   struct rs_listing *l)
{
	struct push *p = arg;
	struct rs_mtime_req *reqs;
	char **objs;
	size_t *idx;
	size_t i, n = 0;

	for (i = 0; i < l->n; i++)
		if (!l->v[i].is_dir && !l->v[i].mtime_is_client)
			n++;
	if (n == 0)
		return;
	reqs = calloc(n, sizeof *reqs);
	objs = calloc(n, sizeof *objs);
	idx = calloc(n, sizeof *idx);
	if (!reqs || !objs || !idx)
		goto out;
	n = 0;
	for (i = 0; i < l->n; i++) {
		struct rs_dent *d = &l->v[i];
		char rel[RS_MAX_PATH];
		if (d->is_dir || d->mtime_is_client)
			continue;
		if (strcmp(name, ".") == 0)
			snprintf(rel, sizeof rel, "%s", d->name);
		else if ((size_t)snprintf(rel, sizeof rel, "%s/%s", name,
					  d->name) >= sizeof rel)
			continue;
		if (!in_flist(p, rel))
			continue;
		if (asprintf(&objs[n], "%s%s", prefix, d->name) < 0) {
			objs[n] = NULL;
			continue;
		}
		reqs[n].name = objs[n];
		reqs[n].size = d->size;
		reqs[n].etag = d->etag;
		idx[n] = i;
		n++;
	}
	rs_mtime_lookup_many(p->s->target.store, reqs, n);
	for (i = 0; i < n; i++) {
		if (reqs[i].rc == 0) {
			l->v[idx[i]].mtime = reqs[i].mtime;
			l->v[idx[i]].mtime_is_client = 1;
		}
	}
out:
	if (objs)
		for (i = 0; i < n; i++)
			free(objs[i]);
	free(objs);
	free(reqs);
	free(idx);
}

/* ---- what the listings said of the directories to come ------------- */

static int cmp_dstate(const void *a, const void *b)
{
	return strcmp(((const struct dstate *)a)->name,
		      ((const struct dstate *)b)->name);
}

static struct dstate *find_dstate(struct push *p, const char *name)
{
	struct dstate key;
	key.name = name;
	key.state = 0;
	if (p->ndirs == 0)
		return NULL;
	return bsearch(&key, p->dirs, p->ndirs, sizeof *p->dirs, cmp_dstate);
}

/* Flist directory NAME has just been listed (its entries in p->dents) or
 * made (none): every directory of the file list directly below it is
 * absent unless the listing shows it. */
static void note_listing(struct push *p, const char *name)
{
	char pre[RS_MAX_PATH + 1];
	size_t pl = 0, lo = 0, hi = p->ndirs, i;

	pre[0] = '\0';

	if (strcmp(name, ".") != 0) {
		int n = snprintf(pre, sizeof pre, "%s/", name);
		if (n < 0 || (size_t)n >= sizeof pre)
			return;
		pl = (size_t)n;
		while (lo < hi) { /* the first name >= "NAME/" */
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(p->dirs[mid].name, pre) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	for (i = lo; i < p->ndirs; i++) {
		const char *n = p->dirs[i].name;
		if (pl && strncmp(n, pre, pl) != 0)
			break; /* past the names below NAME */
		if (!strchr(n + pl, '/'))
			p->dirs[i].state = DS_ABSENT;
	}
	for (i = 0; i < p->cur.n; i++) {
		char rel[RS_MAX_PATH];
		struct dstate *ds;
		if ((size_t)snprintf(rel, sizeof rel, "%.*s%s", (int)pl, pre,
				     p->cur.v[i].name) >= sizeof rel)
			continue;
		ds = find_dstate(p, rel);
		if (ds)
			ds->state = p->cur.v[i].is_dir ? DS_DIR : DS_FILE;
	}
}

/* List the destination of flist directory NAME (object OBJ), file-list
 * index ID. */
static int load_dir(struct push *p, size_t id, const char *name,
		    const char *obj)
{
	char prefix[STORE_NAME_MAX + 1];
	int rc;

	free_dents(p);
	if (*obj)
		snprintf(prefix, sizeof prefix, "%s/", obj);
	else
		prefix[0] = '\0';
	/* (resolve_mtimes has run on it) */
	rc = rs_dirlist_get(p->dl, id, prefix, name, &p->cur);
	if (rc < 0)
		return rc;
	snprintf(p->curdir, sizeof p->curdir, "%s", name);
	p->curdir_valid = 1;
	note_listing(p, name);
	return 0;
}

static struct rs_dent *find_dent(struct push *p, const char *base)
{
	return rs_listing_find(&p->cur, base);
}

/* Ask for the listings of the directories ahead of file-list entry I
 * that are known to exist (their parent's listing showed them), in the
 * list's order, up to the window. A directory not known yet stops the
 * look-ahead until its parent is listed: it may not exist, and asking
 * would cost a request for nothing. */
static void look_ahead(struct push *p, size_t i)
{
	struct rs_flist *fl = &p->s->flist;

	if (p->ahead <= i)
		p->ahead = i + 1;
	for (; p->ahead < fl->used; p->ahead++) {
		struct rs_file *f = fl->files[p->ahead];
		struct dstate *ds;
		char obj[STORE_NAME_MAX], prefix[STORE_NAME_MAX + 1];

		if (f->type != RS_FT_DIR)
			continue;
		ds = find_dstate(p, f->name);
		if (!ds || ds->state == DS_UNKNOWN)
			return;
		if (ds->state != DS_DIR || p->local_name ||
		    object_name(p, f->name, obj, sizeof obj) < 0 ||
		    !*obj || !store_name_valid(obj))
			continue; /* not listed, or not by the generator */
		snprintf(prefix, sizeof prefix, "%s/", obj);
		if (rs_dirlist_ahead(p->dl, p->ahead, prefix, f->name) < 0)
			return; /* the window is full */
	}
}

/* ---- deletion ----------------------------------------------------------- */

static void report_deleted(struct push *p, const char *name, int is_dir)
{
	/* rsync's clients print "deleting NAME" for these; a directory's
	 * name goes with its terminating NUL. */
	rs_msg(&p->s->conn, RS_MSG_DELETED, name, strlen(name) + (is_dir ? 1 : 0));
}

struct names_ctx {
	char **v;
	int *isdir;
	size_t n, cap;
	size_t plen;
};

static int names_cb(void *arg, const struct store_entry *e)
{
	struct names_ctx *nc = arg;
	size_t rl;
	if (nc->n == nc->cap) {
		size_t cap = nc->cap ? nc->cap * 2 : 32;
		char **v = realloc(nc->v, cap * sizeof *v);
		int *d;
		if (!v)
			return -1;
		nc->v = v;
		d = realloc(nc->isdir, cap * sizeof *d);
		if (!d)
			return -1;
		nc->isdir = d;
		nc->cap = cap;
	}
	if (strlen(e->name) <= nc->plen)
		return 0;
	rl = strlen(e->name + nc->plen);
	if (e->name[nc->plen + rl - 1] == '/')
		rl--;
	nc->v[nc->n] = strndup(e->name + nc->plen, rl);
	if (!nc->v[nc->n])
		return -1;
	nc->isdir[nc->n] = e->is_dir;
	nc->n++;
	return 0;
}

static int delete_entry(struct push *p, const char *obj, const char *rel,
			int is_dir);

/* Remove directory OBJ and everything below it that is not protected. */
static int delete_tree(struct push *p, const char *obj, const char *rel)
{
	struct names_ctx nc;
	char prefix[STORE_NAME_MAX + 1];
	size_t i;
	int rc, failed = 0;

	memset(&nc, 0, sizeof nc);
	snprintf(prefix, sizeof prefix, "%s/", obj);
	nc.plen = strlen(prefix);
	rc = store_list(p->s->target.store, prefix, '/', NULL, names_cb, &nc);
	if (rc < 0 && rc != STORE_ENOENT)
		failed = 1;
	for (i = 0; i < nc.n; i++) {
		char cobj[STORE_NAME_MAX], crel[RS_MAX_PATH];
		if (!failed &&
		    (size_t)snprintf(cobj, sizeof cobj, "%s%s", prefix, nc.v[i]) < sizeof cobj &&
		    (size_t)snprintf(crel, sizeof crel, "%s/%s", rel, nc.v[i]) < sizeof crel) {
			if (delete_entry(p, cobj, crel, nc.isdir[i]) < 0)
				failed = 1;
		}
		free(nc.v[i]);
	}
	free(nc.v);
	free(nc.isdir);
	if (failed)
		return -1;
	if (p->s->opts.dry_run)
		return 0;
	rc = store_rmdir(p->s->target.store, obj);
	rs_event(p->s, "rmdir", obj, rc, 0);
	if (rc < 0 && rc != STORE_ENOENT) {
		rs_printf(&p->s->conn, RS_MSG_ERROR_XFER,
			  "rsync: [generator] delete_file: rmdir(%s) failed: "
			  "%s (assetd)\n", rel, store_strerror(rc));
		return -1;
	}
	return 0;
}

static int delete_entry(struct push *p, const char *obj, const char *rel,
			int is_dir)
{
	struct rs_sess *s = p->s;
	int rc = 0;

	if (rs_filter_excluded(&s->filters, rel, is_dir, 1))
		return -1; /* protected: its directory must stay too */
	if (p->deletes_left == 0)
		return -1;
	if (is_dir) {
		if (delete_tree(p, obj, rel) < 0)
			return -1;
	} else if (!s->opts.dry_run) {
		rc = store_delete(s->target.store, obj);
		rs_event(s, "delete", obj, rc, 0);
	}
	if (rc < 0 && rc != STORE_ENOENT) {
		rs_printf(&s->conn, RS_MSG_ERROR_XFER,
			  "rsync: [generator] delete_file: unlink(%s) failed: "
			  "%s (assetd)\n", rel, store_strerror(rc));
		p->errors++;
		return -1;
	}
	if (p->deletes_left > 0)
		p->deletes_left--;
	if (is_dir)
		p->del_dirs++;
	else
		p->del_files++;
	report_deleted(p, rel, is_dir);
	return 0;
}

/* --delete for flist directory NAME, whose listing is loaded. */
static void delete_in_dir(struct push *p, const char *name, const char *obj)
{
	size_t i;

	for (i = 0; i < p->cur.n; i++) {
		struct rs_dent *d = &p->cur.v[i];
		char rel[RS_MAX_PATH], cobj[STORE_NAME_MAX];
		if (strcmp(name, ".") == 0)
			snprintf(rel, sizeof rel, "%s", d->name);
		else if ((size_t)snprintf(rel, sizeof rel, "%s/%s", name,
					  d->name) >= sizeof rel)
			continue;
		if (in_flist(p, rel))
			continue;
		if ((size_t)snprintf(cobj, sizeof cobj, "%s%s%s", obj,
				     *obj ? "/" : "", d->name) >= sizeof cobj)
			continue;
		if (p->deletes_left == 0) {
			p->s->conn.io_error |= 4;
			continue;
		}
		delete_entry(p, cobj, rel, d->is_dir);
	}
}

/* ---- the receiving half --------------------------------------------------- */

struct basis {
	struct store *st;
	const char *obj;
	struct store_reader *r;
	int64_t pos;            /* offset the open reader is at */
};

/* Copy LEN bytes at OFF of the old object into the writer (and into SEE,
 * when not NULL: a block the zlib history needs). */
static int copy_block(struct basis *b, int64_t off, int32_t len,
		      unsigned char *buf, size_t *blen, struct store_writer *w,
		      struct rs_filesum *fs, unsigned char *see)
{
	int32_t got = 0;
	int rc;

	if (b->r && b->pos != off) {
		store_reader_close(b->r);
		b->r = NULL;
	}
	if (!b->r) {
		rc = store_reader_open(b->st, b->obj, (uint64_t)off, UINT64_MAX,
				       &b->r, NULL);
		if (rc < 0)
			return rc;
		b->pos = off;
	}
	while (got < len) {
		ssize_t n;
		if (*blen == WBUF_SIZE) {
			rc = store_writer_write(w, buf, *blen);
			if (rc < 0)
				return rc;
			*blen = 0;
		}
		n = store_reader_read(b->r, buf + *blen,
				      (size_t)(len - got) < WBUF_SIZE - *blen
					      ? (size_t)(len - got)
					      : WBUF_SIZE - *blen);
		if (n <= 0)
			return n < 0 ? (int)n : STORE_EIO;
		rs_filesum_update(fs, buf + *blen, (size_t)n);
		if (see)
			memcpy(see + got, buf + *blen, (size_t)n);
		*blen += (size_t)n;
		got += (int32_t)n;
		b->pos += n;
	}
	return 0;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char x[] = "0123456789abcdef";
	size_t i;
	for (i = 0; i < n; i++) {
		out[2 * i] = x[d[i] >> 4];
		out[2 * i + 1] = x[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Receive the data of one transfer (after its echo) into the store.
 * Returns 0 committed, 1 checksum mismatch (redo), < 0 a store error that
 * was reported, or an rsync code > 1 for a stream failure. */
static int receive_file(struct push *p, const struct pend *q)
{
	struct rs_sess *s = p->s;
	struct rs_conn *c = &s->conn;
	struct rs_file *f = s->flist.files[q->ndx];
	struct store_put_opts po;
	struct store_writer *w = NULL;
	struct basis b;
	struct rs_filesum fs;
	unsigned char want[RS_SUM_LENGTH], got[RS_SUM_LENGTH];
	char obj[STORE_NAME_MAX];
	size_t blen = 0;
	int32_t count, blength, s2length, remainder;
	int werr = 0, rc;

	count = rs_read_int(c);
	blength = rs_read_int(c);
	s2length = rs_read_int(c);
	remainder = rs_read_int(c);
	if (c->err)
		return c->err;
	if (count != q->count || blength != q->blength ||
	    s2length != q->s2length || remainder != q->remainder) {
		rs_printf(c, RS_MSG_ERROR, "rsync: [receiver] checksum header "
			  "mismatch for %s (assetd)\n", f->name);
		return RSYNC_EPROTOCOL;
	}
	if (object_name(p, f->name, obj, sizeof obj) < 0)
		werr = STORE_EINVAL;
	memset(&po, 0, sizeof po);
	po.mtime = s->opts.preserve_times ? f->mtime : 0;
	po.size_hint = (uint64_t)f->size;
	po.size_exact = 1; /* the file list's size is what will be written */
	/* The generator's listing said what the object replaces: the meter
	 * need not ask the store again (a HEAD per file on S3). */
	po.old_known = q->old_known;
	po.old_size = q->old_size;
	if (!werr && !s->opts.dry_run)
		werr = store_writer_open(s->target.store, obj, &po, &w);
	memset(&b, 0, sizeof b);
	b.st = s->target.store;
	b.obj = obj;
	if (rs_filesum_begin(&fs) < 0) {
		if (w)
			store_writer_abort(w);
		return RSYNC_EMALLOC;
	}
	for (;;) {
		const unsigned char *data;
		int32_t t = rs_tok_recv(&s->tok, c, &data);
		if (c->err || t == 0)
			break;
		if (t > 0) {
			int32_t left = t;
			rs_filesum_update(&fs, data, (size_t)t);
			while (left > 0) {
				size_t n = WBUF_SIZE - blen;
				if (n == 0) {
					if (!werr && w)
						werr = store_writer_write(w, p->wbuf, blen);
					blen = 0;
					continue;
				}
				if (n > (size_t)left)
					n = (size_t)left;
				memcpy(p->wbuf + blen, data, n);
				data += n;
				blen += n;
				left -= (int32_t)n;
			}
			if (s->stats)
				s->stats->literal_bytes += (uint64_t)t;
		} else {
			int32_t i = -(t + 1);
			int32_t len;
			if (i < 0 || i >= count || !q->has_basis) {
				rs_printf(c, RS_MSG_ERROR, "rsync: [receiver] "
					  "invalid block %d for %s (assetd)\n",
					  (int)i, f->name);
				rs_fail(c, RSYNC_EPROTOCOL);
				break;
			}
			len = (i == count - 1 && remainder) ? remainder : blength;
			if (!werr) {
				werr = copy_block(&b, (int64_t)i * blength, len,
						  p->wbuf, &blen, w ? w : NULL, &fs,
						  p->seebuf);
			}
			if (werr) {
				/* keep the checksum honest: it must fail */
				blen = 0;
				if (p->seebuf)
					memset(p->seebuf, 0, (size_t)len);
			}
			/* zlib: the block joins the decompressor's history
			 * (zeros after a failed read keep the stream
			 * decodable; the file fails anyway) */
			if (p->seebuf)
				rs_tok_see(&s->tok, c, p->seebuf, len);
			if (s->stats)
				s->stats->matched_bytes += (uint64_t)len;
		}
		if (!werr && blen == WBUF_SIZE && w) {
			werr = store_writer_write(w, p->wbuf, blen);
			blen = 0;
		}
	}
	if (b.r)
		store_reader_close(b.r);
	rs_read(c, want, RS_SUM_LENGTH);
	rs_filesum_end(&fs, got);
	rs_filesum_free(&fs);
	if (!werr && blen && w)
		werr = store_writer_write(w, p->wbuf, blen);
	if (c->err) {
		if (w)
			store_writer_abort(w);
		return c->err;
	}
	if (werr) {
		if (w)
			store_writer_abort(w);
		rs_printf(c, RS_MSG_ERROR_XFER, "rsync: [receiver] write "
			  "failed on \"%s\": %s (assetd)\n", f->name,
			  store_strerror(werr));
		return werr < 0 ? werr : STORE_EIO;
	}
	if (memcmp(want, got, RS_SUM_LENGTH) != 0) {
		if (w)
			store_writer_abort(w);
		return 1;
	}
	/* The MD5 just checked against the client's goes with the object
	 * (S3's Content-MD5): the store need not hash the bytes again, and
	 * S3 checks what it received against what the client sent. */
	if (w)
		store_writer_set_md5(w, got);
	if (w && p->commits) {
		char etag[2 * RS_SUM_LENGTH + 1];
		hex(got, RS_SUM_LENGTH, etag);
		if (rs_commits_submit(p->commits, w, (uint64_t)f->size, q->ndx,
				      s->target.store, obj, etag, po.mtime) == 0)
			w = NULL;
	}
	if (w) {
		rc = store_writer_commit(w);
		rs_event(s, "write", obj, rc, (uint64_t)f->size);
		if (rc < 0) {
			rs_printf(c, RS_MSG_ERROR_XFER, "rsync: [receiver] "
				  "commit of \"%s\" failed: %s (assetd)\n",
				  f->name, store_strerror(rc));
			return rc;
		}
		if (store_is_s3(s->target.store)) {
			char etag[2 * RS_SUM_LENGTH + 1];
			hex(got, RS_SUM_LENGTH, etag);
			rs_mtime_remember(s->target.store, obj, (uint64_t)f->size,
					  etag, po.mtime);
		}
	}
	if (s->stats)
		s->stats->files_transferred++;
	return 0;
}

static void on_index(void *arg, int tag, int32_t ndx)
{
	struct push *p = arg;
	size_t i;

	if (tag != RS_MSG_NO_SEND)
		return;
	for (i = 0; i < p->npend; i++) {
		struct pend *q = &p->ring[(p->head + i) % MAX_PENDING];
		if (q->ndx == ndx && q->transfer) {
			q->no_send = 1;
			return;
		}
	}
}

void rs_event(struct rs_sess *s, const char *op, const char *obj, int rc,
	      uint64_t bytes)
{
	if (s->target.event)
		s->target.event(s->target.event_arg, op, obj, rc, bytes);
}

static void commit_done(void *arg, int32_t ndx, int rc, const char *obj,
			uint64_t size)
{
	struct push *p = arg;
	struct rs_sess *s = p->s;
	rs_event(s, "write", obj, rc, size);
	if (rc == 0)
		return;
	const char *name = ndx >= 0 && (size_t)ndx < s->flist.used
				   ? s->flist.files[ndx]->name : "?";
	rs_printf(&s->conn, RS_MSG_ERROR_XFER, "rsync: [receiver] commit of "
		  "\"%s\" failed: %s (assetd)\n", name, store_strerror(rc));
	p->errors++;
	s->flist.files[ndx]->done = 0;
	if (s->stats && s->stats->files_transferred > 0)
		s->stats->files_transferred--;
}

static void collect_commits(struct push *p, int wait_all)
{
	if (p->commits)
		rs_commits_collect(p->commits, wait_all, commit_done, p);
}

/* Read the answer to the oldest request. 0, or an rsync code. */
static int recv_one(struct push *p)
{
	struct rs_sess *s = p->s;
	struct rs_conn *c = &s->conn;
	struct pend q;
	int32_t ndx;
	unsigned iflags;
	int rc;

	while (p->npend > 0 && p->ring[p->head].no_send) {
		p->pend_bytes -= p->ring[p->head].bytes;
		p->head = (p->head + 1) % MAX_PENDING;
		p->npend--;
		p->errors++;
	}
	if (p->npend == 0)
		return 0;
	ndx = rs_read_ndx(c);
	/* A NO_SEND for the head may have arrived while we waited. */
	while (!c->err && p->npend > 0 && p->ring[p->head].no_send) {
		p->pend_bytes -= p->ring[p->head].bytes;
		p->head = (p->head + 1) % MAX_PENDING;
		p->npend--;
		p->errors++;
	}
	if (c->err)
		return c->err;
	if (p->npend == 0 || ndx != p->ring[p->head].ndx) {
		rs_printf(c, RS_MSG_ERROR, "rsync: [receiver] unexpected file "
			  "index %d (assetd)\n", (int)ndx);
		return RSYNC_EPROTOCOL;
	}
	q = p->ring[p->head];
	p->pend_bytes -= q.bytes;
	p->head = (p->head + 1) % MAX_PENDING;
	p->npend--;
	iflags = rs_read_short(c);
	if (iflags & RS_ITEM_BASIS_TYPE_FOLLOWS)
		(void)rs_read_byte(c);
	if (iflags & RS_ITEM_XNAME_FOLLOWS) {
		char x[RS_MAX_PATH];
		rs_read_vstring(c, x, sizeof x);
	}
	if (c->err)
		return c->err;
	if (!(iflags & RS_ITEM_TRANSFER) || !q.transfer || s->opts.dry_run)
		return 0;
	rc = receive_file(p, &q);
	if (rc == 1) {
		struct rs_file *f = s->flist.files[q.ndx];
		if (f->sent) {
			rs_printf(c, RS_MSG_ERROR_XFER, "ERROR: %s failed "
				  "verification -- update discarded.\n", f->name);
			p->errors++;
		} else {
			rs_printf(c, RS_MSG_INFO, "WARNING: %s failed "
				  "verification -- update discarded (will try "
				  "again).\n", f->name);
			f->sent = 1;
			p->redo_count++;
		}
		return 0;
	}
	if (rc < 0) {
		p->errors++;
		return 0;
	}
	if (rc == 0)
		s->flist.files[q.ndx]->done = 1;
	collect_commits(p, 0);
	return rc;
}

/* ---- the generating half ---------------------------------------------------- */

static int make_room(struct push *p, size_t bytes)
{
	while (p->npend > 0 &&
	       (p->pend_bytes + bytes > RUN_AHEAD || p->npend >= MAX_PENDING)) {
		int rc = recv_one(p);
		if (rc)
			return rc;
	}
	return 0;
}

static void queue(struct push *p, const struct pend *q)
{
	p->ring[(p->head + p->npend) % MAX_PENDING] = *q;
	p->npend++;
	p->pend_bytes += q->bytes;
}

/* Send ndx + item flags only (no data): lets -v show new directories. */
static int itemize(struct push *p, int32_t ndx, unsigned iflags)
{
	struct pend q;
	int rc = make_room(p, 8);
	if (rc)
		return rc;
	rs_write_ndx(&p->s->conn, ndx);
	rs_write_short(&p->s->conn, iflags);
	memset(&q, 0, sizeof q);
	q.ndx = ndx;
	q.bytes = 8;
	queue(p, &q);
	return 0;
}

/* Ask for file NDX, with block sums of OBJ when it exists. OLD_SIZE is
 * what OBJ holds as the listing showed it (-1 none; -2 not known). */
static int request(struct push *p, int32_t ndx, unsigned iflags,
		   const char *obj, int64_t basis_size, int full_sums,
		   int64_t old_size)
{
	struct rs_sess *s = p->s;
	struct rs_conn *c = &s->conn;
	struct pend q;
	int32_t blength = 0, s2length = 0;
	int64_t count = 0;
	int rc;

	memset(&q, 0, sizeof q);
	q.ndx = ndx;
	q.transfer = 1;
	q.old_known = old_size >= -1;
	q.old_size = old_size >= 0 ? old_size : -1;
	if (basis_size > 0 && !s->opts.whole_file && !s->opts.dry_run) {
		rs_sum_sizes(basis_size, s->opts.block_size, &blength, &s2length);
		if (full_sums)
			s2length = RS_SUM_LENGTH;
		count = (basis_size + blength - 1) / blength;
		if (count > RS_MAX_SUM_COUNT)
			count = 0;
	}
	if (count > 0) {
		q.has_basis = 1;
		q.count = (int32_t)count;
		q.blength = blength;
		q.s2length = s2length;
		q.remainder = (int32_t)(basis_size % blength);
	}
	q.bytes = 24 + (size_t)count * (size_t)(4 + s2length);
	rc = make_room(p, q.bytes);
	if (rc)
		return rc;
	rs_write_ndx(c, ndx);
	rs_write_short(c, iflags);
	if (s->opts.dry_run) {
		q.transfer = 0;
		q.bytes = 8;
		queue(p, &q);
		return 0;
	}
	rs_write_int(c, q.count);
	rs_write_int(c, q.blength);
	rs_write_int(c, q.s2length);
	rs_write_int(c, q.remainder);
	if (q.has_basis) {
		struct store_reader *r = NULL;
		unsigned char *buf = malloc((size_t)blength);
		unsigned char sum[RS_SUM_LENGTH];
		int32_t i;
		int ok = buf != NULL;

		if (ok && store_reader_open(s->target.store, obj, 0,
					    (uint64_t)basis_size, &r, NULL) < 0)
			ok = 0;
		for (i = 0; i < q.count; i++) {
			int32_t len = (i == q.count - 1 && q.remainder)
					      ? q.remainder : blength;
			int32_t got = 0;
			while (ok && got < len) {
				ssize_t n = store_reader_read(r, buf + got,
							      (size_t)(len - got));
				if (n <= 0)
					ok = 0;
				else
					got += (int32_t)n;
			}
			if (!ok) {
				/* unreadable old copy: sums that match nothing */
				memset(sum, 0, sizeof sum);
				rs_write_int(c, 0);
				rs_write(c, sum, (size_t)q.s2length);
				continue;
			}
			rs_write_int(c, (int32_t)rs_checksum1(buf, (size_t)len));
			rs_checksum2(&s->sums, buf, (size_t)len, sum);
			rs_write(c, sum, (size_t)q.s2length);
		}
		if (r)
			store_reader_close(r);
		free(buf);
	}
	queue(p, &q);
	return c->err;
}

static int mtime_equal(const struct rs_opts *o, int64_t a, int64_t b)
{
	int64_t d = a > b ? a - b : b - a;
	return d <= (o->modify_window > 0 ? o->modify_window : 0);
}

static int gen_file(struct push *p, size_t i)
{
	struct rs_sess *s = p->s;
	struct rs_file *f = s->flist.files[i];
	struct rs_dent *d = NULL;
	char obj[STORE_NAME_MAX], pbuf[RS_MAX_PATH];
	const char *parent = parent_of(f->name, pbuf, sizeof pbuf);
	unsigned iflags = RS_ITEM_TRANSFER;
	int64_t mtime = 0;
	int known = 1;          /* whether d (or its absence) is certain */

	if (object_name(p, f->name, obj, sizeof obj) < 0 ||
	    (!p->local_name && !store_name_valid(obj))) {
		rs_printf(&s->conn, RS_MSG_ERROR_XFER, "rsync: [receiver] "
			  "invalid name \"%s\" for this server (assetd)\n",
			  f->name);
		p->errors++;
		return 0;
	}
	if (s->opts.max_size >= 0 && f->size > s->opts.max_size)
		return 0;
	if (s->opts.min_size >= 0 && f->size < s->opts.min_size)
		return 0;
	if (p->local_name || (p->curdir_valid && strcmp(parent, p->curdir) == 0)) {
		d = find_dent(p, p->local_name ? base_of(obj) : base_of(f->name));
	} else {
		/* not under the listed directory (cannot happen with a
		 * sorted list); ask the store directly */
		static struct rs_dent one;
		struct store_stat st;
		int src = store_stat(s->target.store, obj, &st);
		known = src == 0 || src == STORE_ENOENT;
		if (src == 0) {
			one.name = NULL;
			one.size = st.size;
			one.mtime = st.mtime;
			one.mtime_is_client = 1;
			one.is_dir = st.is_dir;
			one.etag[0] = '\0';
			d = &one;
		}
	}
	if (d && d->is_dir) {
		rs_printf(&s->conn, RS_MSG_ERROR_XFER, "rsync: [receiver] "
			  "cannot overwrite directory \"%s\" with a file "
			  "(assetd)\n", f->name);
		p->errors++;
		return 0;
	}
	if (d) {
		if (s->opts.ignore_existing)
			return 0;
		mtime = d->mtime;
		if (!d->mtime_is_client && (int64_t)d->size == f->size &&
		    rs_mtime_lookup(s->target.store, obj, d->size, d->etag,
				    &mtime) < 0)
			mtime = d->mtime;
		if (s->opts.update_only && mtime > f->mtime)
			return 0;
		if (!s->opts.ignore_times && (int64_t)d->size == f->size) {
			int same;
			if (s->opts.always_checksum) {
				unsigned char sum[RS_SUM_LENGTH];
				same = rs_object_md5(s->target.store, obj, sum) == 0 &&
				       memcmp(sum, f->sum, sizeof sum) == 0;
			} else if (s->opts.size_only) {
				same = 1;
			} else {
				same = mtime_equal(&s->opts, mtime, f->mtime);
			}
			if (same) {
				if (s->opts.preserve_times && !s->opts.dry_run &&
				    !mtime_equal(&s->opts, mtime, f->mtime))
					store_set_mtime(s->target.store, obj, f->mtime);
				f->done = 1;
				return 0;
			}
		}
		if ((int64_t)d->size != f->size)
			iflags |= RS_ITEM_REPORT_SIZE;
		if (!mtime_equal(&s->opts, mtime, f->mtime))
			iflags |= RS_ITEM_REPORT_TIME;
	} else {
		if (s->opts.existing_only)
			return 0;
		iflags |= RS_ITEM_IS_NEW;
	}
	/* Over the client's quota: say so now rather than after the data
	 * was sent (the commit would refuse it anyway). */
	if (!s->opts.dry_run &&
	    store_quota_check(s->target.store, d ? 0 : 1,
			      f->size - (d ? (int64_t)d->size : 0)) ==
		STORE_EQUOTA) {
		rs_printf(&s->conn, RS_MSG_ERROR_XFER, "rsync: [receiver] "
			  "\"%s\": quota exceeded (assetd)\n", f->name);
		p->errors++;
		return 0;
	}
	return request(p, (int32_t)i, iflags, obj, d ? (int64_t)d->size : 0, 0,
		       !known ? -2 : d ? (int64_t)d->size : -1);
}

static int gen_dir(struct push *p, size_t i)
{
	struct rs_sess *s = p->s;
	struct rs_file *f = s->flist.files[i];
	char obj[STORE_NAME_MAX], pbuf[RS_MAX_PATH];
	const char *parent = parent_of(f->name, pbuf, sizeof pbuf);
	int exists = 1, rc;
	int seen_absent = 0;    /* the parent's listing lacked it */
	struct dstate *ds = NULL;

	if (object_name(p, f->name, obj, sizeof obj) < 0 ||
	    (*obj && !store_name_valid(obj))) {
		rs_printf(&s->conn, RS_MSG_ERROR_XFER, "rsync: [receiver] "
			  "invalid name \"%s\" for this server (assetd)\n",
			  f->name);
		p->errors++;
		return 0;
	}
	if (strcmp(f->name, ".") == 0) {
		exists = !p->dest_is_new;
	} else if (p->curdir_valid && strcmp(parent, p->curdir) == 0) {
		struct rs_dent *d = find_dent(p, base_of(f->name));
		if (d && !d->is_dir) {
			rs_printf(&s->conn, RS_MSG_ERROR_XFER, "rsync: [receiver] "
				  "cannot replace file \"%s\" with a directory "
				  "(assetd)\n", f->name);
			p->errors++;
			return 0;
		}
		exists = d != NULL;
		seen_absent = !exists;
	} else if ((ds = find_dstate(p, f->name)) && ds->state != DS_UNKNOWN) {
		/* its parent was listed earlier, before other directories */
		if (ds->state == DS_FILE) {
			rs_printf(&s->conn, RS_MSG_ERROR_XFER, "rsync: [receiver] "
				  "cannot replace file \"%s\" with a directory "
				  "(assetd)\n", f->name);
			p->errors++;
			return 0;
		}
		exists = ds->state == DS_DIR;
		seen_absent = !exists;
	} else {
		struct store_stat st;
		exists = store_stat(s->target.store, obj, &st) == 0;
	}
	if (!exists) {
		/* (The root of a new destination was made by prepare_dest.) */
		if (!s->opts.dry_run &&
		    !(strcmp(f->name, ".") == 0 && p->dest_is_new)) {
			/* Seen absent under a parent that exists: just make
			 * it (S3: one PUT, no probes). */
			rc = seen_absent ? store_mkdir_new(s->target.store, obj)
					 : store_mkdir(s->target.store, obj);
			if (rc != STORE_EEXIST)
				rs_event(s, "mkdir", obj, rc, 0);
			if (rc < 0 && rc != STORE_EEXIST) {
				rs_printf(&s->conn, RS_MSG_ERROR_XFER,
					  "rsync: [receiver] mkdir \"%s\" failed: "
					  "%s (assetd)\n", f->name,
					  store_strerror(rc));
				p->errors++;
				return 0;
			}
		}
		if (strcmp(f->name, ".") != 0) {
			rc = itemize(p, (int32_t)i,
				     RS_ITEM_LOCAL_CHANGE | RS_ITEM_IS_NEW);
			if (rc)
				return rc;
		}
	}
	/* The directory's existing entries: for the quick check of the files
	 * that follow it in the list, and for --delete. */
	if (!exists && !s->opts.dry_run) {
		free_dents(p);
		snprintf(p->curdir, sizeof p->curdir, "%s", f->name);
		p->curdir_valid = 1;
		note_listing(p, f->name);
		return 0;
	}
	rc = load_dir(p, i, f->name, obj);
	if (rc < 0) {
		rs_printf(&s->conn, RS_MSG_ERROR_XFER, "rsync: [receiver] "
			  "opendir \"%s\" failed: %s (assetd)\n", f->name,
			  store_strerror(rc));
		p->errors++;
		return 0;
	}
	if (s->opts.delete_mode && !f->no_content)
		delete_in_dir(p, f->name, obj);
	return 0;
}

static int drain(struct push *p)
{
	while (p->npend > 0) {
		int rc = recv_one(p);
		if (rc)
			return rc;
	}
	/* a phase ends with every file of it in the store */
	collect_commits(p, 1);
	return 0;
}

/* Read the sender's NDX_DONE that ends a phase. */
static int expect_done(struct push *p)
{
	struct rs_conn *c = &p->s->conn;
	int32_t ndx = rs_read_ndx(c);
	if (c->err)
		return c->err;
	if (ndx != RS_NDX_DONE) {
		rs_printf(c, RS_MSG_ERROR, "rsync: [receiver] expected the end "
			  "of a phase, got index %d (assetd)\n", (int)ndx);
		return RSYNC_EPROTOCOL;
	}
	return 0;
}

static int prepare_dest(struct push *p)
{
	struct rs_sess *s = p->s;
	struct store_stat st;
	const char *prefix = s->target.prefix;
	const char *arg = s->opts.args[0];
	size_t alen = strlen(arg);
	int rc;

	if (!*prefix)
		return 0;
	rc = store_stat(s->target.store, prefix, &st);
	if (rc == 0 && st.is_dir)
		return 0;
	if (rc == 0 || rc == STORE_ENOENT) {
		/* One file pushed to a name that is not a directory: the
		 * file is written under that name (rsync's rule). */
		if (s->flist.used == 1 && s->flist.files[0]->type == RS_FT_REG &&
		    arg[alen - 1] != '/') {
			p->local_name = 1;
			return 0;
		}
		if (rc == 0) {
			rs_printf(&s->conn, RS_MSG_ERROR, "rsync: [receiver] "
				  "destination \"%s\" is a file, not a "
				  "directory (assetd)\n", arg);
			return RSYNC_EFILESELECT;
		}
		p->dest_is_new = 1;
		if (s->opts.dry_run)
			return 0;
		rc = store_mkdir(s->target.store, prefix);
		if (rc != STORE_EEXIST)
			rs_event(s, "mkdir", prefix, rc, 0);
		if (rc == 0 || rc == STORE_EEXIST)
			return 0;
		rs_printf(&s->conn, RS_MSG_ERROR, "rsync: [receiver] mkdir "
			  "\"%s\" failed: %s (assetd)\n", arg,
			  store_strerror(rc));
		return RSYNC_EFILEIO;
	}
	/* the destination could not even be looked at (storage down) */
	rs_printf(&s->conn, RS_MSG_ERROR, "rsync: [receiver] stat \"%s\" "
		  "failed: %s (assetd)\n", arg, store_strerror(rc));
	return RSYNC_EFILEIO;
}

int rs_run_receiver(struct rs_sess *s)
{
	struct rs_conn *c = &s->conn;
	struct push *p;
	size_t i;
	int rc;

	rc = rs_flist_recv(s);
	if (rc)
		return rc;
	p = calloc(1, sizeof *p);
	if (!p)
		return RSYNC_EMALLOC;
	p->s = s;
	p->deletes_left = s->opts.max_delete >= 0 ? s->opts.max_delete : -1;
	p->wbuf = malloc(WBUF_SIZE);
	p->names = malloc((s->flist.used + 1) * sizeof *p->names);
	if (s->compress == RS_CPRES_ZLIB)
		p->seebuf = malloc(RS_MAX_BLOCK_SIZE);
	if (!p->wbuf || !p->names ||
	    (s->compress == RS_CPRES_ZLIB && !p->seebuf)) {
		rc = RSYNC_EMALLOC;
		goto out;
	}
	for (i = 0; i < s->flist.used; i++)
		p->names[i] = s->flist.files[i]->name;
	p->nnames = s->flist.used;
	if (p->nnames > 1)
		qsort(p->names, p->nnames, sizeof *p->names, cmp_str);
	for (i = 0; i < s->flist.used; i++) {
		struct rs_file *f = s->flist.files[i];
		if (f->type == RS_FT_DIR && strcmp(f->name, ".") != 0)
			p->ndirs++;
	}
	p->dirs = calloc(p->ndirs + 1, sizeof *p->dirs);
	if (!p->dirs) {
		rc = RSYNC_EMALLOC;
		goto out;
	}
	p->ndirs = 0;
	for (i = 0; i < s->flist.used; i++) {
		struct rs_file *f = s->flist.files[i];
		if (f->type == RS_FT_DIR && strcmp(f->name, ".") != 0)
			p->dirs[p->ndirs++].name = f->name;
	}
	if (p->ndirs > 1)
		qsort(p->dirs, p->ndirs, sizeof *p->dirs, cmp_dstate);
	c->on_index_msg = on_index;
	c->on_index_arg = p;
	p->commits = rs_commits_start();
	p->dl = rs_dirlist_new(s->target.store, resolve_mtimes, p);
	if (!p->dl) {
		rc = RSYNC_EMALLOC;
		goto out;
	}

	rc = prepare_dest(p);
	if (rc)
		goto out;
	if (s->flist.used > 0 && s->flist.files[0]->type != RS_FT_DIR) {
		/* no "." entry: the files land in the destination itself */
		char pbuf[STORE_NAME_MAX];
		const char *dir = s->target.prefix;
		if (p->local_name) {
			const char *slash = strrchr(dir, '/');
			snprintf(pbuf, sizeof pbuf, "%.*s",
				 slash ? (int)(slash - dir) : 0, dir);
			dir = pbuf;
		}
		if (!p->dest_is_new && load_dir(p, 0, ".", dir) < 0)
			free_dents(p);
		else if (p->dest_is_new)
			p->curdir_valid = 1, snprintf(p->curdir, sizeof p->curdir, ".");
		look_ahead(p, 0);
	}

	/* phase 0: everything */
	for (i = 0; i < s->flist.used && !c->err; i++) {
		struct rs_file *f = s->flist.files[i];
		if (f->type == RS_FT_DIR) {
			rc = gen_dir(p, i);
			look_ahead(p, i);
		} else if (f->type == RS_FT_REG)
			rc = gen_file(p, i);
		else {
			rs_printf(c, RS_MSG_INFO, "skipping non-regular file "
				  "\"%s\"\n", f->name);
			rc = 0;
		}
		if (rc)
			goto out;
	}
	rs_write_ndx(c, RS_NDX_DONE);
	rc = drain(p);
	if (!rc)
		rc = expect_done(p);
	if (rc)
		goto out;

	/* phase 1: files whose checksum failed, with full-length sums */
	for (i = 0; i < s->flist.used && p->redo_count > 0 && !c->err; i++) {
		struct rs_file *f = s->flist.files[i];
		char obj[STORE_NAME_MAX];
		struct store_stat st;
		if (!f->sent || f->done || f->type != RS_FT_REG)
			continue;
		if (object_name(p, f->name, obj, sizeof obj) < 0)
			continue;
		int src = store_stat(s->target.store, obj, &st);
		if (src < 0 || st.is_dir)
			st.size = 0;
		rc = request(p, (int32_t)i, RS_ITEM_TRANSFER, obj,
			     (int64_t)st.size, 1,
			     src == 0 && !st.is_dir ? (int64_t)st.size
			     : src == STORE_ENOENT  ? -1 : -2);
		if (rc)
			goto out;
	}
	rs_write_ndx(c, RS_NDX_DONE);
	rc = drain(p);
	if (!rc)
		rc = expect_done(p);
	if (rc)
		goto out;

	/* phase 2 (nothing to do) and, from 31, the deletion figures */
	rs_write_ndx(c, RS_NDX_DONE);
	if (c->protocol >= 31) {
		if (s->opts.delete_mode) {
			rs_write_ndx(c, RS_NDX_DEL_STATS);
			rs_write_varint(c, (int32_t)p->del_files);
			rs_write_varint(c, (int32_t)p->del_dirs);
			rs_write_varint(c, 0);
			rs_write_varint(c, 0);
			rs_write_varint(c, 0);
		}
		rs_write_ndx(c, RS_NDX_DONE);
	}
	rc = expect_done(p);
	if (rc)
		goto out;
	/* goodbye */
	rs_write_ndx(c, RS_NDX_DONE);
	rs_flush(c);
	if (c->protocol >= 31) {
		rc = expect_done(p);
		if (rc)
			goto out;
	}
	if (s->stats)
		s->stats->files_deleted = p->del_files + p->del_dirs;
	collect_commits(p, 1);
	rc = p->errors ? RSYNC_EPARTIAL : 0;
out:
	c->on_index_msg = NULL;
	if (p) {
		/* whatever was verified and handed over gets committed,
		 * and reported */
		if (p->commits)
			rs_commits_collect(p->commits, 1, commit_done, p);
		rs_commits_stop(p->commits);
		rs_dirlist_free(p->dl);
		rs_listing_free(&p->cur);
		free(p->names);
		free(p->dirs);
		free(p->wbuf);
		free(p->seebuf);
		free(p);
	}
	return rc ? rc : c->err;
}
