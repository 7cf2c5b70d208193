/*
 * commit.c - committing received files in the background.
 *
 * Once a file has been received and its MD5 verified, what remains is the
 * store's commit: an fsync and two renames on the filesystem, the single
 * PUT (small objects) or the multipart completion on S3. Done inline, a
 * push of many small files is one round trip to S3 per file while the
 * client waits. So a verified writer is handed to a few worker threads and
 * the receiver goes on reading the next file; a store_writer may change
 * threads between calls, and a struct store is safe to share.
 *
 * Threads are started as work arrives (one more whenever a job is queued
 * and none is idle, up to COMMIT_THREADS): a pull, or a push that changes
 * nothing, starts none.
 *
 * The pool is bounded by count and by bytes (a small S3 object is held in
 * memory until its PUT), so memory stays fixed whatever the push. Results
 * are queued back and reported by the protocol thread, which alone talks
 * to the client. At the end of each phase, and when the session ends for
 * any reason, every writer handed over is committed and waited for: those
 * files were complete and verified.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsync_int.h"

#define COMMIT_THREADS 8
#define COMMIT_MAX_PENDING 32
#define COMMIT_MAX_BYTES (64u << 20)

struct job {
	struct job *next;
	struct store_writer *w;
	uint64_t size;
	int32_t ndx;
	int rc;
	/* for the mtime cache (S3) */
	struct store *st;
	char *obj;
	char etag[2 * RS_SUM_LENGTH + 1];
	int64_t mtime;
};

struct rs_commits {
	pthread_mutex_t lock;
	pthread_cond_t work;    /* a job queued, or stopping */
	pthread_cond_t room;    /* a job finished */
	struct job *head, *tail; /* queued, not started */
	struct job *done;       /* finished, not yet collected */
	size_t inflight;        /* queued + running */
	size_t queued;          /* queued, not started */
	int idle;               /* workers waiting for a job */
	uint64_t bytes;         /* their sizes */
	int stopping;
	pthread_t th[COMMIT_THREADS];
	int nth;
};

static void *worker(void *arg)
{
	struct rs_commits *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct job *j;
		c->idle++;
		while (!c->head && !c->stopping)
			pthread_cond_wait(&c->work, &c->lock);
		c->idle--;
		if (!c->head)
			break;
		j = c->head;
		c->head = j->next;
		c->queued--;
		if (!c->head)
			c->tail = NULL;
		pthread_mutex_unlock(&c->lock);

		j->rc = store_writer_commit(j->w);
		j->w = NULL;
		if (j->rc == 0 && j->st && store_is_s3(j->st))
			rs_mtime_remember(j->st, j->obj, j->size, j->etag,
					  j->mtime);

		pthread_mutex_lock(&c->lock);
		j->next = c->done;
		c->done = j;
		c->inflight--;
		c->bytes -= j->size;
		pthread_cond_broadcast(&c->room);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

struct rs_commits *rs_commits_start(void)
{
	struct rs_commits *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->room, NULL);
	return c;
}

int rs_commits_submit(struct rs_commits *c, struct store_writer *w,
		      uint64_t size, int32_t ndx, struct store *st,
		      const char *obj, const char *etag, int64_t mtime)
{
	struct job *j = calloc(1, sizeof *j);

	if (!j)
		return -1;
	j->w = w;
	j->size = size;
	j->ndx = ndx;
	j->st = st;
	j->obj = strdup(obj);
	j->mtime = mtime;
	snprintf(j->etag, sizeof j->etag, "%s", etag ? etag : "");
	if (!j->obj) {
		free(j);
		return -1;
	}
	pthread_mutex_lock(&c->lock);
	while (c->inflight > 0 &&
	       (c->inflight >= COMMIT_MAX_PENDING ||
		c->bytes + size > COMMIT_MAX_BYTES))
		pthread_cond_wait(&c->room, &c->lock);
	/* every idle worker already has a queued job to take: one more */
	if (c->queued >= (size_t)c->idle && c->nth < COMMIT_THREADS &&
	    pthread_create(&c->th[c->nth], NULL, worker, c) == 0)
		c->nth++;
	if (c->nth == 0) {
		/* no thread at all: the caller commits it inline */
		pthread_mutex_unlock(&c->lock);
		free(j->obj);
		free(j);
		return -1;
	}
	if (c->tail)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	c->queued++;
	c->inflight++;
	c->bytes += size;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int rs_commits_collect(struct rs_commits *c, int wait_all,
		       void (*report)(void *arg, int32_t ndx, int rc,
				      const char *obj, uint64_t size),
		       void *arg)
{
	struct job *done, *next;
	int failed = 0;

	pthread_mutex_lock(&c->lock);
	while (wait_all && c->inflight > 0)
		pthread_cond_wait(&c->room, &c->lock);
	done = c->done;
	c->done = NULL;
	pthread_mutex_unlock(&c->lock);
	for (; done; done = next) {
		next = done->next;
		if (done->rc != 0)
			failed++;
		if (report)
			report(arg, done->ndx, done->rc, done->obj, done->size);
		free(done->obj);
		free(done);
	}
	return failed;
}

void rs_commits_stop(struct rs_commits *c)
{
	int i;

	if (!c)
		return;
	rs_commits_collect(c, 1, NULL, NULL);
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < c->nth; i++)
		pthread_join(c->th[i], NULL);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->room);
	free(c);
}
