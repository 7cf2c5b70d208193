/*
 * mtimes.c - the client's mtimes of S3 objects, without a HEAD per object.
 *
 * rsync's quick check compares size and mtime. The fs backend's listing
 * carries the file's own mtime, but an S3 listing carries only the upload
 * time, size and ETag: the client's mtime lives in x-amz-meta-mtime and
 * takes a HEAD per object to read. A no-change pass over 10,000 objects
 * would be 10,000 HEADs. So this process keeps a cache: (location, name)
 * -> (size, ETag, mtime). An entry is trusted only while the listing shows
 * the same size and ETag, so any change made behind our back (another
 * writer, a copy, a re-upload) misses and is read again with one HEAD.
 * Entries come from those HEADs and from our own commits: a single-PUT
 * object's ETag is the MD5 of its bytes, which the receiver has just
 * verified anyway, so a pushed tree is known without any HEAD at all.
 * (Multipart objects get another ETag form and are learnt by one HEAD on
 * their next check.) The cache is bounded: past its size it starts over.
 * What misses (a fresh process, objects written by others) is looked up
 * a directory at a time, with HEADs in parallel (MT_THREADS at once).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsync_int.h"

#define MT_BUCKETS 65536
#define MT_MAX_ENTRIES 1000000
#define MT_THREADS 16

struct mt_entry {
	struct mt_entry *next;
	uint64_t size;
	int64_t mtime;
	char etag[STORE_ETAG_MAX];
	char key[];             /* url "\n" name */
};

static pthread_mutex_t mt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_entry *mt_table[MT_BUCKETS];
static size_t mt_count;

static uint32_t mt_hash(const char *url, const char *name)
{
	uint32_t h = 2166136261u;
	const unsigned char *p;
	for (p = (const unsigned char *)url; *p; p++)
		h = (h ^ *p) * 16777619u;
	h = (h ^ '\n') * 16777619u;
	for (p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static int key_eq(const struct mt_entry *e, const char *url, const char *name)
{
	size_t ul = strlen(url);
	return strncmp(e->key, url, ul) == 0 && e->key[ul] == '\n' &&
	       strcmp(e->key + ul + 1, name) == 0;
}

static void mt_clear_locked(void)
{
	size_t i;
	for (i = 0; i < MT_BUCKETS; i++) {
		struct mt_entry *e = mt_table[i], *n;
		for (; e; e = n) {
			n = e->next;
			free(e);
		}
		mt_table[i] = NULL;
	}
	mt_count = 0;
}

void rs_mtime_remember(struct store *st, const char *name, uint64_t size,
		       const char *etag, int64_t mtime)
{
	const char *url = store_url(st);
	uint32_t b = mt_hash(url, name) % MT_BUCKETS;
	struct mt_entry *e;
	size_t kl;

	if (!etag || !*etag)
		return;
	pthread_mutex_lock(&mt_lock);
	for (e = mt_table[b]; e; e = e->next)
		if (key_eq(e, url, name))
			break;
	if (!e) {
		if (mt_count >= MT_MAX_ENTRIES)
			mt_clear_locked();
		kl = strlen(url) + 1 + strlen(name) + 1;
		e = malloc(sizeof *e + kl);
		if (!e) {
			pthread_mutex_unlock(&mt_lock);
			return;
		}
		memcpy(e->key, url, strlen(url));
		e->key[strlen(url)] = '\n';
		memcpy(e->key + strlen(url) + 1, name, strlen(name) + 1);
		e->next = mt_table[b];
		mt_table[b] = e;
		mt_count++;
	}
	e->size = size;
	e->mtime = mtime;
	snprintf(e->etag, sizeof e->etag, "%s", etag);
	pthread_mutex_unlock(&mt_lock);
}

int rs_mtime_lookup(struct store *st, const char *name, uint64_t size,
		    const char *etag, int64_t *mtime)
{
	const char *url = store_url(st);
	uint32_t b = mt_hash(url, name) % MT_BUCKETS;
	struct mt_entry *e;
	struct store_stat ss;
	int rc;

	if (etag && *etag) {
		pthread_mutex_lock(&mt_lock);
		for (e = mt_table[b]; e; e = e->next) {
			if (key_eq(e, url, name) && e->size == size &&
			    strcmp(e->etag, etag) == 0) {
				*mtime = e->mtime;
				pthread_mutex_unlock(&mt_lock);
				return 0;
			}
		}
		pthread_mutex_unlock(&mt_lock);
	}
	rc = store_stat(st, name, &ss);
	if (rc < 0)
		return rc;
	*mtime = ss.mtime;
	if (ss.size == size && ss.etag[0])
		rs_mtime_remember(st, name, ss.size, ss.etag, ss.mtime);
	return 0;
}

struct mt_batch {
	struct store *st;
	struct rs_mtime_req *reqs;
	size_t n;
	size_t next;            /* next request to take, under lock */
	pthread_mutex_t lock;
};

static void *mt_worker(void *arg)
{
	struct mt_batch *b = arg;

	for (;;) {
		size_t i;
		pthread_mutex_lock(&b->lock);
		i = b->next++;
		pthread_mutex_unlock(&b->lock);
		if (i >= b->n)
			return NULL;
		b->reqs[i].rc = rs_mtime_lookup(b->st, b->reqs[i].name,
						b->reqs[i].size,
						b->reqs[i].etag,
						&b->reqs[i].mtime);
	}
}

/* 1 and *MTIME if the cache knows it. */
static int mt_cached(struct store *st, const char *name, uint64_t size,
		     const char *etag, int64_t *mtime)
{
	const char *url = store_url(st);
	uint32_t b = mt_hash(url, name) % MT_BUCKETS;
	struct mt_entry *e;
	int hit = 0;

	if (!etag || !*etag)
		return 0;
	pthread_mutex_lock(&mt_lock);
	for (e = mt_table[b]; e; e = e->next) {
		if (key_eq(e, url, name) && e->size == size &&
		    strcmp(e->etag, etag) == 0) {
			*mtime = e->mtime;
			hit = 1;
			break;
		}
	}
	pthread_mutex_unlock(&mt_lock);
	return hit;
}

void rs_mtime_lookup_many(struct store *st, struct rs_mtime_req *reqs,
			  size_t n)
{
	struct rs_mtime_req **miss;
	struct mt_batch b;
	pthread_t th[MT_THREADS];
	size_t i, nmiss = 0, nth = 0;

	for (i = 0; i < n; i++) {
		reqs[i].rc = 0;
		if (!mt_cached(st, reqs[i].name, reqs[i].size, reqs[i].etag,
			       &reqs[i].mtime))
			nmiss++;
		else
			reqs[i].rc = 1; /* marks a hit until the end */
	}
	if (nmiss == 0)
		goto done;
	miss = malloc(nmiss * sizeof *miss);
	b.reqs = malloc(nmiss * sizeof *b.reqs);
	if (!miss || !b.reqs) {
		free(miss);
		free(b.reqs);
		for (i = 0; i < n; i++)
			if (reqs[i].rc != 1)
				reqs[i].rc = rs_mtime_lookup(st, reqs[i].name,
							     reqs[i].size,
							     reqs[i].etag,
							     &reqs[i].mtime);
		goto done;
	}
	nmiss = 0;
	for (i = 0; i < n; i++)
		if (reqs[i].rc != 1) {
			miss[nmiss] = &reqs[i];
			b.reqs[nmiss++] = reqs[i];
		}
	b.st = st;
	b.n = nmiss;
	b.next = 0;
	pthread_mutex_init(&b.lock, NULL);
	for (i = 0; i < MT_THREADS && i < nmiss; i++) {
		if (pthread_create(&th[nth], NULL, mt_worker, &b) == 0)
			nth++;
	}
	if (nth == 0)
		mt_worker(&b);
	for (i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&b.lock);
	for (i = 0; i < nmiss; i++) {
		miss[i]->mtime = b.reqs[i].mtime;
		miss[i]->rc = b.reqs[i].rc;
	}
	free(miss);
	free(b.reqs);
done:
	for (i = 0; i < n; i++)
		if (reqs[i].rc == 1)
			reqs[i].rc = 0;
}
