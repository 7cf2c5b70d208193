/* fuzz_input.h - for the rsync fuzz targets: the fuzzer's input as the
 * stream a client sends (read to its end, then end of file), and a sink
 * that takes whatever the server answers. Each target includes it once
 * (the functions are static). */
#ifndef ASSETD_FUZZ_INPUT_H
#define ASSETD_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

struct src {
	const uint8_t *p;
	size_t len, pos;
};

static ssize_t src_read(void *arg, void *buf, size_t len)
{
	struct src *s = arg;
	size_t n = s->len - s->pos;
	if (n > len)
		n = len;
	memcpy(buf, s->p + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

static int sink_write(void *arg, const void *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
	return 0;
}

#endif
