/* fuzz_scp.c - the legacy scp parsers: the exec command (shell-like
 * splitting, options) and the protocol's control lines. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "scp.h"

static struct scp_words words;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[160];
	struct scp_line ln;
	struct scp_command cmd;

	/* As a control line: a C or D name must be one safe segment. */
	if (scp_parse_line((const char *)data, size, &ln, err, sizeof err) == 0 &&
	    (ln.type == SCP_LINE_FILE || ln.type == SCP_LINE_DIR)) {
		if (!ln.name[0] || strchr(ln.name, '/') ||
		    !strcmp(ln.name, "..") || !strcmp(ln.name, "."))
			__builtin_trap();
	}
	/* As an exec command. */
	char cmdline[SCP_LINE_MAX];
	if (size >= sizeof cmdline)
		size = sizeof cmdline - 1;
	memcpy(cmdline, data, size);
	cmdline[size] = '\0';
	if (scp_split_words(cmdline, &words, err, sizeof err) == 0) {
		for (int i = 0; i < words.n; i++)
			if (words.w[i] < words.buf ||
			    words.w[i] >= words.buf + sizeof words.buf)
				__builtin_trap();
		(void)scp_parse_command(&words, &cmd, err, sizeof err);
	}
	return 0;
}
