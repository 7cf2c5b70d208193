/* fuzz_vfs.c - the SSH session's path resolver: whatever the client sends,
 * an object name it yields is valid for the store and never climbs out. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vfs.h"

static struct vfs_path vp;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[VFS_PATH_MAX + 16];
	if (size >= sizeof path)
		size = sizeof path - 1;
	memcpy(path, data, size);
	path[size] = '\0';
	if (vfs_resolve("kufish", "/attachments/a", path, &vp) != 0)
		return 0;
	if (vp.abs[0] != '/')
		__builtin_trap();
	if (vp.kind == VFS_FILES && vp.name[0] && !store_name_valid(vp.name))
		__builtin_trap();
	if (vp.kind == VFS_BACKUP && strchr(vp.name, '/'))
		__builtin_trap();
	return 0;
}
