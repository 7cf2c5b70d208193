/* test_http_token.c - Specify tokens: the contract's vectors, expiry in
 * both directions, malformed tokens, wrong keys and names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http_token.h"

#define KEY "test_attachment_key"
#define TS 1700000000
#define N1 "a6daad6c-5091-4461-86ee-eeba9434ef2b.jpg"
#define T1 "ee4efd433c8579597024c4ec1621cfd8:1700000000"
#define N2 "sp6-1234.att.jpg"
#define T2 "f62d0e45080192a5341c60c751d11501:1700000000"

static void test_vectors(void **state)
{
	char out[HTTP_TOKEN_MAX];
	(void)state;
	assert_int_equal(http_token_make(KEY, TS, N1, strlen(N1), out, sizeof out), 0);
	assert_string_equal(out, T1);
	assert_int_equal(http_token_make(KEY, TS, N2, strlen(N2), out, sizeof out), 0);
	assert_string_equal(out, T2);
	assert_int_equal(http_token_check(KEY, T1, N1, strlen(N1), TS, 150), HTTP_TOKEN_OK);
	assert_int_equal(http_token_check(KEY, T2, N2, strlen(N2), TS + 149, 150), HTTP_TOKEN_OK);
	assert_int_equal(http_token_check(KEY, T2, N2, strlen(N2), TS - 149, 150), HTTP_TOKEN_OK);
}

static void test_expiry(void **state)
{
	(void)state;
	/* |now - ts| < tolerance: 150 apart is already too far. */
	assert_int_equal(http_token_check(KEY, T1, N1, strlen(N1), TS + 150, 150), HTTP_TOKEN_EEXPIRED);
	assert_int_equal(http_token_check(KEY, T1, N1, strlen(N1), TS - 150, 150), HTTP_TOKEN_EEXPIRED);
	assert_int_equal(http_token_check(KEY, T1, N1, strlen(N1), TS + 100000, 150), HTTP_TOKEN_EEXPIRED);
	assert_int_equal(http_token_check(KEY, T1, N1, strlen(N1), TS + 500, 600), HTTP_TOKEN_OK);
}

static void test_wrong(void **state)
{
	(void)state;
	assert_int_equal(http_token_check("other_key", T1, N1, strlen(N1), TS, 150), HTTP_TOKEN_EBAD);
	assert_int_equal(http_token_check(KEY, T1, N2, strlen(N2), TS, 150), HTTP_TOKEN_EBAD);
	/* upper-case hex is not the token */
	assert_int_equal(http_token_check(KEY, "EE4EFD433C8579597024C4EC1621CFD8:1700000000", N1, strlen(N1), TS, 150), HTTP_TOKEN_EBAD);
	/* leading zero in ts: not what the client computed */
	assert_int_equal(http_token_check(KEY, "ee4efd433c8579597024c4ec1621cfd8:01700000000", N1, strlen(N1), TS, 150), HTTP_TOKEN_EBAD);
	/* a name with a NUL inside differs from its prefix */
	assert_int_equal(http_token_check(KEY, T2, "sp6-1234.att.jpg\0x", 18, TS, 150), HTTP_TOKEN_EBAD);
}

static void test_malformed(void **state)
{
	(void)state;
	assert_int_equal(http_token_check(KEY, NULL, N1, strlen(N1), TS, 150), HTTP_TOKEN_EMISSING);
	assert_int_equal(http_token_check(KEY, "", N1, strlen(N1), TS, 150), HTTP_TOKEN_EMISSING);
	assert_int_equal(http_token_check(KEY, "ee4efd433c8579597024c4ec1621cfd8", N1, strlen(N1), TS, 150), HTTP_TOKEN_EMALFORMED);
	assert_int_equal(http_token_check(KEY, "ee4efd433c8579597024c4ec1621cfd8:", N1, strlen(N1), TS, 150), HTTP_TOKEN_EMALFORMED);
	assert_int_equal(http_token_check(KEY, "ee4efd433c8579597024c4ec1621cfd8:17e8", N1, strlen(N1), TS, 150), HTTP_TOKEN_EMALFORMED);
	assert_int_equal(http_token_check(KEY, "ee4efd433c8579597024c4ec1621cfd8:1700000000.5", N1, strlen(N1), TS, 150), HTTP_TOKEN_EMALFORMED);
	assert_int_equal(http_token_check(KEY, "ee4efd:1700000000", N1, strlen(N1), TS, 150), HTTP_TOKEN_EMALFORMED);
	assert_int_equal(http_token_check(KEY, ":1700000000", N1, strlen(N1), TS, 150), HTTP_TOKEN_EMALFORMED);
	char longtok[200];
	memset(longtok, 'a', sizeof longtok - 1);
	longtok[sizeof longtok - 1] = '\0';
	assert_int_equal(http_token_check(KEY, longtok, N1, strlen(N1), TS, 150), HTTP_TOKEN_EMALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_wrong),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
