/* test_log.c - logfmt quoting and level parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static void test_quote_bare(void **state)
{
	assert_string_equal(log_q("kufish"), "kufish");
	assert_string_equal(log_q("127.0.0.1:22"), "127.0.0.1:22");
}

static void test_quote_needs_quotes(void **state)
{
	assert_string_equal(log_q(""), "\"\"");
	assert_string_equal(log_q(NULL), "\"\"");
	assert_string_equal(log_q("a b"), "\"a b\"");
	assert_string_equal(log_q("k=v"), "\"k=v\"");
	assert_string_equal(log_q("say \"hi\""), "\"say \\\"hi\\\"\"");
	assert_string_equal(log_q("a\nb"), "\"a\\nb\"");
	assert_string_equal(log_q("a\x01"), "\"a\\x01\"");
}

static void test_quote_truncates(void **state)
{
	char big[1000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	const char *q = log_q(big);
	assert_int_equal(strlen(q), 256 + 3);
	assert_string_equal(q + 256, "...");
}

static void test_ring_keeps_values(void **state)
{
	const char *a = log_q("one two");
	const char *b = log_q("three");
	assert_string_equal(a, "\"one two\"");
	assert_string_equal(b, "three");
}

static void test_level_parse(void **state)
{
	assert_int_equal(log_level_parse("DEBUG"), LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("info"), LOG_LVL_INFO);
	assert_int_equal(log_level_parse("warning"), LOG_LVL_WARN);
	assert_int_equal(log_level_parse("error"), LOG_LVL_ERROR);
	assert_int_equal(log_level_parse("loud"), -1);
}

static void test_event_line(void **state)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	log_set_fd(fds[1]);
	log_set_level(LOG_LVL_INFO);
	log_info("login", "client=%s addr=%s", log_q("kufish"), log_q("::1"));
	log_debug("hidden", "x=1");
	log_set_fd(2);
	close(fds[1]);
	char buf[512] = { 0 };
	ssize_t n = read(fds[0], buf, sizeof buf - 1);
	close(fds[0]);
	assert_true(n > 0);
	assert_non_null(strstr(buf, " level=info event=login client=kufish addr=::1\n"));
	assert_int_equal(strncmp(buf, "ts=", 3), 0);
	assert_null(strstr(buf, "hidden"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_bare),
		cmocka_unit_test(test_quote_needs_quotes),
		cmocka_unit_test(test_quote_truncates),
		cmocka_unit_test(test_ring_keeps_values),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_event_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
