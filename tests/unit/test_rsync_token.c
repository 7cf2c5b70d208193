/* test_rsync_token.c - the file-data token stream (sshd/rsync/token.c):
 * every algorithm (plain, zlib, zlibx, zstd) at protocols 30 and 31 round
 * trips literal data, single blocks, runs and far jumps over several
 * files, with zlib's block history; and malformed streams (garbage,
 * truncation, corrupt compressed bytes, bad flags, overflowing token
 * numbers) end with a stream error, never a crash or a hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rsync_memio.h"

#define MEM_CAP (8 << 20)

static struct mem g_mem;
static struct rsync_io g_io = {&g_mem, mem_read, mem_write, NULL};

static void mem_reset(void)
{
	if (!g_mem.buf)
		g_mem.buf = malloc(MEM_CAP);
	g_mem.cap = MEM_CAP;
	assert_non_null(g_mem.buf);
	g_mem.len = g_mem.pos = 0;
}

#define BLEN 1000
#define NBLOCKS 300

static unsigned char basis[BLEN * NBLOCKS];

static void fill(unsigned char *p, size_t n, int text, unsigned seed)
{
	size_t i;
	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = text ? (unsigned char)("abcdefgh \n"[(seed >> 16) % 10])
			    : (unsigned char)(seed >> 16);
	}
}

/* One "file": what the sender sends and what the receiver must rebuild. */
struct op {
	int32_t token;          /* -2 data only, -1 end, >= 0 block */
	size_t off, n;          /* literal bytes from lit[] */
};

static unsigned char lit[200000];

static const struct op file_a[] = {
	{ -2, 0, 40000 },       /* text, more than a chunk */
	{ 0, 40000, 500 },      /* literal then block 0 */
	{ 1, 0, 0 }, { 2, 0, 0 }, { 3, 0, 0 }, /* a run */
	{ 200, 0, 0 },          /* a jump past 63 (TOKEN_LONG) */
	{ 201, 0, 0 },
	{ -2, 100000, 70000 },  /* random data */
	{ 7, 170000, 10 },
	{ 7, 0, 0 },            /* the same block again */
	{ -1, 180000, 3000 },
};
static const struct op file_b[] = {
	{ 299, 0, 0 }, { -1, 0, 0 },
};
static const struct op file_empty[] = {
	{ -1, 0, 0 },
};

static size_t expect(const struct op *ops, size_t nops, unsigned char *out)
{
	size_t i, len = 0;
	for (i = 0; i < nops; i++) {
		memcpy(out + len, lit + ops[i].off, ops[i].n);
		len += ops[i].n;
		if (ops[i].token >= 0) {
			memcpy(out + len, basis + (size_t)ops[i].token * BLEN,
			       BLEN);
			len += BLEN;
		}
	}
	return len;
}

static void send_file(struct rs_tok *t, struct rs_conn *c,
		      const struct op *ops, size_t nops)
{
	size_t i;
	for (i = 0; i < nops; i++) {
		const unsigned char *blk = ops[i].token >= 0
			? basis + (size_t)ops[i].token * BLEN : NULL;
		rs_tok_send(t, c, ops[i].token, lit + ops[i].off,
			    (int32_t)ops[i].n, blk, blk ? BLEN : 0);
	}
}

/* Decode one file; returns its length, or (size_t)-1 on an error. */
static size_t recv_file(struct rs_tok *t, struct rs_conn *c,
			unsigned char *out, size_t cap)
{
	size_t len = 0;
	int guard = 0;
	for (;;) {
		const unsigned char *data;
		int32_t r = rs_tok_recv(t, c, &data);
		if (c->err)
			return (size_t)-1;
		if (r == 0)
			return len;
		if (++guard > 100000)
			fail_msg("token stream does not end");
		if (r > 0) {
			assert_true(len + (size_t)r <= cap);
			memcpy(out + len, data, (size_t)r);
			len += (size_t)r;
		} else {
			int32_t i = -(r + 1);
			assert_true(i >= 0 && i < NBLOCKS);
			memcpy(out + len, basis + (size_t)i * BLEN, BLEN);
			rs_tok_see(t, c, basis + (size_t)i * BLEN, BLEN);
			len += BLEN;
		}
	}
}

static void roundtrip(int algo, int protocol)
{
	static unsigned char want[400000], got[400000];
	struct rs_tok tx, rx;
	struct rs_conn c;
	size_t n;

	mem_reset();
	rs_conn_init(&c, &g_io);
	assert_int_equal(rs_tok_init(&tx, algo, -1, protocol, 1), 0);
	send_file(&tx, &c, file_a, sizeof file_a / sizeof file_a[0]);
	send_file(&tx, &c, file_empty, 1);
	send_file(&tx, &c, file_b, sizeof file_b / sizeof file_b[0]);
	send_file(&tx, &c, file_a, sizeof file_a / sizeof file_a[0]);
	rs_flush(&c);
	assert_int_equal(c.err, 0);
	rs_tok_free(&tx);

	rs_conn_init(&c, &g_io);
	assert_int_equal(rs_tok_init(&rx, algo, -1, protocol, 0), 0);
	n = expect(file_a, sizeof file_a / sizeof file_a[0], want);
	assert_int_equal(recv_file(&rx, &c, got, sizeof got), n);
	assert_memory_equal(got, want, n);
	assert_int_equal(recv_file(&rx, &c, got, sizeof got), 0);
	n = expect(file_b, sizeof file_b / sizeof file_b[0], want);
	assert_int_equal(recv_file(&rx, &c, got, sizeof got), n);
	assert_memory_equal(got, want, n);
	n = expect(file_a, sizeof file_a / sizeof file_a[0], want);
	assert_int_equal(recv_file(&rx, &c, got, sizeof got), n);
	assert_memory_equal(got, want, n);
	assert_int_equal(g_mem.pos, g_mem.len);
	rs_tok_free(&rx);
}

static void setup_data(void)
{
	fill(basis, sizeof basis, 1, 7);
	fill(lit, 100000, 1, 11);
	fill(lit + 100000, 100000, 0, 13);
}

static void test_roundtrip_all(void **state)
{
	static const int algos[] = { RS_CPRES_NONE, RS_CPRES_ZLIB,
				     RS_CPRES_ZLIBX, RS_CPRES_ZSTD };
	size_t i;
	setup_data();
	for (i = 0; i < sizeof algos / sizeof algos[0]; i++) {
		roundtrip(algos[i], 30);
		roundtrip(algos[i], 31);
	}
}

/* zlib's history makes a literal that repeats a known block cheap. */
static void test_zlib_history_helps(void **state)
{
	size_t with = 0, without = 0;
	int algo;
	setup_data();
	for (algo = RS_CPRES_ZLIB; algo <= RS_CPRES_ZLIBX; algo++) {
		struct rs_tok tx;
		struct rs_conn c;
		mem_reset();
		rs_conn_init(&c, &g_io);
		assert_int_equal(rs_tok_init(&tx, algo, -1, 31, 1), 0);
		/* block 5, then random bytes equal to... block 5 again */
		memcpy(lit + 150000, basis + 5 * BLEN, BLEN);
		fill(basis + 5 * BLEN, BLEN, 0, 99);
		memcpy(lit + 150000, basis + 5 * BLEN, BLEN);
		rs_tok_send(&tx, &c, 5, NULL, 0, basis + 5 * BLEN, BLEN);
		rs_tok_send(&tx, &c, -1, lit + 150000, BLEN, NULL, 0);
		rs_flush(&c);
		rs_tok_free(&tx);
		if (algo == RS_CPRES_ZLIB)
			with = g_mem.len;
		else
			without = g_mem.len;
	}
	assert_true(with + 500 < without);
}

/* Feed BYTES to a decoder and expect a clean error (or a clean end). */
static int decode_garbage(int algo, const unsigned char *bytes, size_t n)
{
	static unsigned char out[1 << 20];
	struct rs_tok rx;
	struct rs_conn c;
	int files = 0;

	mem_reset();
	memcpy(g_mem.buf, bytes, n);
	g_mem.len = n;
	rs_conn_init(&c, &g_io);
	assert_int_equal(rs_tok_init(&rx, algo, -1, 31, 0), 0);
	for (;;) {
		size_t len = 0;
		int guard = 0;
		for (;;) {
			const unsigned char *data;
			int32_t r = rs_tok_recv(&rx, &c, &data);
			if (r == 0 || c.err)
				break;
			assert_true(++guard < 1000000);
			if (r > 0) {
				assert_non_null(data);
				len += (size_t)r;
				memcpy(out, data, (size_t)r > sizeof out
						      ? sizeof out : (size_t)r);
			} else {
				int32_t i = -(r + 1);
				assert_true(i >= 0);
				if (i < NBLOCKS)
					rs_tok_see(&rx, &c, basis +
						   (size_t)i * BLEN, BLEN);
			}
		}
		if (c.err)
			break;
		if (++files > 1000)
			fail_msg("endless files");
	}
	rs_tok_free(&rx);
	return c.err;
}

static void test_malformed_streams(void **state)
{
	static const int algos[] = { RS_CPRES_NONE, RS_CPRES_ZLIB,
				     RS_CPRES_ZLIBX, RS_CPRES_ZSTD };
	unsigned char b[4096];
	size_t i, k;

	setup_data();
	for (i = 0; i < sizeof algos / sizeof algos[0]; i++) {
		int algo = algos[i];
		/* truncated everywhere: a stream error at the end of input */
		assert_int_not_equal(decode_garbage(algo, b, 0), 0);
		/* random bytes */
		for (k = 0; k < 200; k++) {
			size_t n = 1 + k * 17 % sizeof b;
			fill(b, n, 0, (unsigned)(k + 1000 * i));
			assert_int_not_equal(decode_garbage(algo, b, n), 0);
		}
	}
	/* compressed frame of junk */
	b[0] = 0x40 + 0x01; b[1] = 0x00;
	fill(b + 2, 256, 0, 5);
	b[258] = 0x80;
	for (i = 1; i < 4; i++)
		assert_int_not_equal(decode_garbage(algos[i], b, 259), 0);
	/* a token number that overflows */
	b[0] = 0x20; b[1] = 0xfe; b[2] = 0xff; b[3] = 0xff; b[4] = 0x7f;
	b[5] = 0xbf;
	assert_int_not_equal(decode_garbage(RS_CPRES_ZLIB, b, 6), 0);
	/* a negative long token */
	b[0] = 0x21; b[1] = 0xff; b[2] = 0xff; b[3] = 0xff; b[4] = 0xff;
	assert_int_not_equal(decode_garbage(RS_CPRES_ZSTD, b, 5), 0);
	/* a run of zero length */
	b[0] = 0xc0; b[1] = 0; b[2] = 0;
	assert_int_not_equal(decode_garbage(RS_CPRES_ZLIBX, b, 3), 0);
	/* a flag byte no sender writes */
	b[0] = 0x13;
	assert_int_not_equal(decode_garbage(RS_CPRES_ZLIB, b, 1), 0);
	/* a plain literal run that is too long */
	b[0] = 0; b[1] = 0; b[2] = 0; b[3] = 0x40;
	assert_int_equal(decode_garbage(RS_CPRES_NONE, b, 4), RSYNC_EPROTOCOL);
}

static void test_names(void **state)
{
	assert_int_equal(rs_compress_by_name("zlib"), RS_CPRES_ZLIB);
	assert_int_equal(rs_compress_by_name("zlibx"), RS_CPRES_ZLIBX);
	assert_int_equal(rs_compress_by_name("zstd"), RS_CPRES_ZSTD);
	assert_int_equal(rs_compress_by_name("lz4"), -1);
	assert_string_equal(rs_compress_name(RS_CPRES_ZLIBX), "zlibx");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_all),
		cmocka_unit_test(test_zlib_history_helps),
		cmocka_unit_test(test_malformed_streams),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
