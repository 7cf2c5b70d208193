/* test_penalty.c - the per-source penalty table, with the clock injected:
 * thresholds, decay, the cap, network blocks, exemptions, the table bound,
 * and the configuration words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "penalty.h"

static struct penalty_table *table(const char *words, const char *exempt,
				   const char *netblock)
{
	struct penalty_settings ps;
	char err[200];
	penalty_defaults(&ps);
	assert_int_equal(penalty_parse(&ps, words, exempt, netblock, err,
				       sizeof err), 0);
	struct penalty_table *t = penalty_new(&ps, "test");
	assert_non_null(t);
	return t;
}

static void test_refused_once_over_min_then_decays(void **state)
{
	(void)state;
	struct penalty_table *t = table(NULL, NULL, NULL); /* 5s, min 15s */
	int64_t now = 1000000;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(penalty_add(t, "192.0.2.7", PENALTY_AUTHFAIL,
					     now), 0);
		assert_int_equal(penalty_refused(t, "192.0.2.7", now), 0);
	}
	/* 20 s > 15 s: refused now, for the whole 20 s */
	assert_int_equal(penalty_add(t, "192.0.2.7", PENALTY_AUTHFAIL, now), 1);
	assert_int_equal(penalty_refused(t, "192.0.2.7", now), 20);
	assert_int_equal(penalty_refused(t, "192.0.2.7", now + 19), 1);
	assert_int_equal(penalty_refused(t, "192.0.2.7", now + 20), 0);
	/* another address is not affected */
	assert_int_equal(penalty_refused(t, "192.0.2.8", now), 0);
	/* the entry is gone once it ran out */
	assert_int_equal(penalty_count(t), 0);
	penalty_free(t);
}

static void test_slow_failures_never_refused(void **state)
{
	(void)state;
	struct penalty_table *t = table(NULL, NULL, NULL);
	int64_t now = 5000;
	/* one failure every 5 s never accumulates past min */
	for (int i = 0; i < 100; i++, now += 5)
		assert_int_equal(penalty_add(t, "198.51.100.1",
					     PENALTY_AUTHFAIL, now), 0);
	assert_int_equal(penalty_refused(t, "198.51.100.1", now), 0);
	/* but quick HTTP token failures do: 1 s each, over 15 s */
	for (int i = 0; i < 15; i++)
		assert_int_equal(penalty_add(t, "198.51.100.2",
					     PENALTY_TOKENFAIL, now), 0);
	assert_int_equal(penalty_add(t, "198.51.100.2", PENALTY_TOKENFAIL,
				     now), 1);
	assert_int_equal(penalty_refused(t, "198.51.100.2", now), 16);
	penalty_free(t);
}

static void test_capped_at_max(void **state)
{
	(void)state;
	struct penalty_table *t = table("authfail:100s min:10s max:2m", NULL,
					NULL);
	for (int i = 0; i < 50; i++)
		penalty_add(t, "203.0.113.9", PENALTY_AUTHFAIL, 100);
	assert_int_equal(penalty_refused(t, "203.0.113.9", 100), 120);
	assert_int_equal(penalty_refused(t, "203.0.113.9", 220), 0);
	penalty_free(t);
}

static void test_ipv6_grouped_by_64_and_mapped_v4(void **state)
{
	(void)state;
	struct penalty_table *t = table("authfail:20s", NULL, NULL);
	assert_int_equal(penalty_add(t, "2001:db8:1:2::1", PENALTY_AUTHFAIL,
				     10), 1);
	/* the same /64, another host part: refused too */
	assert_true(penalty_refused(t, "2001:db8:1:2:ffff::9", 10) > 0);
	/* the next /64 is not */
	assert_int_equal(penalty_refused(t, "2001:db8:1:3::1", 10), 0);
	/* an IPv4-mapped address is the IPv4 source */
	assert_int_equal(penalty_add(t, "::ffff:192.0.2.1", PENALTY_AUTHFAIL,
				     10), 1);
	assert_true(penalty_refused(t, "192.0.2.1", 10) > 0);
	assert_int_equal(penalty_refused(t, "192.0.2.2", 10), 0);
	penalty_free(t);

	t = table("authfail:20s", NULL, "24:48");
	penalty_add(t, "192.0.2.1", PENALTY_AUTHFAIL, 10);
	assert_true(penalty_refused(t, "192.0.2.200", 10) > 0);
	assert_int_equal(penalty_refused(t, "192.0.3.1", 10), 0);
	penalty_add(t, "2001:db8:1:2::1", PENALTY_AUTHFAIL, 10);
	assert_true(penalty_refused(t, "2001:db8:1:ff::1", 10) > 0);
	penalty_free(t);
}

static void test_exempt_and_disabled(void **state)
{
	(void)state;
	struct penalty_table *t = table("authfail:20s",
					"127.0.0.0/8, 10.1.0.0/16,::1", NULL);
	assert_int_equal(penalty_add(t, "127.0.0.1", PENALTY_AUTHFAIL, 1), 0);
	assert_int_equal(penalty_add(t, "10.1.200.3", PENALTY_AUTHFAIL, 1), 0);
	assert_int_equal(penalty_add(t, "::1", PENALTY_AUTHFAIL, 1), 0);
	assert_int_equal(penalty_refused(t, "127.0.0.1", 1), 0);
	assert_int_equal(penalty_add(t, "10.2.0.1", PENALTY_AUTHFAIL, 1), 1);
	assert_int_equal(penalty_count(t), 1);
	/* garbage is never an address */
	assert_int_equal(penalty_add(t, "not-an-address", PENALTY_AUTHFAIL,
				     1), 0);
	/* "no" turns refusals off at once, the table is kept */
	struct penalty_settings ps;
	penalty_defaults(&ps);
	assert_int_equal(penalty_parse(&ps, "no", NULL, NULL, NULL, 0), 0);
	penalty_reload(t, &ps);
	assert_int_equal(penalty_refused(t, "10.2.0.1", 1), 0);
	assert_int_equal(penalty_add(t, "10.3.0.1", PENALTY_AUTHFAIL, 1), 0);
	/* an event set to 0 is not counted */
	penalty_free(t);
	t = table("noauth:0 authfail:20s", NULL, NULL);
	for (int i = 0; i < 100; i++)
		assert_int_equal(penalty_add(t, "10.9.0.1", PENALTY_NOAUTH, 1),
				 0);
	assert_int_equal(penalty_count(t), 0);
	penalty_free(t);
}

static void test_table_bounded(void **state)
{
	(void)state;
	/* 300 sources: beyond the first array of 256, which grows */
	struct penalty_table *t = table("authfail:2s max-sources:300", NULL,
					NULL);
	char addr[64];
	for (int i = 0; i < 500; i++) {
		snprintf(addr, sizeof addr, "10.0.%d.%d", i / 256, i % 256);
		penalty_add(t, addr, PENALTY_AUTHFAIL, 50);
	}
	assert_int_equal(penalty_count(t), 300);
	/* each tracked one is still found, the ones past the bound are not */
	assert_int_equal(penalty_add(t, "10.0.0.0", PENALTY_AUTHFAIL, 50), 0);
	assert_int_equal(penalty_count(t), 300);
	/* once those ran out, new sources fit again */
	assert_int_equal(penalty_add(t, "172.16.0.1", PENALTY_AUTHFAIL, 60), 0);
	assert_int_equal(penalty_count(t), 1);
	penalty_free(t);
}

static void test_parse_errors(void **state)
{
	(void)state;
	struct penalty_settings ps;
	char err[200];
	const char *bad_words[] = { "authfail", "authfail:x", "bogus:5s",
				    "min:-1", "max-sources:0", "authfail:5q" };
	for (size_t i = 0; i < sizeof bad_words / sizeof *bad_words; i++) {
		penalty_defaults(&ps);
		err[0] = '\0';
		assert_int_equal(penalty_parse(&ps, bad_words[i], NULL, NULL, err,
					       sizeof err), -1);
		assert_true(err[0] != '\0');
	}
	penalty_defaults(&ps);
	assert_int_equal(penalty_parse(&ps, NULL, "10.0.0.0/33", NULL, err,
				       sizeof err), -1);
	assert_int_equal(penalty_parse(&ps, NULL, "host.example", NULL, err,
				       sizeof err), -1);
	assert_int_equal(penalty_parse(&ps, NULL, NULL, "0:64", err,
				       sizeof err), -1);
	assert_int_equal(penalty_parse(&ps, NULL, NULL, "32:129", err,
				       sizeof err), -1);
	penalty_defaults(&ps);
	assert_int_equal(penalty_parse(&ps, "authfail:1m noauth:2 "
				       "grace-exceeded:1h tokenfail:3s min:1d",
				       "none", "16:48", err, sizeof err), 0);
	assert_int_equal(ps.seconds[PENALTY_AUTHFAIL], 60);
	assert_int_equal(ps.seconds[PENALTY_NOAUTH], 2);
	assert_int_equal(ps.seconds[PENALTY_GRACE], 3600);
	assert_int_equal(ps.seconds[PENALTY_TOKENFAIL], 3);
	assert_int_equal(ps.min, 86400);
	assert_int_equal(ps.v4_bits, 16);
	assert_int_equal(ps.v6_bits, 48);
	assert_int_equal(ps.n_exempt, 0);
}

static void test_conf_keywords(void **state)
{
	(void)state;
	struct conf c;
	struct penalty_settings ps;
	char err[256];
	conf_defaults(&c);
	assert_int_equal(conf_parse_line(&c, "PerSourcePenalties authfail:30s",
					 err, sizeof err), 0);
	assert_int_equal(conf_parse_line(&c, "PerSourcePenaltyExemptList "
					 "192.0.2.0/24,2001:db8::/32", err,
					 sizeof err), 0);
	assert_int_equal(conf_parse_line(&c, "PerSourceNetBlockSize 24", err,
					 sizeof err), 0);
	assert_int_equal(penalty_from_conf(&c, &ps), 0);
	assert_int_equal(ps.seconds[PENALTY_AUTHFAIL], 30);
	assert_int_equal(ps.seconds[PENALTY_NOAUTH], 1);
	assert_int_equal(ps.n_exempt, 2);
	assert_int_equal(ps.v4_bits, 24);
	assert_int_equal(ps.v6_bits, 64);
	assert_int_equal(conf_parse_line(&c, "PerSourcePenalties sometimes",
					 err, sizeof err), -1);
	assert_non_null(strstr(err, "PerSourcePenalties"));
	assert_int_equal(conf_parse_line(&c, "PerSourceNetBlockSize 40", err,
					 sizeof err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_once_over_min_then_decays),
		cmocka_unit_test(test_slow_failures_never_refused),
		cmocka_unit_test(test_capped_at_max),
		cmocka_unit_test(test_ipv6_grouped_by_64_and_mapped_v4),
		cmocka_unit_test(test_exempt_and_disabled),
		cmocka_unit_test(test_table_bounded),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_conf_keywords),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
