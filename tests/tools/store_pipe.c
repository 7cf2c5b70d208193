/*
 * store_pipe.c - a command-line window on the store interface, for tests and
 * benchmarks: stream an object in from stdin or out to stdout, stat, list,
 * delete, copy, rename, through any location (file:// or s3://).
 *
 *   store_pipe [--endpoint URL] [--region R] [--profile P] [--retries N]
 *            [--timeout S] [--journal DIR] LOCATION COMMAND ARGS...
 *
 * --journal DIR journals S3 multipart uploads there, as the daemon does
 * (store_upload_journal), for the crash-recovery tests.
 *
 *   put NAME [SIZE_HINT]     stdin -> NAME (commit at EOF)
 *   put-md5 NAME HEX         stdin -> NAME, telling the writer the MD5
 *                            of its bytes is HEX (store_writer_set_md5)
 *   put-cut NAME N           write N bytes of stdin then exit without
 *                            committing or aborting (a crashed writer)
 *   get NAME [OFFSET [LEN]]  NAME -> stdout
 *   stat NAME                one line: size mtime is_dir etag content_type
 *   ls [PREFIX [DELIM]]      one entry a line: name size is_dir
 *   rm NAME | mkdir NAME | rmdir NAME | mtime NAME T
 *   mv FROM TO | cp FROM TO [OTHER_LOCATION]
 *
 * Errors: "store_pipe: ERRNAME: text" on stderr and exit status 2, where
 * ERRNAME is the store_error's name (ENOENT, EAUTH, EUNAVAIL...), so tests
 * can assert the typed error. Streams use a 256 KiB buffer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

#define BUF (256 * 1024)

static const char *err_name(int rc)
{
	static const char *names[] = {
		"OK",	  "ENOENT",    "EACCES",   "EEXIST",  "ENOTEMPTY",
		"ENOSPC", "ETHROTTLED", "EUNAVAIL", "EINVAL",  "EIO",
		"ENOTDIR", "EISDIR",   "ENOMEM",   "EAUTH",   "ETOOBIG",
		"ECANCELED", "EQUOTA",
	};
	if (rc <= 0 && -rc < (int)(sizeof names / sizeof names[0]))
		return names[-rc];
	return "EUNKNOWN";
}

static int fail(int rc)
{
	fprintf(stderr, "store_pipe: %s: %s\n", err_name(rc), store_strerror(rc));
	return 2;
}

static int list_cb(void *arg, const struct store_entry *e)
{
	printf("%s %" PRIu64 " %d\n", e->name, e->size, e->is_dir);
	return 0;
}

static int cmd_put(struct store *st, const char *name, uint64_t hint,
		   long long cut, const char *md5_hex)
{
	struct store_put_opts po = { .size_hint = hint };
	struct store_writer *w;
	int rc = store_writer_open(st, name, &po, &w);
	if (rc < 0)
		return fail(rc);
	char *buf = malloc(BUF);
	long long total = 0;
	for (;;) {
		size_t want = BUF;
		if (cut >= 0 && (long long)want > cut - total)
			want = (size_t)(cut - total);
		ssize_t n = want ? read(0, buf, want) : 0;
		if (n < 0) {
			free(buf);
			store_writer_abort(w);
			return fail(STORE_EIO);
		}
		if (n == 0)
			break;
		rc = store_writer_write(w, buf, (size_t)n);
		if (rc < 0) {
			free(buf);
			store_writer_abort(w);
			return fail(rc);
		}
		total += n;
	}
	free(buf);
	if (cut >= 0)
		_exit(3); /* as if the process died mid-upload */
	if (md5_hex) {
		unsigned char md5[16];
		for (int k = 0; k < 16; k++) {
			unsigned x;
			if (strlen(md5_hex) != 32 ||
			    sscanf(md5_hex + 2 * k, "%2x", &x) != 1) {
				store_writer_abort(w);
				return fail(STORE_EINVAL);
			}
			md5[k] = (unsigned char)x;
		}
		store_writer_set_md5(w, md5);
	}
	rc = store_writer_commit(w);
	return rc < 0 ? fail(rc) : 0;
}

static int cmd_get(struct store *st, const char *name, uint64_t off,
		   uint64_t len)
{
	struct store_reader *r;
	struct store_stat ss;
	int rc = store_reader_open(st, name, off, len, &r, &ss);
	if (rc < 0)
		return fail(rc);
	char *buf = malloc(BUF);
	for (;;) {
		ssize_t n = store_reader_read(r, buf, BUF);
		if (n < 0 || (n > 0 && fwrite(buf, 1, (size_t)n, stdout) !=
						(size_t)n)) {
			free(buf);
			store_reader_close(r);
			return fail(n < 0 ? (int)n : STORE_EIO);
		}
		if (n == 0)
			break;
	}
	free(buf);
	store_reader_close(r);
	return 0;
}

int main(int argc, char **argv)
{
	struct store_opts o = { .path_style = -1 };
	int i = 1;
	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (!strcmp(argv[i], "--endpoint"))
			o.endpoint = argv[i + 1];
		else if (!strcmp(argv[i], "--region"))
			o.region = argv[i + 1];
		else if (!strcmp(argv[i], "--profile"))
			o.profile = argv[i + 1];
		else if (!strcmp(argv[i], "--retries"))
			o.max_retries = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--timeout"))
			o.timeout_seconds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--journal"))
			store_upload_journal(argv[i + 1]);
		else
			break;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: store_pipe [options] LOCATION COMMAND ...\n");
		return 1;
	}
	struct store *st;
	int rc = store_open(argv[i], &o, &st);
	if (rc < 0)
		return fail(rc);
	const char *cmd = argv[i + 1];
	char **a = argv + i + 2;
	int na = argc - i - 2;
	int ret = 0;
	if (!strcmp(cmd, "put") && na >= 1) {
		ret = cmd_put(st, a[0], na > 1 ? strtoull(a[1], NULL, 10) : 0, -1,
			      NULL);
	} else if (!strcmp(cmd, "put-md5") && na == 2) {
		ret = cmd_put(st, a[0], 0, -1, a[1]);
	} else if (!strcmp(cmd, "put-cut") && na == 2) {
		ret = cmd_put(st, a[0], 0, atoll(a[1]), NULL);
	} else if (!strcmp(cmd, "get") && na >= 1) {
		ret = cmd_get(st, a[0], na > 1 ? strtoull(a[1], NULL, 10) : 0,
			      na > 2 ? strtoull(a[2], NULL, 10) : UINT64_MAX);
	} else if (!strcmp(cmd, "stat") && na == 1) {
		struct store_stat ss;
		rc = store_stat(st, a[0], &ss);
		if (rc < 0)
			ret = fail(rc);
		else
			printf("%" PRIu64 " %" PRId64 " %d %s %s\n", ss.size,
			       ss.mtime, ss.is_dir, ss.etag[0] ? ss.etag : "-",
			       ss.content_type[0] ? ss.content_type : "-");
	} else if (!strcmp(cmd, "ls")) {
		rc = store_list(st, na > 0 ? a[0] : "",
				na > 1 && a[1][0] ? a[1][0] : 0, NULL, list_cb,
				NULL);
		ret = rc < 0 ? fail(rc) : 0;
	} else if (!strcmp(cmd, "rm") && na == 1) {
		rc = store_delete(st, a[0]);
		ret = rc < 0 ? fail(rc) : 0;
	} else if (!strcmp(cmd, "mkdir") && na == 1) {
		rc = store_mkdir(st, a[0]);
		ret = rc < 0 ? fail(rc) : 0;
	} else if (!strcmp(cmd, "rmdir") && na == 1) {
		rc = store_rmdir(st, a[0]);
		ret = rc < 0 ? fail(rc) : 0;
	} else if (!strcmp(cmd, "mtime") && na == 2) {
		rc = store_set_mtime(st, a[0], atoll(a[1]));
		ret = rc < 0 ? fail(rc) : 0;
	} else if (!strcmp(cmd, "mv") && na == 2) {
		rc = store_rename(st, a[0], a[1], 0);
		ret = rc < 0 ? fail(rc) : 0;
	} else if (!strcmp(cmd, "cp") && na >= 2) {
		struct store *dst = st;
		if (na > 2 && (rc = store_open(a[2], &o, &dst)) < 0)
			return fail(rc);
		rc = store_copy(st, a[0], dst, a[1]);
		if (dst != st)
			store_close(dst);
		ret = rc < 0 ? fail(rc) : 0;
	} else {
		fprintf(stderr, "store_pipe: bad command %s\n", cmd);
		ret = 1;
	}
	store_close(st);
	return ret;
}
