/*
 * upjournal.c - the journal of S3 multipart uploads in flight, so that a
 * process killed mid-upload (kill -9, a crash, a power cut) does not leave
 * parts behind that S3 keeps, and bills, until a lifecycle rule removes them.
 *
 * How it works. The journal is a directory (by default "s3-uploads" beside
 * the catalog). When the S3 backend has created a multipart upload it
 * writes one small file there describing how to reach it again (bucket,
 * endpoint, region, credentials profile, addressing, key, upload ID) and
 * keeps that file open with an exclusive flock(); once the upload is
 * completed or aborted the file is removed. A file is written under a
 * ".tmp" name and renamed only once it is whole and locked, so a reader
 * never sees a half-written entry.
 *
 * Recovery (store_upload_recover, run by the daemon at start) walks the
 * directory and tries each entry's lock without waiting: a held lock means
 * its process is alive and still sending (another assetctl, say), and the
 * entry is left alone; a free lock means the process died, and the upload
 * is aborted (AbortMultipartUpload) with the location's own credentials,
 * then the entry removed. An entry whose abort fails for a transient reason
 * (the endpoint is down) stays for the next start; one the server answers
 * with "no such upload" or a refusal to abort at all (a server without
 * AbortMultipartUpload) is settled and removed, with a log line saying so.
 * Flocks die with their process, so no PID bookkeeping is needed and a
 * reused PID cannot fool it.
 *
 * Failing to write an entry never fails the upload: the journal is a
 * safety net, and its failure is logged.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"

#define ENTRY_SUFFIX ".upload"
#define TMP_SUFFIX ".tmp"
#define ENTRY_MAX 8192          /* an entry is a few lines; a key is 1 KiB */

static pthread_mutex_t dir_lock = PTHREAD_MUTEX_INITIALIZER;
static char journal_dir[PATH_MAX];
static atomic_uint entry_seq;

int store_upload_journal(const char *dir)
{
	if (dir && strlen(dir) >= sizeof journal_dir - 64)
		return STORE_EINVAL;
	pthread_mutex_lock(&dir_lock);
	snprintf(journal_dir, sizeof journal_dir, "%s", dir ? dir : "");
	pthread_mutex_unlock(&dir_lock);
	return 0;
}

int store_upload_journal_dir(const char *catalog_path, char *out,
			     size_t outlen)
{
	const char *slash = strrchr(catalog_path, '/');
	int n = slash ? snprintf(out, outlen, "%.*s/s3-uploads",
				 (int)(slash - catalog_path), catalog_path)
		      : snprintf(out, outlen, "s3-uploads");
	if (slash == catalog_path)
		n = snprintf(out, outlen, "/s3-uploads");
	return n < 0 || (size_t)n >= outlen ? STORE_EINVAL : 0;
}

/* One line "name=value\n"; values never hold a newline (keys cannot:
 * store_name_valid refuses control characters). */
static int put_line(char *buf, size_t cap, size_t *o, const char *name,
		    const char *value)
{
	if (strchr(value, '\n'))
		return -1;
	int n = snprintf(buf + *o, cap - *o, "%s=%s\n", name, value);
	if (n < 0 || (size_t)n >= cap - *o)
		return -1;
	*o += (size_t)n;
	return 0;
}

int store_journal_begin(const struct store_journal_entry *e, char *path,
			size_t pathlen)
{
	char dir[PATH_MAX];
	path[0] = '\0';
	pthread_mutex_lock(&dir_lock);
	snprintf(dir, sizeof dir, "%s", journal_dir);
	pthread_mutex_unlock(&dir_lock);
	if (!dir[0])
		return -1;
	char buf[ENTRY_MAX], ps[8];
	size_t o = 0;
	snprintf(ps, sizeof ps, "%d", e->path_style);
	if (put_line(buf, sizeof buf, &o, "bucket", e->bucket) ||
	    put_line(buf, sizeof buf, &o, "endpoint", e->endpoint) ||
	    put_line(buf, sizeof buf, &o, "region", e->region) ||
	    put_line(buf, sizeof buf, &o, "profile", e->profile) ||
	    put_line(buf, sizeof buf, &o, "path_style", ps) ||
	    put_line(buf, sizeof buf, &o, "upload_id", e->upload_id) ||
	    put_line(buf, sizeof buf, &o, "key", e->key))
		return -1;
	char tmp[PATH_MAX];
	unsigned seq = atomic_fetch_add(&entry_seq, 1);
	int n = snprintf(tmp, sizeof tmp, "%s/%ld-%u" TMP_SUFFIX, dir,
			 (long)getpid(), seq);
	if (n < 0 || (size_t)n >= sizeof tmp ||
	    (size_t)snprintf(path, pathlen, "%s/%ld-%u" ENTRY_SUFFIX, dir,
			     (long)getpid(), seq) >= pathlen) {
		path[0] = '\0';
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* Made on first use: a process that never uploads a
		 * multipart object leaves no trace. */
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			goto fail;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		goto fail;
	/* Locked before it has its real name: recovery only looks at
	 * whole, named entries, and never at one whose writer lives. */
	if (flock(fd, LOCK_EX) < 0 || write(fd, buf, o) != (ssize_t)o ||
	    fdatasync(fd) < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		close(fd);
		fd = -1;
		goto fail;
	}
	return fd;
fail:
	log_warn("s3_journal_failed", "dir=%s error=%s", log_q(dir),
		 log_q(strerror(errno)));
	path[0] = '\0';
	return -1;
}

void store_journal_end(int fd, const char *path)
{
	if (fd < 0)
		return;
	/* Unlinked while still locked: recovery cannot pick it up. */
	if (path[0])
		unlink(path);
	close(fd);
}

/* Parse an entry into E (pointers into BUF). Returns 0 or -1. */
static int parse_entry(char *buf, struct store_journal_entry *e)
{
	memset(e, 0, sizeof *e);
	e->path_style = -1;
	for (char *line = buf, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			return -1; /* entries end in a newline */
		*nl = '\0';
		char *eq = strchr(line, '=');
		if (!eq)
			return -1;
		*eq = '\0';
		const char *v = eq + 1;
		if (!strcmp(line, "bucket"))
			e->bucket = v;
		else if (!strcmp(line, "endpoint"))
			e->endpoint = v;
		else if (!strcmp(line, "region"))
			e->region = v;
		else if (!strcmp(line, "profile"))
			e->profile = v;
		else if (!strcmp(line, "path_style"))
			e->path_style = atoi(v);
		else if (!strcmp(line, "upload_id"))
			e->upload_id = v;
		else if (!strcmp(line, "key"))
			e->key = v;
	}
	return e->bucket && *e->bucket && e->key && *e->key && e->upload_id &&
			       *e->upload_id
		       ? 0
		       : -1;
}

/* Settle one entry whose lock we hold. Returns 1 if it may be removed. */
static int settle(const char *file, char *buf)
{
	struct store_journal_entry e;
	if (parse_entry(buf, &e) < 0) {
		log_warn("s3_journal_bad_entry", "file=%s", log_q(file));
		return 1;
	}
	char url[STORE_URL_MAX];
	snprintf(url, sizeof url, "s3://%s/", e.bucket);
	struct store_opts o = { .endpoint = e.endpoint && *e.endpoint
						    ? e.endpoint
						    : NULL,
				.region = e.region && *e.region ? e.region
								 : NULL,
				.profile = e.profile && *e.profile ? e.profile
								   : NULL,
				.path_style = e.path_style };
	struct store *st;
	int rc = store_open(url, &o, &st);
	if (rc < 0) {
		log_warn("s3_upload_abort_failed",
			 "bucket=%s key=%s upload_id=%s error=%s",
			 log_q(e.bucket), log_q(e.key), log_q(e.upload_id),
			 log_q(store_strerror(rc)));
		return rc == STORE_EINVAL;
	}
	char code[64] = "";
	rc = store_s3_abort_upload(st, e.key, e.upload_id, code, sizeof code);
	store_close(st);
	if (rc == 0) {
		log_info("s3_upload_aborted", "bucket=%s key=%s upload_id=%s",
			 log_q(e.bucket), log_q(e.key), log_q(e.upload_id));
		return 1;
	}
	if (rc == STORE_ENOENT || rc == STORE_EINVAL) {
		/* Gone already (completed, or expired by a lifecycle rule),
		 * or a server that cannot abort: nothing more to do here. */
		log_warn("s3_upload_abandoned",
			 "bucket=%s key=%s upload_id=%s code=%s error=%s",
			 log_q(e.bucket), log_q(e.key), log_q(e.upload_id),
			 log_q(code), log_q(store_strerror(rc)));
		return 1;
	}
	log_warn("s3_upload_abort_failed",
		 "bucket=%s key=%s upload_id=%s code=%s error=%s kept=yes",
		 log_q(e.bucket), log_q(e.key), log_q(e.upload_id), log_q(code),
		 log_q(store_strerror(rc)));
	return 0;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t l = strlen(s), n = strlen(suf);
	return l > n && strcmp(s + l - n, suf) == 0;
}

int store_upload_recover(const char *dir, volatile int *cancel)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : STORE_EIO;
	int settled = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL && !store_canceled(cancel)) {
		int is_tmp = has_suffix(de->d_name, TMP_SUFFIX);
		if (!is_tmp && !has_suffix(de->d_name, ENTRY_SUFFIX))
			continue;
		char file[PATH_MAX];
		if ((size_t)snprintf(file, sizeof file, "%s/%s", dir,
				     de->d_name) >= sizeof file)
			continue;
		int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat sb;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &sb) < 0 ||
		    sb.st_nlink == 0) {
			close(fd); /* its writer lives, or it just finished */
			continue;
		}
		if (is_tmp) {
			/* Died before the entry was whole: no upload is
			 * known to exist yet (CreateMultipartUpload
			 * answered, but its ID never reached the disk). */
			unlink(file);
			close(fd);
			continue;
		}
		char buf[ENTRY_MAX + 1];
		ssize_t n = read(fd, buf, ENTRY_MAX);
		buf[n > 0 ? n : 0] = '\0';
		if (settle(file, buf)) {
			unlink(file);
			settled++;
		}
		close(fd);
	}
	closedir(d);
	return settled;
}
