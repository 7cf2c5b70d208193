/*
 * rsync_stdio - the rsync engine on stdin/stdout, for testing with the real
 * rsync client without SSH.
 *
 *   rsync -av -e "rsync_stdio --attachments URL [--backups URL]
 *                 [--endpoint URL]" src/ x:attachments/dest/
 *
 * rsync runs the -e program as `PROG [opts] HOST rsync --server ...`; this
 * tool skips the host, joins the remaining words back into the command
 * line an SSH server would have received (the client already escaped them
 * for a remote shell) and serves it. Paths resolve like the SSH side's
 * virtual home: "attachments/..." on the --attachments location
 * (read-write), "backups/..." on the --backups location (read-only).
 * The exit status is the engine's rsync exit code. `rsync_stdio --has-s3`
 * exits 0 when the S3 backend is built in. With RSYNC_STDIO_CAPTURE=FILE
 * every byte the client sent is also written to FILE (seeds for the fuzz
 * targets come from real traffic this way).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rsync.h"
#include "store.h"

struct roots {
	struct store *attachments;
	struct store *backups;
};

static FILE *capture; /* RSYNC_STDIO_CAPTURE, or NULL */

static ssize_t io_read(void *arg, void *buf, size_t len)
{
	ssize_t n;
	(void)arg;
	for (;;) {
		n = read(0, buf, len);
		if (n > 0 && capture)
			fwrite(buf, 1, (size_t)n, capture);
		if (n < 0 && errno == EAGAIN) {
			/* rsync may hand us a non-blocking descriptor */
			struct pollfd pfd = {.fd = 0, .events = POLLIN};
			poll(&pfd, 1, -1);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static int io_write(void *arg, const void *buf, size_t len)
{
	const char *p = buf;
	(void)arg;
	while (len > 0) {
		ssize_t n = write(1, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = 1, .events = POLLOUT};
			poll(&pfd, 1, -1);
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void io_err(void *arg, const char *text, size_t len)
{
	(void)arg;
	if (write(2, text, len) < 0) {
		/* nothing more to do */
	}
}

/* The backups folder as a virtual directory, the way the SSH side serves
 * the catalog's archives: one entry per object at its top level. */
struct vl {
	struct store *st;
	rsync_ventry_cb cb;
	void *cb_arg;
};

static int vl_entry(void *arg, const struct store_entry *e)
{
	struct vl *v = arg;
	struct rsync_ventry ve;

	if (e->is_dir)
		return 0;
	ve.name = e->name;
	ve.size = e->size;
	ve.mtime = e->mtime;
	ve.store = v->st;
	ve.object = e->name;
	return v->cb(v->cb_arg, &ve);
}

static int list_backups(void *arg, rsync_ventry_cb cb, void *cb_arg)
{
	struct vl v = {arg, cb, cb_arg};
	int rc = store_list(v.st, "", '/', NULL, vl_entry, &v);
	return rc < 0 ? -1 : 0;
}

static int resolve(void *arg, const char *path, struct rsync_target *out,
		   char *err, size_t errlen)
{
	struct roots *r = arg;
	char buf[STORE_NAME_MAX + 64];
	char *p = buf, *rest;
	size_t n;

	snprintf(buf, sizeof buf, "%s", path);
	for (;;) {
		while (*p == '/')
			p++;
		if (p[0] == '.' && (p[1] == '/' || p[1] == '\0'))
			p++;
		else
			break;
	}
	n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		p[--n] = '\0';
	if (n >= 2 && strcmp(p + n - 2, "/.") == 0)
		p[n -= 2] = '\0';
	rest = strchr(p, '/');
	if (rest)
		*rest++ = '\0';
	else
		rest = p + strlen(p);
	if (strcmp(p, "attachments") == 0 && r->attachments) {
		out->store = r->attachments;
		out->read_only = 0;
	} else if (strcmp(p, "backups") == 0 && r->backups) {
		out->store = r->backups;
		out->read_only = 1;
		if (!*rest) {
			out->list = list_backups;
			out->list_arg = r->backups;
		}
	} else {
		snprintf(err, errlen, "No such file or directory (2)");
		return -1;
	}
	if (*rest && !store_name_valid(rest)) {
		snprintf(err, errlen, "invalid path");
		return -1;
	}
	snprintf(out->prefix, sizeof out->prefix, "%s", rest);
	return 0;
}

int main(int argc, char **argv)
{
	struct store_opts so;
	struct roots roots;
	struct rsync_io io;
	struct rsync_stats st;
	const char *att = NULL, *bak = NULL;
	char cmd[65536];
	size_t o = 0;
	int i, rc;

	/* a vanished client must show up as a failed write, not kill us */
	signal(SIGPIPE, SIG_IGN);
	memset(&so, 0, sizeof so);
	so.path_style = -1;
	if (argc == 2 && strcmp(argv[1], "--has-s3") == 0) {
		/* is the S3 backend built in? (opening contacts nothing) */
		struct store *probe;
		if (store_open("s3://probe-bucket/", &so, &probe) < 0)
			return 1;
		store_close(probe);
		return 0;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--attachments") == 0 && i + 1 < argc)
			att = argv[++i];
		else if (strcmp(argv[i], "--backups") == 0 && i + 1 < argc)
			bak = argv[++i];
		else if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc)
			so.endpoint = argv[++i];
		else if (strcmp(argv[i], "--region") == 0 && i + 1 < argc)
			so.region = argv[++i];
		else
			break;
	}
	/* the host name rsync passes first, unless the command follows */
	if (i < argc && strcmp(argv[i], "rsync") != 0)
		i++;
	if (i >= argc || !att) {
		fprintf(stderr, "usage: rsync_stdio --attachments URL [--backups "
				"URL] [--endpoint URL] [HOST] rsync --server ...\n");
		return 1;
	}
	cmd[0] = '\0';
	for (; i < argc; i++) {
		size_t l = strlen(argv[i]);
		if (o + l + 2 >= sizeof cmd)
			return 1;
		if (o)
			cmd[o++] = ' ';
		memcpy(cmd + o, argv[i], l);
		o += l;
		cmd[o] = '\0';
	}
	memset(&roots, 0, sizeof roots);
	if (store_open(att, &so, &roots.attachments) < 0 ||
	    (bak && store_open(bak, &so, &roots.backups) < 0)) {
		fprintf(stderr, "rsync_stdio: cannot open the locations\n");
		return 1;
	}
	if (getenv("RSYNC_STDIO_CAPTURE"))
		capture = fopen(getenv("RSYNC_STDIO_CAPTURE"), "wb");
	io.arg = NULL;
	io.read = io_read;
	io.write = io_write;
	io.err = io_err;
	rc = rsync_serve(cmd, &io, resolve, &roots, &st);
	if (getenv("RSYNC_STDIO_STATS"))
		fprintf(stderr, "rsync_stdio: rc=%d protocol=%d files=%llu "
				"transferred=%llu deleted=%llu literal=%llu "
				"matched=%llu\n", rc, st.protocol,
			(unsigned long long)st.files,
			(unsigned long long)st.files_transferred,
			(unsigned long long)st.files_deleted,
			(unsigned long long)st.literal_bytes,
			(unsigned long long)st.matched_bytes);
	if (capture)
		fclose(capture);
	store_close(roots.attachments);
	if (roots.backups)
		store_close(roots.backups);
	return rc;
}
