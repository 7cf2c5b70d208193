/* test_schedule.c - crontab-style schedule parsing and next due times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schedule.h"

/* UTC time from a broken-down date (tests run with TZ=UTC). */
static time_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = { 0 };
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return timegm(&tm);
}

static time_t next_of(const char *text, time_t after)
{
	struct schedule s;
	char err[200];
	time_t n = 0;
	assert_int_equal(schedule_parse(text, &s, err, sizeof err), 0);
	assert_int_equal(schedule_next(&s, after, &n), 0);
	return n;
}

static void test_weekly_archive(void **state)
{
	/* the old archive cron: Sundays at 03:00. 2026-11-25 is a Wednesday */
	time_t t = utc(2026, 11, 25, 19, 40);
	assert_int_equal(next_of("0 3 * * 0", t), utc(2026, 11, 29, 3, 0));
	assert_int_equal(next_of("0 3 * * sun", t), utc(2026, 11, 29, 3, 0));
	assert_int_equal(next_of("0 3 * * 7", t), utc(2026, 11, 29, 3, 0));
	/* strictly after: exactly at the due time gives the next week */
	assert_int_equal(next_of("0 3 * * 0", utc(2026, 11, 29, 3, 0)),
			 utc(2026, 12, 6, 3, 0));
}

static void test_macros(void **state)
{
	time_t t = utc(2026, 11, 25, 19, 40);
	assert_int_equal(next_of("@daily", t), utc(2026, 11, 26, 0, 0));
	assert_int_equal(next_of("@midnight", t), utc(2026, 11, 26, 0, 0));
	assert_int_equal(next_of("@hourly", t), utc(2026, 11, 25, 20, 0));
	assert_int_equal(next_of("@weekly", t), utc(2026, 11, 29, 0, 0));
	assert_int_equal(next_of("@monthly", t), utc(2026, 12, 1, 0, 0));
	assert_int_equal(next_of("@yearly", t), utc(2027, 1, 1, 0, 0));
}

static void test_lists_ranges_steps(void **state)
{
	time_t t = utc(2026, 11, 25, 19, 40);
	assert_int_equal(next_of("*/15 * * * *", t), utc(2026, 11, 25, 19, 45));
	assert_int_equal(next_of("5,50 * * * *", t), utc(2026, 11, 25, 19, 50));
	assert_int_equal(next_of("0 9-17/4 * * *", t), utc(2026, 11, 26, 9, 0));
	assert_int_equal(next_of("30 2 * * mon-fri", t),
			 utc(2026, 11, 26, 2, 30));
	assert_int_equal(next_of("0 0 1 jan,jul *", t), utc(2027, 1, 1, 0, 0));
	/* "5/20": from 5 on, every 20 */
	assert_int_equal(next_of("5/20 * * * *", t), utc(2026, 11, 25, 19, 45));
	/* every minute */
	assert_int_equal(next_of("* * * * *", t), utc(2026, 11, 25, 19, 41));
}

static void test_day_or_semantics(void **state)
{
	/* both day fields restricted: either matches (cron's rule).
	 * The 1st of Dec 2026 is a Tuesday; Friday the 27th comes first. */
	time_t t = utc(2026, 11, 25, 19, 40);
	assert_int_equal(next_of("0 0 1 * fri", t), utc(2026, 11, 27, 0, 0));
	/* only day of month restricted */
	assert_int_equal(next_of("0 0 1 * *", t), utc(2026, 12, 1, 0, 0));
	/* Feb 29 is found in the next leap year */
	assert_int_equal(next_of("0 0 29 2 *", t), utc(2028, 2, 29, 0, 0));
}

static void test_matches(void **state)
{
	struct schedule s;
	assert_int_equal(schedule_parse("0 3 * * 0", &s, NULL, 0), 0);
	assert_true(schedule_matches(&s, utc(2026, 11, 29, 3, 0) + 30));
	assert_false(schedule_matches(&s, utc(2026, 11, 29, 3, 1)));
	assert_false(schedule_matches(&s, utc(2026, 11, 28, 3, 0)));
}

static void test_never(void **state)
{
	struct schedule s;
	time_t n;
	assert_int_equal(schedule_parse("0 0 30 2 *", &s, NULL, 0), 0);
	assert_int_equal(schedule_next(&s, utc(2026, 1, 1, 0, 0), &n), -1);
}

static void test_errors(void **state)
{
	struct schedule s;
	char err[200];
	assert_int_equal(schedule_parse("0 25 * * *", &s, err, sizeof err),
			 -1);
	assert_non_null(strstr(err, "hour"));
	assert_non_null(strstr(err, "0-23"));
	assert_int_equal(schedule_parse("0 3 * *", &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "5 fields"));
	assert_int_equal(schedule_parse("0 3 * * 0 x", &s, err, sizeof err),
			 -1);
	assert_int_equal(schedule_parse("a 3 * * 0", &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "minute"));
	assert_int_equal(schedule_parse("*/0 * * * *", &s, err, sizeof err),
			 -1);
	assert_int_equal(schedule_parse("5-1 * * * *", &s, err, sizeof err),
			 -1);
	assert_int_equal(schedule_parse("0 0 0 * *", &s, err, sizeof err), -1);
	assert_int_equal(schedule_parse("0 0 * 13 *", &s, err, sizeof err),
			 -1);
	assert_int_equal(schedule_parse("0 0 * * 8", &s, err, sizeof err), -1);
	assert_int_equal(schedule_parse("@fortnightly", &s, err, sizeof err),
			 -1);
	assert_int_equal(schedule_parse("0 0 * foo *", &s, err, sizeof err),
			 -1);
	assert_int_equal(schedule_parse("", &s, err, sizeof err), -1);
	assert_int_equal(schedule_parse("1,,2 * * * *", &s, err, sizeof err),
			 -1);
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weekly_archive),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_lists_ranges_steps),
		cmocka_unit_test(test_day_or_semantics),
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_never),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
