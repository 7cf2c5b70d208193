/* test_awscred.c - the shared credentials file reader and the IMDS JSON
 * field reader (the chain itself is tested against the test S3 server and
 * an IMDS stand-in in tests/integration/test_s3.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "awscred.h"

static char path[64];

static void write_file(const char *text)
{
	strcpy(path, "/tmp/assetd-test-cred-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_profiles(void **state)
{
	write_file("# comment\n"
		   "[default]\n"
		   "aws_access_key_id = AKIDDEFAULT\n"
		   "aws_secret_access_key=secret/default+key\n"
		   "\n"
		   "; another comment\n"
		   "[ wasabi ]\n"
		   "  AWS_ACCESS_KEY_ID =  AKIDWASABI  \n"
		   "aws_secret_access_key = s2\n"
		   "aws_session_token = tok==\n"
		   "region = eu-central-1\n"
		   "[broken]\n"
		   "aws_access_key_id = only-the-id\n");
	struct awscred c;
	assert_int_equal(awscred_read_file(path, "default", &c), 0);
	assert_string_equal(c.access_key, "AKIDDEFAULT");
	assert_string_equal(c.secret_key, "secret/default+key");
	assert_string_equal(c.session_token, "");
	assert_int_equal(awscred_read_file(path, "wasabi", &c), 0);
	assert_string_equal(c.access_key, "AKIDWASABI");
	assert_string_equal(c.secret_key, "s2");
	assert_string_equal(c.session_token, "tok==");
	assert_int_equal(awscred_read_file(path, "broken", &c), -1);
	assert_int_equal(awscred_read_file(path, "missing", &c), -1);
	unlink(path);
	assert_int_equal(awscred_read_file(path, "default", &c), -1);
}

static void test_json(void **state)
{
	const char *j = "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\": "
			"\"2026-11-25T19:00:00Z\",\n  \"AccessKeyId\": \"ASIA1\",\n"
			"  \"SecretAccessKey\": \"a\\/b\\\"c\",\n  \"Token\": "
			"\"t\\\\x\",\n  \"Expiration\": \"2026-11-25T21:00:00Z\"\n}";
	char out[64];
	assert_int_equal(awscred_json_string(j, strlen(j), "Code", out,
					     sizeof out), 0);
	assert_string_equal(out, "Success");
	assert_int_equal(awscred_json_string(j, strlen(j), "SecretAccessKey",
					     out, sizeof out), 0);
	assert_string_equal(out, "a/b\"c");
	assert_int_equal(awscred_json_string(j, strlen(j), "Token", out,
					     sizeof out), 0);
	assert_string_equal(out, "t\\x");
	assert_int_equal(awscred_json_string(j, strlen(j), "Nope", out,
					     sizeof out), -1);
	/* too long for the buffer, unterminated, a number: refused */
	char small[4];
	assert_int_equal(awscred_json_string(j, strlen(j), "Code", small,
					     sizeof small), -1);
	const char *bad = "{\"Token\": \"abc";
	assert_int_equal(awscred_json_string(bad, strlen(bad), "Token", out,
					     sizeof out), -1);
	const char *num = "{\"Token\": 12}";
	assert_int_equal(awscred_json_string(num, strlen(num), "Token", out,
					     sizeof out), -1);
	/* LEN is respected: the value is cut off by it */
	assert_int_equal(awscred_json_string(j, 30, "LastUpdated", out,
					     sizeof out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profiles),
		cmocka_unit_test(test_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
