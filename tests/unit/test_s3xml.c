/* test_s3xml.c - the S3 reply parser: listings, errors, multipart and copy
 * results, and hostile input refused without reading past the buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "s3xml.h"

static const char list_page[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>b</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount>"
	"<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>"
	"<IsTruncated>true</IsTruncated>"
	"<Contents><Key>p/a &amp; b&#x20;&#233;.txt</Key>"
	"<LastModified>2026-11-25T19:40:01.000Z</LastModified>"
	"<ETag>&quot;0123abcd&quot;</ETag><Size>12345</Size>"
	"<StorageClass>STANDARD</StorageClass></Contents>"
	"<Contents><Key>p/z</Key><LastModified>1970-01-01T00:00:10Z"
	"</LastModified><ETag>\"e\"</ETag><Size>0</Size></Contents>"
	"<CommonPrefixes><Prefix>p/dir/</Prefix></CommonPrefixes>"
	"<NextContinuationToken>tok+/=</NextContinuationToken>"
	"</ListBucketResult>";

static void test_list(void **state)
{
	struct s3xml_list l;
	assert_int_equal(s3xml_parse_list(list_page, strlen(list_page), &l), 0);
	assert_int_equal(l.n_objects, 2);
	assert_string_equal(l.objects[0].key, "p/a & b \xc3\xa9.txt");
	assert_int_equal(l.objects[0].size, 12345);
	assert_int_equal(l.objects[0].mtime, 1795635601);
	assert_string_equal(l.objects[0].etag, "0123abcd");
	assert_string_equal(l.objects[1].key, "p/z");
	assert_int_equal(l.objects[1].mtime, 10);
	assert_int_equal(l.n_prefixes, 1);
	assert_string_equal(l.prefixes[0], "p/dir/");
	assert_true(l.truncated);
	assert_string_equal(l.next_token, "tok+/=");
	s3xml_list_free(&l);
}

static void test_list_truncated_without_token(void **state)
{
	const char *x = "<ListBucketResult><IsTruncated>true</IsTruncated>"
			"</ListBucketResult>";
	struct s3xml_list l;
	assert_int_equal(s3xml_parse_list(x, strlen(x), &l), -1);
	s3xml_list_free(&l);
}

static void test_error(void **state)
{
	const char *x = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch"
			"</Code><Message>The request signature we calculated "
			"does not match</Message><RequestId>1</RequestId></Error>";
	char code[64], msg[256];
	assert_int_equal(s3xml_parse_error(x, strlen(x), code, sizeof code, msg,
					   sizeof msg), 0);
	assert_string_equal(code, "SignatureDoesNotMatch");
	assert_string_equal(msg, "The request signature we calculated does not match");
	assert_int_equal(s3xml_parse_error(list_page, strlen(list_page), code,
					   sizeof code, msg, sizeof msg), -1);
}

static void test_results(void **state)
{
	const char *up = "<InitiateMultipartUploadResult><Bucket>b</Bucket>"
			 "<Key>k</Key><UploadId>abc123</UploadId>"
			 "</InitiateMultipartUploadResult>";
	char id[128], etag[80];
	assert_int_equal(s3xml_parse_upload_id(up, strlen(up), id, sizeof id), 0);
	assert_string_equal(id, "abc123");

	const char *ok = "<CompleteMultipartUploadResult><Location>x</Location>"
			 "<ETag>\"ff-3\"</ETag></CompleteMultipartUploadResult>";
	assert_int_equal(s3xml_parse_result(ok, strlen(ok),
		"CompleteMultipartUploadResult", etag, sizeof etag), 0);
	assert_string_equal(etag, "ff-3");
	/* A 200 reply carrying an error must not count as success. */
	const char *bad = "<?xml version=\"1.0\"?>\n<Error><Code>InternalError"
			  "</Code><Message>try again</Message></Error>";
	assert_int_equal(s3xml_parse_result(bad, strlen(bad),
		"CompleteMultipartUploadResult", etag, sizeof etag), -1);
	const char *cp = "<CopyObjectResult><LastModified>2020-01-01T00:00:00Z"
			 "</LastModified><ETag>&quot;e1&quot;</ETag></CopyObjectResult>";
	assert_int_equal(s3xml_parse_result(cp, strlen(cp), "CopyObjectResult",
					    etag, sizeof etag), 0);
	assert_string_equal(etag, "e1");
}

static void test_hostile(void **state)
{
	static const char *bad[] = {
		"", "   ", "<", "<a", "<a>", "<a></b>", "<a><b></a></b>",
		"<a>&unknown;</a>", "<a>&#0;</a>", "<a>&#xD800;</a>",
		"<a>&#x110000;</a>", "<a>&#;</a>", "<a>&#12</a>",
		"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "<a/><b/>",
		"text<a/>", "<a b=\"<\"/>", "<a b=\"x/>", "<a><![CDATA[x</a>",
		"<?xml", "<!-- x", "</a>", "<a/ >",
	};
	struct s3xml_list l;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(s3xml_walk(bad[i], strlen(bad[i]), NULL, NULL,
					    NULL, 0), -1);
		assert_int_equal(s3xml_parse_list(bad[i], strlen(bad[i]), &l), -1);
		s3xml_list_free(&l);
	}
	/* Too deep. */
	char deep[200] = "";
	for (int i = 0; i < 20; i++)
		strcat(deep, "<a>");
	for (int i = 0; i < 20; i++)
		strcat(deep, "</a>");
	assert_int_equal(s3xml_walk(deep, strlen(deep), NULL, NULL, NULL, 0), -1);
	/* Text over the bound. */
	static char big[S3XML_TEXT_MAX + 64];
	size_t n = S3XML_TEXT_MAX + 32;
	strcpy(big, "<a>");
	memset(big + 3, 'x', n);
	strcpy(big + 3 + n, "</a>");
	assert_int_equal(s3xml_walk(big, strlen(big), NULL, NULL, NULL, 0), -1);
	/* Not NUL-terminated: the parser stops at LEN. */
	char buf[8];
	memcpy(buf, "<a></a>X", 8);
	assert_int_equal(s3xml_walk(buf, 7, NULL, NULL, NULL, 0), 0);
	/* Fine: empty elements, CDATA, comments, whitespace. */
	const char *ok = "\xEF\xBB\xBF<?xml version=\"1.0\"?><!-- c --><a x='1'>"
			 "<b/><c><![CDATA[<raw>]]></c></a>\n";
	assert_int_equal(s3xml_walk(ok, strlen(ok), NULL, NULL, NULL, 0), 0);
}

static void test_time(void **state)
{
	assert_int_equal(s3xml_parse_time("2026-11-25T19:40:01.000Z"), 1795635601);
	assert_int_equal(s3xml_parse_time("garbage"), -1);
	assert_int_equal(s3xml_parse_time("2026-13-25T19:40:01Z"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_list_truncated_without_token),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_results),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
