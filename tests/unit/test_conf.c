/* test_conf.c - the configuration parser: keywords, values, errors. */
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

static char *write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/test_conf_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_defaults(void **state)
{
	struct conf c;
	char err[256];
	conf_defaults(&c);
	assert_int_equal(conf_finish(&c, err, sizeof err), 0);
	assert_string_equal(c.data_dir, "var");
	assert_string_equal(c.catalog, "var/assetd.db");
	assert_int_equal(c.n_host_keys, 2);
	assert_string_equal(c.host_keys[0], "var/ssh_host_ed25519_key");
	assert_int_equal(c.http[0].port, 8080);
	assert_int_equal(c.ssh[0].port, 2222);
	assert_int_equal(c.time_tolerance, 150);
	assert_int_equal(c.require_key_for_get, 0);
	assert_int_equal(c.max_thumbnail_scale, 1024);
	assert_int_equal(c.archive_keep, 4);
	assert_string_equal(c.archive_format, "tar.xz");
}

static void test_keywords_case_and_values(void **state)
{
	struct conf c;
	char err[256];
	conf_defaults(&c);
	const char *path = write_tmp(
		"# a comment\n"
		"\n"
		"datadir /srv/assetd\n"
		"LISTENHTTP 127.0.0.1:8081\n"
		"ListenHTTP [::1]:8082\n"
		"ListenSSH *:2200   # trailing comment\n"
		"TimeTolerance=600\n"
		"RequireKeyForGet yes\n"
		"MaxUploadSize 2G\n"
		"PublicURL \"https://assets.example.org/a b\"\n"
		"LogLevel DEBUG\n");
	int rc = conf_load(path, &c, err, sizeof err);
	unlink(path);
	assert_int_equal(rc, 0);
	assert_string_equal(c.data_dir, "/srv/assetd");
	assert_string_equal(c.catalog, "/srv/assetd/assetd.db");
	assert_int_equal(c.n_http, 2);
	assert_string_equal(c.http[0].host, "127.0.0.1");
	assert_int_equal(c.http[0].port, 8081);
	assert_string_equal(c.http[1].host, "::1");
	assert_int_equal(c.http[1].port, 8082);
	assert_int_equal(c.n_ssh, 1);
	assert_string_equal(c.ssh[0].host, "");
	assert_int_equal(c.ssh[0].port, 2200);
	assert_int_equal(c.time_tolerance, 600);
	assert_int_equal(c.require_key_for_get, 1);
	assert_true(c.max_upload_size == (uint64_t)2 << 30);
	assert_string_equal(c.public_url, "https://assets.example.org/a b");
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
}

static void expect_error(const char *text, const char *needle)
{
	struct conf c;
	char err[256] = "";
	conf_defaults(&c);
	const char *path = write_tmp(text);
	char saved[64];
	snprintf(saved, sizeof saved, "%s", path);
	int rc = conf_load(saved, &c, err, sizeof err);
	unlink(saved);
	assert_int_equal(rc, -1);
	if (!strstr(err, needle))
		fail_msg("error '%s' lacks '%s'", err, needle);
	assert_non_null(strstr(err, saved));
}

static void test_errors_name_file_and_line(void **state)
{
	expect_error("DataDir x\nNoSuchThing 1\n", ":2: unknown keyword 'NoSuchThing'");
	expect_error("TimeTolerance soon\n", ":1: TimeTolerance: 'soon' is not a number");
	expect_error("TimeTolerance 0\n", ":1: TimeTolerance");
	expect_error("RequireKeyForGet maybe\n", ":1: RequireKeyForGet");
	expect_error("ListenSSH host:99999\n", ":1: ListenSSH");
	expect_error("ListenSSH ::1:22\n", ":1: ListenSSH");
	expect_error("MaxUploadSize lots\n", ":1: MaxUploadSize");
	expect_error("LogLevel loud\n", ":1: LogLevel");
	expect_error("PublicURL \"unterminated\n", ":1: unterminated quote");
	expect_error("DataDir\n", ":1: DataDir needs a value");
	expect_error("ArchiveFormat zip\n", ":1: ArchiveFormat");
	expect_error("TLSCertificate /x.pem\n", "TLSKey is not");
	expect_error("DataDir x\n\nSyncSchedule 0 25 * * *\n",
		     ":3: SyncSchedule: '0 25 * * *' is not a schedule");
	expect_error("ArchiveSchedule weekly\n", ":1: ArchiveSchedule");
}

static void test_missing_file(void **state)
{
	struct conf c;
	char err[256];
	conf_defaults(&c);
	assert_int_equal(conf_load("/nonexistent/assetd.conf", &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "/nonexistent/assetd.conf: No such file"));
}

static void test_sizes_and_listen(void **state)
{
	uint64_t v;
	assert_int_equal(conf_parse_size("512", &v), 0);
	assert_true(v == 512);
	assert_int_equal(conf_parse_size("4k", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(conf_parse_size("3MiB", &v), 0);
	assert_true(v == 3u << 20);
	assert_int_equal(conf_parse_size("1T", &v), 0);
	assert_true(v == (uint64_t)1 << 40);
	assert_int_equal(conf_parse_size("-1", &v), -1);
	assert_int_equal(conf_parse_size("1X", &v), -1);
	assert_int_equal(conf_parse_size("99999999999999999999", &v), -1);
	struct conf_listen l;
	assert_int_equal(conf_parse_listen("2222", &l), 0);
	assert_string_equal(l.host, "");
	assert_int_equal(l.port, 2222);
	assert_int_equal(conf_parse_listen("[::1]:0", &l), 0);
	assert_string_equal(l.host, "::1");
	assert_int_equal(l.port, 0);
	assert_int_equal(conf_parse_listen("[::1]", &l), -1);
	assert_int_equal(conf_parse_listen("host:", &l), -1);
}

static void test_repeat_limit(void **state)
{
	struct conf c;
	char err[256];
	conf_defaults(&c);
	char text[1024] = "";
	for (int i = 0; i < CONF_MAX_LISTEN + 1; i++) {
		char line[64];
		snprintf(line, sizeof line, "ListenHTTP %d\n", 8000 + i);
		strcat(text, line);
	}
	const char *path = write_tmp(text);
	char saved[64];
	snprintf(saved, sizeof saved, "%s", path);
	assert_int_equal(conf_load(saved, &c, err, sizeof err), -1);
	unlink(saved);
	assert_non_null(strstr(err, "at most"));
}

/* etc/assetd.conf.sample lists every keyword of the parser, commented out
 * with its default ("#Keyword value") or alone when it has none; applying
 * all those lines must give exactly the built-in defaults. The unit tests
 * run from the top of the source tree. */
static void test_sample_lists_every_keyword_with_its_default(void **state)
{
	FILE *f = fopen("etc/assetd.conf.sample", "r");
	assert_non_null(f);
	size_t n = conf_keyword_count();
	assert_true(n > 30);
	int *seen = calloc(n, sizeof *seen);
	assert_non_null(seen);
	static char uncommented[16384];
	size_t used = 0;
	char line[1200];
	while (fgets(line, sizeof line, f)) {
		if (line[0] != '#')
			continue;
		for (size_t i = 0; i < n; i++) {
			const char *kw = conf_keyword_name(i);
			size_t kl = strlen(kw);
			if (strncmp(line + 1, kw, kl) != 0 ||
			    (line[1 + kl] != ' ' && line[1 + kl] != '\n'))
				continue;
			seen[i]++;
			if (line[1 + kl] != ' ')
				continue; /* no default */
			size_t ll = strlen(line + 1);
			assert_true(used + ll < sizeof uncommented);
			memcpy(uncommented + used, line + 1, ll + 1);
			used += ll;
		}
	}
	fclose(f);
	for (size_t i = 0; i < n; i++)
		if (!seen[i])
			fail_msg("keyword %s is missing from the sample",
				 conf_keyword_name(i));
	free(seen);
	assert_null(conf_keyword_name(n));

	struct conf fromfile, defaults;
	char err[256] = "";
	conf_defaults(&fromfile);
	conf_defaults(&defaults);
	const char *path = write_tmp(uncommented);
	char saved[64];
	snprintf(saved, sizeof saved, "%s", path);
	int rc = conf_load(saved, &fromfile, err, sizeof err);
	unlink(saved);
	if (rc < 0)
		fail_msg("the sample's defaults do not parse: %s", err);
	assert_int_equal(conf_finish(&defaults, err, sizeof err), 0);
	assert_int_equal(memcmp(&fromfile, &defaults, sizeof defaults), 0);
}

static void test_schedules(void **state)
{
	struct conf c;
	char err[256];
	conf_defaults(&c);
	assert_int_equal(conf_parse_line(&c, "SyncSchedule 0 3 * * *", err,
					 sizeof err), 0);
	assert_string_equal(c.sync_schedule, "0 3 * * *");
	assert_int_equal(conf_parse_line(&c, "archiveschedule \"@weekly\"", err,
					 sizeof err), 0);
	assert_string_equal(c.archive_schedule, "@weekly");
	assert_int_equal(conf_parse_line(&c, "SyncSchedule off", err,
					 sizeof err), 0);
	assert_string_equal(c.sync_schedule, "");
}

static void test_thumbnail_concurrency_zero_means_cores(void **state)
{
	struct conf c;
	char err[256];
	conf_defaults(&c);
	int cores = c.thumbnail_concurrency;
	assert_true(cores >= 1);
	assert_int_equal(conf_parse_line(&c, "ThumbnailConcurrency 0", err,
					 sizeof err), 0);
	assert_int_equal(c.thumbnail_concurrency, 0);
	assert_int_equal(conf_finish(&c, err, sizeof err), 0);
	assert_int_equal(c.thumbnail_concurrency, cores);
	assert_int_equal(conf_parse_line(&c, "ThumbnailConcurrency 3", err,
					 sizeof err), 0);
	assert_int_equal(conf_finish(&c, err, sizeof err), 0);
	assert_int_equal(c.thumbnail_concurrency, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_keywords_case_and_values),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_sizes_and_listen),
		cmocka_unit_test(test_repeat_limit),
		cmocka_unit_test(test_sample_lists_every_keyword_with_its_default),
		cmocka_unit_test(test_thumbnail_concurrency_zero_means_cores),
		cmocka_unit_test(test_schedules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
