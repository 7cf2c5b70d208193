/* test_isotime.c - ISO 8601 times as S3 writes them and as a person types
 * them for `assetctl audit --since`: each mode takes what its reader always
 * took and refuses out-of-range fields and loose digits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "isotime.h"

/* 2026-11-25T19:40:01Z */
#define T0 1795635601

static void test_s3_forms(void **state)
{
	(void)state;
	int64_t t = 0;
	/* S3's form, with milliseconds and 'Z'; the fraction is dropped. */
	assert_int_equal(isotime_parse("2026-11-25T19:40:01.000Z", ISOTIME_S3,
				       &t),
			 0);
	assert_int_equal(t, T0);
	assert_int_equal(isotime_parse("2026-11-25T19:40:01.999Z", ISOTIME_S3,
				       &t),
			 0);
	assert_int_equal(t, T0);
	/* 'Z' alone, or nothing after the seconds. */
	t = 0;
	assert_int_equal(isotime_parse("2026-11-25T19:40:01Z", ISOTIME_S3, &t),
			 0);
	assert_int_equal(t, T0);
	t = 0;
	assert_int_equal(isotime_parse("2026-11-25T19:40:01", ISOTIME_S3, &t),
			 0);
	assert_int_equal(t, T0);
	/* The epoch itself is a time, not an error. */
	assert_int_equal(isotime_parse("1970-01-01T00:00:00Z", ISOTIME_S3, &t),
			 0);
	assert_int_equal(t, 0);
	/* S3 always writes the seconds and the 'T'. */
	static const char *const bad[] = {
		"2026-11-25",		 "2026-11-25T19:40Z",
		"2026-11-25 19:40:01Z",	 "2026-11-25T19:40:1Z",
		"garbage",		 "",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t = 42;
		assert_int_equal(isotime_parse(bad[i], ISOTIME_S3, &t), -1);
		assert_int_equal(t, 42);
	}
	assert_int_equal(isotime_parse(NULL, ISOTIME_S3, &t), -1);
}

static void test_user_forms(void **state)
{
	(void)state;
	int64_t t = 0;
	const int64_t day = 1795564800; /* 2026-11-25T00:00:00Z */
	assert_int_equal(isotime_parse("2026-11-25", ISOTIME_USER, &t), 0);
	assert_int_equal(t, day);
	assert_int_equal(isotime_parse("2026-11-25Z", ISOTIME_USER, &t), 0);
	assert_int_equal(t, day);
	assert_int_equal(isotime_parse("2026-11-25T10:00", ISOTIME_USER, &t), 0);
	assert_int_equal(t, day + 36000);
	assert_int_equal(isotime_parse("2026-11-25 10:00", ISOTIME_USER, &t), 0);
	assert_int_equal(t, day + 36000);
	assert_int_equal(isotime_parse("2026-11-25T10:00:30Z", ISOTIME_USER, &t),
			 0);
	assert_int_equal(t, day + 36030);
	assert_int_equal(isotime_parse("2026-11-25 10:00:30", ISOTIME_USER, &t),
			 0);
	assert_int_equal(t, day + 36030);
	/* A person's input is refused rather than half read: no fraction,
	 * no zone but 'Z', nothing trailing. */
	static const char *const bad[] = {
		"2026-11-25T10:00:30.5Z", "2026-11-25T10:00:30.000",
		"2026-11-25T10:00+01:00", "2026-11-25T10",
		"2026-11-25T10:00:",	  "2026-11-25T",
		"2026-11-25x",		  "2026-11-25ZZ",
		"2026-11-5",		  "26-11-25",
		"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t = 42;
		assert_int_equal(isotime_parse(bad[i], ISOTIME_USER, &t), -1);
		assert_int_equal(t, 42);
	}
}

/* Field ranges, the same in both modes. */
static void test_ranges(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"2026-00-25T19:40:01Z", "2026-13-25T19:40:01Z",
		"2026-11-00T19:40:01Z", "2026-11-32T19:40:01Z",
		"2026-11-25T24:00:00Z", "2026-11-25T19:60:01Z",
		"2026-11-25T19:40:61Z", "1969-12-31T23:59:59Z",
		/* signs and blanks a "%2d" would have taken */
		"2026-+1-25T19:40:01Z", "2026-11-25T-1:40:01Z",
		"2026-11-25T 9:40:01Z", " 2026-11-25T19:40:01Z",
	};
	int64_t t;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(isotime_parse(bad[i], ISOTIME_S3, &t), -1);
		assert_int_equal(isotime_parse(bad[i], ISOTIME_USER, &t), -1);
	}
	/* The last second of a year. */
	assert_int_equal(isotime_parse("2026-12-31T23:59:59Z", ISOTIME_S3, &t),
			 0);
	assert_int_equal(t, 1798761599);
}

/* 29 February exists in a leap year and is the day before 1 March. */
static void test_leap_day(void **state)
{
	(void)state;
	int64_t t = 0, march = 0;
	assert_int_equal(isotime_parse("2024-02-29T12:00:00Z", ISOTIME_S3, &t),
			 0);
	assert_int_equal(t, 1709208000);
	assert_int_equal(isotime_parse("2024-02-29 12:00", ISOTIME_USER, &t), 0);
	assert_int_equal(t, 1709208000);
	assert_int_equal(isotime_parse("2024-03-01", ISOTIME_USER, &march), 0);
	assert_int_equal(march, 1709251200);
	assert_int_equal(isotime_parse("2024-02-29", ISOTIME_USER, &t), 0);
	assert_int_equal(march - t, 86400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_s3_forms),
		cmocka_unit_test(test_user_forms),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_leap_day),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
