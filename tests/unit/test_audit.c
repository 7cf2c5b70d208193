/* test_audit.c - audit lines, JSON escaping, querying and retention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/test_audit_XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	audit_close();
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
	return 0;
}

static void test_escape(void **state)
{
	char out[64];
	assert_int_equal(audit_json_escape("a\"b\\c", out, sizeof out), 7);
	assert_string_equal(out, "a\\\"b\\\\c");
	audit_json_escape("x\ny\x01", out, sizeof out);
	assert_string_equal(out, "x\\u000ay\\u0001");
	audit_json_escape("caf\xc3\xa9", out, sizeof out);
	assert_string_equal(out, "caf\xc3\xa9");
	audit_json_escape("bad\xff", out, sizeof out);
	assert_string_equal(out, "bad\\u00ff");
	assert_int_equal(audit_json_escape("0123456789", out, 5), -1);
}

struct collected {
	int n;
	char last[1024];
	char clients[8][32];
};

static int collect(void *arg, const char *json, const char *client, int64_t t)
{
	struct collected *c = arg;
	if (c->n < 8)
		snprintf(c->clients[c->n], sizeof c->clients[0], "%s", client);
	c->n++;
	snprintf(c->last, sizeof c->last, "%s", json);
	return 0;
}

static void test_record_and_query(void **state)
{
	assert_int_equal(audit_open(dir, 0), 0);
	time_t now = time(NULL);
	struct audit_event e = { 0, "kufish", "SHA256:abc", "127.0.0.1", "sftp",
				 "write", "/attachments/originals/a b.jpg", NULL,
				 1234, "ok" };
	audit_record(&e);
	e.client = "other";
	e.op = "rename";
	e.to = "/attachments/x\"y";
	e.bytes = -1;
	audit_record(&e);
	struct collected c = { 0 };
	assert_int_equal(audit_query(dir, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.clients[0], "kufish");
	assert_string_equal(c.clients[1], "other");
	assert_non_null(strstr(c.last, "\"op\":\"rename\""));
	assert_non_null(strstr(c.last, "\"to\":\"/attachments/x\\\"y\""));
	assert_non_null(strstr(c.last, "\"bytes\":-1"));
	memset(&c, 0, sizeof c);
	assert_int_equal(audit_query(dir, "kufish", 0, collect, &c), 0);
	assert_int_equal(c.n, 1);
	assert_non_null(strstr(c.last, "\"path\":\"/attachments/originals/a b.jpg\""));
	assert_non_null(strstr(c.last, "\"identity\":\"SHA256:abc\""));
	memset(&c, 0, sizeof c);
	assert_int_equal(audit_query(dir, NULL, (int64_t)now + 3600, collect, &c), 0);
	assert_int_equal(c.n, 0);
}

/* The day file that holds the events of time T. */
static void day_file(time_t t, char *path, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(path, len, "%s/audit-%04d%02d%02d.jsonl", dir,
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static void test_retention_prunes_old_days(void **state)
{
	/* Plant a file from ten days ago, then open with 3 days' retention. */
	char path[128];
	day_file(time(NULL) - 10 * 86400, path, sizeof path);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(audit_open(dir, 3), 0);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_torn_line_ignored(void **state)
{
	assert_int_equal(audit_open(dir, 0), 0);
	struct audit_event e = { 0, "a", "", "", "http", "delete", "/x", NULL, 0, "ok" };
	audit_record(&e);
	/* A crash mid-line leaves text without a newline: not an event. */
	char path[128];
	day_file(time(NULL), path, sizeof path);
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"ts\":\"2", 8), 8);
	close(fd);
	struct collected c = { 0 };
	assert_int_equal(audit_query(dir, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 1);
}

static void *writer(void *arg)
{
	struct audit_event e = { 0, (const char *)arg, "", "::1", "sftp", "write",
				 "/attachments/f", NULL, 10, "ok" };
	for (int i = 0; i < 500; i++)
		audit_record(&e);
	return NULL;
}

static int count_only(void *arg, const char *json, const char *client, int64_t t)
{
	int *n = arg;
	if (json[0] == '{' && json[strlen(json) - 1] == '}')
		(*n)++;
	return 0;
}

static void test_threads_do_not_interleave(void **state)
{
	assert_int_equal(audit_open(dir, 0), 0);
	pthread_t th[4];
	const char *names[4] = { "c1", "c2", "c3", "c4" };
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, writer, (void *)names[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	int n = 0;
	assert_int_equal(audit_query(dir, NULL, 0, count_only, &n), 0);
	assert_int_equal(n, 2000);
}

static void test_overlong_path_still_recorded(void **state)
{
	assert_int_equal(audit_open(dir, 0), 0);
	char *big = malloc(20000);
	memset(big, 'p', 19999);
	big[19999] = '\0';
	struct audit_event e = { 0, "a", "", "", "sftp", "write", big, NULL, 1, "ok" };
	audit_record(&e);
	free(big);
	struct collected c = { 0 };
	assert_int_equal(audit_query(dir, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 1);
	assert_non_null(strstr(c.last, "(path too long)"));
}

/* When the day turns, the new day's first event prunes the days that fell
 * out of the retention: an event dated ten days ahead leaves only the
 * files of the last three days (its own). */
static void test_retention_prunes_when_the_day_turns(void **state)
{
	(void)state;
	assert_int_equal(audit_open(dir, 3), 0);
	struct audit_event e = { 0, "a", "", "", "sftp", "write", "/x", NULL, 1, "ok" };
	audit_record(&e); /* today */
	time_t now = time(NULL);
	char today[128];
	day_file(now, today, sizeof today);
	assert_int_equal(access(today, F_OK), 0);
	e.t = (int64_t)now + 10 * 86400;
	audit_record(&e);
	assert_int_equal(access(today, F_OK), -1);
	struct collected c = { 0 };
	assert_int_equal(audit_query(dir, NULL, 0, collect, &c), 0);
	assert_int_equal(c.n, 1);
}

static void test_parse_since(void **state)
{
	(void)state;
	int64_t t = 0, now = 1800000000;
	assert_int_equal(audit_parse_since("2h", now, &t), 0);
	assert_int_equal(t, now - 7200);
	assert_int_equal(audit_parse_since("7d", now, &t), 0);
	assert_int_equal(t, now - 7 * 86400);
	assert_int_equal(audit_parse_since("90s", now, &t), 0);
	assert_int_equal(t, now - 90);
	assert_int_equal(audit_parse_since("30m", now, &t), 0);
	assert_int_equal(t, now - 1800);
	assert_int_equal(audit_parse_since("2w", now, &t), 0);
	assert_int_equal(t, now - 14 * 86400);
	assert_int_equal(audit_parse_since("2026-11-25", now, &t), 0);
	assert_int_equal(t, 1795564800);
	assert_int_equal(audit_parse_since("2026-11-25T10:00", now, &t), 0);
	assert_int_equal(t, 1795564800 + 36000);
	assert_int_equal(audit_parse_since("2026-11-25 10:00:30Z", now, &t), 0);
	assert_int_equal(t, 1795564800 + 36030);
	static const char *const bad[] = { "", "soon", "2h30", "h", "-2h",
					   "2026-13-01", "2026-11-25T25:00",
					   "2026-11-25x", "2026-11-5", "5y" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(audit_parse_since(bad[i], now, &t), -1);
}

static void test_line_field(void **state)
{
	(void)state;
	const char *l = "{\"ts\":\"2026-11-25T19:40:01Z\",\"t\":1795635601,"
			"\"client\":\"kufish\",\"path\":\"/a \\\"q\\\".jpg\","
			"\"bytes\":-1,\"result\":\"ok\"}";
	char out[64];
	assert_int_equal(audit_line_field(l, "client", out, sizeof out), 0);
	assert_string_equal(out, "kufish");
	assert_int_equal(audit_line_field(l, "t", out, sizeof out), 0);
	assert_string_equal(out, "1795635601");
	assert_int_equal(audit_line_field(l, "path", out, sizeof out), 0);
	assert_string_equal(out, "/a \"q\".jpg");
	assert_int_equal(audit_line_field(l, "bytes", out, sizeof out), 0);
	assert_string_equal(out, "-1");
	assert_int_equal(audit_line_field(l, "to", out, sizeof out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_parse_since),
		cmocka_unit_test_setup_teardown(test_retention_prunes_when_the_day_turns, setup, teardown),
		cmocka_unit_test(test_line_field),
		cmocka_unit_test_setup_teardown(test_record_and_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_prunes_old_days, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_line_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlong_path_still_recorded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
