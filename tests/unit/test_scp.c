/* test_scp.c - the legacy scp command splitter and control-line parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "scp.h"

static struct scp_words words;
static char err[128];

static void test_split_plain(void **state)
{
	assert_int_equal(scp_split_words("scp -r -t -- attachments/x",
					 &words, err, sizeof err), 0);
	assert_int_equal(words.n, 5);
	assert_string_equal(words.w[0], "scp");
	assert_string_equal(words.w[4], "attachments/x");
}

static void test_split_quotes(void **state)
{
	assert_int_equal(scp_split_words("scp -f 'a b/c d.jpg' \"e \\\"f\\\"\" g\\ h",
					 &words, err, sizeof err), 0);
	assert_int_equal(words.n, 5);
	assert_string_equal(words.w[2], "a b/c d.jpg");
	assert_string_equal(words.w[3], "e \"f\"");
	assert_string_equal(words.w[4], "g h");
	assert_int_equal(words.glob[2], 0);
}

static void test_split_unicode(void **state)
{
	assert_int_equal(scp_split_words("scp -t 'Ürsus ärctos/日本'", &words,
					 err, sizeof err), 0);
	assert_string_equal(words.w[2], "Ürsus ärctos/日本");
}

static void test_split_glob(void **state)
{
	assert_int_equal(scp_split_words("scp -f a/*.jpg 'b/*.jpg'", &words,
					 err, sizeof err), 0);
	assert_int_equal(words.glob[2], 1);
	assert_int_equal(words.glob[3], 0);
}

static void test_split_refuses_shell(void **state)
{
	const char *bad[] = {
		"scp -t x; rm -rf /", "scp -t x | cat", "scp -t x && y",
		"scp -t `id`", "scp -t $(id)", "scp -t $HOME", "scp -t 'x",
		"scp -t \"x", "scp -t x\\", "scp -t x > y", "scp -t \"$(id)\"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(scp_split_words(bad[i], &words, err, sizeof err),
				 -1);
}

static void test_parse_command(void **state)
{
	struct scp_command c;
	assert_int_equal(scp_split_words("scp -v -r -p -d -t -- -odd name",
					 &words, err, sizeof err), 0);
	/* "-odd" after "--" is a path; two paths for a sink is refused */
	assert_int_equal(scp_parse_command(&words, &c, err, sizeof err), -1);
	assert_int_equal(scp_split_words("scp -rpd -t -- '-odd name'", &words,
					 err, sizeof err), 0);
	assert_int_equal(scp_parse_command(&words, &c, err, sizeof err), 0);
	assert_int_equal(c.mode, SCP_SINK);
	assert_int_equal(c.recursive, 1);
	assert_int_equal(c.preserve, 1);
	assert_int_equal(c.target_dir, 1);
	assert_string_equal(c.paths[0], "-odd name");

	assert_int_equal(scp_split_words("scp -f a b c", &words, err,
					 sizeof err), 0);
	assert_int_equal(scp_parse_command(&words, &c, err, sizeof err), 0);
	assert_int_equal(c.mode, SCP_SOURCE);
	assert_int_equal(c.npaths, 3);

	assert_int_equal(scp_split_words("scp -x -t a", &words, err,
					 sizeof err), 0);
	assert_int_equal(scp_parse_command(&words, &c, err, sizeof err), -1);
	assert_string_equal(err, "unknown option -x");
	assert_int_equal(scp_split_words("scp -t -f a", &words, err,
					 sizeof err), 0);
	assert_int_equal(scp_parse_command(&words, &c, err, sizeof err), -1);
	assert_int_equal(scp_split_words("scp -t", &words, err, sizeof err), 0);
	assert_int_equal(scp_parse_command(&words, &c, err, sizeof err), -1);
	assert_int_equal(scp_split_words("ls -t x", &words, err, sizeof err), 0);
	assert_int_equal(scp_parse_command(&words, &c, err, sizeof err), -1);
}

static int parse(const char *s, struct scp_line *l)
{
	return scp_parse_line(s, strlen(s), l, err, sizeof err);
}

static void test_lines_good(void **state)
{
	struct scp_line l;
	assert_int_equal(parse("C0644 12345 my file.jpg", &l), 0);
	assert_int_equal(l.type, 'C');
	assert_int_equal(l.mode, 0644);
	assert_true(l.size == 12345);
	assert_string_equal(l.name, "my file.jpg");
	assert_int_equal(parse("D0755 0 sub dir", &l), 0);
	assert_int_equal(l.type, 'D');
	assert_int_equal(parse("E", &l), 0);
	assert_int_equal(parse("T1700000000 0 1700000001 0", &l), 0);
	assert_true(l.mtime == 1700000000);
	assert_true(l.atime == 1700000001);
	assert_int_equal(parse("\001scp: x: No such file", &l), 0);
	assert_int_equal(l.type, 1);
	assert_int_equal(parse("C0644 18446744073709551615 big", &l), 0);
	assert_int_equal(parse("C644 1 ü日本.txt", &l), 0);
	assert_string_equal(l.name, "ü日本.txt");
}

static void test_lines_bad(void **state)
{
	struct scp_line l;
	const char *bad[] = {
		"", "C0644 1 ../etc/passwd", "C0644 1 ..", "C0644 1 .",
		"C0644 1 a/b", "C0644 1 ", "C0644  1 x", "C0644 -1 x",
		"C0644 18446744073709551616 x", "C0689 1 x", "Cabc 1 x",
		"D0755 0 ../up", "E extra", "T1 0 2", "T1 0 2 0 3", "Tx 0 1 0",
		"X0644 1 x", "C0644 1 a\tb", "C0644 1 a\x7f", "C06440 1 x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = parse(bad[i], &l);
		if (rc != -1)
			fail_msg("accepted: %s", bad[i]);
	}
	char longname[400];
	memset(longname, 'a', sizeof longname);
	memcpy(longname, "C0644 1 ", 8);
	assert_int_equal(scp_parse_line(longname, sizeof longname, &l, err,
					sizeof err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_plain),
		cmocka_unit_test(test_split_quotes),
		cmocka_unit_test(test_split_unicode),
		cmocka_unit_test(test_split_glob),
		cmocka_unit_test(test_split_refuses_shell),
		cmocka_unit_test(test_parse_command),
		cmocka_unit_test(test_lines_good),
		cmocka_unit_test(test_lines_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
