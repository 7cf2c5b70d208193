/* fuzz_http_multipart.c - the streaming multipart parser: the first byte
 * picks a chunk size, the rest is a body under a fixed boundary. Parts and
 * their bytes are checked against the callbacks' contract. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http_multipart.h"

struct st {
	int in_part;
	size_t bytes;
};

static int on_begin(void *arg, const struct http_mp_part *p)
{
	struct st *s = arg;
	if (s->in_part || strlen(p->name) >= sizeof p->name ||
	    strlen(p->filename) >= sizeof p->filename)
		__builtin_trap();
	s->in_part = 1;
	return 0;
}

static int on_data(void *arg, const char *d, size_t n)
{
	struct st *s = arg;
	if (!s->in_part || n == 0 || d == NULL)
		__builtin_trap();
	s->bytes += n;
	return 0;
}

static int on_end(void *arg)
{
	struct st *s = arg;
	if (!s->in_part)
		__builtin_trap();
	s->in_part = 0;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http_mp_callbacks cb = {on_begin, on_data, on_end};
	static struct http_multipart mp;
	struct st s = {0, 0};
	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	if (http_mp_init(&mp, "multipart/form-data; boundary=XyZ", &cb, &s) != 0)
		__builtin_trap();
	int rc = 0;
	for (size_t i = 0; i < size && rc == 0; i += chunk) {
		size_t n = size - i < chunk ? size - i : chunk;
		rc = http_mp_feed(&mp, (const char *)data + i, n);
	}
	if (s.bytes > size)
		__builtin_trap();
	(void)http_mp_finish(&mp);
	/* the Content-Type parser too */
	char ct[256], b[HTTP_MP_BOUNDARY_MAX + 2];
	size_t n = size < sizeof ct - 1 ? size : sizeof ct - 1;
	memcpy(ct, data, n);
	ct[n] = '\0';
	if (http_mp_boundary(ct, b, sizeof b) == 0 &&
	    (strlen(b) == 0 || strlen(b) > HTTP_MP_BOUNDARY_MAX))
		__builtin_trap();
	return 0;
}
