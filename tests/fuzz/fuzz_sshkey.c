/* fuzz_sshkey.c - authorized_keys lines as admins paste them into
 * `assetctl key add`: options, key type, base64 blob and comment. A line
 * either parses, with every field terminated inside its buffer and a
 * fingerprint of OpenSSH's shape, or is refused with a message. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sshkey.h"

static void check_field(const char *f, size_t cap)
{
	if (!memchr(f, '\0', cap))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[SSHKEY_BLOB_MAX * 2];
	struct sshkey_info k;
	char err[256];
	char out[512];

	if (size >= sizeof line)
		size = sizeof line - 1;
	memcpy(line, data, size);
	line[size] = '\0';

	err[0] = '\0';
	int rc = sshkey_parse_line(line, &k, err, sizeof err);
	if (rc < 0) {
		/* A refusal always says why. */
		if (!err[0] || !memchr(err, '\0', sizeof err))
			__builtin_trap();
		return 0;
	}
	if (rc > 0)
		return 0;
	check_field(k.type, sizeof k.type);
	check_field(k.blob, sizeof k.blob);
	check_field(k.comment, sizeof k.comment);
	check_field(k.fingerprint, sizeof k.fingerprint);
	check_field(k.label, sizeof k.label);
	if (strncmp(k.fingerprint, "SHA256:", 7) != 0 || !k.type[0] ||
	    !k.blob[0])
		__builtin_trap();
	if (sshkey_format(&k, out, sizeof out) < 0)
		__builtin_trap();
	return 0;
}
