/* test_http_proto.c - ranges, dates, entity tags, names, thumbnail names,
 * form bodies, escaping and the base URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http_proto.h"

static void test_range(void **state)
{
	uint64_t s, l;
	(void)state;
	assert_int_equal(http_range_parse("bytes=0-99", 1000, &s, &l), HTTP_RANGE_OK);
	assert_true(s == 0 && l == 100);
	assert_int_equal(http_range_parse("bytes=900-", 1000, &s, &l), HTTP_RANGE_OK);
	assert_true(s == 900 && l == 100);
	assert_int_equal(http_range_parse("bytes=-10", 1000, &s, &l), HTTP_RANGE_OK);
	assert_true(s == 990 && l == 10);
	assert_int_equal(http_range_parse("bytes=-5000", 1000, &s, &l), HTTP_RANGE_OK);
	assert_true(s == 0 && l == 1000);
	assert_int_equal(http_range_parse("bytes=500-5000", 1000, &s, &l), HTTP_RANGE_OK);
	assert_true(s == 500 && l == 500);
	assert_int_equal(http_range_parse("bytes=1000-", 1000, &s, &l), HTTP_RANGE_UNSATISFIABLE);
	assert_int_equal(http_range_parse("bytes=-0", 1000, &s, &l), HTTP_RANGE_UNSATISFIABLE);
	assert_int_equal(http_range_parse("bytes=0-", 0, &s, &l), HTTP_RANGE_UNSATISFIABLE);
	assert_int_equal(http_range_parse("bytes=5-2", 1000, &s, &l), HTTP_RANGE_NONE);
	assert_int_equal(http_range_parse("bytes=0-1,5-6", 1000, &s, &l), HTTP_RANGE_NONE);
	assert_int_equal(http_range_parse("items=0-1", 1000, &s, &l), HTTP_RANGE_NONE);
	assert_int_equal(http_range_parse("bytes=x-1", 1000, &s, &l), HTTP_RANGE_NONE);
	assert_int_equal(http_range_parse("bytes=99999999999999999999999-", 1000, &s, &l), HTTP_RANGE_NONE);
	assert_int_equal(http_range_parse(NULL, 1000, &s, &l), HTTP_RANGE_NONE);
}

static void test_dates(void **state)
{
	char b[64];
	int64_t t;
	(void)state;
	http_date_format(784111777, b, sizeof b);
	assert_string_equal(b, "Sun, 06 Nov 1994 08:49:37 GMT");
	assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
	assert_int_equal(t, 784111777);
	assert_int_equal(http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
	assert_int_equal(t, 784111777);
	assert_int_equal(http_date_parse("Sun Nov  6 08:49:37 1994", &t), 0);
	assert_int_equal(t, 784111777);
	assert_int_equal(http_date_parse("yesterday", &t), -1);
	assert_int_equal(http_date_parse("Sun, 06 Foo 1994 08:49:37 GMT", &t), -1);
}

static void test_etag(void **state)
{
	(void)state;
	assert_true(http_etag_match("\"abc\"", "\"abc\""));
	assert_true(http_etag_match("\"x\", W/\"abc\"", "\"abc\""));
	assert_true(http_etag_match("*", "\"abc\""));
	assert_false(http_etag_match("\"abcd\"", "\"abc\""));
	assert_false(http_etag_match("", "\"abc\""));
}

static void test_names(void **state)
{
	(void)state;
#define V(s) http_name_valid(s, strlen(s))
	assert_true(V("a6daad6c-5091-4461-86ee-eeba9434ef2b.jpg"));
	assert_true(V("sp6-1234.att.jpg"));
	assert_true(V("0c8bd5b3-6a4f-4b0b-a4fb-0a4bf0d0a1b2.JPG"));
	assert_true(V("noext"));
	assert_true(V("caf\xc3\xa9.png"));
	assert_false(V(""));
	assert_false(V("."));
	assert_false(V(".."));
	assert_false(V("../x"));
	assert_false(V("a/b"));
	assert_false(V("a\\b"));
	assert_false(V("a\nb"));
	assert_false(V("\xc3("));
	assert_false(V("\xed\xa0\x80"));  /* surrogate */
	assert_false(V("\xc0\xaf"));      /* overlong '/' */
	assert_false(V("a\xc3"));         /* truncated sequence */
	assert_false(http_name_valid("ab\0c", 4));
	char big[301];
	memset(big, 'a', 300);
	big[300] = '\0';
	assert_false(V(big));
	big[255] = '\0';
	assert_true(V(big));
#undef V
}

static void test_thumb_names(void **state)
{
	char b[300];
	(void)state;
	assert_int_equal(http_thumb_name("u.jpg", 123, b, sizeof b), 0);
	assert_string_equal(b, "u_123.jpg");
	assert_int_equal(http_thumb_name("u.JPG", 200, b, sizeof b), 0);
	assert_string_equal(b, "u_200.JPG");
	assert_int_equal(http_thumb_name("sp6-1234.att.jpg", 600, b, sizeof b), 0);
	assert_string_equal(b, "sp6-1234.att_600.jpg");
	assert_int_equal(http_thumb_name("doc.pdf", 123, b, sizeof b), 0);
	assert_string_equal(b, "doc_123.png");
	assert_int_equal(http_thumb_name("scan.TIFF", 123, b, sizeof b), 0);
	assert_string_equal(b, "scan_123.png");
	assert_int_equal(http_thumb_name("p.heic", 9, b, sizeof b), 0);
	assert_string_equal(b, "p_9.png");
	assert_int_equal(http_thumb_name("noext", 5, b, sizeof b), 0);
	assert_string_equal(b, "noext_5");
	assert_int_equal(http_thumb_name("u.jpg", 123, b, 5), -1);

	assert_int_equal(http_thumb_kind("x.JPeG"), HTTP_THUMB_JPEG);
	assert_int_equal(http_thumb_kind("x.gif"), HTTP_THUMB_GIF);
	assert_int_equal(http_thumb_kind("x.mp4"), HTTP_THUMB_NONE);
	assert_int_equal(http_thumb_kind("noext"), HTTP_THUMB_NONE);

	assert_true(http_thumb_is_of("u.jpg", "u_123.jpg"));
	assert_true(http_thumb_is_of("u.jpg", "u_1024.jpg"));
	assert_false(http_thumb_is_of("u.jpg", "u_123.png"));
	assert_false(http_thumb_is_of("u.jpg", "u_0123.jpg"));
	assert_false(http_thumb_is_of("u.jpg", "u_.jpg"));
	assert_false(http_thumb_is_of("u.jpg", "u_12a.jpg"));
	assert_false(http_thumb_is_of("u.jpg", "uu_123.jpg"));
	assert_false(http_thumb_is_of("u.jpg", "u_123.jpg.bak"));
	/* Specify 6 names: the thumbnail keeps ".att" in its root, and a
	 * sibling attachment with a longer number is not touched */
	assert_true(http_thumb_is_of("sp6-1234.att.jpg", "sp6-1234.att_123.jpg"));
	assert_false(http_thumb_is_of("sp6-1234.att.jpg", "sp6-12345.att_123.jpg"));
	assert_false(http_thumb_is_of("sp6-1234.att.jpg", "sp6-1234_123.jpg"));
	assert_true(http_thumb_is_of("d.pdf", "d_600.png"));
	assert_false(http_thumb_is_of("d.pdf", "d_600.pdf"));
}

struct fields {
	char all[512];
};

static int collect(void *arg, const char *n, size_t nl, const char *v, size_t vl)
{
	struct fields *f = arg;
	size_t o = strlen(f->all);
	assert_true(o + nl + vl + 3 < sizeof f->all);
	memcpy(f->all + o, n, nl);
	o += nl;
	f->all[o++] = '=';
	for (size_t i = 0; i < vl; i++)
		f->all[o++] = v[i] ? v[i] : '0';
	f->all[o++] = ';';
	f->all[o] = '\0';
	return 0;
}

static void test_forms(void **state)
{
	struct fields f;
	(void)state;
	memset(&f, 0, sizeof f);
	const char *b = "filename=a%2Fb.jpg&coll=Herp+Coll&token=x%3A1&&empty=&flag&nul=a%00b";
	assert_int_equal(http_form_parse(b, strlen(b), collect, &f), 0);
	assert_string_equal(f.all, "filename=a/b.jpg;coll=Herp Coll;token=x:1;empty=;flag=;nul=a0b;");
	memset(&f, 0, sizeof f);
	assert_int_equal(http_form_parse("a=%zz", 5, collect, &f), -1);
	assert_int_equal(http_form_parse("a=%2", 4, collect, &f), -1);
	char out[8];
	assert_int_equal(http_pct_decode("%41%42", 6, 0, out, sizeof out), 2);
	assert_string_equal(out, "AB");
	assert_int_equal(http_pct_decode("abcdefghij", 10, 0, out, sizeof out), -1);
}

static void test_escaping(void **state)
{
	char b[256];
	(void)state;
	assert_int_equal(http_content_disposition("dir/My photo\xc3\xa9.jpg", b, sizeof b), 0);
	assert_string_equal(b, "inline; filename*=utf-8''My%20photo%C3%A9.jpg");
	assert_int_equal(http_content_disposition("C:\\x\\a\"b;.jpg", b, sizeof b), 0);
	assert_string_equal(b, "inline; filename*=utf-8''a%22b%3B.jpg");
	assert_int_equal(http_xml_escape("a<b>&\"'", b, sizeof b), 0);
	assert_string_equal(b, "a&lt;b&gt;&amp;&quot;&apos;");
	assert_int_equal(http_pct_encode_url("Herp Coll/é", b, sizeof b), 0);
	assert_string_equal(b, "Herp%20Coll%2F%C3%A9");
}

static void test_base_url(void **state)
{
	char b[256];
	(void)state;
	assert_int_equal(http_base_url("https://assets.example.org/", NULL, NULL, "x", 0, "", b, sizeof b), 0);
	assert_string_equal(b, "https://assets.example.org");
	assert_int_equal(http_base_url("", "https", "assets.example.org", "127.0.0.1:8080", 0, "/c/ku", b, sizeof b), 0);
	assert_string_equal(b, "https://assets.example.org/c/ku");
	assert_int_equal(http_base_url(NULL, "https, http", NULL, "h:81", 0, "", b, sizeof b), 0);
	assert_string_equal(b, "https://h:81");
	assert_int_equal(http_base_url(NULL, NULL, NULL, "127.0.0.1:8080", 0, "", b, sizeof b), 0);
	assert_string_equal(b, "http://127.0.0.1:8080");
	assert_int_equal(http_base_url(NULL, NULL, NULL, "[::1]:8443", 1, "", b, sizeof b), 0);
	assert_string_equal(b, "https://[::1]:8443");
	assert_int_equal(http_base_url(NULL, "gopher", NULL, "h", 0, "", b, sizeof b), 0);
	assert_string_equal(b, "http://h");
	assert_int_equal(http_base_url(NULL, NULL, NULL, "evil\"><x", 0, "", b, sizeof b), -1);
	assert_int_equal(http_base_url(NULL, NULL, NULL, NULL, 0, "", b, sizeof b), -1);
}

static void test_prefix_and_scale(void **state)
{
	char c[64];
	const char *r;
	int s;
	(void)state;
	assert_int_equal(http_split_prefix("/c/kufish/fileget", c, sizeof c, &r), 1);
	assert_string_equal(c, "kufish");
	assert_string_equal(r, "/fileget");
	assert_int_equal(http_split_prefix("/c/kufish", c, sizeof c, &r), 1);
	assert_string_equal(r, "/");
	assert_int_equal(http_split_prefix("/fileget", c, sizeof c, &r), 0);
	assert_string_equal(r, "/fileget");
	assert_int_equal(http_split_prefix("/c//fileget", c, sizeof c, &r), -1);
	assert_int_equal(http_split_prefix("/c/KU/fileget", c, sizeof c, &r), -1);
	assert_int_equal(http_split_prefix("/c/../fileget", c, sizeof c, &r), -1);
	assert_int_equal(http_scale_parse("123", &s), 0);
	assert_int_equal(s, 123);
	assert_int_equal(http_scale_parse("0", &s), -1);
	assert_int_equal(http_scale_parse("-5", &s), -1);
	assert_int_equal(http_scale_parse("12x", &s), -1);
	assert_int_equal(http_scale_parse("123456", &s), -1);
	assert_int_equal(http_scale_parse("", &s), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_etag),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_thumb_names),
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_base_url),
		cmocka_unit_test(test_prefix_and_scale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
