/* fuzz_conf.c - configuration lines and the value parsers they use. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conf.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[2048];
	if (size >= sizeof line)
		size = sizeof line - 1;
	memcpy(line, data, size);
	line[size] = '\0';

	struct conf c;
	char err[256];
	conf_defaults(&c);
	/* Feed it as many lines: each must parse or fail with a message. */
	char *save = NULL;
	for (char *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		err[0] = '\0';
		if (conf_parse_line(&c, l, err, sizeof err) < 0 && err[0] == '\0')
			__builtin_trap(); /* an error must say why */
		struct conf_listen li;
		uint64_t v;
		(void)conf_parse_listen(l, &li);
		(void)conf_parse_size(l, &v);
		(void)log_q(l);
	}
	if (conf_finish(&c, err, sizeof err) < 0 && err[0] == '\0')
		__builtin_trap();
	return 0;
}
