/* test_store_names.c - the name rules and client path normalisation of
 * store.c: valid names, hostile names, store_path_resolve, store_name_join,
 * content types and location URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_valid_names(void **state)
{
	static const char *const ok[] = {
		"a", "a.jpg", "originals/ab12.jpg", "thumbnails/x_200.png",
		"with space", "plus+sign", "per%cent", "%2e%2e", "%2F",
		"..a", "a..", "...", ".hidden", "a/.b/c", "caf\xc3\xa9",
		"\xe6\x97\xa5\xe6\x9c\xac", "emoji\xf0\x9f\x90\x9f",
		"a:b", "a*b?", "a~", "-rf", "a/b/c/d/e/f",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		if (!store_name_valid(ok[i]))
			fail_msg("should be valid: %s", ok[i]);
	}
	char *seg255 = repeat('x', 255);
	assert_true(store_name_valid(seg255));
	assert_true(store_segment_valid(seg255));
	free(seg255);
	/* 1,024 bytes in segments of at most 255 */
	char name[1025];
	size_t o = 0;
	while (o < 1024) {
		size_t n = 1024 - o > 200 ? 199 : 1024 - o;
		memset(name + o, 'k', n);
		o += n;
		if (o < 1024)
			name[o++] = '/';
	}
	name[1024] = '\0';
	assert_int_equal(strlen(name), 1024);
	assert_true(store_name_valid(name));
}

/* Each of these must be refused by store_name_valid. */
static const char *const hostile_names[] = {
	"", "/", "/a", "a/", "a//b", ".", "..", "../a", "a/..", "a/../b",
	"./a", "a/./b", "a/.", "\\", "a\\b", "..\\a", "a\\..\\b", "C:\\x",
	"a\nb", "a\rb", "a\tb", "\x01", "a\x1b[31m", "a\x7f", "/etc/passwd",
	"../../../../etc/passwd", "a/b/../../..", "//", "///a", "a/b//",
	"\xff", "a\xc0\xaf", "\xc0\xae\xc0\xae", "\xe0\x80\xae",
	"\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80",
	"caf\xc3", "\x80", "a\xe2\x82", "x/\xfe\xff",
};

static void test_hostile_names(void **state)
{
	size_t n = sizeof hostile_names / sizeof hostile_names[0];
	assert_true(n >= 40);
	for (size_t i = 0; i < n; i++) {
		if (store_name_valid(hostile_names[i]))
			fail_msg("should be refused: #%zu", i);
	}
	assert_false(store_name_valid(NULL));
	assert_false(store_segment_valid(NULL));
}

static void test_overlong(void **state)
{
	char *seg256 = repeat('x', 256);
	assert_false(store_name_valid(seg256));
	assert_false(store_segment_valid(seg256));
	free(seg256);
	char name[1200];
	size_t o = 0;
	while (o < 1025) {
		memset(name + o, 'k', 100);
		o += 100;
		name[o++] = '/';
	}
	name[1025] = '\0';
	if (name[1024] == '/')
		name[1024] = 'k';
	assert_int_equal(strlen(name), 1025);
	assert_false(store_name_valid(name));
}

static void test_segments(void **state)
{
	assert_true(store_segment_valid("kufish"));
	assert_true(store_segment_valid("a b.jpg"));
	assert_false(store_segment_valid("a/b"));
	assert_false(store_segment_valid(".."));
	assert_false(store_segment_valid("."));
	assert_false(store_segment_valid(""));
	assert_false(store_segment_valid("a\\b"));
	assert_false(store_segment_valid("a\x1f"));
}

struct resolve_case {
	const char *cwd, *path, *want; /* want NULL: STORE_EINVAL */
};

static const struct resolve_case resolve_cases[] = {
	{ "/", "", "/" },
	{ "/", ".", "/" },
	{ "/", "..", "/" },
	{ "/", "../..", "/" },
	{ "/", "/..", "/" },
	{ "/", "../../../../etc/passwd", "/etc/passwd" },
	{ "/attachments", "..", "/" },
	{ "/attachments", "../../..", "/" },
	{ "/attachments", "../attachments/x", "/attachments/x" },
	{ "/attachments", "x", "/attachments/x" },
	{ "/attachments/", "x/", "/attachments/x" },
	{ "/attachments", "./x/./y", "/attachments/x/y" },
	{ "/attachments", "x//y///z", "/attachments/x/y/z" },
	{ "/attachments", "/backups", "/backups" },
	{ "/attachments", "//backups//", "/backups" },
	{ "/a/b/c", "../../d", "/a/d" },
	{ "/a/b/c", "../../../../../d", "/d" },
	{ "/a", "b/../../../c", "/c" },
	{ "/a", "%2e%2e", "/a/%2e%2e" },
	{ "/a", "%2e%2e/%2e%2e/x", "/a/%2e%2e/%2e%2e/x" },
	{ "/a", "...", "/a/..." },
	{ "/a", "..../x", "/a/..../x" },
	{ "/a", ".hidden", "/a/.hidden" },
	{ "/", "caf\xc3\xa9", "/caf\xc3\xa9" },
	{ "/a", "..\\..\\etc", NULL },
	{ "/a", "x\\y", NULL },
	{ "/a", "x\ny", NULL },
	{ "/a", "x\x7f", NULL },
	{ "/a", "\x1b]0;pwn\x07", NULL },
	{ "/a", "\xff", NULL },
	{ "/a", "\xc0\xae\xc0\xae/x", NULL },
	{ "/a", "bad\xff/..", NULL }, /* invalid even if popped */
	{ "relative", "x", NULL },
	{ "", "x", NULL },
	{ "/a\\b", "x", NULL },
};

static void test_resolve(void **state)
{
	char out[STORE_NAME_MAX + 64];
	for (size_t i = 0; i < sizeof resolve_cases / sizeof resolve_cases[0];
	     i++) {
		const struct resolve_case *c = &resolve_cases[i];
		int rc = store_path_resolve(c->cwd, c->path, out, sizeof out);
		if (c->want) {
			if (rc != 0)
				fail_msg("#%zu: %s + %s refused", i, c->cwd,
					 c->path);
			if (strcmp(out, c->want) != 0)
				fail_msg("#%zu: got %s, want %s", i, out,
					 c->want);
		} else if (rc != STORE_EINVAL) {
			fail_msg("#%zu: should be refused, got %d", i, rc);
		}
	}
}

static void test_resolve_bounds(void **state)
{
	char small[8];
	assert_int_equal(store_path_resolve("/", "abcdef", small, sizeof small),
			 0);
	assert_string_equal(small, "/abcdef");
	assert_int_equal(store_path_resolve("/", "abcdefg", small,
					    sizeof small),
			 STORE_EINVAL);
	/* ".." brings an overlong intermediate back into bounds only if the
	 * long segment was never stored: segments are checked one by one */
	char *seg = repeat('s', 256);
	char out[2048];
	assert_int_equal(store_path_resolve("/", seg, out, sizeof out),
			 STORE_EINVAL);
	free(seg);
	/* a long path of "./" collapses fine */
	size_t n = 100000;
	char *dots = malloc(n * 2 + 2);
	for (size_t i = 0; i < n; i++)
		memcpy(dots + i * 2, "./", 2);
	strcpy(dots + n * 2, "x");
	assert_int_equal(store_path_resolve("/", dots, out, sizeof out), 0);
	assert_string_equal(out, "/x");
	/* and so does a long run of "../" above the root */
	size_t m = n * 2 / 3;
	for (size_t i = 0; i < m; i++)
		memcpy(dots + i * 3, "../", 3);
	strcpy(dots + m * 3, "y");
	assert_int_equal(store_path_resolve("/a/b", dots, out, sizeof out), 0);
	assert_string_equal(out, "/y");
	free(dots);
	assert_int_equal(store_path_resolve("/", "x", out, 1), STORE_EINVAL);
	assert_int_equal(store_path_resolve(NULL, "x", out, sizeof out),
			 STORE_EINVAL);
	assert_int_equal(store_path_resolve("/", NULL, out, sizeof out),
			 STORE_EINVAL);
}

static void test_join(void **state)
{
	char out[16];
	assert_int_equal(store_name_join("a/b", "c", out, sizeof out), 0);
	assert_string_equal(out, "a/b/c");
	assert_int_equal(store_name_join("", "c", out, sizeof out), 0);
	assert_string_equal(out, "c");
	assert_int_equal(store_name_join("a/", "c", out, sizeof out), 0);
	assert_string_equal(out, "a/c");
	assert_int_equal(store_name_join("abcdefgh", "ijklmnop", out,
					 sizeof out),
			 STORE_EINVAL);
	assert_int_equal(store_name_join("abcdefg", "ijklmno", out,
					 sizeof out),
			 0);
	assert_string_equal(out, "abcdefg/ijklmno");
}

static void test_content_type(void **state)
{
	assert_string_equal(store_content_type("a.jpg"), "image/jpeg");
	assert_string_equal(store_content_type("dir/A.JPEG"), "image/jpeg");
	assert_string_equal(store_content_type("x.Png"), "image/png");
	assert_string_equal(store_content_type("x.tif"), "image/tiff");
	assert_string_equal(store_content_type("x.TIFF"), "image/tiff");
	assert_string_equal(store_content_type("x.pdf"), "application/pdf");
	assert_string_equal(store_content_type("x.heic"), "image/heic");
	assert_string_equal(store_content_type("x.mp4"), "video/mp4");
	assert_string_equal(store_content_type("x.mov"), "video/quicktime");
	assert_string_equal(store_content_type("x.mp3"), "audio/mpeg");
	assert_string_equal(store_content_type("x.wav"), "audio/wav");
	assert_string_equal(store_content_type("x.csv"), "text/csv");
	assert_string_equal(store_content_type("k-assets.tar.xz"),
			    "application/x-xz");
	assert_string_equal(store_content_type("noext"),
			    "application/octet-stream");
	assert_string_equal(store_content_type(".jpg"),
			    "application/octet-stream");
	assert_string_equal(store_content_type("a.jpg/b"),
			    "application/octet-stream");
	assert_string_equal(store_content_type("trailing."),
			    "application/octet-stream");
	assert_string_equal(store_content_type(NULL),
			    "application/octet-stream");
}

static void test_strerror(void **state)
{
	for (int e = STORE_ECANCELED; e <= 0; e++) {
		const char *s = store_strerror(e);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
		assert_string_not_equal(s, "unknown storage error");
	}
	assert_string_equal(store_strerror(-999), "unknown storage error");
}

static void test_urls(void **state)
{
	char dir[] = "/tmp/assetd-names-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char url[256];
	struct store *st;

	snprintf(url, sizeof url, "file://%s", dir);
	assert_int_equal(store_open(url, NULL, &st), 0);
	snprintf(url, sizeof url, "file://%s/", dir);
	assert_string_equal(store_url(st), url);
	assert_int_equal(store_is_s3(st), 0);
	store_close(st);

	snprintf(url, sizeof url, "file://%s///", dir);
	assert_int_equal(store_open(url, NULL, &st), 0);
	snprintf(url, sizeof url, "file://%s/", dir);
	assert_string_equal(store_url(st), url);
	store_close(st);

	static const char *const bad[] = {
		"", "file://", "file://relative/x", "file:///tmp/../etc/",
		"file:///tmp//x/", "file:///tmp/./x", "http://x/",
		"s3://", "s3://a/", "s3://-bad-/", "s3://bucket/../x",
		"s3://bucket/a//b/", "s3://bu cket/", "s3://bucket/x\ny",
		"file:///nonexistent-assetd-dir/",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		st = NULL;
		if (store_open(bad[i], NULL, &st) == 0)
			fail_msg("should be refused: %s", bad[i]);
		assert_null(st);
	}
	/* a file, not a directory */
	snprintf(url, sizeof url, "file://%s/f", dir);
	char path[256];
	snprintf(path, sizeof path, "%s/f", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(store_open(url, NULL, &st), STORE_ENOTDIR);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_names),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_overlong),
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_resolve_bounds),
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
