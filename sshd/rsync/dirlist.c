/*
 * dirlist.c - the destination listings a push's generator reads, ahead of
 * it and in parallel, and none of them twice.
 *
 * The generator lists each directory of the file list once, in the list's
 * order, before it looks at the files in it. On S3 each listing is a round
 * trip (a request per 1,000 names), so a tree of 100 folders spent 100
 * round trips one after the other. Here the receiver names, as soon as it
 * knows a directory exists (its parent's listing showed it), the next
 * directories it will come to; a few threads list them in the background,
 * and rs_dirlist_get() hands each one over when the generator reaches it,
 * waiting if it is not done yet. A listing is what store_list() gives,
 * taken a little earlier: the generator changes a directory only after it
 * has taken its listing, so the two cannot differ by anything it did, and
 * an error a background listing met is returned by rs_dirlist_get() at the
 * same point the generator would have met it. Memory is bounded: at most
 * DL_AHEAD listings are in flight, and a background listing that would
 * take the entries held past DL_MAX_ENTRIES gives up (the generator then
 * lists that directory itself when it gets there); the one the generator
 * needs next never gives up, as it would hold it anyway.
 *
 * Where a one-level listing reads every name below the directory anyway
 * (store_list_reads_tree(): S3 servers whose delimiter listings are
 * rolled up client-side), the listing is taken with store_list_tree()
 * instead, the same requests, and if the subtree has at most DL_TREE_MAX
 * names it is kept: the listings of the directories below it are then cut
 * from it, with no request at all, until the generator leaves the subtree
 * (its directories come one after another in the file list). Each is cut
 * exactly as the roll-up would have built it (a name with a '/' below the
 * directory stands for the first-level directory it is in, once).
 *
 * A listing may need finishing before it is used (the receiver looks up
 * the client's mtimes of its files, a HEAD each where the cache does not
 * know them): the caller's FINISH runs on it where it is made, on a
 * worker for a listing taken ahead, so that work is parallel too.
 *
 * Test knob: ASSETD_RSYNC_LIST_BUDGET (entries) replaces DL_MAX_ENTRIES,
 * so the unit tests can make background listings give up.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsync_int.h"

#define DL_THREADS 8
#define DL_AHEAD 16             /* listings asked for and not yet taken */
#define DL_MAX_ENTRIES 200000   /* entries held by background listings */
#define DL_TREE_MAX 100000      /* largest subtree kept for its listings */

#define DL_GAVE_UP 1            /* a job's rc: over the budget, not listed */
#define DL_NOMEM 2              /* a callback's: out of memory */

/* A subtree read once: every name below ROOT, relative to it, sorted. */
struct dl_tree {
	char *root;             /* "dir/" or "" */
	struct rs_listing all;  /* names as listed (a marker "a/b/" with its
				   '/'), not basenames */
};

struct dl_job {
	struct dl_job *next;
	size_t id;              /* the caller's order (file-list index) */
	char *prefix;
	char *name;             /* the caller's name for it (FINISH's) */
	int started, done;
	int rc;                 /* 0, a store_error or DL_GAVE_UP */
	struct rs_listing list; /* the directory's own entries */
	struct dl_tree *tree;   /* its subtree, when read and kept */
};

struct rs_dirlist {
	struct store *st;
	rs_dirlist_fn finish;   /* run on each listing made, or NULL */
	void *finish_arg;
	int reads_tree;         /* store_list_reads_tree() */
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct dl_job *head, *tail; /* not yet taken, in id order */
	size_t njobs;
	size_t held;            /* entries held by jobs and the tree
				   (atomic: the listing callbacks count) */
	size_t head_id;         /* id of the job taken next (atomic) */
	size_t budget;          /* DL_MAX_ENTRIES, or the test knob */
	int stopping;
	pthread_t th[DL_THREADS];
	int nth;
	struct dl_tree *tree;   /* generator's thread only */
};

/* ---- listings ----------------------------------------------------------- */

void rs_listing_clear(struct rs_listing *l)
{
	size_t i;
	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	l->n = 0;
}

void rs_listing_free(struct rs_listing *l)
{
	rs_listing_clear(l);
	free(l->v);
	l->v = NULL;
	l->cap = 0;
}

static int cmp_dent(const void *a, const void *b)
{
	return strcmp(((const struct rs_dent *)a)->name,
		      ((const struct rs_dent *)b)->name);
}

struct rs_dent *rs_listing_find(const struct rs_listing *l, const char *base)
{
	struct rs_dent key;
	key.name = (char *)base;
	if (l->n == 0)
		return NULL;
	return bsearch(&key, l->v, l->n, sizeof *l->v, cmp_dent);
}

/* Append a copy of E named NAME (LEN bytes). 0 or -1. */
static int listing_add(struct rs_listing *l, const char *name, size_t len,
		       const struct store_entry *e)
{
	struct rs_dent *d;

	if (rs_grow(&l->v, &l->cap, l->n, sizeof *l->v, 64) < 0)
		return -1;
	d = &l->v[l->n];
	memset(d, 0, sizeof *d);
	d->name = strndup(name, len);
	if (!d->name)
		return -1;
	d->size = e->size;
	d->mtime = e->mtime;
	d->mtime_is_client = e->mtime_is_client;
	d->is_dir = e->is_dir;
	snprintf(d->etag, sizeof d->etag, "%s", e->etag ? e->etag : "");
	l->n++;
	return 0;
}

static void unhold(struct rs_dirlist *d, size_t n)
{
	__atomic_sub_fetch(&d->held, n, __ATOMIC_RELAXED);
}

struct collect {
	struct rs_dirlist *d;
	struct rs_listing *out;
	size_t plen;            /* the listed prefix' length */
	int tree;               /* keep deeper names whole (and markers' '/') */
	size_t id;              /* the job's id */
	int bounded;            /* may give up past DL_MAX_ENTRIES */
};

static int collect_cb(void *arg, const struct store_entry *e)
{
	struct collect *c = arg;
	const char *rel = e->name + c->plen;
	size_t rl;

	if (strlen(e->name) <= c->plen)
		return 0;
	rl = strlen(rel);
	if (!c->tree && rel[rl - 1] == '/')
		rl--;
	if (rl == 0)
		return 0;
	if (__atomic_add_fetch(&c->d->held, 1, __ATOMIC_RELAXED) >
		    c->d->budget && c->bounded &&
	    __atomic_load_n(&c->d->head_id, __ATOMIC_RELAXED) != c->id) {
		unhold(c->d, 1);
		return DL_GAVE_UP;
	}
	if (listing_add(c->out, rel, rl, e) < 0) {
		unhold(c->d, 1);
		return DL_NOMEM;
	}
	return 0;
}

static void tree_free(struct rs_dirlist *d, struct dl_tree *t)
{
	if (!t)
		return;
	unhold(d, t->all.n);
	rs_listing_free(&t->all);
	free(t->root);
	free(t);
}

/* The listing of directory SUB (relative to T's root: "" or "a/b/") cut
 * from T, into OUT: each name below SUB once at the first level, as the
 * roll-up reports it. 0 or -1. */
static int tree_cut(const struct dl_tree *t, const char *sub,
		    struct rs_listing *out)
{
	size_t sl = strlen(sub), lo = 0, hi = t->all.n, i;
	const char *last = NULL;        /* previous first-level name */
	size_t lastlen = 0;
	int last_dir = 0;

	while (lo < hi) { /* the first name >= SUB */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(t->all.v[mid].name, sub) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < t->all.n; i++) {
		const struct rs_dent *a = &t->all.v[i];
		const char *rest = a->name + sl;
		const char *slash;
		struct store_entry e;
		size_t len;
		int is_dir;

		if (strncmp(a->name, sub, sl) != 0)
			break; /* past the names below SUB */
		if (!*rest)
			continue; /* SUB's own marker */
		slash = strchr(rest, '/');
		len = slash ? (size_t)(slash - rest) : strlen(rest);
		is_dir = slash != NULL;
		/* Names sorted in full sort their first-level parts too, so
		 * a directory's names come together: report it once. */
		if (last && lastlen == len && last_dir == is_dir &&
		    memcmp(last, rest, len) == 0)
			continue;
		memset(&e, 0, sizeof e);
		e.is_dir = is_dir;
		e.etag = "";
		if (!is_dir) {
			e.size = a->size;
			e.mtime = a->mtime;
			e.mtime_is_client = a->mtime_is_client;
			e.etag = a->etag;
		}
		if (listing_add(out, rest, len, &e) < 0)
			return -1;
		last = rest;
		lastlen = len;
		last_dir = is_dir;
	}
	if (out->n > 1) /* by name, as a listing is */
		qsort(out->v, out->n, sizeof *out->v, cmp_dent);
	return 0;
}

/* List PREFIX into OUT, sorted by name; with D->reads_tree, the whole
 * subtree into *TREE (when it is small enough to keep). ID and BOUNDED:
 * see struct collect. 0, a store_error or DL_GAVE_UP; the entries OUT
 * and *TREE hold stay counted in D->held. */
static int list_dir(struct rs_dirlist *d, const char *prefix, size_t id,
		    int bounded, struct rs_listing *out, struct dl_tree **tree)
{
	struct collect c;
	struct dl_tree *t = NULL;
	int rc;

	*tree = NULL;
	memset(&c, 0, sizeof c);
	c.d = d;
	c.out = out;
	c.plen = strlen(prefix);
	c.id = id;
	c.bounded = bounded;
	if (d->reads_tree) {
		t = calloc(1, sizeof *t);
		if (!t || !(t->root = strdup(prefix))) {
			free(t);
			return STORE_ENOMEM;
		}
		c.out = &t->all;
		c.tree = 1;
		rc = store_list_tree(d->st, prefix, collect_cb, &c);
	} else {
		rc = store_list(d->st, prefix, '/', NULL, collect_cb, &c);
	}
	if (rc == DL_NOMEM)
		rc = STORE_ENOMEM;
	if (rc == STORE_ENOENT)
		rc = 0; /* a directory removed meanwhile has nothing in it */
	if (t) {
		if (rc == 0 && t->all.n > 1)
			qsort(t->all.v, t->all.n, sizeof *t->all.v, cmp_dent);
		if (rc == 0 && tree_cut(t, "", out) < 0)
			rc = STORE_ENOMEM;
		if (rc == 0) {
			__atomic_add_fetch(&d->held, out->n, __ATOMIC_RELAXED);
			if (t->all.n <= DL_TREE_MAX)
				*tree = t;
		}
		if (!*tree)
			tree_free(d, t);
	} else if (out->n > 1) {
		qsort(out->v, out->n, sizeof *out->v, cmp_dent);
	}
	if (rc != 0) {
		unhold(d, out->n);
		rs_listing_clear(out);
	}
	return rc;
}

/* ---- the background listings ------------------------------------------- */

static void *worker(void *arg)
{
	struct rs_dirlist *d = arg;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct dl_job *j = NULL;
		while (!d->stopping) {
			for (j = d->head; j && j->started; j = j->next)
				;
			if (j)
				break;
			pthread_cond_wait(&d->work, &d->lock);
		}
		if (d->stopping)
			break;
		j->started = 1;
		pthread_mutex_unlock(&d->lock);
		j->rc = list_dir(d, j->prefix, j->id, 1, &j->list, &j->tree);
		if (j->rc == 0 && d->finish)
			d->finish(d->finish_arg, j->name, j->prefix, &j->list);
		pthread_mutex_lock(&d->lock);
		j->done = 1;
		pthread_cond_broadcast(&d->done);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

struct rs_dirlist *rs_dirlist_new(struct store *st, rs_dirlist_fn finish,
				   void *arg)
{
	struct rs_dirlist *d = calloc(1, sizeof *d);

	if (!d)
		return NULL;
	d->st = st;
	d->finish = finish;
	d->finish_arg = arg;
	d->reads_tree = store_list_reads_tree(st);
	d->budget = DL_MAX_ENTRIES;
	if (getenv("ASSETD_RSYNC_LIST_BUDGET"))
		d->budget = strtoul(getenv("ASSETD_RSYNC_LIST_BUDGET"), NULL,
				    10);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->work, NULL);
	pthread_cond_init(&d->done, NULL);
	return d;
}

/* 1 if the tree held covers PREFIX. */
static int tree_covers(const struct rs_dirlist *d, const char *prefix)
{
	return d->tree &&
	       strncmp(prefix, d->tree->root, strlen(d->tree->root)) == 0;
}

int rs_dirlist_ahead(struct rs_dirlist *d, size_t id, const char *prefix,
		     const char *name)
{
	struct dl_job *j;

	if (!d)
		return -1;
	if (tree_covers(d, prefix))
		return 1;
	if (d->njobs >= DL_AHEAD)
		return -1;
	if (d->nth == 0) {
		/* the threads start with the first listing asked for */
		while (d->nth < DL_THREADS &&
		       pthread_create(&d->th[d->nth], NULL, worker, d) == 0)
			d->nth++;
		if (d->nth == 0)
			return -1;
	}
	j = calloc(1, sizeof *j);
	if (!j || !(j->prefix = strdup(prefix)) ||
	    !(j->name = strdup(name ? name : ""))) {
		if (j)
			free(j->prefix);
		free(j);
		return -1;
	}
	j->id = id;
	pthread_mutex_lock(&d->lock);
	if (d->tail)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
	d->njobs++;
	__atomic_store_n(&d->head_id, d->head->id, __ATOMIC_RELAXED);
	pthread_cond_signal(&d->work);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

size_t rs_dirlist_waiting(const struct rs_dirlist *d)
{
	return d ? d->njobs : 0;
}

/* Unlink the head job, waiting for it if a thread has it. Called with
 * the lock held. */
static struct dl_job *pop_head(struct rs_dirlist *d)
{
	struct dl_job *j = d->head;

	while (j->started && !j->done)
		pthread_cond_wait(&d->done, &d->lock);
	j->started = 1; /* no thread may take it now */
	d->head = j->next;
	if (!d->head)
		d->tail = NULL;
	d->njobs--;
	if (d->head)
		__atomic_store_n(&d->head_id, d->head->id, __ATOMIC_RELAXED);
	return j;
}

static void job_free(struct rs_dirlist *d, struct dl_job *j)
{
	unhold(d, j->list.n);
	rs_listing_free(&j->list);
	tree_free(d, j->tree);
	free(j->prefix);
	free(j->name);
	free(j);
}

int rs_dirlist_get(struct rs_dirlist *d, size_t id, const char *prefix,
		   const char *name, struct rs_listing *out)
{
	struct dl_job *j = NULL;
	struct dl_tree *t = NULL;
	int rc;

	rs_listing_clear(out);
	if (tree_covers(d, prefix)) {
		if (tree_cut(d->tree, prefix + strlen(d->tree->root), out) < 0)
			return STORE_ENOMEM;
		if (d->finish)
			d->finish(d->finish_arg, name, prefix, out);
		return 0;
	}
	/* Leaving the subtree: its listings are all taken. */
	tree_free(d, d->tree);
	d->tree = NULL;
	pthread_mutex_lock(&d->lock);
	/* Listings asked for and passed by (the generator skipped their
	 * directory) are dropped. */
	__atomic_store_n(&d->head_id, id, __ATOMIC_RELAXED);
	while (d->head && d->head->id <= id) {
		j = pop_head(d);
		if (j->id == id && strcmp(j->prefix, prefix) == 0)
			break;
		job_free(d, j);
		j = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	if (j && j->done && j->rc != DL_GAVE_UP) {
		rc = j->rc;
		/* the listing moves to the caller, and out of the budget */
		unhold(d, j->list.n);
		rs_listing_free(out);
		*out = j->list;
		memset(&j->list, 0, sizeof j->list);
		t = j->tree;
		j->tree = NULL;
	} else {
		rc = list_dir(d, prefix, id, 0, out, &t);
		unhold(d, out->n);
		if (rc == 0 && d->finish)
			d->finish(d->finish_arg, name, prefix, out);
	}
	if (j)
		job_free(d, j);
	d->tree = t;
	return rc;
}

void rs_dirlist_free(struct rs_dirlist *d)
{
	int i;

	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = 1;
	pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->lock);
	for (i = 0; i < d->nth; i++)
		pthread_join(d->th[i], NULL);
	while (d->head) {
		struct dl_job *j = d->head;
		d->head = j->next;
		job_free(d, j);
	}
	tree_free(d, d->tree);
	pthread_cond_destroy(&d->work);
	pthread_cond_destroy(&d->done);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
