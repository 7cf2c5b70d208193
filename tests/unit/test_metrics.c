/* test_metrics.c - recording and the Prometheus text rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(void)
{
	size_t len = 0;
	char *t = metrics_render(&len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	return t;
}

static int reset(void **state)
{
	metrics_reset();
	return 0;
}

static void test_counter_accumulates(void **state)
{
	metrics_add("assetd_requests_total", 1, METRICS_L("http", "fileget", "200"));
	metrics_add("assetd_requests_total", 2, METRICS_L("http", "fileget", "200"));
	metrics_add("assetd_requests_total", 1, METRICS_L("sftp", "write", "ok"));
	char *t = render();
	assert_non_null(strstr(t, "# TYPE assetd_requests_total counter\n"));
	assert_non_null(strstr(t,
		"assetd_requests_total{protocol=\"http\",operation=\"fileget\",status=\"200\"} 3\n"));
	assert_non_null(strstr(t,
		"assetd_requests_total{protocol=\"sftp\",operation=\"write\",status=\"ok\"} 1\n"));
	/* sorted by label values: http before sftp */
	assert_true(strstr(t, "protocol=\"http\"") < strstr(t, "protocol=\"sftp\""));
	free(t);
}

static void test_gauge_and_no_labels(void **state)
{
	metrics_gauge_set("assetd_start_time_seconds", 1700000000, NULL);
	metrics_gauge_add("assetd_sessions_active", 1, METRICS_L("ssh"));
	metrics_gauge_add("assetd_sessions_active", 1, METRICS_L("ssh"));
	metrics_gauge_add("assetd_sessions_active", -1, METRICS_L("ssh"));
	char *t = render();
	assert_non_null(strstr(t, "\nassetd_start_time_seconds 1700000000\n"));
	assert_non_null(strstr(t, "assetd_sessions_active{protocol=\"ssh\"} 1\n"));
	free(t);
}

static void test_escaping(void **state)
{
	metrics_add("assetd_auth_total", 1, METRICS_L("ht\"tp\\", "a\nb"));
	char *t = render();
	assert_non_null(strstr(t, "assetd_auth_total{protocol=\"ht\\\"tp\\\\\",result=\"a\\nb\"} 1\n"));
	free(t);
}

static void test_histogram_cumulative(void **state)
{
	metrics_observe("assetd_s3_request_seconds", 0.003, METRICS_L("GetObject"));
	metrics_observe("assetd_s3_request_seconds", 0.2, METRICS_L("GetObject"));
	metrics_observe("assetd_s3_request_seconds", 100, METRICS_L("GetObject"));
	char *t = render();
	assert_non_null(strstr(t, "assetd_s3_request_seconds_bucket{operation=\"GetObject\",le=\"0.005\"} 1\n"));
	assert_non_null(strstr(t, "assetd_s3_request_seconds_bucket{operation=\"GetObject\",le=\"0.25\"} 2\n"));
	assert_non_null(strstr(t, "assetd_s3_request_seconds_bucket{operation=\"GetObject\",le=\"60\"} 2\n"));
	assert_non_null(strstr(t, "assetd_s3_request_seconds_bucket{operation=\"GetObject\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(t, "assetd_s3_request_seconds_count{operation=\"GetObject\"} 3\n"));
	assert_non_null(strstr(t, "assetd_s3_request_seconds_sum{operation=\"GetObject\"} 100.203"));
	free(t);
}

static void test_series_bound_folds(void **state)
{
	char v[32];
	for (int i = 0; i < METRICS_MAX_SERIES + 100; i++) {
		snprintf(v, sizeof v, "op%d", i);
		metrics_add("assetd_s3_retries_total", 1, METRICS_L(v));
	}
	char *t = render();
	assert_non_null(strstr(t, "assetd_s3_retries_total{operation=\"other\"} 100\n"));
	assert_null(strstr(t, "operation=\"op600\""));
	assert_non_null(strstr(t, "operation=\"op0\""));
	free(t);
}

static void test_unknown_family_ignored(void **state)
{
	metrics_add("no_such_family", 1, NULL);
	char *t = render();
	assert_null(strstr(t, "no_such_family"));
	free(t);
}

static void *bump(void *arg)
{
	for (int i = 0; i < 10000; i++)
		metrics_add("assetd_bytes_total", 1, METRICS_L("sftp", "read", "out"));
	return arg;
}

static void test_threads(void **state)
{
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, bump, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	char *t = render();
	assert_non_null(strstr(t, "assetd_bytes_total{protocol=\"sftp\",operation=\"read\",direction=\"out\"} 40000\n"));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_counter_accumulates, reset),
		cmocka_unit_test_setup(test_gauge_and_no_labels, reset),
		cmocka_unit_test_setup(test_escaping, reset),
		cmocka_unit_test_setup(test_histogram_cumulative, reset),
		cmocka_unit_test_setup(test_series_bound_folds, reset),
		cmocka_unit_test_setup(test_unknown_family_ignored, reset),
		cmocka_unit_test_setup(test_threads, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
