/*
 * store_conformance.c - the storage interface's conformance suite, run
 * against any location: the same cases for file:// and s3://.
 *
 *   store_conformance [options] LOCATION CASE...
 *   store_conformance --list
 *
 *   --endpoint URL  S3 endpoint (path-style), e.g. http://127.0.0.1:4569
 *   --region NAME   S3 region
 *   --profile NAME  shared-credentials profile
 *   --other URL     a second location (another backend, or another folder
 *                   of the same one) for copies between stores
 *
 * Object sizes follow the S3 part size, ASSETD_S3_PART_SIZE (bytes, default
 * 5 MiB, S3's minimum part): "3-part" objects are 2.5 parts, and sizes are
 * chosen around one part, where the S3 backend switches from a single PUT
 * to a multipart upload. ASSETD_CONFORMANCE_KEYS sets the number of keys of
 * the paging case (default 2,500: three ListObjectsV2 pages).
 *
 * Each case works below its own fresh folder ("<case>-<pid>-<n>/") and
 * removes it when it passes. Output: one "ok CASE" or "FAIL CASE: where:
 * what" line per case; exit status 1 if any case failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static struct store_opts g_opts = { .path_style = -1 };
static const char *g_url;
static const char *g_other_url;
static struct store *g_st;
static uint64_t g_part = 5u * 1024 * 1024;
static int g_keys = 2500;
static char g_base[128]; /* the running case's folder, "case-pid-n/" */
static char g_fail[512];

static void set_fail(int line, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_fail(int line, const char *fmt, ...)
{
	int n = snprintf(g_fail, sizeof g_fail, "line %d: ", line);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g_fail + n, sizeof g_fail - (size_t)n, fmt, ap);
	va_end(ap);
}

#define FAIL(...)                                                          \
	do {                                                               \
		set_fail(__LINE__, __VA_ARGS__);                           \
		return -1;                                                 \
	} while (0)

/* Expect call X to return WANT (a store_error or 0). */
#define EXPECT_RC(x, want)                                                 \
	do {                                                               \
		long long r_ = (long long)(x);                             \
		if (r_ != (long long)(want))                               \
			FAIL("%s = %lld (%s), want %lld (%s)", #x, r_,     \
			     store_strerror((int)r_), (long long)(want),   \
			     store_strerror((int)(want)));                 \
	} while (0)

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond))                                               \
			FAIL(__VA_ARGS__);                                 \
	} while (0)

/* The full name of REL inside the case's folder (a ring of buffers). */
static const char *N(const char *rel)
{
	static char ring[8][STORE_NAME_MAX + 128];
	static int slot;
	char *b = ring[slot++ & 7];
	snprintf(b, sizeof ring[0], "%s%s", g_base, rel);
	return b;
}

/* ---- data ------------------------------------------------------------ */

/* Byte I of the object with SEED: cheap, position-dependent, so that a
 * shifted or repeated range is caught. */
static unsigned char pat(uint32_t seed, uint64_t i)
{
	uint64_t x = (i >> 3) * 0x9e3779b97f4a7c15ull ^ seed;
	x ^= x >> 29;
	return (unsigned char)(x >> (8 * (i & 7)));
}

static void fill(uint32_t seed, uint64_t off, unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(seed, off + i);
}

/* Write SIZE pattern bytes to NAME in chunks of CHUNK (0 = one write). */
static int put_pattern(struct store *st, const char *name, uint32_t seed,
		       uint64_t size, size_t chunk, int hint,
		       const struct store_put_opts *base)
{
	struct store_put_opts o = { 0 };
	if (base)
		o = *base;
	if (hint)
		o.size_hint = size;
	struct store_writer *w;
	int rc = store_writer_open(st, name, &o, &w);
	if (rc < 0)
		return rc;
	if (chunk == 0)
		chunk = size ? (size_t)size : 1;
	unsigned char *buf = malloc(chunk);
	if (!buf) {
		store_writer_abort(w);
		return STORE_ENOMEM;
	}
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
		fill(seed, off, buf, n);
		rc = store_writer_write(w, buf, n);
		if (rc < 0) {
			free(buf);
			store_writer_abort(w);
			return rc;
		}
		off += n;
	}
	free(buf);
	if (store_writer_size(w) != size) {
		store_writer_abort(w);
		return STORE_EIO;
	}
	return store_writer_commit(w);
}

/* Read [OFF, OFF+LEN) of NAME and compare with the pattern; return the
 * number of bytes read, -1000 on a mismatch, or a store_error. */
static int64_t read_check(struct store *st, const char *name, uint32_t seed,
			  uint64_t off, uint64_t len)
{
	struct store_reader *r;
	struct store_stat ss;
	int rc = store_reader_open(st, name, off, len, &r, &ss);
	if (rc < 0)
		return rc;
	static unsigned char buf[65536 + 17];
	uint64_t got = 0;
	for (;;) {
		/* odd sizes, to cross any internal buffer boundary */
		ssize_t n = store_reader_read(r, buf, sizeof buf);
		if (n < 0) {
			store_reader_close(r);
			return n;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != pat(seed, off + got + (uint64_t)i)) {
				store_reader_close(r);
				return -1000;
			}
		}
		got += (uint64_t)n;
	}
	store_reader_close(r);
	return (int64_t)got;
}

/* ---- listing helpers ------------------------------------------------- */

struct collect {
	char **names;
	int *dirs;
	uint64_t *sizes;
	int64_t *mtimes;
	int *client;
	size_t n, cap;
	int stop_after; /* >0: return 7 after this many */
	int bad_order;
	char last[STORE_NAME_MAX + 1];
};

static int collect_cb(void *arg, const struct store_entry *e)
{
	struct collect *c = arg;
	if (c->n && strcmp(e->name, c->last) <= 0)
		c->bad_order = 1;
	snprintf(c->last, sizeof c->last, "%s", e->name);
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->names = realloc(c->names, c->cap * sizeof *c->names);
		c->dirs = realloc(c->dirs, c->cap * sizeof *c->dirs);
		c->sizes = realloc(c->sizes, c->cap * sizeof *c->sizes);
		c->mtimes = realloc(c->mtimes, c->cap * sizeof *c->mtimes);
		c->client = realloc(c->client, c->cap * sizeof *c->client);
	}
	c->names[c->n] = strdup(e->name);
	c->dirs[c->n] = e->is_dir;
	c->sizes[c->n] = e->size;
	c->mtimes[c->n] = e->mtime;
	c->client[c->n] = e->mtime_is_client;
	c->n++;
	if (c->stop_after && (int)c->n >= c->stop_after)
		return 7;
	return 0;
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->names[i]);
	free(c->names);
	free(c->dirs);
	free(c->sizes);
	free(c->mtimes);
	free(c->client);
	memset(c, 0, sizeof *c);
}

static int list_into(struct store *st, const char *prefix, char delim,
		     const char *after, struct collect *c)
{
	memset(c, 0, sizeof *c);
	return store_list(st, prefix, delim, after, collect_cb, c);
}

/* Compare a listing with the expected names (relative to the case folder),
 * "x/" meaning a directory entry. */
static int expect_listing(const char *prefix, char delim,
			  const char *const *want, size_t nwant, int line)
{
	struct collect c;
	int rc = list_into(g_st, N(prefix), delim, NULL, &c);
	if (rc != 0) {
		collect_free(&c);
		set_fail(line, "list %s = %s", prefix, store_strerror(rc));
		return -1;
	}
	size_t bl = strlen(g_base);
	int ok = c.n == nwant && !c.bad_order;
	for (size_t i = 0; ok && i < nwant; i++) {
		size_t wl = strlen(want[i]);
		int want_dir = wl && want[i][wl - 1] == '/';
		if (strncmp(c.names[i], g_base, bl) != 0 ||
		    strcmp(c.names[i] + bl, want[i]) != 0 ||
		    c.dirs[i] != want_dir)
			ok = 0;
	}
	if (!ok) {
		char got[400] = "";
		size_t o = 0;
		for (size_t i = 0; i < c.n && o < sizeof got - 40; i++)
			o += (size_t)snprintf(got + o, sizeof got - o, "%s%s%s",
					      i ? "," : "",
					      c.names[i] + (strlen(c.names[i]) >= bl ? bl : 0),
					      c.dirs[i] ? "(d)" : "");
		set_fail(line, "list '%s' delim=%d: got %zu [%s], want %zu",
			 prefix, delim, c.n, got, nwant);
		collect_free(&c);
		return -1;
	}
	collect_free(&c);
	return 0;
}

#define EXPECT_LIST(prefix, delim, ...)                                    \
	do {                                                               \
		static const char *const w_[] = { __VA_ARGS__ };           \
		if (expect_listing(prefix, delim, w_,                      \
				   sizeof w_ / sizeof w_[0], __LINE__) < 0) \
			return -1;                                         \
	} while (0)

#define EXPECT_EMPTY_LIST(prefix, delim)                                   \
	do {                                                               \
		if (expect_listing(prefix, delim, NULL, 0, __LINE__) < 0)  \
			return -1;                                         \
	} while (0)

/* Remove everything below the case folder (objects, then directories
 * deepest first). */
static int remove_tree(struct store *st, const char *prefix)
{
	struct collect c;
	int rc = list_into(st, prefix, 0, NULL, &c);
	for (size_t i = 0; rc == 0 && i < c.n; i++)
		rc = store_delete(st, c.names[i]);
	collect_free(&c);
	if (rc < 0)
		return rc;
	/* directories: list one level and recurse */
	rc = list_into(st, prefix, '/', NULL, &c);
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		if (!c.dirs[i])
			continue;
		rc = remove_tree(st, c.names[i]);
		if (rc == 0) {
			rc = store_rmdir(st, c.names[i]);
			if (rc == STORE_ENOENT)
				rc = 0; /* an implied S3 prefix, now gone */
		}
	}
	collect_free(&c);
	return rc;
}

/* ---- cases ----------------------------------------------------------- */

static int case_roundtrip(void)
{
	uint64_t p = g_part;
	const uint64_t sizes[] = { 0, 1, 1000, 65536 + 3, p - 1, p, p + 1,
				   2 * p + p / 2 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		for (int hint = 0; hint < 2; hint++) {
			char rel[64];
			snprintf(rel, sizeof rel, "obj-%zu-%d.bin", i, hint);
			uint32_t seed = (uint32_t)(i * 2 + (size_t)hint + 1);
			/* hinted: one big write; unhinted: odd chunks */
			size_t chunk = hint ? 0 : 7919;
			EXPECT_RC(put_pattern(g_st, N(rel), seed, sizes[i], chunk,
					      hint, NULL),
				  0);
			struct store_stat ss;
			EXPECT_RC(store_stat(g_st, N(rel), &ss), 0);
			CHECK(ss.size == sizes[i] && !ss.is_dir,
			      "%s: size %" PRIu64 ", want %" PRIu64, rel, ss.size,
			      sizes[i]);
			CHECK(ss.etag[0] != '\0', "%s: no etag", rel);
			int64_t got = read_check(g_st, N(rel), seed, 0, UINT64_MAX);
			CHECK(got == (int64_t)sizes[i],
			      "%s: read back %" PRId64 " of %" PRIu64, rel, got,
			      sizes[i]);
			if (sizes[i] > 10) {
				unsigned char b[10], w[10];
				uint64_t off = sizes[i] / 2;
				EXPECT_RC(store_pread(g_st, N(rel), b, 10, off), 10);
				fill(seed, off, w, 10);
				CHECK(!memcmp(b, w, 10), "%s: pread mismatch", rel);
			}
		}
	}
	/* A writer that writes nothing and commits makes an empty object;
	 * zero-length writes are no-ops. */
	struct store_writer *w;
	EXPECT_RC(store_writer_open(g_st, N("empty2"), NULL, &w), 0);
	EXPECT_RC(store_writer_write(w, "", 0), 0);
	EXPECT_RC(store_writer_commit(w), 0);
	struct store_stat ss;
	EXPECT_RC(store_stat(g_st, N("empty2"), &ss), 0);
	CHECK(ss.size == 0, "empty2 size %" PRIu64, ss.size);
	return 0;
}

static int case_overwrite(void)
{
	uint64_t big = g_part + 100;
	EXPECT_RC(put_pattern(g_st, N("o.bin"), 11, big, 0, 1, NULL), 0);
	EXPECT_RC(put_pattern(g_st, N("o.bin"), 12, 10, 0, 1, NULL), 0);
	struct store_stat ss;
	EXPECT_RC(store_stat(g_st, N("o.bin"), &ss), 0);
	CHECK(ss.size == 10, "size after shrinking overwrite %" PRIu64, ss.size);
	EXPECT_RC(read_check(g_st, N("o.bin"), 12, 0, UINT64_MAX), 10);
	char etag1[STORE_ETAG_MAX];
	snprintf(etag1, sizeof etag1, "%s", ss.etag);
	EXPECT_RC(put_pattern(g_st, N("o.bin"), 13, 10, 0, 1, NULL), 0);
	EXPECT_RC(store_stat(g_st, N("o.bin"), &ss), 0);
	CHECK(strcmp(etag1, ss.etag) != 0, "etag unchanged by new content");
	return 0;
}

static int case_ranges(void)
{
	uint64_t n = g_part + 1000;
	EXPECT_RC(put_pattern(g_st, N("r.bin"), 21, n, 0, 1, NULL), 0);
	struct {
		uint64_t off, len, want;
	} r[] = {
		{ 0, 1, 1 },
		{ 0, 0, 0 },
		{ 1, 1, 1 },
		{ n - 1, 1, 1 },
		{ n - 1, 100, 1 },
		{ n - 10, UINT64_MAX, 10 },
		{ n, 10, 0 },
		{ n, UINT64_MAX, 0 },
		{ n + 100, 10, 0 },
		{ 5, UINT64_MAX, n - 5 },
		{ 5, n - 5, n - 5 },
		{ 5, n, n - 5 },
		{ g_part - 1, 2, 2 },
		{ g_part / 2, g_part / 4, g_part / 4 },
		{ g_part / 2, g_part, n - g_part / 2 },
		{ 0, n, n },
		{ 0, UINT64_MAX - 1, n },
		{ UINT64_MAX - 1, 10, 0 },
	};
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
		int64_t got = read_check(g_st, N("r.bin"), 21, r[i].off, r[i].len);
		CHECK(got == (int64_t)r[i].want,
		      "range #%zu [%" PRIu64 ", +%" PRIu64 "): %" PRId64
		      ", want %" PRIu64,
		      i, r[i].off, r[i].len, got, r[i].want);
	}
	/* the stat that comes with a ranged open is the whole object's */
	struct store_reader *rd;
	struct store_stat ss;
	EXPECT_RC(store_reader_open(g_st, N("r.bin"), 10, 10, &rd, &ss), 0);
	CHECK(ss.size == n, "reader stat size %" PRIu64, ss.size);
	store_reader_close(rd);
	/* an empty object */
	EXPECT_RC(store_put(g_st, N("e.bin"), "", 0, NULL), 0);
	EXPECT_RC(read_check(g_st, N("e.bin"), 0, 0, UINT64_MAX), 0);
	EXPECT_RC(read_check(g_st, N("e.bin"), 0, 0, 1), 0);
	EXPECT_RC(read_check(g_st, N("e.bin"), 0, 5, 1), 0);
	return 0;
}

struct putter {
	int from, to, rc;
};

static void *putter_main(void *arg)
{
	struct putter *p = arg;
	for (int i = p->from; i < p->to && p->rc == 0; i++) {
		char rel[64], data[32];
		if (i % 25 == 24)
			snprintf(rel, sizeof rel, "d%03d/k%05d", i / 250, i);
		else
			snprintf(rel, sizeof rel, "k%05d", i);
		int len = snprintf(data, sizeof data, "%d", i);
		/* not N(): its ring of buffers is not thread-safe */
		char name[STORE_NAME_MAX];
		snprintf(name, sizeof name, "%s%s", g_base, rel);
		p->rc = store_put(g_st, name, data, (size_t)len, NULL);
	}
	return NULL;
}

static int case_list_pages(void)
{
	int nkeys = g_keys;
	enum { T = 4 };
	pthread_t th[T];
	struct putter pu[T];
	for (int t = 0; t < T; t++) {
		pu[t] = (struct putter){ nkeys * t / T, nkeys * (t + 1) / T, 0 };
		pthread_create(&th[t], NULL, putter_main, &pu[t]);
	}
	for (int t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		EXPECT_RC(pu[t].rc, 0);
	}
	int ndirs = (nkeys + 249) / 250;
	int nsub = nkeys / 25;

	/* recursive: every key, in byte order */
	struct collect c;
	EXPECT_RC(list_into(g_st, g_base, 0, NULL, &c), 0);
	size_t n = c.n;
	int order = c.bad_order;
	int sizes_ok = 1;
	for (size_t i = 0; i < c.n; i++) {
		const char *nm = c.names[i] + strlen(g_base);
		const char *k = strrchr(nm, 'k');
		char want[16];
		snprintf(want, sizeof want, "%d", k ? atoi(k + 1) : -1);
		if (c.dirs[i] || c.sizes[i] != strlen(want))
			sizes_ok = 0;
	}
	collect_free(&c);
	CHECK(n == (size_t)nkeys, "recursive listing: %zu keys, want %d", n,
	      nkeys);
	CHECK(!order, "recursive listing out of byte order");
	CHECK(sizes_ok, "recursive listing: wrong sizes or dir entries");

	/* delimited: the top-level keys and the directories */
	EXPECT_RC(list_into(g_st, g_base, '/', NULL, &c), 0);
	n = c.n;
	order = c.bad_order;
	size_t dirs = 0;
	for (size_t i = 0; i < c.n; i++)
		dirs += (size_t)c.dirs[i];
	collect_free(&c);
	CHECK(n == (size_t)(nkeys - nsub + ndirs),
	      "delimited listing: %zu entries, want %d", n,
	      nkeys - nsub + ndirs);
	CHECK(dirs == (size_t)ndirs, "delimited listing: %zu dirs, want %d",
	      dirs, ndirs);
	CHECK(!order, "delimited listing out of byte order");

	/* resume after a name */
	char after[STORE_NAME_MAX];
	snprintf(after, sizeof after, "%sk%05d", g_base, nkeys / 2);
	EXPECT_RC(list_into(g_st, g_base, 0, after, &c), 0);
	char first[STORE_NAME_MAX];
	snprintf(first, sizeof first, "%s", c.n ? c.names[0] : "");
	n = c.n;
	collect_free(&c);
	char want_first[STORE_NAME_MAX];
	snprintf(want_first, sizeof want_first, "%sk%05d", g_base,
		 nkeys / 2 + 1);
	CHECK(!strcmp(first, want_first), "start_after %s: first %s, want %s",
	      after, first, want_first);
	CHECK(n > 0 && n < (size_t)nkeys, "start_after: %zu entries", n);

	/* resume after a directory entry: it is not reported again */
	snprintf(after, sizeof after, "%sd000/", g_base);
	EXPECT_RC(list_into(g_st, g_base, '/', after, &c), 0);
	snprintf(first, sizeof first, "%s", c.n ? c.names[0] : "");
	collect_free(&c);
	CHECK(strcmp(first, after) > 0, "delimited start_after %s: first %s",
	      after, first);

	/* a callback stops the listing, and its value comes back */
	memset(&c, 0, sizeof c);
	c.stop_after = nkeys / 2 + 3;
	int rc = store_list(g_st, g_base, 0, NULL, collect_cb, &c);
	n = c.n;
	collect_free(&c);
	EXPECT_RC(rc, 7);
	CHECK(n == (size_t)(nkeys / 2 + 3), "stopped after %zu", n);

	/* a prefix that is not a folder: string prefix semantics */
	snprintf(after, sizeof after, "%sk001", g_base);
	EXPECT_RC(list_into(g_st, after, '/', NULL, &c), 0);
	n = c.n;
	order = c.bad_order;
	collect_free(&c);
	size_t want = 0;
	for (int k = 100; k < 200 && k < nkeys; k++)
		want += k % 25 != 24;
	CHECK(n == want && !order, "prefix k001: %zu entries, want %zu", n,
	      want);
	return 0;
}

static int case_delimiters(void)
{
	EXPECT_RC(store_put(g_st, N("a.txt"), "1", 1, NULL), 0);
	EXPECT_RC(store_put(g_st, N("a/b.txt"), "22", 2, NULL), 0);
	EXPECT_RC(store_put(g_st, N("a/c/d.txt"), "333", 3, NULL), 0);
	EXPECT_RC(store_put(g_st, N("a-b"), "4444", 4, NULL), 0);
	EXPECT_RC(store_put(g_st, N("a0"), "5", 1, NULL), 0);
	EXPECT_RC(store_mkdir(g_st, N("e")), 0);
	EXPECT_RC(store_put(g_st, N("f/g/h"), "6", 1, NULL), 0);

	EXPECT_LIST("", '/', "a-b", "a.txt", "a/", "a0", "e/", "f/");
	EXPECT_LIST("", 0, "a-b", "a.txt", "a/b.txt", "a/c/d.txt", "a0",
		    "f/g/h");
	EXPECT_LIST("a/", '/', "a/b.txt", "a/c/");
	EXPECT_LIST("a/", 0, "a/b.txt", "a/c/d.txt");
	EXPECT_LIST("a", '/', "a-b", "a.txt", "a/", "a0");
	EXPECT_LIST("a/c", '/', "a/c/");
	EXPECT_LIST("f/", '/', "f/g/");
	EXPECT_EMPTY_LIST("e/", '/');
	EXPECT_EMPTY_LIST("e/", 0);
	EXPECT_EMPTY_LIST("nothing/", '/');
	EXPECT_EMPTY_LIST("zzz", 0);

	/* sizes come with the entries */
	struct collect c;
	EXPECT_RC(list_into(g_st, N("a/"), 0, NULL, &c), 0);
	int ok = c.n == 2 && c.sizes[0] == 2 && c.sizes[1] == 3;
	collect_free(&c);
	CHECK(ok, "listing sizes");

	/* invalid prefixes and delimiters */
	EXPECT_RC(store_list(g_st, "../", '/', NULL, collect_cb, &c), STORE_EINVAL);
	EXPECT_RC(store_list(g_st, "/abs", '/', NULL, collect_cb, &c), STORE_EINVAL);
	EXPECT_RC(store_list(g_st, "a//", '/', NULL, collect_cb, &c), STORE_EINVAL);
	EXPECT_RC(store_list(g_st, "", ',', NULL, collect_cb, &c), STORE_EINVAL);
	return 0;
}

/* store_list_tree gives every name below a prefix, at any depth, in
 * whatever order: compare as sets, "x/" meaning a directory entry. */
static int expect_tree(const char *prefix, const char *const *want,
		       size_t nwant, int line)
{
	struct collect c;
	size_t bl = strlen(g_base), i, j;
	int ok;

	memset(&c, 0, sizeof c);
	int rc = store_list_tree(g_st, N(prefix), collect_cb, &c);
	ok = rc == 0 && c.n == nwant;
	for (i = 0; ok && i < nwant; i++) {
		size_t wl = strlen(want[i]);
		for (j = 0; j < c.n; j++)
			if (strncmp(c.names[j], g_base, bl) == 0 &&
			    strcmp(c.names[j] + bl, want[i]) == 0 &&
			    c.dirs[j] == (wl && want[i][wl - 1] == '/'))
				break;
		ok = j < c.n;
	}
	size_t got = c.n;
	collect_free(&c);
	if (!ok)
		set_fail(line, "list_tree '%s': rc %d, %zu entries, want %zu",
			 prefix, rc, got, nwant);
	return ok ? 0 : -1;
}

#define EXPECT_TREE(prefix, ...)                                           \
	do {                                                               \
		static const char *const w_[] = { __VA_ARGS__ };           \
		if (expect_tree(prefix, w_, sizeof w_ / sizeof w_[0],      \
				__LINE__) < 0)                             \
			return -1;                                         \
	} while (0)

static int case_list_tree(void)
{
	/* Directories made explicitly: both backends then have them (fs
	 * always, S3 as markers). */
	EXPECT_RC(store_mkdir(g_st, N("a/c")), 0);
	EXPECT_RC(store_mkdir(g_st, N("e")), 0);
	EXPECT_RC(store_put(g_st, N("a.txt"), "1", 1, NULL), 0);
	EXPECT_RC(store_put(g_st, N("a/b.txt"), "22", 2, NULL), 0);
	EXPECT_RC(store_put(g_st, N("a/c/d.txt"), "333", 3, NULL), 0);
	EXPECT_RC(store_put(g_st, N("a-b"), "4444", 4, NULL), 0);
	EXPECT_TREE("", "a.txt", "a/", "a/b.txt", "a/c/", "a/c/d.txt", "a-b",
		    "e/");
	EXPECT_TREE("a/", "a/b.txt", "a/c/", "a/c/d.txt");
	EXPECT_TREE("a/c/", "a/c/d.txt");
	EXPECT_TREE("a", "a.txt", "a/", "a/b.txt", "a/c/", "a/c/d.txt", "a-b");

	/* sizes come with the entries; a callback's value stops it */
	struct collect c;
	memset(&c, 0, sizeof c);
	EXPECT_RC(store_list_tree(g_st, N("a/c/"), collect_cb, &c), 0);
	int ok = c.n == 1 && c.sizes[0] == 3 && !c.dirs[0];
	collect_free(&c);
	CHECK(ok, "list_tree sizes");
	c.stop_after = 2;
	EXPECT_RC(store_list_tree(g_st, N(""), collect_cb, &c), 7);
	ok = c.n == 2;
	collect_free(&c);
	CHECK(ok, "list_tree did not stop");

	/* nothing there is an empty listing, not an error */
	memset(&c, 0, sizeof c);
	EXPECT_RC(store_list_tree(g_st, N("e/"), collect_cb, &c), 0);
	ok = c.n == 0;
	collect_free(&c);
	CHECK(ok, "list_tree of an empty directory");
	EXPECT_RC(store_list_tree(g_st, "../", collect_cb, &c), STORE_EINVAL);

	/* whether a level's listing reads the whole tree: only the S3
	 * roll-up for servers with incomplete delimiter listings */
	const char *cd = getenv("ASSETD_S3_CLIENT_DELIMITER");
	CHECK(store_list_reads_tree(g_st) ==
		      (store_is_s3(g_st) && cd && strcmp(cd, "0") != 0 && *cd),
	      "store_list_reads_tree");
	return 0;
}

static int case_directories(void)
{
	struct store_stat ss;
	EXPECT_RC(store_mkdir(g_st, N("x")), 0);
	EXPECT_RC(store_stat(g_st, N("x"), &ss), 0);
	CHECK(ss.is_dir && ss.size == 0, "x is not a dir");
	EXPECT_RC(store_stat(g_st, N("x/"), &ss), 0);
	CHECK(ss.is_dir, "x/ is not a dir");
	EXPECT_RC(store_mkdir(g_st, N("x")), STORE_EEXIST);
	EXPECT_EMPTY_LIST("x/", '/');
	EXPECT_LIST("", '/', "x/");

	EXPECT_RC(store_put(g_st, N("x/f"), "f", 1, NULL), 0);
	EXPECT_RC(store_rmdir(g_st, N("x")), STORE_ENOTEMPTY);
	EXPECT_RC(store_delete(g_st, N("x")), STORE_EISDIR);
	EXPECT_RC(store_delete(g_st, N("x/f")), 0);
	EXPECT_RC(store_stat(g_st, N("x"), &ss), 0);
	CHECK(ss.is_dir, "x vanished with its last file");
	EXPECT_RC(store_rmdir(g_st, N("x")), 0);
	EXPECT_RC(store_stat(g_st, N("x"), &ss), STORE_ENOENT);
	EXPECT_RC(store_rmdir(g_st, N("x")), STORE_ENOENT);

	/* nested mkdir makes the parents */
	EXPECT_RC(store_mkdir(g_st, N("p/q/r")), 0);
	EXPECT_RC(store_stat(g_st, N("p/q/r"), &ss), 0);
	CHECK(ss.is_dir, "p/q/r not a dir");
	EXPECT_RC(store_stat(g_st, N("p"), &ss), 0);
	CHECK(ss.is_dir, "p not a dir");
	EXPECT_LIST("p/", '/', "p/q/");
	EXPECT_RC(store_rmdir(g_st, N("p")), STORE_ENOTEMPTY);
	EXPECT_RC(store_rmdir(g_st, N("p/q/r")), 0);
	EXPECT_RC(store_rmdir(g_st, N("p/q")), 0);
	EXPECT_RC(store_rmdir(g_st, N("p")), 0);

	/* a directory implied by an object's name */
	EXPECT_RC(store_put(g_st, N("imp/deep/f.txt"), "x", 1, NULL), 0);
	EXPECT_RC(store_stat(g_st, N("imp"), &ss), 0);
	CHECK(ss.is_dir, "imp not a dir");
	EXPECT_RC(store_stat(g_st, N("imp/deep"), &ss), 0);
	CHECK(ss.is_dir, "imp/deep not a dir");
	EXPECT_RC(store_reader_open(g_st, N("imp"), 0, 1,
				    &(struct store_reader *){ NULL }, NULL),
		  STORE_EISDIR);
	EXPECT_RC(store_mkdir(g_st, N("imp")), STORE_EEXIST);

	/* the root */
	EXPECT_RC(store_stat(g_st, "", &ss), 0);
	CHECK(ss.is_dir, "root not a dir");
	EXPECT_RC(store_mkdir(g_st, ""), STORE_EEXIST);
	EXPECT_RC(store_rmdir(g_st, ""), STORE_EINVAL);
	return 0;
}

static int case_copy(void)
{
	struct store_put_opts po = { .mtime = 1500000000,
				     .content_type = "image/x-test" };
	uint64_t big = g_part + 1;
	EXPECT_RC(put_pattern(g_st, N("src.bin"), 31, big, 0, 1, &po), 0);
	EXPECT_RC(store_copy(g_st, N("src.bin"), g_st, N("dst/copy.bin")), 0);
	EXPECT_RC(read_check(g_st, N("dst/copy.bin"), 31, 0, UINT64_MAX),
		  (int64_t)big);
	struct store_stat ss;
	EXPECT_RC(store_stat(g_st, N("dst/copy.bin"), &ss), 0);
	CHECK(ss.mtime == 1500000000, "copy mtime %" PRId64, ss.mtime);
	CHECK(!strcmp(ss.content_type, "image/x-test"), "copy ctype %s",
	      ss.content_type);
	EXPECT_RC(read_check(g_st, N("src.bin"), 31, 0, UINT64_MAX),
		  (int64_t)big);
	/* copy over an existing object replaces it */
	EXPECT_RC(store_put(g_st, N("small.txt"), "small", 5, NULL), 0);
	EXPECT_RC(store_copy(g_st, N("small.txt"), g_st, N("dst/copy.bin")), 0);
	EXPECT_RC(store_stat(g_st, N("dst/copy.bin"), &ss), 0);
	CHECK(ss.size == 5, "replaced copy size %" PRIu64, ss.size);
	/* errors */
	EXPECT_RC(store_copy(g_st, N("missing"), g_st, N("x")), STORE_ENOENT);
	EXPECT_RC(store_stat(g_st, N("x"), &ss), STORE_ENOENT);
	EXPECT_RC(store_copy(g_st, N("src.bin"), g_st, "../x"), STORE_EINVAL);
	EXPECT_RC(store_mkdir(g_st, N("adir")), 0);
	EXPECT_RC(store_copy(g_st, N("adir"), g_st, N("y")), STORE_EISDIR);

	/* between two stores: another location (another backend when the
	 * caller gave one, else a sub-folder opened as its own location) */
	char url2[STORE_URL_MAX];
	if (g_other_url) {
		snprintf(url2, sizeof url2, "%s", g_other_url);
	} else {
		snprintf(url2, sizeof url2, "%s%s%s", store_url(g_st), g_base,
			 "other/");
		EXPECT_RC(store_mkdir(g_st, N("other")), 0);
	}
	struct store *o;
	EXPECT_RC(store_open(url2, &g_opts, &o), 0);
	char oname[STORE_NAME_MAX];
	snprintf(oname, sizeof oname, "x-%s", N("c.bin"));
	for (char *s = oname; *s; s++)
		if (*s == '/')
			*s = '_';
	int rc = store_copy(g_st, N("src.bin"), o, oname);
	if (rc == 0)
		rc = read_check(o, oname, 31, 0, UINT64_MAX) == (int64_t)big
			     ? 0
			     : STORE_EIO;
	struct store_stat os;
	if (rc == 0)
		rc = store_stat(o, oname, &os);
	if (rc == 0 && (os.mtime != 1500000000 ||
			strcmp(os.content_type, "image/x-test")))
		rc = -100;
	/* and back */
	if (rc == 0)
		rc = store_copy(o, oname, g_st, N("back.bin"));
	if (rc == 0)
		rc = read_check(g_st, N("back.bin"), 31, 0, UINT64_MAX) ==
				     (int64_t)big
			     ? 0
			     : STORE_EIO;
	store_delete(o, oname);
	store_close(o);
	CHECK(rc == 0, "copy between stores (%s): %d %s", url2, rc,
	      store_strerror(rc));
	return 0;
}

static int case_rename(void)
{
	struct store_stat ss;
	struct store_put_opts po = { .mtime = 1400000000 };
	EXPECT_RC(store_put(g_st, N("a.txt"), "aaa", 3, &po), 0);
	EXPECT_RC(store_rename(g_st, N("a.txt"), N("b.txt"), 0), 0);
	EXPECT_RC(store_stat(g_st, N("a.txt"), &ss), STORE_ENOENT);
	EXPECT_RC(store_stat(g_st, N("b.txt"), &ss), 0);
	CHECK(ss.size == 3 && ss.mtime == 1400000000,
	      "renamed file size %" PRIu64 " mtime %" PRId64, ss.size, ss.mtime);

	/* noreplace refuses and leaves both; replace replaces */
	EXPECT_RC(store_put(g_st, N("c.txt"), "cccc", 4, NULL), 0);
	EXPECT_RC(store_rename(g_st, N("c.txt"), N("b.txt"), 1), STORE_EEXIST);
	EXPECT_RC(store_stat(g_st, N("c.txt"), &ss), 0);
	CHECK(ss.size == 4, "c.txt damaged");
	EXPECT_RC(store_stat(g_st, N("b.txt"), &ss), 0);
	CHECK(ss.size == 3, "b.txt damaged");
	EXPECT_RC(store_rename(g_st, N("c.txt"), N("b.txt"), 0), 0);
	EXPECT_RC(store_stat(g_st, N("b.txt"), &ss), 0);
	CHECK(ss.size == 4, "b.txt not replaced");
	EXPECT_RC(store_stat(g_st, N("c.txt"), &ss), STORE_ENOENT);
	EXPECT_RC(store_rename(g_st, N("b.txt"), N("b.txt"), 0), 0);
	EXPECT_RC(store_rename(g_st, N("b.txt"), N("b.txt"), 1), STORE_EEXIST);

	/* into a folder that does not exist yet */
	EXPECT_RC(store_rename(g_st, N("b.txt"), N("new/dir/b.txt"), 1), 0);
	EXPECT_RC(store_stat(g_st, N("new/dir/b.txt"), &ss), 0);

	/* a directory, recursively */
	EXPECT_RC(store_put(g_st, N("d/one"), "1", 1, NULL), 0);
	EXPECT_RC(store_put(g_st, N("d/sub/two"), "22", 2, NULL), 0);
	EXPECT_RC(store_mkdir(g_st, N("d/empty")), 0);
	uint64_t big = g_part + 7;
	EXPECT_RC(put_pattern(g_st, N("d/sub/big"), 41, big, 0, 1, NULL), 0);
	EXPECT_RC(store_rename(g_st, N("d"), N("e"), 1), 0);
	EXPECT_EMPTY_LIST("d/", 0);
	EXPECT_RC(store_stat(g_st, N("d"), &ss), STORE_ENOENT);
	EXPECT_LIST("e/", 0, "e/one", "e/sub/big", "e/sub/two");
	EXPECT_LIST("e/", '/', "e/empty/", "e/one", "e/sub/");
	EXPECT_RC(read_check(g_st, N("e/sub/big"), 41, 0, UINT64_MAX),
		  (int64_t)big);
	/* a directory onto an existing name, without replacing */
	EXPECT_RC(store_put(g_st, N("f/x"), "x", 1, NULL), 0);
	EXPECT_RC(store_rename(g_st, N("e"), N("f"), 1), STORE_EEXIST);
	EXPECT_LIST("e/", 0, "e/one", "e/sub/big", "e/sub/two");

	/* errors */
	EXPECT_RC(store_rename(g_st, N("missing"), N("x"), 0), STORE_ENOENT);
	EXPECT_RC(store_rename(g_st, N("e"), N("e/inside"), 0), STORE_EINVAL);
	EXPECT_RC(store_rename(g_st, N("e/one"), "../x", 0), STORE_EINVAL);
	EXPECT_RC(store_rename(g_st, "", N("x"), 0), STORE_EINVAL);
	return 0;
}

static int case_metadata(void)
{
	struct store_stat ss;
	time_t now = time(NULL);
	EXPECT_RC(store_put(g_st, N("now.jpg"), "j", 1, NULL), 0);
	EXPECT_RC(store_stat(g_st, N("now.jpg"), &ss), 0);
	CHECK(ss.mtime >= now - 60 && ss.mtime <= now + 60,
	      "default mtime %" PRId64 " vs now %lld", ss.mtime, (long long)now);
	CHECK(!strcmp(ss.content_type, "image/jpeg"), "ctype %s",
	      ss.content_type);

	struct store_put_opts po = { .mtime = 1234567890 };
	EXPECT_RC(store_put(g_st, N("old.PDF"), "%PDF", 4, &po), 0);
	EXPECT_RC(store_stat(g_st, N("old.PDF"), &ss), 0);
	CHECK(ss.mtime == 1234567890, "client mtime %" PRId64, ss.mtime);
	CHECK(!strcmp(ss.content_type, "application/pdf"), "ctype %s",
	      ss.content_type);
	EXPECT_RC(store_set_mtime(g_st, N("old.PDF"), 1000000000), 0);
	EXPECT_RC(store_stat(g_st, N("old.PDF"), &ss), 0);
	CHECK(ss.mtime == 1000000000, "set mtime %" PRId64, ss.mtime);
	CHECK(ss.size == 4, "set_mtime changed the size");
	CHECK(!strcmp(ss.content_type, "application/pdf"),
	      "set_mtime changed ctype: %s", ss.content_type);
	EXPECT_RC(read_check(g_st, N("old.PDF"), 0, 0, 0), 0);
	char b[4];
	EXPECT_RC(store_pread(g_st, N("old.PDF"), b, 4, 0), 4);
	CHECK(!memcmp(b, "%PDF", 4), "content changed by set_mtime");
	EXPECT_RC(store_set_mtime(g_st, N("missing"), 1), STORE_ENOENT);

	struct store_put_opts pc = { .content_type = "text/x-custom" };
	EXPECT_RC(store_put(g_st, N("c.jpg"), "x", 1, &pc), 0);
	EXPECT_RC(store_stat(g_st, N("c.jpg"), &ss), 0);
	CHECK(!strcmp(ss.content_type, "text/x-custom"), "explicit ctype %s",
	      ss.content_type);
	EXPECT_RC(store_put(g_st, N("noext"), "x", 1, NULL), 0);
	EXPECT_RC(store_stat(g_st, N("noext"), &ss), 0);
	CHECK(!strcmp(ss.content_type, "application/octet-stream"),
	      "noext ctype %s", ss.content_type);

	/* listing: the client mtime, where the backend reports one */
	struct collect c;
	EXPECT_RC(list_into(g_st, N("old"), 0, NULL, &c), 0);
	int ok = c.n == 1 && (!c.client[0] || c.mtimes[0] == 1000000000);
	collect_free(&c);
	CHECK(ok, "listing mtime");

	/* stat through the reader */
	struct store_reader *r;
	EXPECT_RC(store_reader_open(g_st, N("old.PDF"), 0, UINT64_MAX, &r, &ss),
		  0);
	store_reader_close(r);
	CHECK(ss.mtime == 1000000000 && ss.size == 4 &&
		      !strcmp(ss.content_type, "application/pdf"),
	      "reader stat");
	return 0;
}

static int case_errors(void)
{
	struct store_stat ss;
	struct store_reader *r = NULL;
	struct store_writer *w = NULL;
	char b[4];
	/* missing */
	EXPECT_RC(store_stat(g_st, N("missing"), &ss), STORE_ENOENT);
	EXPECT_RC(store_stat(g_st, N("missing/deeper"), &ss), STORE_ENOENT);
	EXPECT_RC(store_reader_open(g_st, N("missing"), 0, 1, &r, NULL),
		  STORE_ENOENT);
	CHECK(r == NULL, "reader set on failure");
	EXPECT_RC(store_pread(g_st, N("missing"), b, 4, 0), STORE_ENOENT);
	EXPECT_RC(store_delete(g_st, N("missing")), STORE_ENOENT);
	EXPECT_RC(store_rmdir(g_st, N("missing")), STORE_ENOENT);

	/* invalid names, on every operation */
	static const char *const bad[] = {
		"../x", "/abs", "a//b", "a/./b", "a/../../b", ".", "..",
		"a\\b", "a\nb", "\x7f", "bad\xff", "\xc0\xae\xc0\xae",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *nm = bad[i];
		EXPECT_RC(store_stat(g_st, nm, &ss), STORE_EINVAL);
		EXPECT_RC(store_reader_open(g_st, nm, 0, 1, &r, NULL),
			  STORE_EINVAL);
		EXPECT_RC(store_writer_open(g_st, nm, NULL, &w), STORE_EINVAL);
		CHECK(w == NULL, "writer set on failure");
		EXPECT_RC(store_put(g_st, nm, "x", 1, NULL), STORE_EINVAL);
		EXPECT_RC(store_delete(g_st, nm), STORE_EINVAL);
		EXPECT_RC(store_mkdir(g_st, nm), STORE_EINVAL);
		EXPECT_RC(store_rmdir(g_st, nm), STORE_EINVAL);
		EXPECT_RC(store_rename(g_st, nm, N("x"), 0), STORE_EINVAL);
		EXPECT_RC(store_rename(g_st, N("x"), nm, 0), STORE_EINVAL);
		EXPECT_RC(store_copy(g_st, nm, g_st, N("x")), STORE_EINVAL);
		EXPECT_RC(store_set_mtime(g_st, nm, 1), STORE_EINVAL);
	}
	char *longname = malloc(1100);
	memset(longname, 'a', 1099);
	for (int i = 200; i < 1099; i += 200)
		longname[i] = '/';
	longname[1099] = '\0';
	EXPECT_RC(store_put(g_st, longname, "x", 1, NULL), STORE_EINVAL);
	free(longname);
	/* a directory is not a file */
	EXPECT_RC(store_mkdir(g_st, N("dir")), 0);
	EXPECT_RC(store_reader_open(g_st, N("dir"), 0, 1, &r, NULL),
		  STORE_EISDIR);
	EXPECT_RC(store_delete(g_st, N("dir")), STORE_EISDIR);
	/* a file is not a directory */
	EXPECT_RC(store_put(g_st, N("file"), "x", 1, NULL), 0);
	int rrc = store_rmdir(g_st, N("file"));
	CHECK(rrc == STORE_ENOTDIR || (store_is_s3(g_st) && rrc == STORE_ENOENT),
	      "rmdir of a file: %s", store_strerror(rrc));
	/* opening bad locations */
	struct store *x = NULL;
	EXPECT_RC(store_open("ftp://host/x/", NULL, &x), STORE_EINVAL);
	EXPECT_RC(store_open("file://relative/", NULL, &x), STORE_EINVAL);
	EXPECT_RC(store_open("file:///nonexistent-assetd/x/", NULL, &x),
		  STORE_ENOENT);
	CHECK(x == NULL, "store set on failure");
	return 0;
}

/* Denied by the backend: on fs, a folder the (unprivileged) process may
 * not enter; on S3, a wrong secret key. */
static int case_denied(void)
{
	if (store_is_s3(g_st)) {
		const char *old = getenv("AWS_SECRET_ACCESS_KEY");
		char *saved = old ? strdup(old) : NULL;
		setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-for-test", 1);
		struct store *bad;
		int rc = store_open(g_url, &g_opts, &bad);
		int prc = 0, src = 0;
		struct store_stat ss;
		if (rc == 0) {
			prc = store_put(bad, N("denied.txt"), "x", 1, NULL);
			src = store_stat(bad, N("denied.txt"), &ss);
			store_close(bad);
		}
		if (saved)
			setenv("AWS_SECRET_ACCESS_KEY", saved, 1);
		else
			unsetenv("AWS_SECRET_ACCESS_KEY");
		free(saved);
		EXPECT_RC(rc, 0);
		CHECK(prc == STORE_EACCES || prc == STORE_EAUTH,
		      "put with a wrong secret: %s", store_strerror(prc));
		CHECK(src == STORE_EACCES || src == STORE_EAUTH,
		      "stat with a wrong secret: %s", store_strerror(src));
		EXPECT_RC(store_stat(g_st, N("denied.txt"), &ss), STORE_ENOENT);
		return 0;
	}
	EXPECT_RC(store_put(g_st, N("locked/f.txt"), "secret", 6, NULL), 0);
	EXPECT_RC(store_put(g_st, N("open.txt"), "open", 4, NULL), 0);
	char path[STORE_URL_MAX + 200];
	snprintf(path, sizeof path, "%s%s", store_url(g_st) + 7, N("locked"));
	CHECK(chmod(path, 0) == 0, "chmod %s: %s", path, strerror(errno));
	/* root passes permission checks: test as an unprivileged user */
	pid_t pid = fork();
	if (pid == 0) {
		if (geteuid() == 0) {
			struct passwd *pw = getpwnam("nobody");
			if (!pw || setgid(pw->pw_gid) || setuid(pw->pw_uid))
				_exit(90);
		}
		struct store_stat ss;
		char buf[8];
		if (store_stat(g_st, N("locked/f.txt"), &ss) != STORE_EACCES)
			_exit(1);
		if (store_pread(g_st, N("locked/f.txt"), buf, 6, 0) !=
		    STORE_EACCES)
			_exit(2);
		if (store_put(g_st, N("locked/g.txt"), "x", 1, NULL) !=
		    STORE_EACCES)
			_exit(3);
		if (store_delete(g_st, N("locked/f.txt")) != STORE_EACCES)
			_exit(4);
		struct collect c;
		if (list_into(g_st, N("locked/"), 0, NULL, &c) != STORE_EACCES)
			_exit(5);
		/* the rest of the location is unaffected */
		if (store_pread(g_st, N("open.txt"), buf, 4, 0) != 4)
			_exit(6);
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	chmod(path, 0755);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "unprivileged checks failed at step %d", WEXITSTATUS(status));
	struct store_stat ss;
	EXPECT_RC(store_stat(g_st, N("locked/f.txt"), &ss), 0);
	CHECK(ss.size == 6, "locked file damaged");
	return 0;
}

static int case_atomic(void)
{
	EXPECT_RC(store_put(g_st, N("f.txt"), "old content", 11, NULL), 0);
	struct store_writer *w;
	EXPECT_RC(store_writer_open(g_st, N("f.txt"), NULL, &w), 0);
	uint64_t big = g_part + 3;
	unsigned char *buf = malloc(big);
	fill(51, 0, buf, big);
	int rc = store_writer_write(w, buf, big / 2);
	/* Bytes written can be read back where the writer keeps them (fs:
	 * its temp file); S3 sends them away and says so. */
	unsigned char back[100], want[100], end[100];
	fill(51, 1000, want, sizeof want);
	int readable = store_writer_readable(w);
	ssize_t bn = store_writer_pread(w, back, sizeof back, 1000);
	ssize_t tail = store_writer_pread(w, end, sizeof end, big / 2 - 10);
	ssize_t past = store_writer_pread(w, end, sizeof end, big / 2);
	char rd[32] = "";
	ssize_t n = store_pread(g_st, N("f.txt"), rd, sizeof rd, 0);
	struct store_stat ss;
	int src = store_stat(g_st, N("f.txt"), &ss);
	struct collect c;
	int lrc = list_into(g_st, g_base, 0, NULL, &c);
	size_t listed = c.n;
	int only_f = c.n == 1 && !strcmp(c.names[0], N("f.txt")) &&
		     c.sizes[0] == 11;
	collect_free(&c);
	if (rc == 0)
		rc = store_writer_write(w, buf + big / 2, big - big / 2);
	free(buf);
	if (rc < 0)
		store_writer_abort(w);
	EXPECT_RC(rc, 0);
	if (strncmp(g_url, "file://", 7) == 0)
		CHECK(readable && bn == (ssize_t)sizeof back &&
			      tail == 10 && past == 0,
		      "fs writer read back: %d %zd %zd %zd", readable, bn,
		      tail, past);
	else
		CHECK(!readable && bn == STORE_EINVAL,
		      "s3 writer read back: %d %zd", readable, bn);
	CHECK(memcmp(back, want, sizeof want) == 0 || !readable,
	      "read back other bytes than written");
	CHECK(n == 11 && !memcmp(rd, "old content", 11),
	      "reader during write saw %zd bytes", n);
	CHECK(src == 0 && ss.size == 11, "stat during write: %d size %" PRIu64,
	      src, ss.size);
	CHECK(lrc == 0 && only_f, "listing during write: %zu entries", listed);
	EXPECT_RC(store_writer_commit(w), 0);
	EXPECT_RC(read_check(g_st, N("f.txt"), 51, 0, UINT64_MAX), (int64_t)big);

	/* an aborted writer leaves the old object and nothing else */
	EXPECT_RC(store_writer_open(g_st, N("f.txt"), NULL, &w), 0);
	EXPECT_RC(store_writer_write(w, "new", 3), 0);
	store_writer_abort(w);
	EXPECT_RC(read_check(g_st, N("f.txt"), 51, 0, UINT64_MAX), (int64_t)big);
	/* a new name aborted: nothing appears */
	EXPECT_RC(store_writer_open(g_st, N("g.txt"), NULL, &w), 0);
	EXPECT_RC(store_writer_write(w, "new", 3), 0);
	store_writer_abort(w);
	EXPECT_RC(store_stat(g_st, N("g.txt"), &ss), STORE_ENOENT);
	EXPECT_LIST("", 0, "f.txt");
	return 0;
}

static int case_exclusive(void)
{
	struct store_put_opts ex = { .exclusive = 1 };
	EXPECT_RC(store_put(g_st, N("x.txt"), "first", 5, &ex), 0);
	EXPECT_RC(store_put(g_st, N("x.txt"), "second", 6, &ex), STORE_EEXIST);
	char b[16] = "";
	EXPECT_RC(store_pread(g_st, N("x.txt"), b, sizeof b, 0), 5);
	CHECK(!memcmp(b, "first", 5), "exclusive create damaged the object");
	/* two exclusive writers racing for one name: one wins */
	struct store_writer *w1, *w2;
	EXPECT_RC(store_writer_open(g_st, N("y.txt"), &ex, &w1), 0);
	EXPECT_RC(store_writer_open(g_st, N("y.txt"), &ex, &w2), 0);
	EXPECT_RC(store_writer_write(w1, "one", 3), 0);
	EXPECT_RC(store_writer_write(w2, "two!", 4), 0);
	EXPECT_RC(store_writer_commit(w1), 0);
	EXPECT_RC(store_writer_commit(w2), STORE_EEXIST);
	EXPECT_RC(store_pread(g_st, N("y.txt"), b, sizeof b, 0), 3);
	CHECK(!memcmp(b, "one", 3), "the loser replaced the winner");
	EXPECT_LIST("", 0, "x.txt", "y.txt");
	/* on fs a directory's name is taken for files (on S3 "d" and "d/"
	 * are different keys) */
	if (!store_is_s3(g_st)) {
		EXPECT_RC(store_mkdir(g_st, N("d")), 0);
		EXPECT_RC(store_put(g_st, N("d"), "x", 1, &ex), STORE_EISDIR);
		EXPECT_RC(store_put(g_st, N("d"), "x", 1, NULL), STORE_EISDIR);
	}
	return 0;
}

static int case_names(void)
{
	static const char *const names[] = {
		"with space.jpg",      "plus+sign.png",   "per%cent%20.txt",
		"%2e%2e",              "caf\xc3\xa9.tif", "\xe6\x97\xa5\xe6\x9c\xac/\xe5\x9b\xbe.jpg",
		"emoji\xf0\x9f\x90\x9f", "q?x=1&y=2",     "semi;colon",
		"quote\"s'",           "tilde~",          "hash#frag",
		"...",                 ".hidden",         "UPPER.JPG",
	};
	size_t nn = sizeof names / sizeof names[0];
	for (size_t i = 0; i < nn; i++) {
		char data[8];
		int len = snprintf(data, sizeof data, "%zu", i);
		EXPECT_RC(store_put(g_st, N(names[i]), data, (size_t)len, NULL), 0);
		char b[8] = "";
		EXPECT_RC(store_pread(g_st, N(names[i]), b, sizeof b, 0), len);
		CHECK(!memcmp(b, data, (size_t)len), "content of %s", names[i]);
	}
	/* a 1,024-byte name (S3's limit) */
	char longname[STORE_NAME_MAX];
	size_t bl = strlen(g_base);
	size_t o = 0;
	while (o < 1024 - bl) {
		size_t n = 1024 - bl - o > 200 ? 199 : 1024 - bl - o;
		memset(longname + o, 'L', n);
		o += n;
		if (o < 1024 - bl)
			longname[o++] = '/';
	}
	longname[o] = '\0';
	CHECK(strlen(N(longname)) == 1024, "long name is %zu",
	      strlen(N(longname)));
	EXPECT_RC(store_put(g_st, N(longname), "long", 4, NULL), 0);
	struct store_stat ss;
	EXPECT_RC(store_stat(g_st, N(longname), &ss), 0);
	CHECK(ss.size == 4, "long name size");

	struct collect c;
	EXPECT_RC(list_into(g_st, g_base, 0, NULL, &c), 0);
	size_t n = c.n;
	int order = c.bad_order;
	int found = 0;
	for (size_t i = 0; i < c.n; i++)
		for (size_t j = 0; j < nn; j++)
			if (!strcmp(c.names[i], N(names[j])))
				found++;
	collect_free(&c);
	CHECK(n == nn + 1 && found == (int)nn && !order,
	      "listing of odd names: %zu entries, %d found", n, found);
	return 0;
}

static int case_statfs(void)
{
	uint64_t total = 0, avail = 0;
	EXPECT_RC(store_statfs(g_st, &total, &avail), 0);
	CHECK(total > 0 && avail <= total, "statfs %" PRIu64 "/%" PRIu64, avail,
	      total);
	return 0;
}

/* ---- fs-only cases --------------------------------------------------- */

static const char *fs_path(const char *rel, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", store_url(g_st) + 7, rel);
	return buf;
}

/* Symlinks inside a location are never followed, wherever they are. */
static int case_fs_symlinks(void)
{
	if (store_is_s3(g_st))
		return 0;
	char outside[] = "/tmp/assetd-outside-XXXXXX";
	CHECK(mkdtemp(outside), "mkdtemp");
	char p[4096], q[4096];
	snprintf(p, sizeof p, "%s/secret.txt", outside);
	FILE *f = fopen(p, "w");
	fputs("secret", f);
	fclose(f);
	EXPECT_RC(store_mkdir(g_st, N("d")), 0);
	EXPECT_RC(store_put(g_st, N("d/in.txt"), "inside", 6, NULL), 0);
	CHECK(symlink(outside, fs_path(N("out"), q, sizeof q)) == 0, "symlink");
	CHECK(symlink(p, fs_path(N("file-link"), q, sizeof q)) == 0, "symlink");
	CHECK(symlink("d", fs_path(N("inner"), q, sizeof q)) == 0, "symlink");
	CHECK(symlink("../../../../../../../..", fs_path(N("up"), q, sizeof q)) == 0,
	      "symlink");

	struct store_stat ss;
	char b[16];
	static const char *const via[] = {
		"out/secret.txt", "file-link", "inner/in.txt",
		"up/etc/passwd", "up/tmp",
	};
	for (size_t i = 0; i < sizeof via / sizeof via[0]; i++) {
		EXPECT_RC(store_stat(g_st, N(via[i]), &ss), STORE_EACCES);
		EXPECT_RC(store_pread(g_st, N(via[i]), b, sizeof b, 0),
			  STORE_EACCES);
		EXPECT_RC(store_put(g_st, N(via[i]), "pwned", 5, NULL),
			  STORE_EACCES);
		EXPECT_RC(store_set_mtime(g_st, N(via[i]), 1), STORE_EACCES);
	}
	EXPECT_RC(store_put(g_st, N("out/new.txt"), "pwned", 5, NULL),
		  STORE_EACCES);
	EXPECT_RC(store_mkdir(g_st, N("out/newdir")), STORE_EACCES);
	EXPECT_RC(store_mkdir(g_st, N("out/a/b")), STORE_EACCES);
	EXPECT_RC(store_rename(g_st, N("d/in.txt"), N("out/moved.txt"), 0),
		  STORE_EACCES);
	EXPECT_RC(store_rename(g_st, N("out/secret.txt"), N("stolen"), 0),
		  STORE_EACCES);
	EXPECT_RC(store_copy(g_st, N("out/secret.txt"), g_st, N("stolen")),
		  STORE_EACCES);
	EXPECT_RC(store_copy(g_st, N("d/in.txt"), g_st, N("out/c.txt")),
		  STORE_EACCES);
	EXPECT_RC(store_delete(g_st, N("out/secret.txt")), STORE_EACCES);
	EXPECT_RC(store_rmdir(g_st, N("out/x")), STORE_EACCES);
	/* listings skip symlinks and do not enter them */
	EXPECT_LIST("", 0, "d/in.txt");
	EXPECT_LIST("", '/', "d/");
	struct collect c;
	EXPECT_RC(list_into(g_st, N("out/"), '/', NULL, &c), STORE_EACCES);
	collect_free(&c);
	EXPECT_RC(list_into(g_st, N("inner/"), 0, NULL, &c), STORE_EACCES);
	collect_free(&c);
	/* the outside was not touched */
	struct stat sb;
	CHECK(stat(p, &sb) == 0 && sb.st_size == 6, "outside file changed");
	snprintf(q, sizeof q, "%s/new.txt", outside);
	CHECK(access(q, F_OK) != 0, "a file was created outside");
	snprintf(q, sizeof q, "%s/newdir", outside);
	CHECK(access(q, F_OK) != 0, "a dir was created outside");
	snprintf(q, sizeof q, "%s/a", outside);
	CHECK(access(q, F_OK) != 0, "a dir was created outside");
	snprintf(q, sizeof q, "%s/moved.txt", outside);
	CHECK(access(q, F_OK) != 0, "a file was moved outside");
	/* deleting the link itself is fine and leaves the target */
	EXPECT_RC(store_delete(g_st, N("file-link")), 0);
	CHECK(stat(p, &sb) == 0, "link target removed");
	unlink(p);
	rmdir(outside);
	EXPECT_RC(store_delete(g_st, N("out")), 0);
	EXPECT_RC(store_delete(g_st, N("inner")), 0);
	EXPECT_RC(store_delete(g_st, N("up")), 0);
	return 0;
}

/* Temp files: invisible, unaddressable, removed by cleanup. */
static int case_fs_temp(void)
{
	if (store_is_s3(g_st))
		return 0;
	char p[4096];
	EXPECT_RC(store_put(g_st, N("d/real.txt"), "real", 4, NULL), 0);
	FILE *f = fopen(fs_path(N("d/.assetd-tmp.0123456789abcdef"), p, sizeof p),
			"w");
	CHECK(f, "fopen %s", p);
	fputs("partial", f);
	fclose(f);
	f = fopen(fs_path(N(".assetd-tmp.fedcba9876543210"), p, sizeof p), "w");
	fclose(f);
	/* an open writer's temp file is invisible too */
	struct store_writer *w;
	EXPECT_RC(store_writer_open(g_st, N("d/pending.txt"), NULL, &w), 0);
	EXPECT_RC(store_writer_write(w, "pending", 7), 0);
	EXPECT_LIST("", 0, "d/real.txt");
	EXPECT_LIST("d/", '/', "d/real.txt");
	EXPECT_EMPTY_LIST("d/.", '/');
	struct store_stat ss;
	EXPECT_RC(store_stat(g_st, N("d/.assetd-tmp.0123456789abcdef"), &ss),
		  STORE_ENOENT);
	EXPECT_RC(store_put(g_st, N("d/.assetd-tmp.mine"), "x", 1, NULL),
		  STORE_EINVAL);
	EXPECT_RC(store_mkdir(g_st, N(".assetd-tmp.dir")), STORE_EINVAL);
	EXPECT_RC(store_delete(g_st, N("d/.assetd-tmp.0123456789abcdef")),
		  STORE_ENOENT);
	/* cleanup with a large minimum age spares them all (they are new) */
	EXPECT_RC(store_cleanup(g_st, 3600), 0);
	/* with age 0: the two leftovers go; the open writer's file stays,
	 * locked by its live writer, which then commits */
	int removed = store_cleanup(g_st, 0);
	CHECK(removed == 2, "cleanup removed %d, want 2", removed);
	CHECK(access(fs_path(N("d/.assetd-tmp.0123456789abcdef"), p, sizeof p),
		     F_OK) != 0,
	      "leftover still there");
	EXPECT_RC(store_writer_commit(w), 0);
	EXPECT_RC(store_stat(g_st, N("d/pending.txt"), &ss), 0);
	CHECK(ss.size == 7, "pending.txt has %llu bytes",
	      (unsigned long long)ss.size);
	EXPECT_RC(store_delete(g_st, N("d/pending.txt")), 0);
	/* a directory that only holds temp files is empty to rmdir */
	EXPECT_RC(store_mkdir(g_st, N("e")), 0);
	f = fopen(fs_path(N("e/.assetd-tmp.00000000000000aa"), p, sizeof p), "w");
	fclose(f);
	EXPECT_RC(store_rmdir(g_st, N("e")), 0);
	return 0;
}

/* fs keeps the client's mtime as the file's own mtime, and a writer's
 * file is complete on disk when the commit returns. */
static int case_fs_files(void)
{
	if (store_is_s3(g_st))
		return 0;
	struct store_put_opts po = { .mtime = 1111111111 };
	EXPECT_RC(store_put(g_st, N("m.txt"), "mtime", 5, &po), 0);
	char p[4096];
	struct stat sb;
	CHECK(stat(fs_path(N("m.txt"), p, sizeof p), &sb) == 0, "stat");
	CHECK(sb.st_mtime == 1111111111 && sb.st_size == 5,
	      "file mtime %lld size %lld", (long long)sb.st_mtime,
	      (long long)sb.st_size);
	EXPECT_RC(store_set_mtime(g_st, N("m.txt"), 1222222222), 0);
	CHECK(stat(p, &sb) == 0 && sb.st_mtime == 1222222222, "set mtime");
	/* the reader's fd reads the object's bytes (for sendfile) */
	struct store_reader *r;
	EXPECT_RC(store_reader_open(g_st, N("m.txt"), 0, UINT64_MAX, &r, NULL), 0);
	int fd = store_reader_fd(r);
	char b[8] = "";
	ssize_t n = fd >= 0 ? pread(fd, b, sizeof b, 0) : -1;
	store_reader_close(r);
	CHECK(n == 5 && !memcmp(b, "mtime", 5), "reader fd pread %zd", n);
	/* files made outside the store are seen */
	FILE *f = fopen(fs_path(N("outside-made.jpg"), p, sizeof p), "w");
	fputs("jpeg", f);
	fclose(f);
	struct store_stat ss;
	EXPECT_RC(store_stat(g_st, N("outside-made.jpg"), &ss), 0);
	CHECK(ss.size == 4 && !strcmp(ss.content_type, "image/jpeg"), "stat");
	/* a writer onto a name whose parent is a file */
	EXPECT_RC(store_put(g_st, N("m.txt/child"), "x", 1, NULL),
		  STORE_ENOTDIR);
	EXPECT_RC(store_stat(g_st, N("m.txt/child"), &ss), STORE_ENOTDIR);
	return 0;
}

/* Staged writes: the name comes at the end; nothing is visible while the
 * bytes stream, the object lands whole under its name with the type of
 * that name, and an abort leaves nothing. */
static int case_staged(void)
{
	static char big[700 * 1024];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7 + i / 4096);
	struct store_writer *w;
	EXPECT_RC(store_writer_open_staged(g_st, NULL, &w), 0);
	EXPECT_RC(store_writer_write(w, big, sizeof big), 0);
	EXPECT_EMPTY_LIST("", 0);
	EXPECT_RC(store_writer_commit_as(w, g_st, N("staged/a.png")), 0);
	struct store_stat ss;
	EXPECT_RC(store_stat(g_st, N("staged/a.png"), &ss), 0);
	CHECK(ss.size == sizeof big, "size %llu", (unsigned long long)ss.size);
	CHECK(!strcmp(ss.content_type, "image/png") || !ss.content_type[0],
	      "type %s", ss.content_type);
	static char back[sizeof big];
	CHECK(store_pread(g_st, N("staged/a.png"), back, sizeof back, 0) ==
			      (ssize_t)sizeof big &&
		      !memcmp(back, big, sizeof big),
	      "staged bytes differ");
	/* a small one replaces it */
	EXPECT_RC(store_writer_open_staged(g_st, NULL, &w), 0);
	EXPECT_RC(store_writer_write(w, "small", 5), 0);
	EXPECT_RC(store_writer_commit_as(w, g_st, N("staged/a.png")), 0);
	EXPECT_RC(store_stat(g_st, N("staged/a.png"), &ss), 0);
	CHECK(ss.size == 5, "replaced size %llu", (unsigned long long)ss.size);
	/* commit (no name), a temp name, an abort: nothing new */
	EXPECT_RC(store_writer_open_staged(g_st, NULL, &w), 0);
	EXPECT_RC(store_writer_write(w, big, sizeof big), 0);
	EXPECT_RC(store_writer_commit(w), STORE_EINVAL);
	EXPECT_RC(store_writer_open_staged(g_st, NULL, &w), 0);
	EXPECT_RC(store_writer_commit_as(w, g_st, N(".assetd-tmp.x")),
		  STORE_EINVAL);
	EXPECT_RC(store_writer_open_staged(g_st, NULL, &w), 0);
	EXPECT_RC(store_writer_write(w, big, sizeof big), 0);
	store_writer_abort(w);
	EXPECT_LIST("", 0, "staged/a.png");
	return 0;
}

/* ---- driver ---------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(void);
} cases[] = {
	{ "roundtrip", case_roundtrip },   { "overwrite", case_overwrite },
	{ "ranges", case_ranges },         { "list_pages", case_list_pages },
	{ "delimiters", case_delimiters }, { "directories", case_directories },
	{ "list_tree", case_list_tree },
	{ "copy", case_copy },             { "rename", case_rename },
	{ "metadata", case_metadata },     { "errors", case_errors },
	{ "denied", case_denied },         { "atomic", case_atomic },
	{ "exclusive", case_exclusive },   { "names", case_names },
	{ "statfs", case_statfs },         { "staged", case_staged },
	{ "fs_symlinks", case_fs_symlinks },
	{ "fs_temp", case_fs_temp },       { "fs_files", case_fs_files },
};

static int run_case(int i)
{
	static int seq;
	snprintf(g_base, sizeof g_base, "%s-%d-%d/", cases[i].name,
		 (int)getpid(), seq++);
	g_fail[0] = '\0';
	int rc = cases[i].fn();
	if (rc == 0) {
		int cr = remove_tree(g_st, g_base);
		if (cr == 0) {
			char dir[sizeof g_base];
			snprintf(dir, sizeof dir, "%s", g_base);
			dir[strlen(dir) - 1] = '\0';
			cr = store_rmdir(g_st, dir);
			if (cr == STORE_ENOENT)
				cr = 0;
		}
		if (cr != 0) {
			set_fail(0, "cleanup: %s", store_strerror(cr));
			rc = -1;
		}
	}
	if (rc == 0)
		printf("ok %s\n", cases[i].name);
	else
		printf("FAIL %s: %s\n", cases[i].name, g_fail);
	fflush(stdout);
	return rc;
}

static void usage(void)
{
	fprintf(stderr, "usage: store_conformance [--endpoint URL] [--region R] "
			"[--profile P] [--other URL] LOCATION CASE|all...\n"
			"       store_conformance --list\n");
}

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
				printf("%s\n", cases[k].name);
			return 0;
		}
		if (i + 1 >= argc) {
			usage();
			return 2;
		}
		if (!strcmp(argv[i], "--endpoint"))
			g_opts.endpoint = argv[++i];
		else if (!strcmp(argv[i], "--region"))
			g_opts.region = argv[++i];
		else if (!strcmp(argv[i], "--profile"))
			g_opts.profile = argv[++i];
		else if (!strcmp(argv[i], "--other"))
			g_other_url = argv[++i];
		else {
			usage();
			return 2;
		}
	}
	if (argc - i < 2) {
		usage();
		return 2;
	}
	const char *ps = getenv("ASSETD_S3_PART_SIZE");
	if (ps && atoll(ps) > 0)
		g_part = (uint64_t)atoll(ps);
	const char *nk = getenv("ASSETD_CONFORMANCE_KEYS");
	if (nk && atoi(nk) > 0)
		g_keys = atoi(nk);
	g_url = argv[i++];
	int rc = store_open(g_url, &g_opts, &g_st);
	if (rc < 0) {
		fprintf(stderr, "store_conformance: %s: %s\n", g_url,
			store_strerror(rc));
		return 2;
	}
	int failed = 0;
	for (; i < argc; i++) {
		int found = 0;
		for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
			if (!strcmp(argv[i], "all") ||
			    !strcmp(argv[i], cases[k].name)) {
				found = 1;
				if (run_case((int)k) < 0)
					failed++;
			}
		}
		if (!found) {
			fprintf(stderr, "store_conformance: no case %s\n", argv[i]);
			failed++;
		}
	}
	store_close(g_st);
	return failed ? 1 : 0;
}
