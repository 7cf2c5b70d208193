/*
 * store_cli.c - single storage operations from the command line, for the
 * tests that need a separate process (a writer killed midway, a full disk)
 * and for the memory check.
 *
 *   store_cli [--endpoint URL] [--region R] [--profile P] LOCATION CMD ...
 *
 *   put NAME SIZE [SEED] [PAUSE_AT]  write SIZE pattern bytes; with PAUSE_AT,
 *                                    print "paused" after that many bytes and
 *                                    wait to be killed
 *   check NAME SIZE [SEED]           read NAME back and compare
 *   ls [PREFIX]                      every object below PREFIX, one a line
 *   lsmem [PREFIX] [DELIM]           list (DELIM "/" or none) without
 *                                    printing names; prints one JSON line
 *                                    with the count, the order check and
 *                                    the peak RSS
 *   cleanup MIN_AGE                  store_cleanup; prints the count
 *   stream NAME SIZE [BUF]           write SIZE bytes through a writer in
 *                                    BUF-byte writes (default 1 MiB), read
 *                                    them back through a reader, delete;
 *                                    prints one JSON line with the timings
 *                                    and the peak RSS (VmHWM, KiB)
 *
 * Errors print "error CODE TEXT" and exit 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static unsigned char pat(uint32_t seed, uint64_t i)
{
	uint64_t x = (i >> 3) * 0x9e3779b97f4a7c15ull ^ seed;
	x ^= x >> 29;
	return (unsigned char)(x >> (8 * (i & 7)));
}

static int fail(int rc)
{
	printf("error %d %s\n", rc, store_strerror(rc));
	return 1;
}

static long vmhwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_put(struct store *st, const char *name, uint64_t size,
		   uint32_t seed, uint64_t pause_at)
{
	struct store_put_opts po = { .size_hint = size };
	struct store_writer *w;
	int rc = store_writer_open(st, name, &po, &w);
	if (rc < 0)
		return fail(rc);
	static unsigned char buf[65536];
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < sizeof buf ? (size_t)(size - off)
						   : sizeof buf;
		if (pause_at && off < pause_at && off + n > pause_at)
			n = (size_t)(pause_at - off);
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(seed, off + i);
		rc = store_writer_write(w, buf, n);
		if (rc < 0) {
			store_writer_abort(w);
			return fail(rc);
		}
		off += n;
		if (pause_at && off == pause_at) {
			printf("paused\n");
			fflush(stdout);
			for (;;)
				pause();
		}
	}
	rc = store_writer_commit(w);
	if (rc < 0)
		return fail(rc);
	printf("ok\n");
	return 0;
}

static int cmd_check(struct store *st, const char *name, uint64_t size,
		     uint32_t seed)
{
	struct store_reader *r;
	struct store_stat ss;
	int rc = store_reader_open(st, name, 0, UINT64_MAX, &r, &ss);
	if (rc < 0)
		return fail(rc);
	static unsigned char buf[65536];
	uint64_t off = 0;
	for (;;) {
		ssize_t n = store_reader_read(r, buf, sizeof buf);
		if (n < 0) {
			store_reader_close(r);
			return fail((int)n);
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != pat(seed, off + (uint64_t)i)) {
				store_reader_close(r);
				printf("mismatch at %" PRIu64 "\n",
				       off + (uint64_t)i);
				return 1;
			}
		}
		off += (uint64_t)n;
	}
	store_reader_close(r);
	if (off != size || ss.size != size) {
		printf("size %" PRIu64 " (stat %" PRIu64 "), want %" PRIu64 "\n",
		       off, ss.size, size);
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int print_entry(void *arg, const struct store_entry *e)
{
	printf("%s\t%" PRIu64 "\n", e->name, e->size);
	return 0;
}

struct count {
	uint64_t n;
	int sorted;
	char last[STORE_NAME_MAX];
};

static int count_entry(void *arg, const struct store_entry *e)
{
	struct count *c = arg;
	if (c->n && strcmp(e->name, c->last) <= 0)
		c->sorted = 0;
	snprintf(c->last, sizeof c->last, "%s", e->name);
	c->n++;
	return 0;
}

static int cmd_lsmem(struct store *st, const char *prefix, char delim)
{
	struct count c = { .sorted = 1 };
	long base_kb = vmhwm_kb();
	double t0 = now();
	int rc = store_list(st, prefix, delim, NULL, count_entry, &c);
	if (rc < 0)
		return fail(rc);
	printf("{\"entries\": %" PRIu64 ", \"sorted\": %d, \"seconds\": %.3f"
	       ", \"start_vmhwm_kb\": %ld, \"vmhwm_kb\": %ld}\n",
	       c.n, c.sorted, now() - t0, base_kb, vmhwm_kb());
	return 0;
}

static int cmd_stream(struct store *st, const char *name, uint64_t size,
		      size_t bufsize)
{
	/* page-aligned, as a real caller's I/O buffer should be */
	unsigned char *buf = NULL;
	if (posix_memalign((void **)&buf, 4096, bufsize) != 0)
		return fail(STORE_ENOMEM);
	memset(buf, 0, bufsize);
	long base_kb = vmhwm_kb();
	double t0 = now();
	struct store_put_opts po = { 0 }; /* unknown size: the hard case */
	struct store_writer *w;
	int rc = store_writer_open(st, name, &po, &w);
	if (rc < 0)
		return fail(rc);
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < bufsize ? (size_t)(size - off) : bufsize;
		rc = store_writer_write(w, buf, n);
		if (rc < 0) {
			store_writer_abort(w);
			return fail(rc);
		}
		off += n;
	}
	rc = store_writer_commit(w);
	if (rc < 0)
		return fail(rc);
	double t1 = now();
	struct store_reader *r;
	rc = store_reader_open(st, name, 0, UINT64_MAX, &r, NULL);
	if (rc < 0)
		return fail(rc);
	uint64_t got = 0;
	for (;;) {
		ssize_t n = store_reader_read(r, buf, bufsize);
		if (n < 0) {
			store_reader_close(r);
			return fail((int)n);
		}
		if (n == 0)
			break;
		got += (uint64_t)n;
	}
	store_reader_close(r);
	double t2 = now();
	rc = store_delete(st, name);
	if (rc < 0)
		return fail(rc);
	free(buf);
	printf("{\"bytes\": %" PRIu64 ", \"read\": %" PRIu64
	       ", \"write_seconds\": %.3f, \"read_seconds\": %.3f"
	       ", \"start_vmhwm_kb\": %ld, \"vmhwm_kb\": %ld}\n",
	       size, got, t1 - t0, t2 - t1, base_kb, vmhwm_kb());
	return got == size ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct store_opts opts = { .path_style = -1 };
	int i = 1;
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--endpoint"))
			opts.endpoint = argv[i + 1];
		else if (!strcmp(argv[i], "--region"))
			opts.region = argv[i + 1];
		else if (!strcmp(argv[i], "--profile"))
			opts.profile = argv[i + 1];
		else
			break;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: store_cli [--endpoint URL] [--region R] "
				"[--profile P] LOCATION CMD ARGS...\n");
		return 2;
	}
	struct store *st;
	int rc = store_open(argv[i], &opts, &st);
	if (rc < 0)
		return fail(rc);
	const char *cmd = argv[i + 1];
	char **a = argv + i + 2;
	int na = argc - i - 2;
	int ret = 2;
	if (!strcmp(cmd, "put") && na >= 2)
		ret = cmd_put(st, a[0], strtoull(a[1], NULL, 10),
			      na > 2 ? (uint32_t)strtoul(a[2], NULL, 10) : 1,
			      na > 3 ? strtoull(a[3], NULL, 10) : 0);
	else if (!strcmp(cmd, "check") && na >= 2)
		ret = cmd_check(st, a[0], strtoull(a[1], NULL, 10),
				na > 2 ? (uint32_t)strtoul(a[2], NULL, 10) : 1);
	else if (!strcmp(cmd, "ls")) {
		rc = store_list(st, na > 0 ? a[0] : "", 0, NULL, print_entry,
				NULL);
		ret = rc < 0 ? fail(rc) : 0;
	} else if (!strcmp(cmd, "lsmem")) {
		ret = cmd_lsmem(st, na > 0 ? a[0] : "",
				na > 1 && a[1][0] == '/' ? '/' : 0);
	} else if (!strcmp(cmd, "cleanup") && na >= 1) {
		rc = store_cleanup(st, atoi(a[0]));
		if (rc < 0)
			ret = fail(rc);
		else {
			printf("%d\n", rc);
			ret = 0;
		}
	} else if (!strcmp(cmd, "stream") && na >= 2)
		ret = cmd_stream(st, a[0], strtoull(a[1], NULL, 10),
				 na > 2 ? (size_t)strtoull(a[2], NULL, 10)
					: 1024 * 1024);
	else
		fprintf(stderr, "store_cli: unknown command or arguments\n");
	store_close(st);
	return ret;
}
