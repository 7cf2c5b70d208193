/*
 * sync.c - snapshot sync: make one location hold what another holds.
 *
 * Three kinds of threads work on a run:
 *  - two listers, one per side, each running store_list() over the whole
 *    location and pushing copies of the entries into a bounded ring (so a
 *    million-object bucket costs a ring's worth of memory, not a million
 *    entries); S3 listings are paginated and slow, so both run at once;
 *  - the merger (the caller's thread) takes the smaller key of the two ring
 *    heads, as in a merge sort: a key only SRC has is copied, one only DST
 *    has is deleted if asked, one on both sides is compared by size (and,
 *    with --checksum, by content); it checks that each listing really is in
 *    key order, since a merge of unsorted input would copy and delete the
 *    wrong things, and stops the run if not;
 *  - `concurrency` workers that run the copies, deletes and content
 *    comparisons from a bounded job ring, deep enough (thousands of jobs)
 *    that the merge, and so the listings, keep going while copies are slow:
 *    a server then works on listing pages and copies at once;
 *    store_copy_sized() picks server-side CopyObject/UploadPartCopy when
 *    both sides are on one S3 endpoint and streams otherwise; it is given
 *    the size the listing showed, so a copy is one request (no HEAD of the
 *    source first, as `aws s3 sync` does not either); the S3 backend already
 *    retries throttling, so a job that still fails is reported, counted and
 *    left behind while the run goes on.
 * A progress thread redraws one status line on a terminal twice a second.
 * Output is quiet by default: per-object errors on stderr, one summary.
 */
#include "sync.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bkutil.h"
#include "log.h"
#include "store.h"

/* Entries buffered per listing: two S3 pages, so that a lister holds the
 * page it has while it fetches the next, instead of waiting for the merge
 * to drain the previous one before it may ask (the listing is a chain of
 * pages, and each page asked late delays every page after it). */
#define LIST_RING 2048
/* Jobs queued ahead of the workers. When copies are what is slow, a short
 * queue fills, the merge stops, the listers stop, and the server is left
 * with copies only; then with listing pages only once the copies drain. A
 * queue some listing pages deep (a page of 1,000 keys with 10 % changed is
 * 100 jobs) keeps both going at once, at about 200 bytes a job. */
#define JOB_QUEUE_MIN 4096
#define JOB_QUEUE_PER_WORKER 16
#define DEFAULT_CONCURRENCY 32
#define MAX_CONCURRENCY 256

/* ---- bounded rings ------------------------------------------------------ */

struct entry {
	char *name;
	uint64_t size;
	char etag[STORE_ETAG_MAX];
};

struct list_ring {
	struct store *st;
	struct sync_run_state *run;
	pthread_mutex_t mu;
	pthread_cond_t can_get, can_put;
	struct entry ring[LIST_RING];
	int head, count;
	int done;               /* the lister has finished */
	int rc;                 /* store_list's result */
	int abandon;            /* the merger wants no more */
	pthread_t tid;
};

enum job_kind { JOB_COPY, JOB_DELETE, JOB_COMPARE };

struct job {
	enum job_kind kind;
	char *name;
	uint64_t size;
	char src_etag[STORE_ETAG_MAX];
	char dst_etag[STORE_ETAG_MAX];
};

struct sync_run_state {
	struct store *src, *dst;
	const struct sync_opts *o;
	FILE *out, *err;
	pthread_mutex_t mu;     /* stats, output, the job ring */
	pthread_cond_t can_get, can_put, tick;
	struct job *jobs;
	int jcap, jhead, jcount;
	int closed;             /* no more jobs will come */
	int finished;           /* the progress thread may stop */
	struct sync_stats st;
	struct timespec t0;
};

static int cancelled(const struct sync_run_state *r)
{
	return store_canceled(r->o->cancel);
}

static int list_cb(void *arg, const struct store_entry *e)
{
	struct list_ring *q = arg;
	if (e->is_dir)
		return 0;
	char *name = strdup(e->name);
	if (!name)
		return STORE_ENOMEM;
	pthread_mutex_lock(&q->mu);
	while (q->count == LIST_RING && !q->abandon && !cancelled(q->run)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&q->can_put, &q->mu, &ts);
	}
	if (q->abandon || cancelled(q->run)) {
		pthread_mutex_unlock(&q->mu);
		free(name);
		return STORE_ECANCELED;
	}
	struct entry *slot = &q->ring[(q->head + q->count) % LIST_RING];
	slot->name = name;
	slot->size = e->size;
	snprintf(slot->etag, sizeof slot->etag, "%s", e->etag ? e->etag : "");
	q->count++;
	pthread_cond_signal(&q->can_get);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

static void *lister_main(void *arg)
{
	struct list_ring *q = arg;
	int rc = store_list(q->st, "", 0, NULL, list_cb, q);
	pthread_mutex_lock(&q->mu);
	q->done = 1;
	q->rc = rc;
	pthread_cond_signal(&q->can_get);
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* The head entry, waiting for one; NULL at the end of the listing (then
 * q->rc tells whether it ended well). */
static struct entry *ring_peek(struct list_ring *q)
{
	pthread_mutex_lock(&q->mu);
	while (q->count == 0 && !q->done)
		pthread_cond_wait(&q->can_get, &q->mu);
	struct entry *e = q->count ? &q->ring[q->head] : NULL;
	pthread_mutex_unlock(&q->mu);
	return e;
}

static void ring_pop(struct list_ring *q)
{
	pthread_mutex_lock(&q->mu);
	free(q->ring[q->head].name);
	q->ring[q->head].name = NULL;
	q->head = (q->head + 1) % LIST_RING;
	q->count--;
	pthread_cond_signal(&q->can_put);
	pthread_mutex_unlock(&q->mu);
}

static void ring_abandon(struct list_ring *q)
{
	pthread_mutex_lock(&q->mu);
	q->abandon = 1;
	pthread_cond_broadcast(&q->can_put);
	pthread_mutex_unlock(&q->mu);
}

/* ---- jobs --------------------------------------------------------------- */

static void job_push(struct sync_run_state *r, const struct job *j)
{
	pthread_mutex_lock(&r->mu);
	while (r->jcount == r->jcap)
		pthread_cond_wait(&r->can_put, &r->mu);
	r->jobs[(r->jhead + r->jcount) % r->jcap] = *j;
	r->jcount++;
	pthread_cond_signal(&r->can_get);
	pthread_mutex_unlock(&r->mu);
}

static int is_md5_etag(const char *e)
{
	if (strlen(e) != 32)
		return 0;
	for (int i = 0; i < 32; i++)
		if (!strchr("0123456789abcdefABCDEF", e[i]))
			return 0;
	return 1;
}

/* The MD5 of an object's bytes, streamed, as 32 hex digits. */
static int md5_object(struct store *st, const char *name, char out[33])
{
	struct store_reader *rd;
	int rc = store_reader_open(st, name, 0, UINT64_MAX, &rd, NULL);
	if (rc != 0)
		return rc;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		store_reader_close(rd);
		return STORE_ENOMEM;
	}
	size_t cap = 256 * 1024;
	unsigned char *buf = malloc(cap);
	if (!buf) {
		EVP_MD_CTX_free(ctx);
		store_reader_close(rd);
		return STORE_ENOMEM;
	}
	ssize_t n;
	while ((n = store_reader_read(rd, buf, cap)) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	free(buf);
	store_reader_close(rd);
	if (n < 0) {
		EVP_MD_CTX_free(ctx);
		return (int)n;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < mdlen && i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* The content hash to compare for one side: S3's ETag when it is a plain
 * MD5 (a simple upload or CopyObject), else an MD5 of the bytes. */
static int side_md5(struct store *st, const char *name, const char *etag,
		    char out[33])
{
	if (store_is_s3(st) && is_md5_etag(etag)) {
		for (int i = 0; i < 32; i++)
			out[i] = (char)((etag[i] >= 'A' && etag[i] <= 'F')
						? etag[i] + 32
						: etag[i]);
		out[32] = '\0';
		return 0;
	}
	return md5_object(st, name, out);
}

/* One line of output; callers hold r->mu. */
static void say(struct sync_run_state *r, FILE *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(struct sync_run_state *r, FILE *f, const char *fmt, ...)
{
	va_list ap;
	if (r->o->progress)
		fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fflush(f);
}

static void run_job(struct sync_run_state *r, struct job *j)
{
	const char *su = store_url(r->src), *du = store_url(r->dst);
	int rc = 0;
	const char *what = "copy";
	if (cancelled(r))
		return;
	if (j->kind == JOB_COMPARE) {
		char a[33], b[33];
		what = "compare";
		rc = side_md5(r->src, j->name, j->src_etag, a);
		if (rc == 0)
			rc = side_md5(r->dst, j->name, j->dst_etag, b);
		if (rc == 0) {
			if (strcmp(a, b) == 0) {
				pthread_mutex_lock(&r->mu);
				r->st.skipped++;
				pthread_mutex_unlock(&r->mu);
				return;
			}
			j->kind = JOB_COPY;
			what = "copy";
		}
	}
	if (rc == 0 && r->o->dry_run) {
		pthread_mutex_lock(&r->mu);
		if (j->kind == JOB_COPY) {
			r->st.copied++;
			r->st.bytes += (int64_t)j->size;
			say(r, r->out, "(dryrun) copy: %s%s to %s%s\n", su,
			    j->name, du, j->name);
		} else {
			r->st.deleted++;
			say(r, r->out, "(dryrun) delete: %s%s\n", du,
			    j->name);
		}
		pthread_mutex_unlock(&r->mu);
		return;
	}
	if (rc == 0) {
		if (j->kind == JOB_COPY) {
			/* the size as listed: no HEAD of the source */
			rc = store_copy_sized(r->src, j->name, r->dst, j->name,
					      j->size);
		} else {
			what = "delete";
			rc = store_delete(r->dst, j->name);
			if (rc == STORE_ENOENT)
				rc = 0; /* gone already: what we wanted */
		}
	}
	pthread_mutex_lock(&r->mu);
	if (rc != 0) {
		r->st.failed++;
		if (j->kind == JOB_DELETE)
			say(r, r->err, "delete failed: %s%s: %s\n", du,
			    j->name, store_strerror(rc));
		else
			say(r, r->err, "%s failed: %s%s: %s\n", what, su,
			    j->name, store_strerror(rc));
	} else if (j->kind == JOB_COPY) {
		r->st.copied++;
		r->st.bytes += (int64_t)j->size;
		if (r->o->verbose)
			say(r, r->out, "copy: %s%s to %s%s\n", su, j->name, du,
			    j->name);
	} else {
		r->st.deleted++;
		if (r->o->verbose)
			say(r, r->out, "delete: %s%s\n", du, j->name);
	}
	pthread_mutex_unlock(&r->mu);
}

static void *worker_main(void *arg)
{
	struct sync_run_state *r = arg;
	for (;;) {
		pthread_mutex_lock(&r->mu);
		while (r->jcount == 0 && !r->closed)
			pthread_cond_wait(&r->can_get, &r->mu);
		if (r->jcount == 0) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		struct job j = r->jobs[r->jhead];
		r->jhead = (r->jhead + 1) % r->jcap;
		r->jcount--;
		pthread_cond_signal(&r->can_put);
		pthread_mutex_unlock(&r->mu);
		run_job(r, &j);
		free(j.name);
	}
}

static double elapsed(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void *progress_main(void *arg)
{
	struct sync_run_state *r = arg;
	pthread_mutex_lock(&r->mu);
	while (!r->finished) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r->tick, &r->mu, &ts);
		if (r->finished)
			break;
		char b[32];
		fprintf(stderr,
			"\r\033[Klisted %lld, copied %lld (%s), skipped %lld, "
			"failed %lld, %.0f s",
			(long long)r->st.listed, (long long)r->st.copied,
			bk_human_bytes((uint64_t)r->st.bytes, b, sizeof b),
			(long long)r->st.skipped, (long long)r->st.failed,
			elapsed(&r->t0));
		fflush(stderr);
	}
	fputs("\r\033[K", stderr);
	fflush(stderr);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* ---- the merge ------------------------------------------------------------ */

static int kept(const struct sync_opts *o, const char *name)
{
	if (!o->keep_prefixes)
		return 0;
	for (const char *const *p = o->keep_prefixes; *p; p++)
		if (strncmp(name, *p, strlen(*p)) == 0)
			return 1;
	return 0;
}

static int push_entry_job(struct sync_run_state *r, enum job_kind k,
			  const struct entry *e, const struct entry *d)
{
	struct job j = { .kind = k, .size = e->size };
	j.name = strdup(e->name);
	if (!j.name)
		return STORE_ENOMEM;
	snprintf(j.src_etag, sizeof j.src_etag, "%s", e->etag);
	if (d)
		snprintf(j.dst_etag, sizeof j.dst_etag, "%s", d->etag);
	job_push(r, &j);
	return 0;
}

/* Check that NAME comes strictly after PREV in byte order; remember it. */
static int check_order(struct sync_run_state *r, char *prev, int *have,
		       const char *name, const char *url)
{
	if (*have && strcmp(prev, name) >= 0) {
		snprintf(r->st.error, sizeof r->st.error,
			 "the listing of %s is not in key order at \"%.100s\"",
			 url, name);
		return STORE_EIO;
	}
	snprintf(prev, STORE_NAME_MAX, "%s", name);
	*have = 1;
	return 0;
}

static int merge(struct sync_run_state *r, struct list_ring *ls,
		 struct list_ring *ld)
{
	int have_s = 0, have_d = 0;
	const struct sync_opts *o = r->o;
	char *ps = malloc(STORE_NAME_MAX), *pd = malloc(STORE_NAME_MAX);
	int rc = 0;
	if (!ps || !pd) {
		free(ps);
		free(pd);
		return STORE_ENOMEM;
	}
	for (;;) {
		if (cancelled(r)) {
			rc = STORE_ECANCELED;
			snprintf(r->st.error, sizeof r->st.error,
				 "interrupted");
			break;
		}
		struct entry *s = ring_peek(ls);
		struct entry *d = ring_peek(ld);
		if (!s && ls->rc != 0) {
			rc = ls->rc;
			snprintf(r->st.error, sizeof r->st.error,
				 "listing %s failed: %s", store_url(r->src),
				 store_strerror(rc));
			break;
		}
		if (!d && ld->rc != 0) {
			rc = ld->rc;
			snprintf(r->st.error, sizeof r->st.error,
				 "listing %s failed: %s", store_url(r->dst),
				 store_strerror(rc));
			break;
		}
		if (!s && !d)
			break;
		int cmp = !s ? 1 : !d ? -1 : strcmp(s->name, d->name);
		if (cmp <= 0) {
			rc = check_order(r, ps, &have_s, s->name,
					 store_url(r->src));
			if (rc)
				break;
		}
		if (cmp >= 0) {
			rc = check_order(r, pd, &have_d, d->name,
					 store_url(r->dst));
			if (rc)
				break;
		}
		pthread_mutex_lock(&r->mu);
		if (cmp <= 0)
			r->st.listed++;
		if (cmp >= 0)
			r->st.listed_dst++;
		pthread_mutex_unlock(&r->mu);
		if (cmp < 0) {
			rc = push_entry_job(r, JOB_COPY, s, NULL);
			ring_pop(ls);
		} else if (cmp > 0) {
			if (o->delete_extra && !kept(o, d->name))
				rc = push_entry_job(r, JOB_DELETE, d, NULL);
			ring_pop(ld);
		} else {
			if (s->size != d->size)
				rc = push_entry_job(r, JOB_COPY, s, d);
			else if (o->checksum)
				rc = push_entry_job(r, JOB_COMPARE, s, d);
			else {
				pthread_mutex_lock(&r->mu);
				r->st.skipped++;
				pthread_mutex_unlock(&r->mu);
			}
			ring_pop(ls);
			ring_pop(ld);
		}
		if (rc)
			break;
	}
	free(ps);
	free(pd);
	return rc;
}

int sync_locations_overlap(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t n = la < lb ? la : lb;
	/* both are normalised URLs ending in '/' */
	return strncmp(a, b, n) == 0;
}

int sync_run(struct store *src, struct store *dst, const struct sync_opts *o,
	     struct sync_stats *stats)
{
	struct sync_run_state *r = calloc(1, sizeof *r);
	struct list_ring *ls = calloc(1, sizeof *ls);
	struct list_ring *ld = calloc(1, sizeof *ld);
	int rc = 0;
	memset(stats, 0, sizeof *stats);
	if (!r || !ls || !ld) {
		free(r);
		free(ls);
		free(ld);
		snprintf(stats->error, sizeof stats->error, "out of memory");
		return STORE_ENOMEM;
	}
	if (sync_locations_overlap(store_url(src), store_url(dst))) {
		snprintf(stats->error, sizeof stats->error,
			 "%s and %s overlap: one contains the other",
			 store_url(src), store_url(dst));
		free(r);
		free(ls);
		free(ld);
		return STORE_EINVAL;
	}
	r->src = src;
	r->dst = dst;
	r->o = o;
	r->out = o->out ? o->out : stdout;
	r->err = o->err ? o->err : stderr;
	int nthreads = o->concurrency > 0 ? o->concurrency
					  : DEFAULT_CONCURRENCY;
	if (nthreads > MAX_CONCURRENCY)
		nthreads = MAX_CONCURRENCY;
	r->jcap = nthreads * JOB_QUEUE_PER_WORKER > JOB_QUEUE_MIN
			  ? nthreads * JOB_QUEUE_PER_WORKER
			  : JOB_QUEUE_MIN;
	r->jobs = calloc((size_t)r->jcap, sizeof *r->jobs);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->can_get, NULL);
	pthread_cond_init(&r->can_put, NULL);
	pthread_cond_init(&r->tick, NULL);
	clock_gettime(CLOCK_MONOTONIC, &r->t0);

	struct list_ring *rings[2] = { ls, ld };
	for (int i = 0; i < 2; i++) {
		rings[i]->st = i == 0 ? src : dst;
		rings[i]->run = r;
		pthread_mutex_init(&rings[i]->mu, NULL);
		pthread_cond_init(&rings[i]->can_get, NULL);
		pthread_cond_init(&rings[i]->can_put, NULL);
	}
	pthread_t *workers = calloc((size_t)nthreads, sizeof *workers);
	int nstarted = 0, listers = 0;
	pthread_t prog;
	int have_prog = 0;
	if (!r->jobs || !workers) {
		rc = STORE_ENOMEM;
		snprintf(r->st.error, sizeof r->st.error, "out of memory");
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		if (pthread_create(&rings[i]->tid, NULL, lister_main,
				   rings[i]) != 0) {
			rc = STORE_ENOMEM;
			snprintf(r->st.error, sizeof r->st.error,
				 "cannot start a thread");
			goto out;
		}
		listers++;
	}
	for (; nstarted < nthreads; nstarted++)
		if (pthread_create(&workers[nstarted], NULL, worker_main, r) !=
		    0)
			break;
	if (nstarted == 0) {
		rc = STORE_ENOMEM;
		snprintf(r->st.error, sizeof r->st.error,
			 "cannot start a thread");
		goto out;
	}
	if (o->progress && isatty(2) &&
	    pthread_create(&prog, NULL, progress_main, r) == 0)
		have_prog = 1;

	rc = merge(r, ls, ld);
out:
	for (int i = 0; i < 2; i++)
		ring_abandon(rings[i]);
	pthread_mutex_lock(&r->mu);
	r->closed = 1;
	pthread_cond_broadcast(&r->can_get);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < nstarted; i++)
		pthread_join(workers[i], NULL);
	for (int i = 0; i < listers; i++)
		pthread_join(rings[i]->tid, NULL);
	if (have_prog) {
		pthread_mutex_lock(&r->mu);
		r->finished = 1;
		pthread_cond_broadcast(&r->tick);
		pthread_mutex_unlock(&r->mu);
		pthread_join(prog, NULL);
	}
	if (rc == 0 && cancelled(r)) {
		rc = STORE_ECANCELED;
		snprintf(r->st.error, sizeof r->st.error, "interrupted");
	}
	r->st.seconds = elapsed(&r->t0);
	*stats = r->st;
	for (int i = 0; i < 2; i++) {
		while (rings[i]->count) {
			free(rings[i]->ring[rings[i]->head].name);
			rings[i]->head = (rings[i]->head + 1) % LIST_RING;
			rings[i]->count--;
		}
		pthread_mutex_destroy(&rings[i]->mu);
		pthread_cond_destroy(&rings[i]->can_get);
		pthread_cond_destroy(&rings[i]->can_put);
	}
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->can_get);
	pthread_cond_destroy(&r->can_put);
	pthread_cond_destroy(&r->tick);
	free(workers);
	free(r->jobs);
	free(r);
	free(ls);
	free(ld);
	if (rc != 0)
		return rc;
	return stats->failed ? 1 : 0;
}

void sync_summary(const struct sync_stats *s, char *buf, size_t len)
{
	char b[32];
	snprintf(buf, len,
		 "listed %lld (dst %lld), copied %lld (%s), skipped %lld, "
		 "deleted %lld, failed %lld in %.1f s",
		 (long long)s->listed, (long long)s->listed_dst,
		 (long long)s->copied,
		 bk_human_bytes((uint64_t)s->bytes, b, sizeof b),
		 (long long)s->skipped, (long long)s->deleted,
		 (long long)s->failed, s->seconds);
}

