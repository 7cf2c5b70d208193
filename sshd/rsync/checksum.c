/*
 * checksum.c - the checksums of the rsync protocol (30 and later).
 *
 * Three kinds: the rolling weak sum of a block (two 16-bit halves: the sum
 * of the bytes, read as signed chars, and the sum of those running sums;
 * it can slide one byte at a time), the strong sum of a block (MD5 over a
 * 4-byte little-endian seed and the block; older clients without the
 * "C" capability put the seed after the block), and the whole-file sum
 * (plain MD5), which the receiver checks before it commits anything.
 * MD5 comes from OpenSSL's default provider: nothing here needs MD4 or the
 * legacy provider.
 */
#include <string.h>

#include "rsync_int.h"

uint32_t rs_checksum1(const unsigned char *buf, size_t len)
{
	uint32_t s1 = 0, s2 = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		s1 += (uint32_t)(int32_t)(signed char)buf[i];
		s2 += s1;
	}
	return (s1 & 0xffff) | (s2 << 16);
}

int rs_sum_ctx_init(struct rs_sum_ctx *s, int32_t seed, int seed_first)
{
	s->md = EVP_MD_CTX_new();
	s->seed = seed;
	s->seed_first = seed_first;
	return s->md ? 0 : -1;
}

void rs_sum_ctx_free(struct rs_sum_ctx *s)
{
	if (s->md)
		EVP_MD_CTX_free(s->md);
	s->md = NULL;
}

void rs_checksum2(struct rs_sum_ctx *s, const unsigned char *buf, size_t len,
		  unsigned char *out)
{
	unsigned char seed[4];
	unsigned int n = 0;
	uint32_t v = (uint32_t)s->seed;

	seed[0] = v & 0xff;
	seed[1] = (v >> 8) & 0xff;
	seed[2] = (v >> 16) & 0xff;
	seed[3] = (v >> 24) & 0xff;
	EVP_DigestInit_ex(s->md, EVP_md5(), NULL);
	if (s->seed && s->seed_first)
		EVP_DigestUpdate(s->md, seed, 4);
	EVP_DigestUpdate(s->md, buf, len);
	if (s->seed && !s->seed_first)
		EVP_DigestUpdate(s->md, seed, 4);
	EVP_DigestFinal_ex(s->md, out, &n);
}

int rs_filesum_begin(struct rs_filesum *f)
{
	f->md = EVP_MD_CTX_new();
	if (!f->md)
		return -1;
	if (EVP_DigestInit_ex(f->md, EVP_md5(), NULL) != 1) {
		EVP_MD_CTX_free(f->md);
		f->md = NULL;
		return -1;
	}
	return 0;
}

void rs_filesum_update(struct rs_filesum *f, const void *buf, size_t len)
{
	if (len)
		EVP_DigestUpdate(f->md, buf, len);
}

void rs_filesum_end(struct rs_filesum *f, unsigned char out[16])
{
	unsigned int n = 0;
	EVP_DigestFinal_ex(f->md, out, &n);
}

void rs_filesum_free(struct rs_filesum *f)
{
	if (f->md)
		EVP_MD_CTX_free(f->md);
	f->md = NULL;
}

int rs_object_md5(struct store *st, const char *name, unsigned char out[16])
{
	struct store_reader *r;
	struct rs_filesum fs;
	unsigned char buf[64 * 1024];
	ssize_t n;
	int rc;

	rc = store_reader_open(st, name, 0, UINT64_MAX, &r, NULL);
	if (rc < 0)
		return rc;
	if (rs_filesum_begin(&fs) < 0) {
		store_reader_close(r);
		return STORE_ENOMEM;
	}
	while ((n = store_reader_read(r, buf, sizeof buf)) > 0)
		rs_filesum_update(&fs, buf, (size_t)n);
	store_reader_close(r);
	rs_filesum_end(&fs, out);
	rs_filesum_free(&fs);
	return n < 0 ? (int)n : 0;
}

/* Block length about the square root of the file's length (a multiple of 8,
 * at least 700, at most 128 KiB), and a strong-sum length just long enough
 * that a false match over the whole file stays unlikely; the whole-file
 * MD5 catches the rest and the file is then sent again in full. */
void rs_sum_sizes(int64_t len, int block_size, int32_t *blength,
		  int32_t *s2length)
{
	int32_t bl;
	int b, s2;
	int64_t l;
	int32_t c;

	if (block_size > 0) {
		bl = block_size;
	} else if (len <= (int64_t)RS_BLOCK_SIZE * RS_BLOCK_SIZE) {
		bl = RS_BLOCK_SIZE;
	} else {
		int64_t root = 1;
		int32_t bit;
		for (l = len; l >>= 2;)
			root <<= 1;
		if (root >= RS_MAX_BLOCK_SIZE) {
			bl = RS_MAX_BLOCK_SIZE;
		} else {
			bl = 0;
			for (bit = (int32_t)root; bit >= 8; bit >>= 1) {
				bl |= bit;
				if (len < (int64_t)bl * bl)
					bl &= ~bit;
			}
			if (bl < RS_BLOCK_SIZE)
				bl = RS_BLOCK_SIZE;
		}
	}
	b = 10;
	for (l = len; l >>= 1;)
		b += 2;
	for (c = bl; (c >>= 1) && b;)
		b--;
	s2 = (b + 1 - 32 + 7) / 8;
	if (s2 < 2)
		s2 = 2;
	if (s2 > RS_SUM_LENGTH)
		s2 = RS_SUM_LENGTH;
	*blength = bl;
	*s2length = s2;
}
