/* test_sync.c - the sync engine on two filesystem locations: size-only,
 * checksum, delete, dry-run, key order across nested names, a failed
 * object that does not stop the run, overlap refusal. (S3 pairs are in
 * tests/integration/test_sync.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scratch.h"
#include "store.h"
#include "sync.h"

struct fx {
	char root[256];
	char src[300], dst[300];
	struct store *s, *d;
	FILE *out, *err;
	char *outbuf, *errbuf;
	size_t outlen, errlen;
};

/* The file's content, or NULL if missing (static buffer). */
static const char *get(const char *dir, const char *name)
{
	static char buf[4096];
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	scratch_dir(f->root, sizeof f->root, "/tmp/test_sync.XXXXXX");
	snprintf(f->src, sizeof f->src, "%s/src", f->root);
	snprintf(f->dst, sizeof f->dst, "%s/dst", f->root);
	mkdir(f->src, 0755);
	mkdir(f->dst, 0755);
	/* the tree of the issue: new, changed size, same size changed,
	 * deleted at the source, unchanged; nested names whose key order
	 * differs from a directory walk ("a-c" < "a/b") */
	scratch_put(f->src, "new.jpg", "new");
	scratch_put(f->src, "originals/size.jpg", "longer content");
	scratch_put(f->dst, "originals/size.jpg", "short");
	scratch_put(f->src, "originals/same.jpg", "AAAA");
	scratch_put(f->dst, "originals/same.jpg", "BBBB");
	scratch_put(f->dst, "originals/gone.jpg", "gone");
	scratch_put(f->src, "thumbnails/keep_200.jpg", "keep");
	scratch_put(f->dst, "thumbnails/keep_200.jpg", "keep");
	scratch_put(f->src, "a-c", "x");
	scratch_put(f->src, "a/b", "y");
	scratch_put(f->dst, "a/b", "y");
	scratch_store(f->src, &f->s);
	scratch_store(f->dst, &f->d);
	f->out = open_memstream(&f->outbuf, &f->outlen);
	f->err = open_memstream(&f->errbuf, &f->errlen);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	store_close(f->d);
	fclose(f->out);
	fclose(f->err);
	free(f->outbuf);
	free(f->errbuf);
	assert_int_equal(scratch_remove(f->root), 0);
	free(f);
	return 0;
}

static struct sync_opts opts(struct fx *f)
{
	struct sync_opts o = { 0 };
	o.concurrency = 4;
	o.out = f->out;
	o.err = f->err;
	return o;
}

static void test_dry_run_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct sync_opts o = opts(f);
	struct sync_stats st;
	o.dry_run = 1;
	o.delete_extra = 1;
	assert_int_equal(sync_run(f->s, f->d, &o, &st), 0);
	fflush(f->out);
	assert_int_equal(st.listed, 6);
	assert_int_equal(st.listed_dst, 5);
	assert_int_equal(st.copied, 3); /* new, size, a-c */
	assert_int_equal(st.deleted, 1);
	assert_int_equal(st.skipped, 3);
	assert_int_equal(st.failed, 0);
	assert_non_null(strstr(f->outbuf, "(dryrun) copy: file://"));
	assert_non_null(strstr(f->outbuf, "/src/new.jpg to file://"));
	assert_non_null(strstr(f->outbuf, "(dryrun) delete: file://"));
	assert_non_null(strstr(f->outbuf, "/dst/originals/gone.jpg"));
	assert_null(get(f->dst, "new.jpg"));
	assert_string_equal(get(f->dst, "originals/size.jpg"), "short");
	assert_string_equal(get(f->dst, "originals/gone.jpg"), "gone");
}

static void test_size_only(void **state)
{
	struct fx *f = *state;
	struct sync_opts o = opts(f);
	struct sync_stats st;
	assert_int_equal(sync_run(f->s, f->d, &o, &st), 0);
	assert_int_equal(st.copied, 3);
	assert_int_equal(st.bytes, 3 + 14 + 1);
	assert_int_equal(st.skipped, 3);
	assert_int_equal(st.deleted, 0);
	assert_string_equal(get(f->dst, "new.jpg"), "new");
	assert_string_equal(get(f->dst, "originals/size.jpg"),
			    "longer content");
	assert_string_equal(get(f->dst, "a-c"), "x");
	/* same size, other content: size-only leaves it */
	assert_string_equal(get(f->dst, "originals/same.jpg"), "BBBB");
	/* deletes nothing unless asked */
	assert_string_equal(get(f->dst, "originals/gone.jpg"), "gone");
	/* a second run has nothing to do */
	assert_int_equal(sync_run(f->s, f->d, &o, &st), 0);
	assert_int_equal(st.copied, 0);
	assert_int_equal(st.skipped, 6);
	fflush(f->out);
	assert_int_equal(f->outlen, 0); /* quiet by default */
}

static void test_checksum(void **state)
{
	struct fx *f = *state;
	struct sync_opts o = opts(f);
	struct sync_stats st;
	o.checksum = 1;
	assert_int_equal(sync_run(f->s, f->d, &o, &st), 0);
	assert_int_equal(st.copied, 4);
	assert_int_equal(st.skipped, 2);
	assert_string_equal(get(f->dst, "originals/same.jpg"), "AAAA");
	assert_string_equal(get(f->dst, "thumbnails/keep_200.jpg"), "keep");
	assert_int_equal(sync_run(f->s, f->d, &o, &st), 0);
	assert_int_equal(st.copied, 0);
	assert_int_equal(st.skipped, 6);
}

static void test_delete(void **state)
{
	struct fx *f = *state;
	struct sync_opts o = opts(f);
	struct sync_stats st;
	const char *keep[] = { "a/", NULL };
	scratch_put(f->dst, "a/extra", "kept by keep_prefixes");
	o.delete_extra = 1;
	o.keep_prefixes = keep;
	o.verbose = 1;
	assert_int_equal(sync_run(f->s, f->d, &o, &st), 0);
	assert_int_equal(st.deleted, 1);
	assert_null(get(f->dst, "originals/gone.jpg"));
	assert_string_equal(get(f->dst, "a/extra"), "kept by keep_prefixes");
	fflush(f->out);
	assert_non_null(strstr(f->outbuf, "delete: file://"));
}

static void test_failed_object_goes_on(void **state)
{
	struct fx *f = *state;
	struct sync_opts o = opts(f);
	struct sync_stats st;
	/* at the destination "new.jpg" is a directory: its copy fails, the
	 * rest still goes through */
	scratch_put(f->dst, "new.jpg/inside", "blocks the copy");
	assert_int_equal(sync_run(f->s, f->d, &o, &st), 1);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.copied, 2);
	assert_string_equal(get(f->dst, "originals/size.jpg"),
			    "longer content");
	fflush(f->err);
	assert_non_null(strstr(f->errbuf, "copy failed: file://"));
	assert_non_null(strstr(f->errbuf, "new.jpg"));
}

static void test_overlap_refused(void **state)
{
	struct fx *f = *state;
	struct sync_opts o = opts(f);
	struct sync_stats st;
	struct store *inner;
	char url[400];
	snprintf(url, sizeof url, "file://%s/originals/", f->src);
	assert_int_equal(store_open(url, NULL, &inner), 0);
	assert_int_equal(sync_run(f->s, inner, &o, &st), STORE_EINVAL);
	assert_non_null(strstr(st.error, "overlap"));
	assert_int_equal(sync_run(inner, f->s, &o, &st), STORE_EINVAL);
	store_close(inner);
	assert_true(sync_locations_overlap("s3://b/", "s3://b/p/"));
	assert_false(sync_locations_overlap("s3://b/p/", "s3://b/q/"));
	assert_false(sync_locations_overlap("s3://b/p/", "s3://b/pq/"));
}

static void test_cancel(void **state)
{
	struct fx *f = *state;
	struct sync_opts o = opts(f);
	struct sync_stats st;
	volatile int cancel = 1;
	o.cancel = &cancel;
	assert_int_equal(sync_run(f->s, f->d, &o, &st), STORE_ECANCELED);
	assert_string_equal(st.error, "interrupted");
	assert_null(get(f->dst, "new.jpg"));
}

static void test_summary(void **state)
{
	struct sync_stats st = { 0 };
	char buf[256];
	st.listed = 10;
	st.listed_dst = 8;
	st.copied = 3;
	st.bytes = 3 * 1024 * 1024;
	st.skipped = 7;
	st.seconds = 1.25;
	sync_summary(&st, buf, sizeof buf);
	assert_string_equal(buf, "listed 10 (dst 8), copied 3 (3.0 MiB), "
				 "skipped 7, deleted 0, failed 0 in 1.2 s");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dry_run_changes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_checksum, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_object_goes_on,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test(test_summary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
