/* fuzz_rsync_session.c - a whole rsync server session fed a client's
 * bytes: version exchange, name negotiation, filter rules, the file list,
 * file indexes and item flags, block checksum headers, the token stream
 * and the file checksums, on a push (receiver) and a pull (sender), plain
 * and compressed, against a filesystem store in a scratch directory (in
 * /dev/shm when there is one: no disk under the fsyncs). The store is made
 * once; an input that changed it (a push wrote, deleted or made a
 * directory) is followed by a reset to the same three files, so every
 * input meets the same store and a finding replays alone.
 * The first byte picks the command line; the rest is the client's side
 * of the conversation (seeds are recorded from real clients with
 * rsync_stdio's RSYNC_STDIO_CAPTURE). */
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rsync.h"
#include "store.h"
#include "fuzz_input.h"

static const char *const cmds[] = {
	"rsync --server -logDtpre.iLsfxCIvu . attachments/f/",
	"rsync --server -logDtpre.iLsfxCIvu --delete . attachments/f/",
	"rsync --server -logDtpzre.iLsfxCIvu . attachments/f/",
	"rsync --server -logDtpzre.iLsfxCIvu --old-compress . attachments/f/",
	"rsync --server --sender -logDtpre.iLsfxCIvu . attachments/f/",
	"rsync --server --sender -logDtpzre.iLsfxCIvu . attachments/f/",
	"rsync --server -logDtpcre.iLsfxCIvu . attachments/f/",
	"rsync --server -logDtpre.iLsfxCIvu --compress-choice=zstd . "
	"attachments/f/",
};

static struct store *att;
static char dir[64];
static int dirty;       /* the last input changed the store */

static int rm_one(const char *path, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

/* the scratch store goes when the fuzzer exits */
static void cleanup(void)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	rmdir(dir);
}

static void on_event(void *arg, const char *op, const char *object, int rc,
		     uint64_t bytes)
{
	(void)arg;
	(void)op;
	(void)object;
	(void)bytes;
	if (rc == 0)
		dirty = 1;
}

static int resolve(void *arg, const char *path, struct rsync_target *out,
		   char *err, size_t errlen)
{
	(void)arg;
	if (strncmp(path, "attachments/", 12) != 0) {
		snprintf(err, errlen, "no such directory");
		return -1;
	}
	path += 12;
	out->store = att;
	out->event = on_event;
	snprintf(out->prefix, sizeof out->prefix, "%.*s",
		 (int)strcspn(path, "/"), path);
	return 0;
}

static void put(const char *name, const char *text, size_t n)
{
	struct store_put_opts po;
	struct store_writer *w;
	memset(&po, 0, sizeof po);
	po.mtime = 1500000000;
	if (store_writer_open(att, name, &po, &w) < 0)
		return;
	store_writer_write(w, text, n);
	store_writer_commit(w);
}

/* the store as every input finds it */
static void fixture(void)
{
	static char big[5000];

	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)('a' + i % 23);
	put("f/a.txt", "hello\n", 6);
	put("f/sub/b.bin", big, sizeof big);
	put("f/empty", "", 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char url[128];
	struct store_opts so;

	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "/dev/shm/assetd-fuzz-rsync-XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof dir, "/tmp/assetd-fuzz-rsync-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	atexit(cleanup);
	snprintf(url, sizeof url, "file://%s/", dir);
	memset(&so, 0, sizeof so);
	so.path_style = -1;
	if (store_open(url, &so, &att) < 0)
		abort();
	fixture();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char cmd[256];
	struct src in;
	struct rsync_io io = { &in, src_read, sink_write, NULL };
	struct rsync_stats st;

	if (size < 1)
		return 0;
	snprintf(cmd, sizeof cmd, "%s", cmds[data[0] % (sizeof cmds /
							 sizeof cmds[0])]);
	in.p = data + 1;
	in.len = size - 1;
	in.pos = 0;
	dirty = 0;
	(void)rsync_serve(cmd, &io, resolve, NULL, &st);
	if (dirty)
		fixture();
	return 0;
}
