/* test_sigv4.c - our SigV4 signer against AWS's published test suite
 * ("aws-sig-v4-test-suite", service "service", us-east-1, 20150830T123600Z,
 * key AKIDEXAMPLE) and the S3 GET-object example of AWS's S3 API docs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sigv4.h"

#define DATE "20150830T123600Z"
#define HOST "example.amazonaws.com"

static const struct sigv4_key suite_key = {
	"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1",
	"service"
};

struct vec {
	const char *method, *path, *query;
	struct sigv4_header h[6];
	size_t nh;
	const char *body;
	const char *creq, *sts, *sig;
};

static void check(const struct vec *v)
{
	struct sigv4_result r;
	char ph[65];
	sigv4_sha256_hex(v->body, strlen(v->body), ph);
	struct sigv4_request req = { v->method, v->path, v->query, v->h, v->nh,
				     ph, SIGV4_PATH_ENCODED };
	assert_int_equal(sigv4_sign(&req, &suite_key, DATE, &r), 0);
	if (v->creq)
		assert_string_equal(r.canonical_request, v->creq);
	assert_string_equal(r.string_to_sign, v->sts);
	assert_string_equal(r.signature, v->sig);
}

#define STD_H { { "Host", HOST }, { "X-Amz-Date", DATE } }, 2

static void test_get_vanilla(void **state)
{
	struct vec v = { "GET", "/", NULL, STD_H, "",
		"GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
		"5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" };
	check(&v);
	struct sigv4_result r;
	struct sigv4_request req = { "GET", "/", NULL, v.h, 2,
				     SIGV4_EMPTY_SHA256, 0 };
	assert_int_equal(sigv4_sign(&req, &suite_key, DATE, &r), 0);
	assert_string_equal(r.authorization,
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
		"SignedHeaders=host;x-amz-date, "
		"Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static void test_get_vanilla_query_order_key_case(void **state)
{
	struct vec v = { "GET", "/", "Param2=value2&Param1=value1", STD_H, "",
		"GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
		"x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
		"b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" };
	check(&v);
}

static void test_get_vanilla_query_order_key(void **state)
{
	struct vec v = { "GET", "/", "Param1=value2&Param1=Value1", STD_H, "",
		"GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\n"
		"x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
		"eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1" };
	check(&v);
}

static void test_get_vanilla_query_order_value(void **state)
{
	struct vec v = { "GET", "/", "Param1=value2&Param1=value1", STD_H, "",
		NULL,
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
		"5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694" };
	struct sigv4_result r;
	struct sigv4_request req = { v.method, v.path, v.query, v.h, v.nh,
				     SIGV4_EMPTY_SHA256, SIGV4_PATH_ENCODED };
	check(&v);
	/* Equal names sort by value. */
	assert_int_equal(sigv4_sign(&req, &suite_key, DATE, &r), 0);
	assert_non_null(strstr(r.canonical_request,
			       "\nParam1=value1&Param1=value2\n"));
}

static void test_get_vanilla_empty_query_key(void **state)
{
	struct vec v = { "GET", "/", "Param1=value1", STD_H, "",
		"GET\n/\nParam1=value1\nhost:example.amazonaws.com\n"
		"x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
		"a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb" };
	check(&v);
}

static void test_get_vanilla_query_unreserved(void **state)
{
	struct vec v = { "GET", "/",
		"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
		"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
		STD_H, "", NULL,
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
		"9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197" };
	check(&v);
}

static void test_get_vanilla_utf8_query(void **state)
{
	struct vec v = { "GET", "/", "\xe1\x88\xb4=bar", STD_H, "",
		"GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\n"
		"x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
		"2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" };
	check(&v);
}

static void test_get_unreserved(void **state)
{
	struct vec v = { "GET",
		"/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
		NULL, STD_H, "", NULL,
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
		"07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" };
	check(&v);
}

static void test_get_header_value_trim(void **state)
{
	struct vec v = { "GET", "/", NULL,
		{ { "Host", HOST }, { "My-Header1", " value1" },
		  { "My-Header2", " \"a   b   c\"" }, { "X-Amz-Date", DATE } }, 4,
		"",
		"GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
		"my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
		"host;my-header1;my-header2;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
		"acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" };
	check(&v);
}

static void test_get_header_key_duplicate(void **state)
{
	struct vec v = { "GET", "/", NULL,
		{ { "Host", HOST }, { "My-Header1", "value2" },
		  { "My-Header1", "value2" }, { "My-Header1", "value1" },
		  { "X-Amz-Date", DATE } }, 5,
		"",
		"GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
		"x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
		"c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" };
	check(&v);
}

static void test_get_header_value_order(void **state)
{
	struct vec v = { "GET", "/", NULL,
		{ { "Host", HOST }, { "My-Header1", "value4" },
		  { "My-Header1", "value1" }, { "My-Header1", "value3" },
		  { "My-Header1", "value2" }, { "X-Amz-Date", DATE } }, 6,
		"", NULL,
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
		"08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01" };
	check(&v);
}

static void test_post_vanilla_query(void **state)
{
	struct vec v = { "POST", "/", "Param1=value1", STD_H, "",
		"POST\n/\nParam1=value1\nhost:example.amazonaws.com\n"
		"x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
		"28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11" };
	check(&v);
}

static void test_post_x_www_form_urlencoded(void **state)
{
	struct vec v = { "POST", "/", NULL,
		{ { "Content-Type", "application/x-www-form-urlencoded" },
		  { "Host", HOST }, { "X-Amz-Date", DATE } }, 3,
		"Param1=value1", NULL,
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
		"ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" };
	check(&v);
}

static void test_post_sts_header_before(void **state)
{
	const char *tok =
		"AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
	struct vec v = { "POST", "/", NULL,
		{ { "Host", HOST }, { "X-Amz-Date", DATE },
		  { "X-Amz-Security-Token", tok } }, 3,
		"", NULL,
		"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
		"c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
		"85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead" };
	check(&v);
}

/* AWS S3 API reference, "Authenticating Requests: Using the Authorization
 * Header": GET /test.txt with Range: bytes=0-9 on examplebucket. */
static void test_s3_get_object_example(void **state)
{
	static const struct sigv4_key k = {
		"AKIAIOSFODNN7EXAMPLE",
		"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3"
	};
	struct sigv4_header h[] = {
		{ "Host", "examplebucket.s3.amazonaws.com" },
		{ "Range", "bytes=0-9" },
		{ "x-amz-content-sha256", SIGV4_EMPTY_SHA256 },
		{ "x-amz-date", "20130524T000000Z" },
	};
	struct sigv4_request req = { "GET", "/test.txt", NULL, h, 4,
				     SIGV4_EMPTY_SHA256, 0 };
	struct sigv4_result r;
	assert_int_equal(sigv4_sign(&req, &k, "20130524T000000Z", &r), 0);
	assert_string_equal(r.canonical_request,
		"GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
		"range:bytes=0-9\nx-amz-content-sha256:"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
		"x-amz-date:20130524T000000Z\n\n"
		"host;range;x-amz-content-sha256;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_string_equal(r.string_to_sign,
		"AWS4-HMAC-SHA256\n20130524T000000Z\n"
		"20130524/us-east-1/s3/aws4_request\n"
		"7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	assert_string_equal(r.signature,
		"f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	assert_string_equal(r.authorization,
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

/* S3 specifics: raw key bytes are encoded once with '/' kept; a valueless
 * parameter signs as "name="; an encoded query is not encoded twice. */
static void test_s3_path_and_valueless_query(void **state)
{
	struct sigv4_header h[] = { { "host", "b.example" },
				    { "x-amz-date", DATE } };
	struct sigv4_request req = { "POST", "/bkt/dir/a b+c%\xc3\xa9.txt",
				     "uploads", h, 2, SIGV4_UNSIGNED, 0 };
	struct sigv4_result r;
	assert_int_equal(sigv4_sign(&req, &suite_key, DATE, &r), 0);
	assert_non_null(strstr(r.canonical_request,
		"POST\n/bkt/dir/a%20b%2Bc%25%C3%A9.txt\nuploads=\n"));
	assert_non_null(strstr(r.canonical_request, "\nUNSIGNED-PAYLOAD"));

	req.query = "prefix=a%20b%2F&list-type=2&continuation-token=x%2By%3D";
	assert_int_equal(sigv4_sign(&req, &suite_key, DATE, &r), 0);
	assert_non_null(strstr(r.canonical_request,
		"\ncontinuation-token=x%2By%3D&list-type=2&prefix=a%20b%2F\n"));
}

static void test_overflow_refused(void **state)
{
	static char big[SIGV4_CREQ_MAX];
	memset(big, 'a', sizeof big - 1);
	big[0] = '/';
	big[sizeof big - 1] = '\0';
	struct sigv4_header h[] = { { "host", "x" }, { "x-amz-date", DATE } };
	struct sigv4_request req = { "GET", big, NULL, h, 2,
				     SIGV4_EMPTY_SHA256, 0 };
	struct sigv4_result r;
	assert_int_equal(sigv4_sign(&req, &suite_key, DATE, &r), -1);
	char out[8];
	assert_int_equal(sigv4_uri_encode("abc def", 7, 0, out, sizeof out), -1);
	assert_int_equal(sigv4_uri_encode("a/b c", 5, 1, out, sizeof out), 7);
	assert_string_equal(out, "a/b%20c");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_vanilla),
		cmocka_unit_test(test_get_vanilla_query_order_key_case),
		cmocka_unit_test(test_get_vanilla_query_order_key),
		cmocka_unit_test(test_get_vanilla_query_order_value),
		cmocka_unit_test(test_get_vanilla_empty_query_key),
		cmocka_unit_test(test_get_vanilla_query_unreserved),
		cmocka_unit_test(test_get_vanilla_utf8_query),
		cmocka_unit_test(test_get_unreserved),
		cmocka_unit_test(test_get_header_value_trim),
		cmocka_unit_test(test_get_header_key_duplicate),
		cmocka_unit_test(test_get_header_value_order),
		cmocka_unit_test(test_post_vanilla_query),
		cmocka_unit_test(test_post_x_www_form_urlencoded),
		cmocka_unit_test(test_post_sts_header_before),
		cmocka_unit_test(test_s3_get_object_example),
		cmocka_unit_test(test_s3_path_and_valueless_query),
		cmocka_unit_test(test_overflow_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
