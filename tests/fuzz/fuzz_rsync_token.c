/* fuzz_rsync_token.c - the rsync file-data decoder (sshd/rsync/token.c):
 * literal runs, block references and runs, and the compressed streams
 * (zlib with its block history, zlibx, zstd). The first byte picks the
 * algorithm and protocol; the rest is what a client sends for a few
 * files. Any input ends in a clean end of file or a stream error. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../sshd/rsync/rsync_int.h"
#include "fuzz_input.h"

#define BLEN 700
#define NBLOCKS 64
static unsigned char basis[BLEN * NBLOCKS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int algos[] = { RS_CPRES_NONE, RS_CPRES_ZLIB,
				     RS_CPRES_ZLIBX, RS_CPRES_ZSTD };
	struct src in;
	struct rsync_io io = { &in, src_read, sink_write, NULL };
	/* static: rs_conn_init resets it, and its 128 KiB of buffers are
	 * not a stack frame to poison and unpoison on every input */
	static struct rs_conn c;
	struct rs_tok t;
	int files, algo, proto;
	long items = 0;

	if (size < 1)
		return 0;
	algo = algos[data[0] & 3];
	proto = data[0] & 4 ? 31 : 30;
	in.p = data + 1;
	in.len = size - 1;
	in.pos = 0;
	if (!basis[1])
		for (size_t i = 0; i < sizeof basis; i++)
			basis[i] = (unsigned char)(i * 7 + i / 13);
	rs_conn_init(&c, &io);
	if (rs_tok_init(&t, algo, -1, proto, 0) < 0)
		return 0;
	for (files = 0; files < 8 && !c.err; files++) {
		for (;;) {
			const unsigned char *d;
			int32_t r = rs_tok_recv(&t, &c, &d);
			if (r == 0 || c.err)
				break;
			/* a run may name 65535 blocks one by one: stop early
			 * so the fuzzer spends its time on new inputs (past
			 * a thousand items the decoder's code is all
			 * reached: a longer cap only costs time) */
			if (++items > 1024)
				goto out;
			if (r > 0) {
				if (!d)
					__builtin_trap();
				volatile unsigned char sink = d[r - 1];
				(void)sink;
			} else {
				int32_t i = -(r + 1);
				if (i < 0)
					__builtin_trap();
				if (i < NBLOCKS)
					rs_tok_see(&t, &c, basis + i * BLEN, BLEN);
			}
		}
	}
out:
	rs_tok_free(&t);
	return 0;
}
