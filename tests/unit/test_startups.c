/* test_startups.c - MaxStartups: the value's forms and errors (with the
 * file and line of a bad one), and the drop decision with the random draw
 * passed in: never below start, rate% at start rising linearly, always at
 * full, and N meaning N:100:N. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "sshd.h"

static void test_defaults_like_openssh(void **state)
{
	(void)state;
	struct conf c;
	conf_defaults(&c);
	assert_int_equal(c.max_startups.start, 10);
	assert_int_equal(c.max_startups.rate, 30);
	assert_int_equal(c.max_startups.full, 100);
}

static void test_parse_forms(void **state)
{
	(void)state;
	struct conf c;
	char err[256];
	conf_defaults(&c);
	assert_int_equal(conf_parse_line(&c, "MaxStartups 5:50:20", err,
					 sizeof err), 0);
	assert_int_equal(c.max_startups.start, 5);
	assert_int_equal(c.max_startups.rate, 50);
	assert_int_equal(c.max_startups.full, 20);
	/* a single number N is N:100:N */
	assert_int_equal(conf_parse_line(&c, "maxstartups 3", err, sizeof err),
			 0);
	assert_int_equal(c.max_startups.start, 3);
	assert_int_equal(c.max_startups.rate, 100);
	assert_int_equal(c.max_startups.full, 3);
	assert_int_equal(conf_parse_line(&c, "MaxStartups=7:1:7", err,
					 sizeof err), 0);
	assert_int_equal(c.max_startups.full, 7);
}

static void test_parse_errors(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"10:30", "10:30:100:5", "a:b:c", "10::100", ":30:100",
		"10:30:", "0", "0:30:100", "-1", "+5", "10:0:100",
		"10:101:100", "20:30:10", "10:30:100000000000", "10x",
		"100001", "5:30:100001", " : : ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct conf_startups ms = { 1, 2, 3 };
		char err[256] = "";
		if (conf_parse_startups(bad[i], &ms, err, sizeof err) == 0)
			fail_msg("'%s' was accepted", bad[i]);
		assert_true(strlen(err) > 0);
		/* nothing half-set */
		assert_int_equal(ms.start, 1);
		assert_int_equal(ms.rate, 2);
		assert_int_equal(ms.full, 3);
	}
}

static void test_bad_value_names_file_and_line(void **state)
{
	(void)state;
	char path[] = "/tmp/test_startups_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "# ssh\nMaxStartups 10:30:100\nMaxStartups 10:150:100\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct conf c;
	char err[512] = "";
	conf_defaults(&c);
	assert_int_equal(conf_load(path, &c, err, sizeof err), -1);
	unlink(path);
	char want[128];
	snprintf(want, sizeof want, "%s:3: MaxStartups:", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error '%s' does not start '%s'", err, want);
	assert_non_null(strstr(err, "rate"));
}

static void test_drop_decision(void **state)
{
	(void)state;
	struct conf_startups ms = { 10, 30, 100 };
	/* below start: never, whatever the draw */
	for (int n = 0; n < 10; n++) {
		assert_int_equal(sshd_startups_drop(&ms, n, 0), 0);
		assert_int_equal(sshd_startups_drop(&ms, n, 99), 0);
	}
	/* at start: 30% (draws 0..29 drop, 30..99 do not) */
	assert_int_equal(sshd_startups_drop(&ms, 10, 29), 1);
	assert_int_equal(sshd_startups_drop(&ms, 10, 30), 0);
	/* half way (55 of 10..100): 30 + 70 * 45 / 90 = 65% */
	assert_int_equal(sshd_startups_drop(&ms, 55, 64), 1);
	assert_int_equal(sshd_startups_drop(&ms, 55, 65), 0);
	/* just below full: 30 + 70 * 89 / 90 = 99% */
	assert_int_equal(sshd_startups_drop(&ms, 99, 98), 1);
	assert_int_equal(sshd_startups_drop(&ms, 99, 99), 0);
	/* at and above full: always */
	assert_int_equal(sshd_startups_drop(&ms, 100, 99), 1);
	assert_int_equal(sshd_startups_drop(&ms, 5000, 99), 1);

	/* the probability never falls as the count rises */
	int last = 0;
	for (int n = 0; n <= 110; n++) {
		int drops = 0;
		for (unsigned d = 0; d < 100; d++)
			drops += sshd_startups_drop(&ms, n, d);
		assert_true(drops >= last);
		last = drops;
	}
	assert_int_equal(last, 100);

	/* N = N:100:N: all in below N, none at N */
	struct conf_startups three = { 3, 100, 3 };
	for (unsigned d = 0; d < 100; d++) {
		assert_int_equal(sshd_startups_drop(&three, 2, d), 0);
		assert_int_equal(sshd_startups_drop(&three, 3, d), 1);
	}
	/* rate 100 with start < full: every one past start */
	struct conf_startups hard = { 4, 100, 8 };
	assert_int_equal(sshd_startups_drop(&hard, 4, 99), 1);
	assert_int_equal(sshd_startups_drop(&hard, 3, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_like_openssh),
		cmocka_unit_test(test_parse_forms),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_bad_value_names_file_and_line),
		cmocka_unit_test(test_drop_decision),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
