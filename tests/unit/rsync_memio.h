/* rsync_memio.h - for the rsync unit tests: a loopback byte stream in
 * memory, so what a connection writes can be read back. Each test binary
 * includes it once (the functions are static). */
#ifndef ASSETD_TEST_RSYNC_MEMIO_H
#define ASSETD_TEST_RSYNC_MEMIO_H

#include <string.h>
#include <sys/types.h>

#include "../../sshd/rsync/rsync_int.h"

struct mem {
	unsigned char *buf;     /* CAP bytes */
	size_t cap, len, pos;   /* written so far, read so far */
};

static ssize_t mem_read(void *arg, void *buf, size_t len)
{
	struct mem *m = arg;
	size_t n = m->len - m->pos;
	if (n == 0)
		return 0;
	if (n > len)
		n = len;
	memcpy(buf, m->buf + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int mem_write(void *arg, const void *buf, size_t len)
{
	struct mem *m = arg;
	if (m->len + len > m->cap)
		return -1;
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return 0;
}

#endif
