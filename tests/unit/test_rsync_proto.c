/* test_rsync_proto.c - the rsync engine's codecs: integer encodings, file
 * indexes, the file-list order, wildcard and filter rules, command-line
 * splitting and option parsing, checksums and block sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rsync_memio.h"

static unsigned char g_buf[1 << 16];
static struct mem g_mem;
static struct rsync_io g_io = {&g_mem, mem_read, mem_write, NULL};

static struct rs_conn *fresh(void)
{
	static struct rs_conn c;
	memset(&g_mem, 0, sizeof g_mem);
	g_mem.buf = g_buf;
	g_mem.cap = sizeof g_buf;
	rs_conn_init(&c, &g_io);
	return &c;
}

static void test_varint_bytes(void **state)
{
	struct rs_conn *c = fresh();
	rs_write_varint(c, 0x7f);
	rs_write_varint(c, 0x80);
	rs_flush(c);
	assert_int_equal(g_mem.len, 3);
	assert_int_equal(g_mem.buf[0], 0x7f);
	assert_int_equal(g_mem.buf[1], 0x80);
	assert_int_equal(g_mem.buf[2], 0x80);
}

static void test_varint_roundtrip(void **state)
{
	static const int32_t v[] = {0, 1, 127, 128, 255, 256, 16383, 16384,
				    0x7fffff, 0x1000000, 0x7fffffff, -1, -200};
	static const int64_t l[] = {0, 1, 0xffffff, 0x1000000, 1700000000,
				    4102444800LL, (int64_t)1 << 40,
				    ((int64_t)1 << 62) + 5};
	struct rs_conn *c = fresh();
	size_t i;

	for (i = 0; i < sizeof v / sizeof v[0]; i++)
		rs_write_varint(c, v[i]);
	for (i = 0; i < sizeof l / sizeof l[0]; i++) {
		rs_write_varlong(c, l[i], 3);
		rs_write_varlong(c, l[i], 4);
	}
	rs_write_vstring(c, "md5 md4", 7);
	rs_flush(c);
	for (i = 0; i < sizeof v / sizeof v[0]; i++)
		assert_int_equal(rs_read_varint(c), v[i]);
	for (i = 0; i < sizeof l / sizeof l[0]; i++) {
		assert_true(rs_read_varlong(c, 3) == l[i]);
		assert_true(rs_read_varlong(c, 4) == l[i]);
	}
	{
		char s[16];
		assert_int_equal(rs_read_vstring(c, s, sizeof s), 7);
		assert_string_equal(s, "md5 md4");
	}
	assert_int_equal(c->err, 0);
}

static void test_ndx_encoding(void **state)
{
	static const int32_t seq[] = {0, 1, 5, 300, 100000, 7, RS_NDX_DONE,
				      RS_NDX_DEL_STATS, 8, RS_NDX_FLIST_EOF};
	struct rs_conn *c = fresh();
	size_t i;

	rs_write_ndx(c, 0);
	rs_write_ndx(c, RS_NDX_DONE);
	rs_flush(c);
	/* first index 0 is a delta of 1 from -1; DONE is a single 0 */
	assert_int_equal(g_mem.len, 2);
	assert_int_equal(g_mem.buf[0], 1);
	assert_int_equal(g_mem.buf[1], 0);

	c = fresh();
	for (i = 0; i < sizeof seq / sizeof seq[0]; i++)
		rs_write_ndx(c, seq[i]);
	rs_flush(c);
	for (i = 0; i < sizeof seq / sizeof seq[0]; i++)
		assert_int_equal(rs_read_ndx(c), seq[i]);
}

static void test_multiplexed_frames(void **state)
{
	struct rs_conn *c = fresh();
	unsigned char b[5];

	c->mplex_out = 1;
	rs_write(c, "hello", 5);
	rs_msg(c, RS_MSG_INFO, "hi\n", 3); /* flushes the data frame first */
	rs_flush(c);
	/* data frame header: tag 7 (base + 0), length 5 */
	assert_int_equal(g_mem.buf[3], 7);
	assert_int_equal(g_mem.buf[0], 5);
	assert_int_equal(g_mem.buf[9 + 3], 7 + RS_MSG_INFO);
	/* reading skips the text message and yields the data */
	c->mplex_in = 1;
	rs_read(c, b, 5);
	assert_memory_equal(b, "hello", 5);
	assert_int_equal(c->err, 0);
	/* then the stream ends inside a frame: an error, zeros */
	rs_read(c, b, 1);
	assert_int_not_equal(c->err, 0);
}

static void test_error_exit_from_client(void **state)
{
	struct rs_conn *c = fresh();
	unsigned char hdr[8] = {4, 0, 0, 7 + RS_MSG_ERROR_EXIT, 12, 0, 0, 0};
	mem_write(&g_mem, hdr, sizeof hdr);
	c->mplex_in = 1;
	(void)rs_read_int(c);
	assert_int_equal(c->got_error_exit, 1);
	assert_int_not_equal(c->err, 0);
}

static int cmp_idx(const void *a, const void *b)
{
	return rs_file_cmp(*(struct rs_file *const *)a,
			   *(struct rs_file *const *)b);
}

static void test_file_order(void **state)
{
	/* rsync's order: per directory the files, then the subdirectories
	 * compared as "name/", each followed by its contents. */
	static const struct {
		const char *name;
		int type;
	} want[] = {
		{".", RS_FT_DIR},       {"b.txt", RS_FT_REG},
		{"z.txt", RS_FT_REG},   {"a.b", RS_FT_DIR},
		{"a.b/f", RS_FT_REG},   {"a", RS_FT_DIR},
		{"a/x", RS_FT_REG},     {"a/zz", RS_FT_REG},
		{"a/sub", RS_FT_DIR},   {"a/sub/y", RS_FT_REG},
		{"ab", RS_FT_DIR},
	};
	struct rs_flist fl;
	size_t i, n = sizeof want / sizeof want[0];

	memset(&fl, 0, sizeof fl);
	for (i = n; i-- > 0;)
		assert_int_equal(rs_flist_add(&fl, want[i].name, want[i].type,
					      0, 0, 0), 0);
	rs_flist_sort(&fl);
	for (i = 0; i < n; i++)
		assert_string_equal(fl.files[i]->name, want[i].name);
	assert_int_equal(rs_flist_has_dups(&fl), 0);
	qsort(fl.files, fl.used, sizeof fl.files[0], cmp_idx);
	rs_flist_add(&fl, "a/x", RS_FT_REG, 0, 0, 0);
	rs_flist_sort(&fl);
	assert_int_equal(rs_flist_has_dups(&fl), 1);
	/* Regression (fuzz_rsync_session, under UBSan): once both names are
	 * used up the comparison formed name + SIZE_MAX before checking. */
	assert_int_equal(rs_file_cmp(fl.files[0], fl.files[0]), 0);
	{
		struct rs_file a = {.name = (char *)"a", .type = RS_FT_REG};
		struct rs_file ab = {.name = (char *)"a/b", .type = RS_FT_REG};
		assert_true(rs_file_cmp(&a, &ab) < 0);
		assert_true(rs_file_cmp(&ab, &a) > 0);
	}
	rs_flist_free(&fl);
}

static void test_safe_names(void **state)
{
	assert_true(rs_name_safe("."));
	assert_true(rs_name_safe("a/b c/d.jpg"));
	assert_false(rs_name_safe(""));
	assert_false(rs_name_safe("/etc/passwd"));
	assert_false(rs_name_safe("a/../b"));
	assert_false(rs_name_safe(".."));
	assert_false(rs_name_safe("a//b"));
	assert_false(rs_name_safe("a/./b"));
	assert_false(rs_name_safe("a/"));
}

static void test_wildmatch(void **state)
{
	assert_true(rs_wildmatch("*.jpg", "x.jpg"));
	assert_false(rs_wildmatch("*.jpg", "a/x.jpg"));
	assert_true(rs_wildmatch("**.jpg", "a/x.jpg"));
	assert_true(rs_wildmatch("a/**/z", "a/b/c/z"));
	assert_true(rs_wildmatch("a?c", "abc"));
	assert_false(rs_wildmatch("a?c", "a/c"));
	assert_true(rs_wildmatch("[abc]x", "bx"));
	assert_false(rs_wildmatch("[!abc]x", "bx"));
	assert_true(rs_wildmatch("[a-c]x", "cx"));
	assert_true(rs_wildmatch("\\*x", "*x"));
	assert_false(rs_wildmatch("\\*x", "ax"));
	assert_true(rs_wildmatch("photo", "photo"));
	assert_false(rs_wildmatch("photo", "photos"));
}

static void test_filters(void **state)
{
	struct rs_filters f;
	char err[256];

	memset(&f, 0, sizeof f);
	assert_int_equal(rs_filter_add(&f, "+ keep.tmp", err, sizeof err), 0);
	assert_int_equal(rs_filter_add(&f, "- *.tmp", err, sizeof err), 0);
	assert_int_equal(rs_filter_add(&f, "- /top", err, sizeof err), 0);
	assert_int_equal(rs_filter_add(&f, "- cache/", err, sizeof err), 0);
	assert_int_equal(rs_filter_add(&f, "- x/y", err, sizeof err), 0);
	assert_int_equal(rs_filter_add(&f, "- big/***", err, sizeof err), 0);
	assert_int_equal(rs_filter_add(&f, "-s sendonly", err, sizeof err), 0);

	assert_true(rs_filter_excluded(&f, "d/x.tmp", 0, 0));
	assert_false(rs_filter_excluded(&f, "d/keep.tmp", 0, 0));
	assert_true(rs_filter_excluded(&f, "top", 0, 0));
	assert_false(rs_filter_excluded(&f, "d/top", 0, 0));
	assert_true(rs_filter_excluded(&f, "a/cache", 1, 0));
	assert_false(rs_filter_excluded(&f, "a/cache", 0, 0));
	assert_true(rs_filter_excluded(&f, "q/x/y", 0, 0));
	assert_true(rs_filter_excluded(&f, "big", 1, 0));
	assert_true(rs_filter_excluded(&f, "big/a/b", 0, 0));
	assert_false(rs_filter_excluded(&f, "bigger", 1, 0));
	assert_false(rs_filter_excluded(&f, "ok.jpg", 0, 0));
	assert_false(rs_filter_excluded(&f, ".", 1, 0));
	/* sender-side rules do not protect from deletion */
	assert_true(rs_filter_excluded(&f, "sendonly", 0, 0));
	assert_false(rs_filter_excluded(&f, "sendonly", 0, 1));
	/* "!" clears */
	assert_int_equal(rs_filter_add(&f, "!", err, sizeof err), 0);
	assert_false(rs_filter_excluded(&f, "d/x.tmp", 0, 0));
	/* merge files are refused with a message */
	assert_int_equal(rs_filter_add(&f, ":n- .rsync-filter", err, sizeof err), -1);
	assert_non_null(strstr(err, "not supported"));
	rs_filter_free(&f);
}

static void test_split_command(void **state)
{
	char buf[512];
	char *argv[16];
	int n = rsync_split_command(
		"rsync --server -vlogDtpre.iLsfxCIvu . attachments/with\\ "
		"space/\\\"q\\\" 'single quoted' \"dq \\\"x\\\"\"",
		buf, sizeof buf, argv, 16);
	assert_int_equal(n, 7);
	assert_string_equal(argv[0], "rsync");
	assert_string_equal(argv[3], ".");
	assert_string_equal(argv[4], "attachments/with space/\"q\"");
	assert_string_equal(argv[5], "single quoted");
	assert_string_equal(argv[6], "dq \"x\"");
	assert_int_equal(rsync_split_command("rsync 'open", buf, sizeof buf,
					     argv, 16), -1);
	assert_true(rsync_is_server_command("rsync --server --sender . x"));
	assert_false(rsync_is_server_command("scp -t x"));
}

static int parse(const char *cmd, struct rs_opts *o, char *err, size_t n)
{
	static char buf[1024];
	static char *argv[64];
	int argc = rsync_split_command(cmd, buf, sizeof buf, argv, 63);
	return rs_parse_options(argc, argv, o, err, n);
}

static void test_options(void **state)
{
	struct rs_opts o;
	char err[256];

	assert_int_equal(parse("rsync --server --sender -vlogDtpre.iLsfxCIvu "
			       "--delete --partial-dir .p --max-size=10M . "
			       "attachments/x/", &o, err, sizeof err), 0);
	assert_true(o.sender);
	assert_true(o.recurse);
	assert_true(o.preserve_times);
	assert_true(o.delete_mode);
	assert_true(o.partial);
	assert_int_equal(o.verbose, 1);
	assert_string_equal(o.caps, ".iLsfxCIvu");
	assert_true(o.max_size == 10 * 1024 * 1024);
	assert_int_equal(o.nargs, 1);
	assert_string_equal(o.args[0], "attachments/x/");

	assert_int_equal(parse("rsync --server -vlogDtpXre.iLsfxCIvu . x/", &o,
			       err, sizeof err), RSYNC_ESYNTAX);
	assert_non_null(strstr(err, "--xattrs"));
	assert_int_equal(parse("rsync --server --link-dest=/etc . x/", &o, err,
			       sizeof err), RSYNC_ESYNTAX);
	assert_non_null(strstr(err, "--link-dest"));
	assert_int_equal(parse("rsync --sender . x/", &o, err, sizeof err),
			 RSYNC_ESYNTAX);
	assert_int_equal(parse("rsync --server -B 2048 -c . x/", &o, err,
			       sizeof err), 0);
	assert_int_equal(o.block_size, 2048);
	assert_true(o.always_checksum);
	/* Regression (fuzz_rsync_options, under UBSan): a size beyond
	 * int64_t was converted anyway. */
	assert_int_equal(parse("rsync --server --max-size=1e77 . x/", &o, err,
			       sizeof err), RSYNC_ESYNTAX);
	assert_int_equal(parse("rsync --server --min-size=nan . x/", &o, err,
			       sizeof err), RSYNC_ESYNTAX);
	/* compression: named, negotiated, refused with rsync's code 4 */
	assert_int_equal(parse("rsync --server -logDtpzre.iLsfxCIvu . x/", &o,
			       err, sizeof err), 0);
	assert_true(o.compress);
	assert_int_equal(o.compress_choice, -1);
	assert_int_equal(parse("rsync --server -z --old-compress . x/", &o,
			       err, sizeof err), 0);
	assert_int_equal(o.compress_choice, RS_CPRES_ZLIB);
	assert_int_equal(parse("rsync --server --new-compress . x/", &o, err,
			       sizeof err), 0);
	assert_int_equal(o.compress_choice, RS_CPRES_ZLIBX);
	assert_int_equal(parse("rsync --server --compress-choice=zstd "
			       "--compress-level=9 . x/", &o, err, sizeof err), 0);
	assert_int_equal(o.compress_choice, RS_CPRES_ZSTD);
	assert_int_equal(o.compress_level, 9);
	assert_int_equal(parse("rsync --server --compress-choice=lz4 . x/", &o,
			       err, sizeof err), RSYNC_EUNSUPPORTED);
	assert_non_null(strstr(err, "unknown compress name: lz4"));
}

static void test_checksums(void **state)
{
	static const unsigned char d[] = {0xff, 0x01};
	unsigned char big[4096];
	int32_t bl, s2;
	size_t i;

	/* bytes are signed: -1 + 1 */
	assert_int_equal(rs_checksum1(d, 2), 0xffff0000u);
	for (i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7 + 3);
	/* rolling by one byte equals summing afresh */
	{
		uint32_t a = rs_checksum1(big, 700);
		uint32_t s1 = a & 0xffff, s2v = a >> 16;
		int32_t old = (signed char)big[0], nw = (signed char)big[700];
		s1 -= (uint32_t)old;
		s2v -= (uint32_t)(700 * old);
		s1 += (uint32_t)nw;
		s2v += s1;
		assert_int_equal((s1 & 0xffff) | (s2v << 16),
				 rs_checksum1(big + 1, 700));
	}
	rs_sum_sizes(20 * 1024 * 1024, 0, &bl, &s2);
	assert_int_equal(bl, 4576);
	assert_int_equal(s2, 2);
	rs_sum_sizes(1000, 0, &bl, &s2);
	assert_int_equal(bl, 700);
	rs_sum_sizes((int64_t)1 << 40, 0, &bl, &s2);
	assert_int_equal(bl, RS_MAX_BLOCK_SIZE);
	assert_true(s2 >= 2 && s2 <= 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_bytes),
		cmocka_unit_test(test_varint_roundtrip),
		cmocka_unit_test(test_ndx_encoding),
		cmocka_unit_test(test_multiplexed_frames),
		cmocka_unit_test(test_error_exit_from_client),
		cmocka_unit_test(test_file_order),
		cmocka_unit_test(test_safe_names),
		cmocka_unit_test(test_wildmatch),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_split_command),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_checksums),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
