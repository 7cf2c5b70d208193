/*
 * token.c - the stream of one file's data: literal bytes and references to
 * the receiver's blocks, plain or compressed (-z).
 *
 * Plain, each literal run is a 4-byte length and the bytes (at most 32 KiB
 * a run), a block reference is -(index + 1), and 0 ends the file. With
 * compression, the stream is a sequence of flag bytes: 0 ends the file;
 * 0x40 + 6 high bits and one more byte announce up to 16383 bytes of
 * compressed data; 0x80 + 6 bits names a block by its distance from the
 * last block sent (0x20 and a 4-byte index when it is too far), and the
 * 0xc0 / 0x21 forms add a 2-byte count of consecutive blocks that follow,
 * so an unchanged file costs a few bytes however large it is.
 *
 * The compressed bytes of a file are one stream that is flushed whenever a
 * block reference interrupts the literal data:
 *  - zlibx and zlib: raw deflate, Z_SYNC_FLUSH at each interruption, with
 *    the flush's empty stored block (00 00 ff ff) left off the wire and put
 *    back by the receiver; the deflater starts afresh for every file. With
 *    zlib (not zlibx) the blocks the receiver already has also go into the
 *    (de)compressor's history, so later literal data can refer back to
 *    them: the sender deflates them and throws the output away, the
 *    receiver feeds them to its inflater as stored blocks it made up. At
 *    protocol 30 rsync fed the first 64 KiB of a longer block over and
 *    over instead of walking through it; that is kept, or the histories
 *    would differ.
 *  - zstd: one streaming context for the whole session (not reset between
 *    files), ZSTD_e_flush at each interruption.
 *
 * Everything read off the wire is checked: frame lengths are bounded by the
 * byte layout, token numbers against overflow (the caller checks them
 * against the block count), and a stream the decompressor rejects, or that
 * loses sync at a flush point, ends the session with rsync's stream error.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "rsync_int.h"

#define END_FLAG 0x00
#define TOKEN_LONG 0x20
#define TOKENRUN_LONG 0x21
#define DEFLATED_DATA 0x40
#define TOKEN_REL 0x80
#define TOKENRUN_REL 0xc0

#define MAX_DATA_COUNT 16383              /* payload of one data frame */
#define MAX_TOKEN_INDEX ((int32_t)0x7ffffffe)
#define PLAIN_MAX_RUN (1 << 24)           /* largest plain literal length */
#define OBUF_CAP (64 * 1024)              /* compressed output pending */
#define DBUF_CAP (RS_CHUNK_SIZE + RS_CHUNK_SIZE / 1000 + 16)
#define ZSTD_DBUF_CAP (256 * 1024)
#define SEE_PIECE 0xffff                  /* a stored block's largest size */

/* Receiver states (as rsync names them). */
enum { RX_INIT, RX_IDLE, RX_RUNNING, RX_INFLATING, RX_INFLATED };

const char *rs_compress_name(int algo)
{
	switch (algo) {
	case RS_CPRES_ZLIB: return "zlib";
	case RS_CPRES_ZLIBX: return "zlibx";
	case RS_CPRES_ZSTD: return "zstd";
	case RS_CPRES_NONE: return "none";
	default: return "?";
	}
}

int rs_compress_by_name(const char *name)
{
	if (strcmp(name, "zlib") == 0)
		return RS_CPRES_ZLIB;
	if (strcmp(name, "zlibx") == 0)
		return RS_CPRES_ZLIBX;
	if (strcmp(name, "zstd") == 0)
		return RS_CPRES_ZSTD;
	if (strcmp(name, "none") == 0)
		return RS_CPRES_NONE;
	return -1;
}

static int is_deflate(const struct rs_tok *t)
{
	return t->algo == RS_CPRES_ZLIB || t->algo == RS_CPRES_ZLIBX;
}

int rs_tok_init(struct rs_tok *t, int algo, int level, int protocol,
		int sending)
{
	memset(t, 0, sizeof *t);
	t->algo = algo;
	t->protocol = protocol;
	t->sending = sending;
	t->last_token = -1;
	t->rstate = RX_INIT;
	if (algo == RS_CPRES_NONE) {
		if (!sending && !(t->dbuf = malloc(RS_CHUNK_SIZE)))
			return -1;
		return 0;
	}
	if (sending) {
		t->obuf = malloc(OBUF_CAP);
		if (!t->obuf)
			return -1;
		if (is_deflate(t)) {
			if (level < 0 || level > 9)
				level = Z_DEFAULT_COMPRESSION;
			if (deflateInit2(&t->z, level, Z_DEFLATED, -15, 8,
					 Z_DEFAULT_STRATEGY) != Z_OK)
				return -1;
			t->z_ready = 1;
		} else {
			t->zc = ZSTD_createCCtx();
			if (!t->zc)
				return -1;
			if (level < 1 || level > ZSTD_maxCLevel())
				level = 3;
			ZSTD_CCtx_setParameter(t->zc, ZSTD_c_compressionLevel,
					       level);
		}
		return 0;
	}
	t->cbuf = malloc(MAX_DATA_COUNT);
	t->dbuf = malloc(is_deflate(t) ? DBUF_CAP : ZSTD_DBUF_CAP);
	if (!t->cbuf || !t->dbuf)
		return -1;
	if (is_deflate(t)) {
		if (inflateInit2(&t->z, -15) != Z_OK)
			return -1;
		t->z_ready = 1;
	} else {
		t->zd = ZSTD_createDCtx();
		if (!t->zd)
			return -1;
		/* bound the window a peer can make us allocate (32 MiB:
		 * what zstd's levels up to 20 use) */
		ZSTD_DCtx_setParameter(t->zd, ZSTD_d_windowLogMax, 25);
	}
	return 0;
}

void rs_tok_free(struct rs_tok *t)
{
	if (t->z_ready) {
		if (t->sending)
			deflateEnd(&t->z);
		else
			inflateEnd(&t->z);
	}
	ZSTD_freeCCtx(t->zc);
	ZSTD_freeDCtx(t->zd);
	free(t->obuf);
	free(t->cbuf);
	free(t->dbuf);
	memset(t, 0, sizeof *t);
}

/* ---- sending -------------------------------------------------------- */

static void plain_send(struct rs_conn *c, int32_t token,
		       const unsigned char *data, int32_t n)
{
	while (n > 0) {
		int32_t k = n > RS_CHUNK_SIZE ? RS_CHUNK_SIZE : n;
		rs_write_int(c, k);
		rs_write(c, data, (size_t)k);
		data += k;
		n -= k;
	}
	if (token != -2)
		rs_write_int(c, -(token + 1));
}

/* Send LEN bytes of obuf as data frames and drop them. */
static void ship(struct rs_tok *t, struct rs_conn *c, size_t len)
{
	size_t off = 0;

	while (off < len) {
		size_t k = len - off > MAX_DATA_COUNT ? MAX_DATA_COUNT
						      : len - off;
		rs_write_byte(c, DEFLATED_DATA + (unsigned)(k >> 8));
		rs_write_byte(c, (unsigned)(k & 0xff));
		rs_write(c, t->obuf + off, k);
		off += k;
	}
	memmove(t->obuf, t->obuf + off, t->olen - off);
	t->olen -= off;
}

static int deflate_data(struct rs_tok *t, struct rs_conn *c,
			const unsigned char *data, int32_t n, int flush)
{
	int r;

	t->z.next_in = (Bytef *)(uintptr_t)data;
	t->z.avail_in = (uInt)n;
	do {
		t->z.next_out = t->obuf + t->olen;
		t->z.avail_out = (uInt)(OBUF_CAP - t->olen);
		r = deflate(&t->z, flush ? Z_SYNC_FLUSH : Z_NO_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -1;
		t->olen = OBUF_CAP - t->z.avail_out;
		/* Whole frames may go, but the last 4 bytes stay: if this is
		 * the end of a flush they are the 00 00 ff ff that never
		 * travel. */
		if (t->olen >= MAX_DATA_COUNT + 4)
			ship(t, c, (t->olen - 4) / MAX_DATA_COUNT *
					   MAX_DATA_COUNT);
	} while (t->z.avail_in > 0 || t->z.avail_out == 0);
	if (flush) {
		static const unsigned char mark[4] = { 0, 0, 0xff, 0xff };
		if (t->olen < 4 || memcmp(t->obuf + t->olen - 4, mark, 4))
			return -1;
		t->olen -= 4;
		ship(t, c, t->olen);
	}
	return 0;
}

/* zlib (not zlibx): put a block the receiver has into the deflater's
 * history; the output is thrown away (the receiver rebuilds the same
 * history from its copy). */
static int deflate_history(struct rs_tok *t, const unsigned char *blk,
			   int32_t len)
{
	unsigned char scratch[4096];

	while (len > 0) {
		int32_t k = len > SEE_PIECE ? SEE_PIECE : len;
		int r;
		t->z.next_in = (Bytef *)(uintptr_t)blk;
		t->z.avail_in = (uInt)k;
		do {
			t->z.next_out = scratch;
			t->z.avail_out = sizeof scratch;
			r = deflate(&t->z, Z_SYNC_FLUSH);
			if (r != Z_OK && r != Z_BUF_ERROR)
				return -1;
		} while (t->z.avail_in > 0 || t->z.avail_out == 0);
		if (t->protocol >= 31)
			blk += k;
		len -= k;
	}
	return 0;
}

static int zstd_data(struct rs_tok *t, struct rs_conn *c,
		     const unsigned char *data, int32_t n, int flush)
{
	ZSTD_inBuffer in = { data, (size_t)n, 0 };
	size_t left;

	do {
		ZSTD_outBuffer out = { t->obuf, MAX_DATA_COUNT, 0 };
		left = ZSTD_compressStream2(t->zc, &out, &in,
					    flush ? ZSTD_e_flush
						  : ZSTD_e_continue);
		if (ZSTD_isError(left))
			return -1;
		t->olen = out.pos;
		ship(t, c, t->olen);
	} while (flush ? left != 0 : in.pos < in.size);
	return 0;
}

static void send_run(struct rs_tok *t, struct rs_conn *c)
{
	int32_t r = t->run_start - t->last_run_end;
	int32_t n = t->last_token - t->run_start;

	if (r >= 0 && r <= 63) {
		rs_write_byte(c, (unsigned)((n == 0 ? TOKEN_REL : TOKENRUN_REL) + r));
	} else {
		rs_write_byte(c, n == 0 ? TOKEN_LONG : TOKENRUN_LONG);
		rs_write_int(c, t->run_start);
	}
	if (n != 0) {
		rs_write_byte(c, (unsigned)(n & 0xff));
		rs_write_byte(c, (unsigned)((n >> 8) & 0xff));
	}
	t->last_run_end = t->last_token;
}

void rs_tok_send(struct rs_tok *t, struct rs_conn *c, int32_t token,
		 const unsigned char *data, int32_t n,
		 const unsigned char *blk, int32_t blklen)
{
	int rc = 0;

	if (c->err)
		return;
	if (t->algo == RS_CPRES_NONE) {
		plain_send(c, token, data, n);
		return;
	}
	if (t->last_token == -1) {
		/* a new file */
		if (is_deflate(t))
			deflateReset(&t->z);
		t->last_run_end = 0;
		t->run_start = token;
		t->flush_pending = 0;
	} else if (t->last_token == -2) {
		t->run_start = token;
	} else if (n != 0 || token != t->last_token + 1 ||
		   token >= t->run_start + 65536) {
		send_run(t, c);
		t->run_start = token;
	}
	t->last_token = token;

	if (n != 0 || t->flush_pending) {
		int flush = token != -2;
		rc = is_deflate(t) ? deflate_data(t, c, data, n, flush)
				   : zstd_data(t, c, data, n, flush);
		t->flush_pending = token == -2;
	}
	if (!rc && token == -1)
		rs_write_byte(c, END_FLAG);
	else if (!rc && token >= 0 && t->algo == RS_CPRES_ZLIB && blk)
		rc = deflate_history(t, blk, blklen);
	if (rc < 0) {
		rs_printf(c, RS_MSG_ERROR, "rsync: [sender] %s compression "
			  "failed (assetd)\n", rs_compress_name(t->algo));
		rs_fail(c, RSYNC_ESTREAMIO);
	}
}

/* ---- receiving ------------------------------------------------------ */

static int32_t bad_stream(struct rs_tok *t, struct rs_conn *c,
			  const char *what)
{
	if (!c->err) {
		rs_printf(c, RS_MSG_ERROR, "rsync: [receiver] %s in the %s "
			  "stream (assetd)\n", what, rs_compress_name(t->algo));
		rs_fail(c, RSYNC_ESTREAMIO);
	}
	t->rstate = RX_INIT;
	return 0;
}

static int32_t plain_recv(struct rs_tok *t, struct rs_conn *c,
			  const unsigned char **data)
{
	int32_t i;

	if (t->residue == 0) {
		i = rs_read_int(c);
		if (c->err)
			return 0;
		if (i <= 0)
			return i;
		if (i > PLAIN_MAX_RUN) {
			rs_printf(c, RS_MSG_ERROR, "rsync: [receiver] literal "
				  "run of %d bytes is too long (assetd)\n",
				  (int)i);
			rs_fail(c, RSYNC_EPROTOCOL);
			return 0;
		}
		t->residue = i;
	}
	i = t->residue > RS_CHUNK_SIZE ? RS_CHUNK_SIZE : t->residue;
	rs_read(c, t->dbuf, (size_t)i);
	if (c->err)
		return 0;
	t->residue -= i;
	*data = t->dbuf;
	return i;
}

/* A token flag byte: a single block or the start of a run. */
static int32_t token_num(struct rs_tok *t, struct rs_conn *c, unsigned flag)
{
	if (flag & TOKEN_REL) {
		int32_t incr = (int32_t)(flag & 0x3f);
		if (t->rx_token > MAX_TOKEN_INDEX - incr)
			return bad_stream(t, c, "invalid token number");
		t->rx_token += incr;
		flag >>= 6;
	} else if (flag == TOKEN_LONG || flag == TOKENRUN_LONG) {
		t->rx_token = rs_read_int(c);
		if (c->err)
			return 0;
		if (t->rx_token < 0 || t->rx_token > MAX_TOKEN_INDEX)
			return bad_stream(t, c, "invalid token number");
	} else {
		return bad_stream(t, c, "invalid flag byte");
	}
	if (flag & 1) {
		t->rx_run = (int32_t)rs_read_byte(c);
		t->rx_run += (int32_t)rs_read_byte(c) << 8;
		if (c->err)
			return 0;
		if (t->rx_run <= 0 || t->rx_token > MAX_TOKEN_INDEX - t->rx_run)
			return bad_stream(t, c, "invalid token run");
		t->rstate = RX_RUNNING;
	}
	return -1 - t->rx_token;
}

/* A flag byte that is not data: the file's end or a block. */
static int32_t end_or_token(struct rs_tok *t, struct rs_conn *c,
			    unsigned flag)
{
	if (flag == END_FLAG) {
		t->rstate = RX_INIT;
		return 0;
	}
	return token_num(t, c, flag);
}

/* The next block of a run. */
static int32_t run_next(struct rs_tok *t, struct rs_conn *c)
{
	if (t->rx_run <= 0 || t->rx_token >= MAX_TOKEN_INDEX)
		return bad_stream(t, c, "invalid token run");
	t->rx_token++;
	if (--t->rx_run == 0)
		t->rstate = RX_IDLE;
	return -1 - t->rx_token;
}

/* Read one data frame's payload into cbuf; 0 or -1. */
static int read_frame(struct rs_tok *t, struct rs_conn *c, unsigned flag)
{
	size_t n = ((size_t)(flag & 0x3f) << 8) + rs_read_byte(c);
	rs_read(c, t->cbuf, n);
	if (c->err)
		return -1;
	t->in_len = n;
	t->in_pos = 0;
	return 0;
}

static int32_t inflate_recv(struct rs_tok *t, struct rs_conn *c,
			    const unsigned char **data)
{
	static const unsigned char mark[4] = { 0, 0, 0xff, 0xff };

	for (;;) {
		unsigned flag;
		int r;
		size_t n;

		switch (t->rstate) {
		case RX_INIT:
			inflateReset(&t->z);
			t->rx_token = 0;
			t->rstate = RX_IDLE;
			break;
		case RX_IDLE:
		case RX_INFLATED:
			if (t->saved_flag) {
				flag = (unsigned)(t->saved_flag & 0xff);
				t->saved_flag = 0;
			} else {
				flag = rs_read_byte(c);
			}
			if (c->err)
				return 0;
			if ((flag & 0xc0) == DEFLATED_DATA) {
				if (read_frame(t, c, flag) < 0)
					return 0;
				t->z.next_in = t->cbuf;
				t->z.avail_in = (uInt)t->in_len;
				t->rstate = RX_INFLATING;
				break;
			}
			if (t->rstate == RX_INFLATED) {
				/* The data before this flag ended at a flush:
				 * take what the inflater still holds, then put
				 * back the 4 bytes the sender left off. */
				t->z.avail_in = 0;
				t->z.next_out = t->dbuf;
				t->z.avail_out = DBUF_CAP;
				r = inflate(&t->z, Z_SYNC_FLUSH);
				n = DBUF_CAP - t->z.avail_out;
				if (r != Z_OK && r != Z_BUF_ERROR)
					return bad_stream(t, c, "corrupt data");
				if (n != 0) {
					t->saved_flag = (int32_t)flag + 0x10000;
					*data = t->dbuf;
					return (int32_t)n;
				}
				if (!inflateSyncPoint(&t->z))
					return bad_stream(t, c, "lost sync");
				t->z.next_in = (Bytef *)(uintptr_t)mark;
				t->z.avail_in = 4;
				t->z.next_out = t->dbuf;
				t->z.avail_out = DBUF_CAP;
				r = inflate(&t->z, Z_SYNC_FLUSH);
				if ((r != Z_OK && r != Z_BUF_ERROR) ||
				    t->z.avail_out != DBUF_CAP)
					return bad_stream(t, c, "lost sync");
				t->rstate = RX_IDLE;
			}
			return end_or_token(t, c, flag);
		case RX_INFLATING:
			t->z.next_out = t->dbuf;
			t->z.avail_out = DBUF_CAP;
			r = inflate(&t->z, Z_NO_FLUSH);
			n = DBUF_CAP - t->z.avail_out;
			if (r != Z_OK)
				return bad_stream(t, c, "corrupt data");
			if (t->z.avail_in == 0)
				t->rstate = RX_INFLATED;
			if (n != 0) {
				*data = t->dbuf;
				return (int32_t)n;
			}
			break;
		case RX_RUNNING:
			return run_next(t, c);
		default:
			return bad_stream(t, c, "bad state");
		}
	}
}

static int32_t zstd_recv(struct rs_tok *t, struct rs_conn *c,
			 const unsigned char **data)
{
	for (;;) {
		unsigned flag;
		size_t r;

		switch (t->rstate) {
		case RX_INIT:
			t->rx_token = 0;
			t->rstate = RX_IDLE;
			break;
		case RX_IDLE:
			flag = rs_read_byte(c);
			if (c->err)
				return 0;
			if ((flag & 0xc0) == DEFLATED_DATA) {
				if (read_frame(t, c, flag) < 0)
					return 0;
				t->rstate = RX_INFLATING;
				break;
			}
			return end_or_token(t, c, flag);
		case RX_INFLATING: {
			ZSTD_inBuffer in = { t->cbuf, t->in_len, t->in_pos };
			ZSTD_outBuffer out = { t->dbuf, ZSTD_DBUF_CAP, 0 };
			r = ZSTD_decompressStream(t->zd, &out, &in);
			t->in_pos = in.pos;
			if (ZSTD_isError(r))
				return bad_stream(t, c, "corrupt data");
			if (in.pos == in.size && out.pos < out.size)
				t->rstate = RX_IDLE;
			if (out.pos != 0) {
				*data = t->dbuf;
				return (int32_t)out.pos;
			}
			break;
		}
		case RX_RUNNING:
			return run_next(t, c);
		default:
			return bad_stream(t, c, "bad state");
		}
	}
}

int32_t rs_tok_recv(struct rs_tok *t, struct rs_conn *c,
		    const unsigned char **data)
{
	*data = NULL;
	if (c->err)
		return 0;
	if (t->algo == RS_CPRES_NONE)
		return plain_recv(t, c, data);
	if (is_deflate(t))
		return inflate_recv(t, c, data);
	return zstd_recv(t, c, data);
}

void rs_tok_see(struct rs_tok *t, struct rs_conn *c,
		const unsigned char *blk, int32_t len)
{
	unsigned char hdr[5];

	if (t->algo != RS_CPRES_ZLIB || c->err)
		return;
	/* Each piece goes in as a stored block: a 0 bit (not last), type
	 * 00, padding (one zero byte), then LEN and its complement. */
	while (len > 0) {
		int32_t k = len > SEE_PIECE ? SEE_PIECE : len;
		int pass;
		hdr[0] = 0;
		hdr[1] = (unsigned char)(k & 0xff);
		hdr[2] = (unsigned char)(k >> 8);
		hdr[3] = (unsigned char)~hdr[1];
		hdr[4] = (unsigned char)~hdr[2];
		for (pass = 0; pass < 2; pass++) {
			int r;
			t->z.next_in = pass ? (Bytef *)(uintptr_t)blk : hdr;
			t->z.avail_in = pass ? (uInt)k : 5;
			do {
				t->z.next_out = t->dbuf;
				t->z.avail_out = DBUF_CAP;
				r = inflate(&t->z, Z_SYNC_FLUSH);
				if (r != Z_OK && r != Z_BUF_ERROR) {
					bad_stream(t, c, "lost history");
					return;
				}
			} while (t->z.avail_in > 0 || t->z.avail_out == 0);
		}
		if (t->protocol >= 31)
			blk += k;
		len -= k;
	}
}
