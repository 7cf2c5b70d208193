/* test_sftp.c - the SFTP v3 packet decoder and reply encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sftp.h"

/* A little packet builder for the tests. */
struct pb {
	uint8_t b[8192];
	size_t n;
};

static void pu8(struct pb *p, uint8_t v) { p->b[p->n++] = v; }
static void pu32(struct pb *p, uint32_t v)
{
	pu8(p, (uint8_t)(v >> 24));
	pu8(p, (uint8_t)(v >> 16));
	pu8(p, (uint8_t)(v >> 8));
	pu8(p, (uint8_t)v);
}
static void pu64(struct pb *p, uint64_t v)
{
	pu32(p, (uint32_t)(v >> 32));
	pu32(p, (uint32_t)v);
}
static void pstr(struct pb *p, const void *s, size_t n)
{
	pu32(p, (uint32_t)n);
	memcpy(p->b + p->n, s, n);
	p->n += n;
}
static void pcs(struct pb *p, const char *s) { pstr(p, s, strlen(s)); }

static struct sftp_request rq;

static void test_open(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, SFTP_OPEN);
	pu32(&p, 7);
	pcs(&p, "/attachments/a b.jpg");
	pu32(&p, SFTP_FXF_WRITE | SFTP_FXF_CREAT | SFTP_FXF_TRUNC);
	pu32(&p, SFTP_ATTR_PERMISSIONS | SFTP_ATTR_ACMODTIME);
	pu32(&p, 0100644);
	pu32(&p, 1000);
	pu32(&p, 2000);
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_int_equal(rq.type, SFTP_OPEN);
	assert_int_equal(rq.id, 7);
	assert_string_equal(rq.path, "/attachments/a b.jpg");
	assert_int_equal(rq.pflags, 0x1a);
	assert_int_equal(rq.attrs.permissions, 0100644);
	assert_int_equal(rq.attrs.mtime, 2000);
	assert_int_equal(rq.path_invalid, 0);
}

static void test_write_binary_payload(void **state)
{
	struct pb p = { .n = 0 };
	uint8_t data[300];
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)i; /* includes NUL bytes */
	pu8(&p, SFTP_WRITE);
	pu32(&p, 9);
	pstr(&p, "\0\0\0\1\0\0\0\2", 8);
	pu64(&p, 0x100000000ull);
	pstr(&p, data, sizeof data);
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_int_equal(rq.handle_len, 8);
	assert_true(rq.offset == 0x100000000ull);
	assert_int_equal(rq.data_len, sizeof data);
	assert_memory_equal(rq.data, data, sizeof data);
}

static void test_read(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, SFTP_READ);
	pu32(&p, 1);
	pstr(&p, "12345678", 8);
	pu64(&p, 42);
	pu32(&p, 261120);
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_true(rq.offset == 42);
	assert_int_equal(rq.len, 261120);
}

static void test_truncated_is_bad(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, SFTP_READ);
	pu32(&p, 5);
	pstr(&p, "12345678", 8);
	pu64(&p, 42);
	/* the length field is missing: every shorter prefix must fail too */
	for (size_t n = 5; n < p.n; n++) {
		assert_int_equal(sftp_decode_request(p.b, n, &rq),
				 SFTP_DECODE_BAD);
		assert_int_equal(rq.id, 5);
	}
	for (size_t n = 0; n < 5; n++)
		assert_int_equal(sftp_decode_request(p.b, n, &rq),
				 SFTP_DECODE_FATAL);
}

static void test_string_length_beyond_packet(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, SFTP_STAT);
	pu32(&p, 3);
	pu32(&p, 0xffffffffu); /* claims 4 GiB */
	memcpy(p.b + p.n, "abc", 3);
	p.n += 3;
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_BAD);
}

static void test_path_with_nul_is_invalid(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, SFTP_REMOVE);
	pu32(&p, 3);
	pstr(&p, "/attachments/a\0/../../etc", 25);
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_int_equal(rq.path_invalid, 1);
	assert_string_equal(rq.path, "");
}

static void test_overlong_path_is_invalid(void **state)
{
	static struct pb p;
	char *longp = malloc(SFTP_PATH_MAX + 10);
	memset(longp, 'a', SFTP_PATH_MAX + 10);
	p.n = 0;
	pu8(&p, SFTP_STAT);
	pu32(&p, 3);
	pstr(&p, longp, SFTP_PATH_MAX); /* one byte too many with the NUL */
	free(longp);
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_int_equal(rq.path_invalid, 1);
}

static void test_handle_too_long(void **state)
{
	static struct pb p;
	uint8_t h[SFTP_HANDLE_MAX + 1] = { 0 };
	p.n = 0;
	pu8(&p, SFTP_CLOSE);
	pu32(&p, 3);
	pstr(&p, h, sizeof h);
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_BAD);
}

static void test_attrs_extended_count_huge(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, SFTP_SETSTAT);
	pu32(&p, 3);
	pcs(&p, "x");
	pu32(&p, SFTP_ATTR_EXTENDED);
	pu32(&p, 0x7fffffff); /* far more pairs than bytes */
	pcs(&p, "k");
	pcs(&p, "v");
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_BAD);
}

static void test_attrs_extended_ok(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, SFTP_SETSTAT);
	pu32(&p, 3);
	pcs(&p, "x");
	pu32(&p, SFTP_ATTR_SIZE | SFTP_ATTR_EXTENDED);
	pu64(&p, 0);
	pu32(&p, 1);
	pcs(&p, "k");
	pcs(&p, "v");
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_true(rq.attrs.flags & SFTP_ATTR_SIZE);
}

static void test_extensions(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, SFTP_EXTENDED);
	pu32(&p, 11);
	pcs(&p, "posix-rename@openssh.com");
	pcs(&p, "/attachments/a");
	pcs(&p, "/attachments/b");
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_string_equal(rq.ext, "posix-rename@openssh.com");
	assert_string_equal(rq.path, "/attachments/a");
	assert_string_equal(rq.path2, "/attachments/b");

	p.n = 0;
	pu8(&p, SFTP_EXTENDED);
	pu32(&p, 12);
	pcs(&p, "fsync@openssh.com");
	pstr(&p, "abcdefgh", 8);
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_int_equal(rq.handle_len, 8);

	p.n = 0;
	pu8(&p, SFTP_EXTENDED);
	pu32(&p, 13);
	pcs(&p, "limits@openssh.com");
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_string_equal(rq.ext, "limits@openssh.com");

	p.n = 0;
	pu8(&p, SFTP_EXTENDED);
	pu32(&p, 14);
	pcs(&p, "statvfs@openssh.com");
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_BAD);
}

static void test_unknown_type(void **state)
{
	struct pb p = { .n = 0 };
	pu8(&p, 99);
	pu32(&p, 77);
	pu32(&p, 1);
	assert_int_equal(sftp_decode_request(p.b, p.n, &rq), SFTP_DECODE_OK);
	assert_int_equal(rq.type, 99);
	assert_int_equal(rq.id, 77);
}

static void test_encode_status(void **state)
{
	uint8_t buf[256];
	struct sftp_out o = { buf, sizeof buf, 0, 0 };
	long n = sftp_encode_status(&o, 0x01020304, SFTP_FX_NO_SUCH_FILE,
				    "No such file");
	assert_int_equal(n, 4 + 1 + 4 + 4 + 4 + 12 + 4);
	static const uint8_t want[] = { 0, 0, 0, 29, 101, 1, 2, 3, 4,
					0, 0, 0, 2, 0, 0, 0, 12 };
	assert_memory_equal(buf, want, sizeof want);
	assert_memory_equal(buf + 17, "No such file", 12);
}

static void test_encode_overflow(void **state)
{
	uint8_t buf[16];
	struct sftp_out o = { buf, sizeof buf, 0, 0 };
	sftp_out_begin(&o, SFTP_NAME, 1);
	sftp_out_cstring(&o, "this does not fit in sixteen bytes");
	assert_int_equal(sftp_out_end(&o), -1);
}

static void test_attrs_roundtrip(void **state)
{
	uint8_t buf[128];
	struct sftp_out o = { buf, sizeof buf, 0, 0 };
	struct sftp_attrs a = { SFTP_ATTR_SIZE | SFTP_ATTR_PERMISSIONS |
					SFTP_ATTR_ACMODTIME | SFTP_ATTR_UIDGID,
				123456789012ull, 5, 6, 0100644, 10, 20 };
	struct sftp_attrs b;
	sftp_out_attrs(&o, &a);
	assert_int_equal(sftp_decode_attrs(buf, o.len, &b), (int)o.len);
	assert_int_equal(a.flags, b.flags);
	assert_true(a.size == b.size);
	assert_int_equal(a.uid, b.uid);
	assert_int_equal(a.gid, b.gid);
	assert_int_equal(a.permissions, b.permissions);
	assert_int_equal(a.atime, b.atime);
	assert_int_equal(a.mtime, b.mtime);
}

static void test_longname(void **state)
{
	char out[256];
	struct sftp_attrs a = { SFTP_ATTR_SIZE | SFTP_ATTR_PERMISSIONS |
					SFTP_ATTR_ACMODTIME,
				1234, 0, 0, 0100644, 0, 1700000000 };
	sftp_longname(out, sizeof out, "a.jpg", &a, "kufish", 1700000000);
	assert_non_null(strstr(out, "-rw-r--r--"));
	assert_non_null(strstr(out, "kufish"));
	assert_non_null(strstr(out, " 1234 "));
	assert_non_null(strstr(out, "Nov 14 22:13 a.jpg"));
	a.permissions = 040755;
	sftp_longname(out, sizeof out, "dir", &a, "kufish", 1800000000);
	assert_int_equal(out[0], 'd');
	assert_non_null(strstr(out, " 2023 dir"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_write_binary_payload),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_truncated_is_bad),
		cmocka_unit_test(test_string_length_beyond_packet),
		cmocka_unit_test(test_path_with_nul_is_invalid),
		cmocka_unit_test(test_overlong_path_is_invalid),
		cmocka_unit_test(test_handle_too_long),
		cmocka_unit_test(test_attrs_extended_count_huge),
		cmocka_unit_test(test_attrs_extended_ok),
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_encode_status),
		cmocka_unit_test(test_encode_overflow),
		cmocka_unit_test(test_attrs_roundtrip),
		cmocka_unit_test(test_longname),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
