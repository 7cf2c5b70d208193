/*
 * prefetch.c - reading the next small objects of a pull while the current
 * one is being sent.
 *
 * On S3 every object is a GET, and the round trip, not the bandwidth, is
 * what a pull of many small files waits for: sent one after another,
 * 10,000 photos' thumbnails are 10,000 round trips. The sender reads the
 * client's requests a little ahead (those already on the wire), and hands
 * each small object it will have to send to this pool: a few threads GET
 * them into memory in parallel, and the sender takes each one when its
 * turn comes, in the client's order. Only requested files are fetched, so
 * a no-change pull costs nothing; memory is bounded by a byte budget (a
 * job that does not fit is simply not prefetched, and the sender reads
 * that object itself).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rsync_int.h"

#define PF_THREADS 8
#define PF_MAX_BYTES (64u << 20)

struct pf_job {
	struct pf_job *next;
	int32_t ndx;
	struct store *st;
	char *obj;
	uint64_t size;
	unsigned char *buf;     /* SIZE bytes once done */
	int rc;                 /* 0 or a store_error */
	int started, done;      /* a thread took it on; it finished */
};

struct rs_prefetch {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct pf_job *head, *tail; /* every job not yet taken, in order */
	struct pf_job *next_todo;   /* first job no worker has started */
	uint64_t bytes;             /* budget in use */
	int stopping;
	pthread_t th[PF_THREADS];
	int nth;
};

/* Read the whole object; 0 or a store_error. */
static int fetch(struct pf_job *j)
{
	struct store_reader *r;
	uint64_t got = 0;
	int rc = store_reader_open(j->st, j->obj, 0, UINT64_MAX, &r, NULL);

	if (rc < 0)
		return rc;
	while (got < j->size) {
		ssize_t n = store_reader_read(r, j->buf + got,
					      (size_t)(j->size - got));
		if (n <= 0) {
			rc = n < 0 ? (int)n : STORE_EIO;
			break;
		}
		got += (uint64_t)n;
	}
	store_reader_close(r);
	return rc;
}

static void *worker(void *arg)
{
	struct rs_prefetch *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct pf_job *j;
		while (!p->stopping && !p->next_todo)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stopping)
			break;
		j = p->next_todo;
		p->next_todo = j->next;
		if (j->started)
			continue; /* the sender got to it first */
		j->started = 1;
		pthread_mutex_unlock(&p->lock);
		j->rc = fetch(j);
		pthread_mutex_lock(&p->lock);
		j->done = 1;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct rs_prefetch *rs_prefetch_start(void)
{
	struct rs_prefetch *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	while (p->nth < PF_THREADS &&
	       pthread_create(&p->th[p->nth], NULL, worker, p) == 0)
		p->nth++;
	if (p->nth == 0) {
		rs_prefetch_stop(p);
		return NULL;
	}
	return p;
}

int rs_prefetch_add(struct rs_prefetch *p, int32_t ndx, struct store *st,
		    const char *obj, uint64_t size)
{
	struct pf_job *j;

	if (!p)
		return -1;
	pthread_mutex_lock(&p->lock);
	if (p->bytes + size > PF_MAX_BYTES) {
		pthread_mutex_unlock(&p->lock);
		return -1;
	}
	p->bytes += size;
	pthread_mutex_unlock(&p->lock);
	j = calloc(1, sizeof *j);
	if (j) {
		j->obj = strdup(obj);
		j->buf = malloc(size ? (size_t)size : 1);
	}
	if (!j || !j->obj || !j->buf) {
		if (j) {
			free(j->obj);
			free(j->buf);
			free(j);
		}
		pthread_mutex_lock(&p->lock);
		p->bytes -= size;
		pthread_mutex_unlock(&p->lock);
		return -1;
	}
	j->ndx = ndx;
	j->st = st;
	j->size = size;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	if (!p->next_todo)
		p->next_todo = j;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void job_free(struct rs_prefetch *p, struct pf_job *j)
{
	p->bytes -= j->size;
	free(j->obj);
	free(j->buf);
	free(j);
}

int rs_prefetch_take(struct rs_prefetch *p, int32_t ndx, unsigned char **buf,
		     uint64_t *size)
{
	struct pf_job *j, *prev = NULL;
	int rc;

	if (!p)
		return 1;
	pthread_mutex_lock(&p->lock);
	for (j = p->head; j && j->ndx != ndx; j = j->next)
		prev = j;
	if (!j) {
		pthread_mutex_unlock(&p->lock);
		return 1;
	}
	if (!j->started) {
		/* no worker got to it yet: fetch it here rather than wait */
		j->started = 1;
		if (p->next_todo == j)
			p->next_todo = j->next;
		pthread_mutex_unlock(&p->lock);
		j->rc = fetch(j);
		pthread_mutex_lock(&p->lock);
		j->done = 1;
	}
	while (!j->done)
		pthread_cond_wait(&p->done, &p->lock);
	/* unlink (from the to-do chain too: it is the same list) */
	if (p->next_todo == j)
		p->next_todo = j->next;
	if (prev)
		prev->next = j->next;
	else
		p->head = j->next;
	if (p->tail == j)
		p->tail = prev;
	rc = j->rc;
	if (rc == 0) {
		*buf = j->buf;
		*size = j->size;
		j->buf = NULL;
		/* the caller frees BUF: its bytes leave the budget now */
	}
	job_free(p, j);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void rs_prefetch_stop(struct rs_prefetch *p)
{
	int i;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	while (p->head) {
		struct pf_job *j = p->head;
		p->head = j->next;
		job_free(p, j);
	}
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
