/* test_http_multipart.c - the streaming multipart parser, fed the same
 * bodies in every chunking from whole to one byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http_multipart.h"

struct rec {
	char log[8192];      /* "begin name=... file=...|data...|end|" */
	size_t len;
	int abort_at_begin;  /* abort on the Nth part begin (1-based) */
	int begins;
};

static void put(struct rec *r, const char *s, size_t n)
{
	assert_true(r->len + n < sizeof r->log);
	memcpy(r->log + r->len, s, n);
	r->len += n;
	r->log[r->len] = '\0';
}

static int on_begin(void *arg, const struct http_mp_part *p)
{
	struct rec *r = arg;
	char b[3000];
	r->begins++;
	if (r->abort_at_begin == r->begins)
		return 42;
	int n = snprintf(b, sizeof b, "[%s|%s|%d|%s]", p->name, p->filename,
			 p->has_filename, p->content_type);
	put(r, b, (size_t)n);
	return 0;
}

static int on_data(void *arg, const char *d, size_t n)
{
	put(arg, d, n);
	return 0;
}

static int on_end(void *arg)
{
	put(arg, "<end>", 5);
	return 0;
}

static const struct http_mp_callbacks CB = {on_begin, on_data, on_end};
static const char *CT = "multipart/form-data; boundary=----WebKitFormBoundaryX7a";

/* Specify 7's order: file first, then token, store, type, coll. The file
 * content holds near-delimiters: CRLF, "\r\n--", and the boundary without
 * its leading CRLF. */
static const char BODY[] =
	"------WebKitFormBoundaryX7a\r\n"
	"Content-Disposition: form-data; name=\"file\"; filename=\"IMG 1.JPG\"\r\n"
	"Content-Type: image/jpeg\r\n"
	"\r\n"
	"\xff\xd8 bin\r\ndata\r\n--not\r\r\n-\r\n------WebKitFormBoundaryX7\r\n------WebKitFormBoundaryX7b-x\r\n"
	"------WebKitFormBoundaryX7a\r\n"
	"Content-Disposition: form-data; name=\"token\"\r\n"
	"\r\n"
	"abc:123\r\n"
	"------WebKitFormBoundaryX7a\r\n"
	"Content-Disposition: form-data; name=\"store\"\r\n"
	"\r\n"
	"u.JPG\r\n"
	"------WebKitFormBoundaryX7a--\r\n"
	"epilogue ignored";

static const char WANT[] =
	"[file|IMG 1.JPG|1|image/jpeg]"
	"\xff\xd8 bin\r\ndata\r\n--not\r\r\n-\r\n------WebKitFormBoundaryX7\r\n------WebKitFormBoundaryX7b-x"
	"<end>[token||0|]abc:123<end>[store||0|]u.JPG<end>";

static void run_chunked(const char *body, size_t len, size_t chunk,
			struct rec *r, int *feed_rc, int *finish_rc)
{
	struct http_multipart mp;
	memset(r, 0, sizeof *r);
	assert_int_equal(http_mp_init(&mp, CT, &CB, r), 0);
	*feed_rc = 0;
	for (size_t i = 0; i < len && *feed_rc == 0; i += chunk) {
		size_t n = len - i < chunk ? len - i : chunk;
		*feed_rc = http_mp_feed(&mp, body + i, n);
	}
	*finish_rc = http_mp_finish(&mp);
}

static void test_every_chunking(void **state)
{
	(void)state;
	size_t len = sizeof BODY - 1;
	for (size_t chunk = 1; chunk <= len; chunk++) {
		struct rec r;
		int frc, grc;
		run_chunked(BODY, len, chunk, &r, &frc, &grc);
		assert_int_equal(frc, 0);
		assert_int_equal(grc, 0);
		assert_int_equal(r.len, sizeof WANT - 1);
		assert_memory_equal(r.log, WANT, sizeof WANT - 1);
	}
}

static int count_data(void *arg, const char *d, size_t n)
{
	(void)d;
	(void)n;
	++*(int *)arg;
	return 0;
}

/* CRs in a file's bytes that do not start the delimiter stay in the run:
 * a chunk reaches the callback whole, not cut at every CR (binary data
 * has one every 256 bytes). */
static void test_data_in_whole_runs(void **state)
{
	(void)state;
	struct http_mp_callbacks cb = {NULL, count_data, NULL};
	struct http_multipart mp;
	int calls = 0;
	assert_int_equal(http_mp_init(&mp, CT, &cb, &calls), 0);
	assert_int_equal(http_mp_feed(&mp, BODY, sizeof BODY - 1), 0);
	assert_int_equal(http_mp_finish(&mp), 0);
	assert_int_equal(calls, 3); /* file, token, store: one run each */
}

static void test_truncated(void **state)
{
	(void)state;
	/* Cut anywhere before the closing "--": never complete. */
	const char *close = strstr(BODY, "X7a--");
	size_t cut_max = (size_t)(close - BODY) + 4;
	for (size_t cut = 0; cut < cut_max; cut += 7) {
		struct rec r;
		int frc, grc;
		run_chunked(BODY, cut, 5, &r, &frc, &grc);
		assert_int_equal(frc, 0);
		assert_int_equal(grc, HTTP_MP_ETRUNCATED);
	}
}

static void test_preamble_and_quoting(void **state)
{
	(void)state;
	static const char body[] =
		"preamble text\r\n"
		"------WebKitFormBoundaryX7a  \r\n"
		"content-disposition: form-data; filename=\"a\\\"b;c.jpg\"; name=upload\r\n"
		"\r\n"
		"x\r\n"
		"------WebKitFormBoundaryX7a--";
	struct rec r;
	int frc, grc;
	run_chunked(body, sizeof body - 1, 3, &r, &frc, &grc);
	assert_int_equal(frc, 0);
	assert_int_equal(grc, 0);
	assert_string_equal(r.log, "[upload|a\"b;c.jpg|1|]x<end>");
}

static void test_errors(void **state)
{
	(void)state;
	struct http_multipart mp;
	struct rec r;
	memset(&r, 0, sizeof r);
	assert_int_equal(http_mp_init(&mp, "text/plain", &CB, &r), HTTP_MP_EBOUNDARY);
	assert_int_equal(http_mp_init(&mp, "multipart/form-data", &CB, &r), HTTP_MP_EBOUNDARY);
	assert_int_equal(http_mp_init(&mp, "multipart/form-data; boundary=\"a\rb\"", &CB, &r), HTTP_MP_EBOUNDARY);
	char ct[200];
	memset(ct, 0, sizeof ct);
	strcpy(ct, "multipart/form-data; boundary=");
	memset(ct + strlen(ct), 'b', 71);
	assert_int_equal(http_mp_init(&mp, ct, &CB, &r), HTTP_MP_EBOUNDARY);

	/* a part with no Content-Disposition */
	static const char bad[] = "--q\r\nContent-Type: a/b\r\n\r\nx\r\n--q--";
	assert_int_equal(http_mp_init(&mp, "multipart/form-data; boundary=q", &CB, &r), 0);
	assert_int_equal(http_mp_feed(&mp, bad, sizeof bad - 1), HTTP_MP_EHEADERS);
	/* junk after a delimiter */
	static const char junk[] = "--q\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--qZ";
	assert_int_equal(http_mp_init(&mp, "multipart/form-data; boundary=q", &CB, &r), 0);
	assert_int_equal(http_mp_feed(&mp, junk, sizeof junk - 1), HTTP_MP_ESYNTAX);
	/* overlong headers */
	assert_int_equal(http_mp_init(&mp, "multipart/form-data; boundary=q", &CB, &r), 0);
	assert_int_equal(http_mp_feed(&mp, "--q\r\n", 5), 0);
	char big[HTTP_MP_HEADERS_MAX + 10];
	memset(big, 'h', sizeof big);
	assert_int_equal(http_mp_feed(&mp, big, sizeof big), HTTP_MP_EHEADERS);
	/* a callback stops the parse */
	memset(&r, 0, sizeof r);
	r.abort_at_begin = 2;
	assert_int_equal(http_mp_init(&mp, CT, &CB, &r), 0);
	assert_int_equal(http_mp_feed(&mp, BODY, sizeof BODY - 1), HTTP_MP_EABORTED);
	assert_int_equal(mp.cb_rc, 42);
}

static void test_many_parts(void **state)
{
	(void)state;
	struct http_multipart mp;
	struct rec r;
	memset(&r, 0, sizeof r);
	static const struct http_mp_callbacks none = {NULL, NULL, NULL};
	assert_int_equal(http_mp_init(&mp, "multipart/form-data; boundary=q", &none, &r), 0);
	static const char part[] = "--q\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n";
	int rc = 0;
	for (int i = 0; i <= HTTP_MP_PARTS_MAX && rc == 0; i++)
		rc = http_mp_feed(&mp, part, sizeof part - 1 - (i ? 0 : 0));
	/* The first feed has no leading CRLF issue: each part ends with CRLF
	 * that begins the next delimiter. */
	assert_int_equal(rc, HTTP_MP_ETOOMANY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_chunking),
		cmocka_unit_test(test_data_in_whole_runs),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_preamble_and_quoting),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_many_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
