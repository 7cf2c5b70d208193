/*
 * sender.c - serving a pull: the file list from the store, then deltas.
 *
 * The file list is built from the store's listing, one directory level at
 * a time (so empty directories and excluded subtrees are handled without
 * listing what is pruned), filtered by the client's rules, sorted the way
 * rsync sorts, and sent. The directories are listed in the order they
 * were found, the next ones ahead in parallel (dirlist.c, as a push's
 * generator does), so on S3 a tree of many folders does not wait for one
 * round trip per folder in turn. Memory is the list itself: names, sizes,
 * mtimes. Sizes and the client's mtimes come from the listing; where the
 * backend's listing does not carry the client's mtime (S3), mtimes.c
 * supplies it.
 *
 * Then the client's generator asks for files by index, each request
 * carrying the block sums of the client's old copy; we answer each with the
 * delta (delta.c) read straight from the store with one streaming read.
 * Requests arrive in three phases separated by NDX_DONE (normal, redo of
 * files whose checksum failed, end), each acknowledged by an NDX_DONE of
 * ours; then our statistics, and the goodbye exchange.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "rsync_int.h"

#define MODE_FILE (S_IFREG | 0644)
#define MODE_DIR (S_IFDIR | 0755)

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A directory still to be listed: its object name and list name. */
struct pending_dir {
	char *obj;              /* object-name prefix ("" = store root) */
	char *name;             /* name in the file list ("." or "a/b") */
};

/* An entry whose client mtime is still to be looked up (S3). */
struct need_mtime {
	size_t file;            /* index in the file list */
	char *obj;
	uint64_t size;
	char etag[STORE_ETAG_MAX];
};

struct walk {
	struct rs_sess *s;
	struct need_mtime *need;
	size_t nneed, capneed;
	/* directories found, in the order they are listed: those before
	 * NEXT are done, those from AHEAD on not yet asked for */
	struct pending_dir *stack;
	size_t used, cap, next, ahead;
	struct rs_dirlist *dl;
	struct rs_listing cur;  /* the directory being listed */
	const char *obj_dir;    /* the directory being listed */
	const char *list_dir;   /* its name in the list */
	int err;
};

static int push_dir(struct walk *w, const char *obj, const char *name)
{
	if (rs_grow(&w->stack, &w->cap, w->used, sizeof *w->stack, 64) < 0)
		return -1;
	w->stack[w->used].obj = strdup(obj);
	w->stack[w->used].name = strdup(name);
	if (!w->stack[w->used].obj || !w->stack[w->used].name) {
		free(w->stack[w->used].obj);
		free(w->stack[w->used].name);
		return -1;
	}
	w->used++;
	return 0;
}

/* Remember that file FILE needs its client mtime (looked up per
 * directory, in parallel, once its listing is done). */
static int defer_mtime(struct walk *w, size_t file, const char *obj,
		       const struct rs_dent *d)
{
	struct need_mtime *n;

	if (rs_grow(&w->need, &w->capneed, w->nneed, sizeof *w->need, 64) < 0)
		return -1;
	n = &w->need[w->nneed];
	n->file = file;
	n->size = d->size;
	snprintf(n->etag, sizeof n->etag, "%s", d->etag);
	n->obj = strdup(obj);
	if (!n->obj)
		return -1;
	w->nneed++;
	return 0;
}

static void resolve_deferred(struct walk *w)
{
	struct rs_mtime_req *reqs;
	size_t i;

	if (w->nneed == 0)
		return;
	reqs = calloc(w->nneed, sizeof *reqs);
	if (reqs) {
		for (i = 0; i < w->nneed; i++) {
			reqs[i].name = w->need[i].obj;
			reqs[i].size = w->need[i].size;
			reqs[i].etag = w->need[i].etag;
		}
		rs_mtime_lookup_many(w->s->target.store, reqs, w->nneed);
		for (i = 0; i < w->nneed; i++)
			if (reqs[i].rc == 0)
				w->s->flist.files[w->need[i].file]->mtime =
					reqs[i].mtime;
		free(reqs);
	}
	for (i = 0; i < w->nneed; i++)
		free(w->need[i].obj);
	w->nneed = 0;
}

/* Add entry D of the directory being listed to the file list (and a
 * directory to the ones to list). 0, or -1 out of memory. */
static int add_entry(struct walk *w, const struct rs_dent *d)
{
	struct rs_sess *s = w->s;
	char name[RS_MAX_PATH];
	char obj[STORE_NAME_MAX];

	if (!d->name[0] || (size_t)snprintf(obj, sizeof obj, "%s%s",
					    w->obj_dir, d->name) >= sizeof obj)
		return 0;
	if (strcmp(w->list_dir, ".") == 0)
		snprintf(name, sizeof name, "%s", d->name);
	else if ((size_t)snprintf(name, sizeof name, "%s/%s", w->list_dir,
				  d->name) >= sizeof name)
		return 0;
	if (rs_filter_excluded(&s->filters, name, d->is_dir, 0))
		return 0;
	if (d->is_dir) {
		if (rs_flist_add(&s->flist, name, RS_FT_DIR, 0, d->mtime,
				 MODE_DIR) < 0)
			return -1;
		if (s->opts.recurse && push_dir(w, obj, name) < 0)
			return -1;
		return 0;
	}
	if (s->opts.max_size >= 0 && (int64_t)d->size > s->opts.max_size)
		return 0;
	if (s->opts.min_size >= 0 && (int64_t)d->size < s->opts.min_size)
		return 0;
	if (rs_flist_add(&s->flist, name, RS_FT_REG, (int64_t)d->size,
			 d->mtime, MODE_FILE) < 0)
		return -1;
	if (!d->mtime_is_client &&
	    defer_mtime(w, s->flist.used - 1, obj, d) < 0)
		return -1;
	return 0;
}

/* The object prefix of directory OBJ: "OBJ/", or "" for the root. */
static void dir_prefix(const char *obj, char *prefix, size_t size)
{
	snprintf(prefix, size, "%s%s", obj, *obj ? "/" : "");
}

/* Ask for the listings of the directories found and not yet listed, as
 * far as the window goes (their index in w->stack is their id). */
static void look_ahead(struct walk *w)
{
	char prefix[STORE_NAME_MAX + 1];

	if (w->ahead < w->next)
		w->ahead = w->next;
	for (; w->ahead < w->used; w->ahead++) {
		dir_prefix(w->stack[w->ahead].obj, prefix, sizeof prefix);
		if (rs_dirlist_ahead(w->dl, w->ahead, prefix, NULL) < 0)
			return;
	}
}

/* List directory ID of w->stack. */
static int list_dir(struct walk *w, size_t id)
{
	char prefix[STORE_NAME_MAX + 1];
	size_t i;
	int rc;

	dir_prefix(w->stack[id].obj, prefix, sizeof prefix);
	w->obj_dir = prefix;
	w->list_dir = w->stack[id].name;
	rc = rs_dirlist_get(w->dl, id, prefix, NULL, &w->cur);
	for (i = 0; rc == 0 && i < w->cur.n; i++)
		if (add_entry(w, &w->cur.v[i]) < 0)
			rc = STORE_ENOMEM;
	resolve_deferred(w);
	look_ahead(w);
	return rc < 0 ? rc : 0;
}

struct vctx {
	struct rs_sess *s;
	const char *top;        /* "." or the directory's own name */
	int err;
};

static int vlist_cb(void *arg, const struct rsync_ventry *e)
{
	struct vctx *v = arg;
	struct rs_sess *s = v->s;
	struct rs_file *f;
	char name[RS_MAX_PATH];

	if (!e->name || !*e->name || strchr(e->name, '/') || !e->store ||
	    !e->object)
		return 0;
	if (strcmp(v->top, ".") == 0)
		snprintf(name, sizeof name, "%s", e->name);
	else if ((size_t)snprintf(name, sizeof name, "%s/%s", v->top,
				  e->name) >= sizeof name)
		return 0;
	if (!rs_name_safe(name) || rs_filter_excluded(&s->filters, name, 0, 0))
		return 0;
	if (rs_flist_add(&s->flist, name, RS_FT_REG, (int64_t)e->size,
			 e->mtime, MODE_FILE) < 0) {
		v->err = RSYNC_EMALLOC;
		return 1;
	}
	f = s->flist.files[s->flist.used - 1];
	f->st = e->store;
	f->obj = strdup(e->object);
	if (!f->obj) {
		v->err = RSYNC_EMALLOC;
		return 1;
	}
	return 0;
}

/* The list of a virtual directory (target.list). */
static int build_virtual_list(struct rs_sess *s, int contents_only,
			      const char *base)
{
	struct vctx v;
	char top[RS_MAX_PATH];

	if (!s->opts.recurse && !s->opts.xfer_dirs) {
		rs_printf(&s->conn, RS_MSG_INFO, "skipping directory %s\n",
			  contents_only ? "." : base);
		return 0;
	}
	snprintf(top, sizeof top, "%s", contents_only ? "." : base);
	if (rs_flist_add(&s->flist, top, RS_FT_DIR, 0, 0, MODE_DIR) < 0)
		return RSYNC_EMALLOC;
	s->flist.files[s->flist.used - 1]->top_dir = 1;
	v.s = s;
	v.top = top;
	v.err = 0;
	if (s->target.list(s->target.list_arg, vlist_cb, &v) < 0 && !v.err) {
		rs_printf(&s->conn, RS_MSG_ERROR, "rsync: [sender] opendir "
			  "\"%s\" failed (assetd)\n", s->opts.args[0]);
		s->conn.io_error |= RS_IOERR_GENERAL;
	}
	return v.err;
}

/* Build the list for the one source path. Returns 0 or an rsync code. */
static int build_list(struct rs_sess *s)
{
	const char *arg = s->opts.args[0];
	const char *obj = s->target.prefix;
	struct store_stat st;
	struct walk w;
	size_t alen = strlen(arg);
	int contents_only, rc;
	char top[RS_MAX_PATH];
	char argbase[RS_MAX_PATH];
	const char *base;

	memset(&st, 0, sizeof st);
	if (s->target.list) {
		const char *end;
		char nb[RS_MAX_PATH];
		size_t n;
		contents_only = alen == 0 || arg[alen - 1] == '/' ||
				strcmp(arg, ".") == 0 ||
				(alen >= 2 && strcmp(arg + alen - 2, "/.") == 0);
		/* the directory's own name: the last word of the path */
		snprintf(nb, sizeof nb, "%s", arg);
		n = strlen(nb);
		while (n > 0 && (nb[n - 1] == '/' || nb[n - 1] == '.'))
			nb[--n] = '\0';
		end = strrchr(nb, '/');
		base = end ? end + 1 : nb;
		if (!*base)
			base = ".";
		return build_virtual_list(s, contents_only, base);
	}
	if (*obj == '\0') {
		st.is_dir = 1;
	} else {
		rc = store_stat(s->target.store, obj, &st);
		if (rc == STORE_ENOENT) {
			rs_printf(&s->conn, RS_MSG_ERROR,
				  "rsync: [sender] link_stat \"%s\" failed: No "
				  "such file or directory (2)\n", arg);
			return RSYNC_EPARTIAL;
		}
		if (rc < 0) {
			rs_printf(&s->conn, RS_MSG_ERROR,
				  "rsync: [sender] cannot read \"%s\": %s "
				  "(assetd)\n", arg, store_strerror(rc));
			return RSYNC_EFILEIO;
		}
	}
	/* "dir/", "dir/." and "." name the contents; "dir" the dir itself. */
	contents_only = alen == 0 || arg[alen - 1] == '/' ||
			strcmp(arg, ".") == 0 ||
			(alen >= 2 && strcmp(arg + alen - 2, "/.") == 0);
	/* Entries are named after what the client asked for (its last path
	 * word), which need not be the object's name (an alias): the client
	 * refuses names it did not request. */
	{
		char nb[RS_MAX_PATH];
		size_t n;
		const char *end;
		snprintf(nb, sizeof nb, "%s", arg);
		n = strlen(nb);
		while (n > 0 && nb[n - 1] == '/')
			nb[--n] = '\0';
		while (n >= 2 && strcmp(nb + n - 2, "/.") == 0) {
			nb[n -= 2] = '\0';
			while (n > 0 && nb[n - 1] == '/')
				nb[--n] = '\0';
		}
		end = strrchr(nb, '/');
		snprintf(argbase, sizeof argbase, "%s", end ? end + 1 : nb);
		if (!argbase[0] || strcmp(argbase, "..") == 0)
			snprintf(argbase, sizeof argbase, ".");
		base = argbase;
	}

	if (!st.is_dir) {
		int64_t m = st.mtime;
		snprintf(top, sizeof top, "%s", base);
		if (rs_filter_excluded(&s->filters, top, 0, 0))
			return 0;
		return rs_flist_add(&s->flist, top, RS_FT_REG, (int64_t)st.size,
				    m, MODE_FILE) < 0 ? RSYNC_EMALLOC : 0;
	}
	if (!s->opts.recurse && !s->opts.xfer_dirs) {
		rs_printf(&s->conn, RS_MSG_INFO, "skipping directory %s\n",
			  contents_only ? "." : base);
		return 0;
	}
	snprintf(top, sizeof top, "%s", contents_only ? "." : base);
	if (rs_flist_add(&s->flist, top, RS_FT_DIR, 0, st.mtime, MODE_DIR) < 0)
		return RSYNC_EMALLOC;
	s->flist.files[s->flist.used - 1]->top_dir = 1;

	memset(&w, 0, sizeof w);
	w.s = s;
	w.dl = rs_dirlist_new(s->target.store, NULL, NULL);
	if (!w.dl || push_dir(&w, obj, top) < 0) {
		rs_dirlist_free(w.dl);
		return RSYNC_EMALLOC;
	}
	rc = 0;
	for (; w.next < w.used && rc == 0; w.next++) {
		rc = list_dir(&w, w.next);
		if (rc < 0) {
			rs_printf(&s->conn, RS_MSG_ERROR,
				  "rsync: [sender] opendir \"%s\" failed: %s "
				  "(assetd)\n", w.stack[w.next].name,
				  store_strerror(rc));
			s->conn.io_error |= RS_IOERR_GENERAL;
			rc = rc == STORE_ENOMEM ? RSYNC_EMALLOC : 0;
		}
		free(w.stack[w.next].obj);
		free(w.stack[w.next].name);
		w.stack[w.next].obj = w.stack[w.next].name = NULL;
	}
	rs_dirlist_free(w.dl);
	rs_listing_free(&w.cur);
	while (w.used > 0) {
		w.used--;
		free(w.stack[w.used].obj);
		free(w.stack[w.used].name);
	}
	free(w.stack);
	free(w.need);
	return rc;
}

/* Object name of a file-list entry. */
static int object_name(struct rs_sess *s, const struct rs_file *f, char *out,
		       size_t cap)
{
	const char *obj = s->target.prefix;
	const char *name = f->name;
	int n;

	if (f->obj) {
		n = snprintf(out, cap, "%s", f->obj);
		return n < 0 || (size_t)n >= cap ? -1 : 0;
	}
	if (s->flist.used > 0 && s->flist.files[0]->type != RS_FT_DIR) {
		/* a single-object list: the entry is the object itself */
		n = snprintf(out, cap, "%s", obj);
		return n < 0 || (size_t)n >= cap ? -1 : 0;
	}
	/* The top entry is "." or the directory's base name. */
	if (strcmp(s->flist.files[0]->name, ".") != 0) {
		const char *slash = strchr(name, '/');
		name = slash ? slash + 1 : "";
	} else if (strcmp(name, ".") == 0) {
		name = "";
	}
	if (!*obj)
		n = snprintf(out, cap, "%s", name);
	else if (!*name)
		n = snprintf(out, cap, "%s", obj);
	else
		n = snprintf(out, cap, "%s/%s", obj, name);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Read the block sums of one request. 0 or an rsync code (SUMS->blocks
 * may then hold what arrived: rs_sums_free it). The array grows as the
 * sums arrive, so a header claiming millions of blocks costs memory only
 * once the client has actually sent them. */
static int read_sums(struct rs_sess *s, struct rs_sums *sums)
{
	struct rs_conn *c = &s->conn;
	size_t cap = 0;
	int32_t i;

	memset(sums, 0, sizeof *sums);
	sums->count = rs_read_int(c);
	sums->blength = rs_read_int(c);
	sums->s2length = rs_read_int(c);
	sums->remainder = rs_read_int(c);
	if (c->err)
		return c->err;
	if (sums->count < 0 || sums->count > RS_MAX_SUM_COUNT ||
	    sums->blength < 0 || sums->blength > RS_MAX_BLOCK_SIZE ||
	    (sums->count > 0 && sums->blength == 0) ||
	    sums->s2length < 0 || sums->s2length > RS_SUM_LENGTH ||
	    sums->remainder < 0 || sums->remainder > sums->blength) {
		rs_printf(c, RS_MSG_ERROR,
			  "rsync: [sender] invalid checksum header (assetd)\n");
		return RSYNC_EPROTOCOL;
	}
	if (sums->count == 0)
		return 0;
	for (i = 0; i < sums->count && !c->err; i++) {
		if ((size_t)i == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			struct rs_blocksum *nb;
			if (ncap > (size_t)sums->count)
				ncap = (size_t)sums->count;
			nb = realloc(sums->blocks, ncap * sizeof *nb);
			if (!nb)
				return RSYNC_EMALLOC;
			memset(nb + cap, 0, (ncap - cap) * sizeof *nb);
			sums->blocks = nb;
			cap = ncap;
		}
		sums->blocks[i].sum1 = (uint32_t)rs_read_int(c);
		rs_read(c, sums->blocks[i].sum2, (size_t)sums->s2length);
	}
	return c->err;
}

static void write_sum_head(struct rs_conn *c, const struct rs_sums *sums)
{
	rs_write_int(c, sums->count);
	rs_write_int(c, sums->blength);
	rs_write_int(c, sums->s2length);
	rs_write_int(c, sums->remainder);
}

/* An index with its item flags and optional basis type / name. */
struct request {
	int32_t ndx;
	unsigned iflags;
	unsigned basis;
	char xname[RS_MAX_PATH];
	int xlen;
	int32_t del_stats[5];   /* NDX_DEL_STATS: the figures to echo */
};

static void echo_request(struct rs_conn *c, const struct request *q)
{
	rs_write_ndx(c, q->ndx);
	rs_write_short(c, q->iflags);
	if (q->iflags & RS_ITEM_BASIS_TYPE_FOLLOWS)
		rs_write_byte(c, q->basis);
	if (q->iflags & RS_ITEM_XNAME_FOLLOWS)
		rs_write_vstring(c, q->xname, (size_t)q->xlen);
}

/* Read the next request: its index (NDX_DONE also on an error), or
 * NDX_DEL_STATS with the figures in Q (echoed back in turn, as the
 * client's receiver expects). */
static int32_t read_request(struct rs_sess *s, struct request *q)
{
	struct rs_conn *c = &s->conn;
	int32_t ndx = rs_read_ndx(c);

	if (c->err)
		return RS_NDX_DONE;
	q->ndx = ndx;
	if (ndx == RS_NDX_DEL_STATS) {
		int i;
		for (i = 0; i < 5; i++)
			q->del_stats[i] = rs_read_varint(c);
		return c->err ? RS_NDX_DONE : ndx;
	}
	if (ndx == RS_NDX_DONE)
		return ndx;
	if (ndx < 0 || (size_t)ndx >= s->flist.used) {
		rs_printf(c, RS_MSG_ERROR,
			  "rsync: [sender] invalid file index %d "
			  "(assetd)\n", (int)ndx);
		rs_fail(c, RSYNC_EPROTOCOL);
		return RS_NDX_DONE;
	}
	q->iflags = rs_read_short(c);
	q->basis = 0;
	q->xlen = 0;
	q->xname[0] = '\0';
	if (q->iflags & RS_ITEM_BASIS_TYPE_FOLLOWS)
		q->basis = rs_read_byte(c);
	if (q->iflags & RS_ITEM_XNAME_FOLLOWS)
		q->xlen = rs_read_vstring(c, q->xname, sizeof q->xname);
	return c->err ? RS_NDX_DONE : ndx;
}

static void echo_del_stats(struct rs_conn *c, const struct request *q)
{
	int i;
	rs_write_ndx(c, RS_NDX_DEL_STATS);
	for (i = 0; i < 5; i++)
		rs_write_varint(c, q->del_stats[i]);
}

/* Send file Q->ndx against SUMS: from the prefetched bytes when there
 * are some, else read from the store. */
static int send_one(struct rs_sess *s, struct request *q,
		    struct rs_sums *sums, struct rs_prefetch *pf)
{
	struct rs_conn *c = &s->conn;
	struct rs_file *f = s->flist.files[q->ndx];
	struct store_reader *r = NULL;
	unsigned char *mem = NULL;
	uint64_t msize = 0;
	char obj[STORE_NAME_MAX];
	int rc;

	if (f->type != RS_FT_REG) {
		rs_printf(c, RS_MSG_ERROR, "rsync: [sender] %s is not a "
			  "regular file (assetd)\n", f->name);
		return RSYNC_EPROTOCOL;
	}
	rc = rs_prefetch_take(pf, q->ndx, &mem, &msize);
	if (rc == 1) {
		rc = object_name(s, f, obj, sizeof obj);
		if (rc == 0)
			rc = store_reader_open(f->st ? f->st : s->target.store,
					       obj, 0, UINT64_MAX, &r, NULL);
	}
	if (rc < 0) {
		rs_printf(c, rc == STORE_ENOENT ? RS_MSG_WARNING : RS_MSG_ERROR_XFER,
			  rc == STORE_ENOENT
				  ? "file has vanished: \"%s\" (assetd)\n"
				  : "rsync: [sender] send_files failed to open "
				    "\"%s\" (assetd)\n",
			  f->name);
		c->io_error |= rc == STORE_ENOENT ? RS_IOERR_VANISHED
						  : RS_IOERR_GENERAL;
		rs_msg_int(c, RS_MSG_NO_SEND, q->ndx);
		return 0;
	}
	echo_request(c, q);
	write_sum_head(c, sums);
	rc = rs_send_delta(s, r, mem, f->size, sums);
	if (r)
		store_reader_close(r);
	free(mem);
	if (rc < 0) {
		rs_printf(c, RS_MSG_ERROR_XFER, "rsync: [sender] read errors "
			  "mapping \"%s\": %s (assetd)\n", f->name,
			  store_strerror(rc));
		c->io_error |= RS_IOERR_GENERAL;
	}
	if (s->stats)
		s->stats->files_transferred++;
	return 0;
}

/* The client's requests, read ahead of the files being sent. */
#define AHEAD_MAX 64
#define PREFETCH_MAX_SIZE (1u << 20) /* objects prefetched whole */

struct ahead {
	struct request q;
	struct rs_sums sums;
	int has_sums;
};

static int wants_data(const struct rs_sess *s, const struct request *q,
		      int phase)
{
	return q->ndx >= 0 && (q->iflags & RS_ITEM_TRANSFER) &&
	       !s->opts.dry_run && phase < 2;
}

/* Read one request (and its block sums) into A; hand a small S3 object
 * it asks for to the prefetcher. 0 or an rsync code. */
static int read_ahead(struct rs_sess *s, struct ahead *a, int phase,
		      struct rs_prefetch **pf)
{
	struct rs_file *f;
	char obj[STORE_NAME_MAX];
	struct store *st;
	int rc;

	a->has_sums = 0;
	read_request(s, &a->q);
	if (s->conn.err)
		return s->conn.err;
	if (!wants_data(s, &a->q, phase))
		return 0;
	rc = read_sums(s, &a->sums);
	a->has_sums = 1;
	if (rc)
		return rc;
	f = s->flist.files[a->q.ndx];
	st = f->st ? f->st : s->target.store;
	if (f->type != RS_FT_REG || f->size < 0 ||
	    (uint64_t)f->size > PREFETCH_MAX_SIZE || !store_is_s3(st) ||
	    object_name(s, f, obj, sizeof obj) < 0)
		return 0;
	if (!*pf)
		*pf = rs_prefetch_start();
	rs_prefetch_add(*pf, a->q.ndx, st, obj, (uint64_t)f->size);
	return 0;
}

int rs_run_sender(struct rs_sess *s)
{
	struct rs_conn *c = &s->conn;
	struct ahead *ring;
	struct rs_prefetch *pf = NULL;
	size_t head = 0, nq = 0;
	int done_queued = 0;
	int64_t t0 = now_ms(), t1;
	int phase = 0, rc;
	size_t i;

	rc = build_list(s);
	if (rc && rc != RSYNC_EPARTIAL)
		return rc;
	if (rc == RSYNC_EPARTIAL)
		c->io_error |= RS_IOERR_GENERAL;
	rs_flist_sort(&s->flist);
	if (s->opts.always_checksum) {
		for (i = 0; i < s->flist.used; i++) {
			char obj[STORE_NAME_MAX];
			struct rs_file *f = s->flist.files[i];
			if (f->type != RS_FT_REG)
				continue;
			if (object_name(s, f, obj, sizeof obj) < 0 ||
			    rs_object_md5(f->st ? f->st : s->target.store, obj,
					  f->sum) < 0)
				memset(f->sum, 0, sizeof f->sum);
		}
	}
	t1 = now_ms();
	s->flist_buildtime_ms = t1 - t0 > 0 ? t1 - t0 : 1;
	for (i = 0; i < s->flist.used && !c->err; i++)
		rs_flist_send_entry(s, s->flist.files[i]);
	rs_flist_send_end(s, c->io_error);
	rs_flush(c);
	s->flist_xfertime_ms = now_ms() - t1;
	if (c->err)
		return c->err;
	if (s->flist.used == 0) {
		/* rsync's sender simply ends here; the client reports it */
		return c->io_error ? RSYNC_EPARTIAL : 0;
	}

	/* Requests already on the wire are read ahead (never past a DONE:
	 * what follows it depends on what we send), so that the small
	 * objects they ask for can be fetched in parallel. */
	ring = calloc(AHEAD_MAX, sizeof *ring);
	if (!ring)
		return RSYNC_EMALLOC;
	for (;;) {
		struct ahead *a;
		while (nq < AHEAD_MAX && !done_queued && !c->err &&
		       (nq == 0 || rs_buffered(c) > 0)) {
			a = &ring[(head + nq) % AHEAD_MAX];
			nq++;
			rc = read_ahead(s, a, phase, &pf);
			if (rc) {
				rs_fail(c, rc);
				break;
			}
			if (a->q.ndx == RS_NDX_DONE)
				done_queued = 1;
		}
		if (c->err)
			break;
		a = &ring[head];
		head = (head + 1) % AHEAD_MAX;
		nq--;
		if (a->q.ndx == RS_NDX_DEL_STATS) {
			echo_del_stats(c, &a->q);
			continue;
		}
		if (a->q.ndx == RS_NDX_DONE) {
			done_queued = 0;
			if (++phase > 2)
				break;
			rs_write_ndx(c, RS_NDX_DONE);
			rs_flush(c);
			continue;
		}
		if (!(a->q.iflags & RS_ITEM_TRANSFER) || s->opts.dry_run) {
			/* -n: the client sends no block sums, wants no data */
			echo_request(c, &a->q);
			continue;
		}
		if (phase == 2) {
			rs_printf(c, RS_MSG_ERROR, "rsync: [sender] transfer "
				  "request in phase 2 (assetd)\n");
			rs_fail(c, RSYNC_EPROTOCOL);
			break;
		}
		rc = send_one(s, &a->q, &a->sums, pf);
		rs_sums_free(&a->sums);
		a->has_sums = 0;
		if (rc) {
			rs_fail(c, rc);
			break;
		}
	}
	for (i = 0; i < AHEAD_MAX; i++)
		if (ring[i].has_sums)
			rs_sums_free(&ring[i].sums);
	free(ring);
	rs_prefetch_stop(pf);
	if (c->err)
		return c->err;
	if (c->io_error)
		rs_msg_int(c, RS_MSG_IO_ERROR, c->io_error);
	rs_write_ndx(c, RS_NDX_DONE);
	/* Our statistics: read, written, total size, list times. */
	rs_flush(c);
	rs_write_varlong(c, (int64_t)c->total_read, 3);
	rs_write_varlong(c, (int64_t)c->total_written, 3);
	rs_write_varlong(c, s->total_size, 3);
	rs_write_varlong(c, s->flist_buildtime_ms, 3);
	rs_write_varlong(c, s->flist_xfertime_ms, 3);
	rs_flush(c);
	/* Goodbye: the client says DONE; from 31 we answer and it says it
	 * once more. */
	{
		struct request g;
		int32_t ndx;
		while ((ndx = read_request(s, &g)) == RS_NDX_DEL_STATS)
			echo_del_stats(c, &g);
		if (!c->err && ndx == RS_NDX_DONE && c->protocol >= 31) {
			rs_write_ndx(c, RS_NDX_DONE);
			rs_flush(c);
			while ((ndx = read_request(s, &g)) == RS_NDX_DEL_STATS)
				echo_del_stats(c, &g);
		}
		if (c->err)
			return c->err;
		if (ndx != RS_NDX_DONE) {
			rs_fail(c, RSYNC_EPROTOCOL);
			return RSYNC_EPROTOCOL;
		}
	}
	if (c->io_error & RS_IOERR_GENERAL)
		return RSYNC_EPARTIAL;
	if (c->io_error & RS_IOERR_VANISHED)
		return RSYNC_EVANISHED;
	return 0;
}
