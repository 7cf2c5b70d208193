/* fuzz_s3xml.c - the S3 reply parser (listings, errors, multipart and copy
 * results, name decoding) and the IMDS JSON reader: whatever the bytes,
 * no crash, no read past the buffer, and what parses keeps its invariants. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "awscred.h"
#include "s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so any read past SIZE is caught by ASan. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	struct s3xml_list l;
	if (s3xml_parse_list(buf, size, &l) == 0) {
		if (l.truncated && !l.next_token[0])
			__builtin_trap();
		for (size_t i = 0; i < l.n_objects; i++) {
			if (!l.objects[i].key || !l.objects[i].key[0])
				__builtin_trap();
			size_t n = strlen(l.objects[i].key);
			char *k = strdup(l.objects[i].key);
			if (s3xml_url_decode(k) == 0 && strlen(k) > n)
				__builtin_trap(); /* decoding never grows */
			free(k);
			k = strdup(l.objects[i].key);
			if (s3xml_unescape(k) == 0 && strlen(k) > n)
				__builtin_trap();
			free(k);
		}
		for (size_t i = 0; i < l.n_prefixes; i++)
			if (!l.prefixes[i] || !l.prefixes[i][0])
				__builtin_trap();
	}
	s3xml_list_free(&l);

	char code[64], msg[256], id[512], etag[80], out[256];
	(void)s3xml_parse_error(buf, size, code, sizeof code, msg, sizeof msg);
	(void)s3xml_parse_upload_id(buf, size, id, sizeof id);
	(void)s3xml_parse_result(buf, size, "CompleteMultipartUploadResult",
				 etag, sizeof etag);
	(void)awscred_json_string(buf, size, "Token", out, sizeof out);

	char *s = malloc(size + 1);
	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
		(void)s3xml_parse_time(s);
		free(s);
	}
	free(buf);
	return 0;
}
