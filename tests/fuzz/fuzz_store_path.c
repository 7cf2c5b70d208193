/* fuzz_store_path.c - client path normalisation and the name rules.
 *
 * The input is "CWD\0PATH" (or just PATH, with CWD "/"). Whatever the bytes,
 * store_path_resolve either refuses or returns a path that is absolute,
 * free of ".", ".." and empty segments, made of valid segments, and a fixed
 * point (resolving it again from anywhere gives itself). A valid object
 * name resolves to itself under "/". */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

static void check_resolved(const char *out)
{
	if (out[0] != '/')
		__builtin_trap();
	if (strcmp(out, "/") == 0)
		return;
	/* "/a/b": made of valid segments (and a valid object name when short
	 * enough to be one: the virtual tree's paths may be longer) */
	if (strlen(out + 1) < STORE_NAME_MAX) {
		if (!store_name_valid(out + 1))
			__builtin_trap();
	} else {
		char seg[256 + 1];
		for (const char *p = out + 1; *p;) {
			const char *e = strchr(p, '/');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			if (n >= sizeof seg)
				__builtin_trap();
			memcpy(seg, p, n);
			seg[n] = '\0';
			if (!store_segment_valid(seg))
				__builtin_trap();
			p += n + (e ? 1 : 0);
		}
	}
	char again[4096];
	if (store_path_resolve("/elsewhere", out, again, sizeof again) != 0 ||
	    strcmp(again, out) != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[4096];
	if (size >= sizeof buf)
		size = sizeof buf - 1;
	memcpy(buf, data, size);
	buf[size] = '\0';
	const char *cwd = "/";
	const char *path = buf;
	size_t first = strlen(buf);
	if (first < size) { /* "CWD\0PATH" */
		cwd = buf;
		path = buf + first + 1;
	}
	char out[2048];
	if (store_path_resolve(cwd, path, out, sizeof out) == 0)
		check_resolved(out);
	if (store_path_resolve("/", path, out, sizeof out) == 0)
		check_resolved(out);

	if (store_name_valid(path)) {
		if (store_path_resolve("/", path, out, sizeof out) != 0 ||
		    strcmp(out + 1, path) != 0)
			__builtin_trap();
	}
	if (store_segment_valid(path) && strchr(path, '/'))
		__builtin_trap();
	(void)store_content_type(path);
	char joined[STORE_NAME_MAX];
	(void)store_name_join(cwd, path, joined, sizeof joined);
	return 0;
}
