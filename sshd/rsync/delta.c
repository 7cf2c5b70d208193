/*
 * delta.c - finding the client's blocks in an object and sending the delta.
 *
 * The client (receiving a pull) sent one weak and one truncated strong sum
 * per block of its old copy. We slide a window of one block length over
 * the object a byte at a time, updating the weak sum in O(1); where the
 * weak sum hits the hash table and the strong sum agrees, we send the
 * literal bytes skipped since the last match (in runs of at most 32 KiB)
 * and then the block's number, and jump a whole block ahead. The next
 * block in sequence is preferred when several blocks share the sums, so
 * unchanged files come out as runs of consecutive references. The whole
 * stream ends with the end token and the MD5 of the object. The tokens go
 * through token.c, which compresses them when the client asked for -z.
 *
 * The object is read sequentially through a bounded buffer: it keeps the
 * pending literal (never more than one run) and one block ahead, so memory
 * stays well under a megabyte whatever the object's size. (A small object
 * the sender prefetched is already whole in memory and is used as is.)
 */
#include <stdlib.h>
#include <string.h>

#include "rsync_int.h"

#define WIN_BUF (RS_CHUNK_SIZE + 2 * RS_MAX_BLOCK_SIZE + 256 * 1024)

void rs_sums_free(struct rs_sums *sums)
{
	free(sums->blocks);
	free(sums->table);
	memset(sums, 0, sizeof *sums);
}

struct window {
	struct store_reader *r; /* the object, or NULL: */
	const unsigned char *mem; /* ... all of it in memory */
	int64_t size;
	unsigned char *buf;
	int64_t base;           /* file offset of buf[0] */
	size_t len;             /* valid bytes in buf */
	int eof;
	int rerr;               /* read error (store_error) */
};

/* Make [from, to) available (to clipped at EOF); FROM is the earliest
 * offset still needed, so everything before it may be dropped. */
static void window_need(struct window *w, int64_t from, int64_t to)
{
	if (to <= w->base + (int64_t)w->len || w->eof)
		return;
	if (w->mem) {
		/* the window is the whole object */
		w->buf = (unsigned char *)(uintptr_t)w->mem;
		w->base = 0;
		w->len = (size_t)w->size;
		w->eof = 1;
		return;
	}
	if (from > w->base) {
		size_t drop = (size_t)(from - w->base);
		if (drop > w->len)
			drop = w->len;
		memmove(w->buf, w->buf + drop, w->len - drop);
		w->len -= drop;
		w->base += (int64_t)drop;
	}
	while (!w->eof && w->base + (int64_t)w->len < to && w->len < WIN_BUF) {
		ssize_t n = store_reader_read(w->r, w->buf + w->len,
					      WIN_BUF - w->len);
		if (n < 0) {
			w->rerr = (int)n;
			w->eof = 1;
		} else if (n == 0) {
			w->eof = 1;
		} else {
			w->len += (size_t)n;
		}
	}
}

static const unsigned char *at(struct window *w, int64_t off)
{
	return w->buf + (off - w->base);
}

/* Bytes at [off, off+n) exist in the buffer? (A short object after a read
 * error may not have them: the stream then carries zeros.) */
static int have(struct window *w, int64_t off, int64_t n)
{
	return off >= w->base && off + n <= w->base + (int64_t)w->len;
}

static void send_literal(struct rs_sess *s, struct window *w,
			 struct rs_filesum *fs, int64_t from, int64_t to)
{
	static const unsigned char zeros[RS_CHUNK_SIZE];

	while (from < to) {
		int64_t n = to - from;
		if (n > RS_CHUNK_SIZE)
			n = RS_CHUNK_SIZE;
		if (have(w, from, n)) {
			rs_tok_send(&s->tok, &s->conn, -2, at(w, from),
				    (int32_t)n, NULL, 0);
			rs_filesum_update(fs, at(w, from), (size_t)n);
		} else {
			rs_tok_send(&s->tok, &s->conn, -2, zeros, (int32_t)n,
				    NULL, 0);
		}
		if (s->stats)
			s->stats->literal_bytes += (uint64_t)n;
		from += n;
	}
}

static uint32_t hash1(uint32_t sum1)
{
	return (sum1 * 2654435761u) ^ (sum1 >> 16);
}

static int build_table(struct rs_sums *sums)
{
	uint32_t size = 16;
	int32_t i;

	while (size < (uint32_t)sums->count * 2 && size < (1u << 24))
		size <<= 1;
	sums->table = malloc(size * sizeof *sums->table);
	if (!sums->table)
		return -1;
	memset(sums->table, 0xff, size * sizeof *sums->table);
	sums->table_mask = size - 1;
	/* Insert backwards so chains list lower block numbers first. */
	for (i = sums->count - 1; i >= 0; i--) {
		uint32_t h = hash1(sums->blocks[i].sum1) & sums->table_mask;
		sums->blocks[i].next = sums->table[h];
		sums->table[h] = i;
	}
	return 0;
}

static int32_t block_len(const struct rs_sums *sums, int32_t i)
{
	if (i == sums->count - 1 && sums->remainder)
		return sums->remainder;
	return sums->blength;
}

int rs_send_delta(struct rs_sess *s, struct store_reader *r,
		  const unsigned char *mem, int64_t size,
		  struct rs_sums *sums)
{
	struct window w;
	struct rs_filesum fs;
	unsigned char sum[RS_SUM_LENGTH];
	int64_t off = 0, lit = 0;
	int32_t want = 0;
	uint32_t s1 = 0, s2 = 0;
	int64_t k = 0;
	int valid = 0;

	memset(&w, 0, sizeof w);
	w.r = r;
	w.mem = r ? NULL : mem;
	w.size = size;
	w.buf = w.mem ? NULL : malloc(WIN_BUF);
	if ((!w.buf && !w.mem) || rs_filesum_begin(&fs) < 0) {
		if (!w.mem)
			free(w.buf);
		rs_fail(&s->conn, RSYNC_EMALLOC);
		return STORE_ENOMEM;
	}
	if (sums->count > 0 && build_table(sums) < 0) {
		if (!w.mem)
			free(w.buf);
		rs_filesum_free(&fs);
		rs_fail(&s->conn, RSYNC_EMALLOC);
		return STORE_ENOMEM;
	}

	while (sums->count > 0 && off < size && !s->conn.err) {
		int32_t i, found = -1;
		int strong_done = 0;
		uint32_t weak;

		window_need(&w, lit, off + sums->blength + 1);
		if (!valid) {
			k = size - off < sums->blength ? size - off : sums->blength;
			if (!have(&w, off, k))
				break;
			weak = rs_checksum1(at(&w, off), (size_t)k);
			s1 = weak & 0xffff;
			s2 = weak >> 16;
			valid = 1;
		}
		weak = (s1 & 0xffff) | (s2 << 16);
		for (i = sums->table[hash1(weak) & sums->table_mask]; i >= 0;
		     i = sums->blocks[i].next) {
			if (sums->blocks[i].sum1 != weak || block_len(sums, i) != k)
				continue;
			if (!strong_done) {
				rs_checksum2(&s->sums, at(&w, off), (size_t)k, sum);
				strong_done = 1;
			}
			if (memcmp(sum, sums->blocks[i].sum2,
				   (size_t)sums->s2length) != 0)
				continue;
			found = i;
			/* prefer the block right after the last match */
			if (want < sums->count && want != i &&
			    sums->blocks[want].sum1 == weak &&
			    block_len(sums, want) == k &&
			    memcmp(sum, sums->blocks[want].sum2,
				   (size_t)sums->s2length) == 0)
				found = want;
			break;
		}
		if (found >= 0) {
			send_literal(s, &w, &fs, lit, off);
			rs_tok_send(&s->tok, &s->conn, found, NULL, 0,
				    at(&w, off), (int32_t)k);
			rs_filesum_update(&fs, at(&w, off), (size_t)k);
			if (s->stats)
				s->stats->matched_bytes += (uint64_t)k;
			off += k;
			lit = off;
			want = found + 1;
			valid = 0;
			continue;
		}
		/* slide one byte */
		{
			int32_t old = (signed char)*at(&w, off);
			s1 -= (uint32_t)old;
			s2 -= (uint32_t)(k * old);
			if (off + k < size && have(&w, off + k, 1)) {
				int32_t nw = (signed char)*at(&w, off + k);
				s1 += (uint32_t)nw;
				s2 += s1;
			} else {
				k--;
			}
			off++;
		}
		if (off - lit >= RS_CHUNK_SIZE) {
			send_literal(s, &w, &fs, lit, off);
			lit = off;
		}
	}
	/* The rest (or everything, without block sums) as literal data. */
	while (lit < size && !s->conn.err) {
		int64_t to = lit + RS_CHUNK_SIZE < size ? lit + RS_CHUNK_SIZE : size;
		window_need(&w, lit, to);
		send_literal(s, &w, &fs, lit, to);
		lit = to;
	}
	rs_tok_send(&s->tok, &s->conn, -1, NULL, 0, NULL, 0);
	rs_filesum_end(&fs, sum);
	rs_filesum_free(&fs);
	if (w.rerr || (w.eof && w.base + (int64_t)w.len < size)) {
		/* Make sure the client's verification fails. */
		sum[0] ^= 0xff;
	}
	rs_write(&s->conn, sum, RS_SUM_LENGTH);
	if (!w.mem)
		free(w.buf);
	return w.rerr ? w.rerr
		      : (w.eof && w.base + (int64_t)w.len < size ? STORE_EIO : 0);
}
