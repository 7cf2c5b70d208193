/* fuzz_http_proto.c - the request-facing parsers of the Specify endpoint:
 * Range, HTTP dates, If-None-Match, form bodies, names, thumbnail names,
 * the client prefix, the base URL from Host headers, and tokens. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http_proto.h"
#include "http_token.h"

static int form_cb(void *arg, const char *n, size_t nl, const char *v,
		   size_t vl)
{
	(void)arg;
	if (nl > 4096 || vl > 4096 || n[nl] != '\0' || v[vl] != '\0')
		__builtin_trap();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[1024], out[4096];
	size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
	memcpy(s, data, n);
	s[n] = '\0';

	uint64_t start, len;
	uint64_t sizes[] = {0, 1, 1000, UINT64_MAX};
	for (size_t i = 0; i < 4; i++) {
		int r = http_range_parse(s, sizes[i], &start, &len);
		if (r == HTTP_RANGE_OK &&
		    (len == 0 || start >= sizes[i] || len > sizes[i] - start))
			__builtin_trap();
	}
	int64_t t;
	(void)http_date_parse(s, &t);
	(void)http_etag_match(s, "\"abc\"");
	(void)http_form_parse((const char *)data, size, form_cb, NULL);
	if (http_name_valid(s, n)) {
		if (memchr(s, '/', n) || memchr(s, '\0', n) || n > 255)
			__builtin_trap();
		if (http_thumb_name(s, 123, out, sizeof out) == 0 &&
		    !http_thumb_is_of(s, out))
			__builtin_trap();
	}
	char client[64];
	const char *route;
	if (http_split_prefix(s, client, sizeof client, &route) == 1 &&
	    (strchr(client, '/') || strstr(client, "..")))
		__builtin_trap();
	if (http_base_url(NULL, s, NULL, s, 0, "", out, sizeof out) == 0 &&
	    (strchr(out, '"') || strchr(out, '<') || strstr(out, "]]>")))
		__builtin_trap();
	(void)http_content_disposition(s, out, sizeof out);
	(void)http_xml_escape(s, out, sizeof out);
	int sc;
	if (http_scale_parse(s, &sc) == 0 && (sc < 1 || sc > 99999))
		__builtin_trap();
	(void)http_token_check("k", s, "name", 4, 1700000000, 150);
	return 0;
}
