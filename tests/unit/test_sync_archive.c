/* test_sync_archive.c - the archive engine on filesystem locations: tar.xz
 * and tar.zst read back with libarchive (names relative to the client's
 * root, contents, mtimes, directory entries), the SHA-256 of the bytes,
 * and an interrupted archive that leaves nothing visible. (Archives with
 * the real tar, on S3, and over SSH are in tests/integration.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <locale.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "archives.h"
#include "scratch.h"
#include "store.h"

struct fx {
	char root[256];
	char src[300], dst[300];
	struct store *s, *d;
};

static const struct {
	const char *name;
	const char *content;
	time_t mtime;
} files[] = {
	{ "originals/a.jpg", "JPEG bytes", 1600000000 },
	{ "originals/b.pdf", "%PDF-1.4 ...", 1600000100 },
	{ "thumbnails/a_200.jpg", "thumb", 1600000200 },
	{ "Coll-2/originals/c.png", "\x89PNG", 1600000300 },
	{ "top.txt", "at the root", 1600000400 },
	{ "with space/\xc3\xbc" "n\xc3\xaf" "code.txt", "UTF-8 name", 1600000500 },
};
#define NFILES (sizeof files / sizeof files[0])

/* DIR/NAME holding CONTENT, last modified at MTIME. */
static void put(const char *dir, const char *name, const char *content,
		time_t mtime)
{
	char path[1024];
	scratch_put(dir, name, content);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	struct timeval tv[2] = { { mtime, 0 }, { mtime, 0 } };
	assert_int_equal(utimes(path, tv), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	scratch_dir(f->root, sizeof f->root, "/tmp/test_archive.XXXXXX");
	snprintf(f->src, sizeof f->src, "%s/client", f->root);
	snprintf(f->dst, sizeof f->dst, "%s/archives", f->root);
	mkdir(f->src, 0755);
	mkdir(f->dst, 0755);
	for (size_t i = 0; i < NFILES; i++)
		put(f->src, files[i].name, files[i].content, files[i].mtime);
	scratch_store(f->src, &f->s);
	scratch_store(f->dst, &f->d);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	store_close(f->d);
	assert_int_equal(scratch_remove(f->root), 0);
	free(f);
	return 0;
}

static void sha256_file(const char *path, char out[65])
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	unsigned char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	fclose(fp);
	unsigned char md[32];
	unsigned int len;
	EVP_DigestFinal_ex(ctx, md, &len);
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Read the archive back and check every file and the directory entries. */
static void check_archive(const char *path, int want_filter)
{
	struct archive *a = archive_read_new();
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	assert_int_equal(archive_read_open_filename(a, path, 65536),
			 ARCHIVE_OK);
	struct archive_entry *e;
	int seen[NFILES] = { 0 };
	int dirs = 0;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname_utf8(e);
		if (archive_entry_filetype(e) == AE_IFDIR) {
			dirs++;
			continue;
		}
		size_t i;
		for (i = 0; i < NFILES; i++)
			if (strcmp(files[i].name, name) == 0)
				break;
		assert_true(i < NFILES);
		seen[i]++;
		assert_int_equal(archive_entry_mtime(e), files[i].mtime);
		assert_int_equal(archive_entry_size(e),
				 strlen(files[i].content));
		char buf[256] = { 0 };
		la_ssize_t n = archive_read_data(a, buf, sizeof buf - 1);
		assert_int_equal(n, strlen(files[i].content));
		assert_memory_equal(buf, files[i].content, (size_t)n);
	}
	assert_int_equal(archive_filter_code(a, 0), want_filter);
	for (size_t i = 0; i < NFILES; i++)
		assert_int_equal(seen[i], 1);
	/* Coll-2/, Coll-2/originals/, originals/, thumbnails/, with space/ */
	assert_int_equal(dirs, 5);
	archive_read_free(a);
}

static void run_format(struct fx *f, const char *format, int filter)
{
	struct archives_result res;
	char name[64], path[512], sha[65];
	snprintf(name, sizeof name, "kufish/kufish-assets.%s", format);
	assert_int_equal(archives_write(f->s, f->d, name, format, NULL, &res),
			 0);
	assert_int_equal(res.objects, NFILES);
	assert_string_equal(res.error, "");
	snprintf(path, sizeof path, "%s/%s", f->dst, name);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, res.size);
	sha256_file(path, sha);
	assert_string_equal(sha, res.sha256);
	check_archive(path, filter);
}

static void test_tar_xz(void **state)
{
	run_format(*state, "tar.xz", ARCHIVE_FILTER_XZ);
}

static void test_tar_zst(void **state)
{
	run_format(*state, "tar.zst", ARCHIVE_FILTER_ZSTD);
}

static void test_bad_format(void **state)
{
	struct fx *f = *state;
	struct archives_result res;
	assert_int_equal(archives_write(f->s, f->d, "x.tar.gz", "tar.gz",
					NULL, &res),
			 STORE_EINVAL);
	assert_non_null(strstr(res.error, "tar.xz or tar.zst"));
	assert_true(archives_format_valid("tar.xz"));
	assert_false(archives_format_valid("zip"));
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_interrupted_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct archives_result res;
	volatile int cancel = 1;
	char dir[400];
	assert_int_not_equal(archives_write(f->s, f->d, "k/k.tar.xz",
					    "tar.xz", &cancel, &res),
			     0);
	assert_non_null(strstr(res.error, "interrupted"));
	snprintf(dir, sizeof dir, "%s/k", f->dst);
	/* neither the archive nor a temp file remains */
	assert_int_equal(count_entries(dir), 0);
}

static void test_empty_client(void **state)
{
	struct fx *f = *state;
	struct archives_result res;
	struct store *empty;
	char path[400];
	snprintf(path, sizeof path, "%s/empty", f->root);
	mkdir(path, 0755);
	scratch_store(path, &empty);
	assert_int_equal(archives_write(empty, f->d, "e.tar.zst", "tar.zst",
					NULL, &res),
			 0);
	assert_int_equal(res.objects, 0);
	assert_true(res.size > 0);
	store_close(empty);
}

int main(void)
{
	/* the reader converts names through the locale, like tar does */
	setlocale(LC_ALL, "C.UTF-8");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tar_xz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tar_zst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_format, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_interrupted_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_client, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
