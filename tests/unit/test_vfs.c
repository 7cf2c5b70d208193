/* test_vfs.c - the SSH session's virtual tree: path resolution and the
 * traversal attempts it must contain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vfs.h"

static struct vfs_path vp;

static void expect(const char *cwd, const char *path, enum vfs_kind kind,
		   const char *name)
{
	int rc = vfs_resolve("kufish", cwd, path, &vp);
	if (rc != 0)
		fail_msg("%s: refused (%d)", path, rc);
	if (vp.kind != kind)
		fail_msg("%s: kind %d, want %d (abs %s)", path, vp.kind, kind,
			 vp.abs);
	if (name && strcmp(vp.name, name))
		fail_msg("%s: name '%s', want '%s'", path, vp.name, name);
}

static void test_basic(void **state)
{
	expect("/", "/", VFS_ROOT, "");
	expect("/", ".", VFS_ROOT, "");
	expect("/", "", VFS_ROOT, "");
	expect("/", "attachments", VFS_FILES, "");
	expect("/", "/attachments/", VFS_FILES, "");
	expect("/", "attachments/originals/a.jpg", VFS_FILES,
	       "originals/a.jpg");
	expect("/attachments", "originals", VFS_FILES, "originals");
	expect("/", "backups", VFS_BACKUPS, "");
	expect("/", "/backups/kufish-2026.tar.xz", VFS_BACKUP,
	       "kufish-2026.tar.xz");
	expect("/", "/kufish-assets.tar.xz", VFS_LATEST, "");
	expect("/", "/other-assets.tar.xz", VFS_OTHER, "");
	expect("/", "/etc/passwd", VFS_OTHER, "");
	expect("/", "/backups/a/b", VFS_OTHER, "");
	expect("/", "attachments/ü 日本 file.jpg", VFS_FILES, "ü 日本 file.jpg");
	expect("/", "attachments/%2e%2e/x", VFS_FILES, "%2e%2e/x");
}

static void test_home_aliases(void **state)
{
	expect("/", "~", VFS_ROOT, "");
	expect("/", "~/attachments/x", VFS_FILES, "x");
	expect("/attachments", "~/backups", VFS_BACKUPS, "");
	expect("/", "/home/kufish", VFS_ROOT, "");
	expect("/", "/home/kufish/attachments/originals", VFS_FILES,
	       "originals");
	/* another client's old home is nothing */
	expect("/", "/home/other/attachments/x", VFS_OTHER, "");
	expect("/", "/home/kufishx/attachments", VFS_OTHER, "");
	expect("/", "~other/attachments", VFS_OTHER, "");
}

/* Every attempt to leave the tree ends inside it (or is refused); none
 * yields an object name outside the client's location. */
static void test_traversal(void **state)
{
	const char *inside[][2] = {
		{ "/attachments/../../../etc/passwd", "/etc/passwd" },
		{ "../../../../etc/passwd", "/etc/passwd" },
		{ "/attachments/originals/../../..", "/" },
		{ "attachments/../attachments/../..", "/" },
		{ "/..", "/" },
		{ "/../attachments/x", "/attachments/x" },
		{ "//attachments//x", "/attachments/x" },
		{ "/./attachments/./x/.", "/attachments/x" },
		{ "attachments/x/../../../../../../root", "/root" },
		{ "/attachments/..", "/" },
		{ "/attachments/x/..//..//../y", "/y" },
		{ "~/../../etc", "/etc" },
		{ "/home/kufish/../../etc", "/etc" },
		{ ".../x", "/.../x" },
	};
	for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++) {
		int rc = vfs_resolve("kufish", "/", inside[i][0], &vp);
		if (rc != 0)
			fail_msg("%s: refused (%d)", inside[i][0], rc);
		if (strcmp(vp.abs, inside[i][1]))
			fail_msg("%s -> %s, want %s", inside[i][0], vp.abs,
				 inside[i][1]);
		if (vp.kind == VFS_FILES &&
		    (strstr(vp.name, "..") == vp.name || vp.name[0] == '/'))
			fail_msg("%s escaped: %s", inside[i][0], vp.name);
	}
	/* Climbing out of /attachments never keeps a FILES name. */
	expect("/attachments/a/b", "../../../etc/passwd", VFS_OTHER, "");
	expect("/attachments", "../backups/../attachments/z", VFS_FILES, "z");
	/* cwd deep inside, ".." climbs within */
	expect("/attachments/a/b", "../c", VFS_FILES, "a/c");
}

static void test_refused(void **state)
{
	const char *bad[] = {
		"/attachments/a\nb", "/attachments/\x01x", "/attachments/a\\..\\..",
		"/attachments/\xff\xfe", "/attachments/\xc0\xae\xc0\xae/x",
		"/attachments/a\x7f", "/backups/\x1b[31m",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = vfs_resolve("kufish", "/", bad[i], &vp);
		if (rc == 0 && vp.kind == VFS_FILES)
			fail_msg("accepted %s as %s", bad[i], vp.name);
	}
	/* over-long: a segment over 255 bytes, a path over the name limit */
	char seg[300] = "/attachments/";
	memset(seg + 13, 'a', 280);
	seg[293] = '\0';
	assert_int_not_equal(vfs_resolve("kufish", "/", seg, &vp), 0);
	static char longp[VFS_PATH_MAX + 100];
	strcpy(longp, "/attachments");
	while (strlen(longp) < VFS_PATH_MAX + 50)
		strcat(longp, "/abcdefgh");
	assert_int_not_equal(vfs_resolve("kufish", "/", longp, &vp), 0);
}

static void test_writable(void **state)
{
	vfs_resolve("kufish", "/", "/attachments/x", &vp);
	assert_int_equal(vfs_writable(&vp), 1);
	vfs_resolve("kufish", "/", "/attachments", &vp);
	assert_int_equal(vfs_writable(&vp), 0);
	vfs_resolve("kufish", "/", "/backups/x", &vp);
	assert_int_equal(vfs_writable(&vp), 0);
	vfs_resolve("kufish", "/", "/x", &vp);
	assert_int_equal(vfs_writable(&vp), 0);
	vfs_resolve("kufish", "/", "/", &vp);
	assert_int_equal(vfs_writable(&vp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_home_aliases),
		cmocka_unit_test(test_traversal),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_writable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
