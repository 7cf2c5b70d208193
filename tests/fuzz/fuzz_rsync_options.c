/* fuzz_rsync_options.c - the rsync server's command line: the shell-like
 * split of the exec string and the option parser (bundled short options,
 * long options with values, the -e capability string, paths). Whatever it
 * is given, the parse succeeds with sane values or refuses with a
 * message. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../sshd/rsync/rsync_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char cmd[4096], buf[4200], err[512];
	char *argv[256];
	struct rs_opts o;
	int argc;

	if (size >= sizeof cmd)
		size = sizeof cmd - 1;
	memcpy(cmd, data, size);
	cmd[size] = '\0';
	(void)rsync_is_server_command(cmd);
	argc = rsync_split_command(cmd, buf, sizeof buf, argv, 255);
	if (argc < 0)
		return 0;
	for (int i = 0; i < argc; i++)
		if (argv[i] < buf || argv[i] >= buf + sizeof buf)
			__builtin_trap();
	argv[argc] = NULL;
	if (rs_parse_options(argc, argv, &o, err, sizeof err) == 0) {
		if (o.nargs < 1 || o.nargs > 64)
			__builtin_trap();
		if (o.block_size < 0 || o.block_size > RS_MAX_BLOCK_SIZE)
			__builtin_trap();
		if (o.compress_choice < -1 || o.compress_choice > RS_CPRES_ZSTD)
			__builtin_trap();
		if (strlen(o.caps) >= sizeof o.caps)
			__builtin_trap();
	} else if (!err[0]) {
		__builtin_trap();
	}
	return 0;
}
