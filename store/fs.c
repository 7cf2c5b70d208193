/*
 * fs.c - the local filesystem backend: a location is a directory.
 *
 * Containment. The location's directory is opened once (ROOTFD) and every
 * later access is relative to it. Paths are resolved with openat2(2) and
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so neither ".." nor a symlink
 * anywhere in the path can lead out of the location (store.c has already
 * refused ".." and empty segments; this is the second wall). On kernels
 * without openat2 (or with ASSETD_FS_NO_OPENAT2=1 in the environment, which
 * the tests use) the path is walked one component at a time with
 * openat(O_NOFOLLOW | O_DIRECTORY), which gives the same guarantee. A
 * symlink inside a location is therefore never followed: stat and reads
 * report it as STORE_EACCES, listings skip it.
 *
 * Atomic writes. A writer creates ".assetd-tmp.<16 hex>" in the target's
 * directory, writes it, sets the client's mtime (futimens) and, if one was
 * given and differs from the extension's, the content type as the xattr
 * "user.assetd.content_type"; then fsync, rename(2) over the target
 * (renameat2 RENAME_NOREPLACE for exclusive creates) and fsync of the
 * directory. A reader thus sees the old file or the new one. Temp files are
 * never listed, never addressable (a name with a ".assetd-tmp." segment is
 * refused), removed on any failure and, after a crash, by store_cleanup()
 * (which the daemon runs at start on every fs location): a writer holds an
 * flock() on its temp file, so cleanup removes only files whose writer is
 * gone, however recent, and never one still being written.
 * ENOSPC during a write or at fsync is STORE_ENOSPC and the temp file is
 * emptied at once and removed by the abort. A writer creates the missing
 * parent directories of its target when it opens (as S3 needs none); an
 * aborted write leaves them, empty.
 *
 * Listings. One directory is read at a time, its matching names packed into
 * one arena and sorted bytewise, a directory sorting as "name/" so that the
 * order is exactly S3's key order. Memory bound: the names of the
 * directories on the current path of the walk (one directory for a
 * delimited listing; for a recursive one, each ancestor's sorted names while
 * its subtree is visited), about 12 bytes plus the name per entry: a
 * directory of 100,000 40-byte names costs about 5 MiB while it is listed.
 * A store_lister (an SFTP directory handle) keeps its directory's sorted
 * names for as long as it is open and walks them a page at a time: a paged
 * listing reads and sorts the directory once, not once per page.
 * Sizes and times are fetched per entry as it is reported, not kept.
 * Entries that cannot be addressed through the store (symlinks, devices,
 * names that break the name rules) are skipped.
 *
 * Metadata. The mtime is the file's mtime. The ETag is derived from inode,
 * size and nanosecond mtime: it changes whenever the content is replaced.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

#define FS_TMP_PREFIX STORE_TMP_PREFIX /* the one rule: store.h */
#define FS_TMP_PREFIX_LEN (sizeof FS_TMP_PREFIX - 1)
#define FS_XATTR_CTYPE "user.assetd.content_type"
#define FS_COPY_CHUNK (1024 * 1024)
#define FS_MAX_DEPTH 600 /* > 1024-byte names of 1-byte segments */

struct fs {
	int rootfd;            /* O_DIRECTORY fd of the location */
	atomic_int openat2_ok; /* 1 while openat2 works on this kernel */
};

struct fs_reader {
	struct store_reader h;
	int fd;
	uint64_t pos;          /* next byte to read */
	uint64_t end;          /* one past the last byte of the range */
};

struct fs_writer {
	struct store_writer h;
	int dirfd;             /* the target's directory */
	int fd;                /* the temp file */
	char tmp[FS_TMP_PREFIX_LEN + 17];
	char leaf[256];        /* the target's last segment */
	int exclusive;
	int64_t mtime;         /* 0: leave the write time */
	char ctype[STORE_CTYPE_MAX]; /* "" or an explicit content type */
};

static struct fs *fs_of(struct store *st)
{
	return st->impl;
}

/* errno -> store_error, in one place. */
static int fs_err(int e)
{
	switch (e) {
	case 0: return STORE_EIO;
	case ENOENT: return STORE_ENOENT;
	case EACCES:
	case EPERM:
	case EROFS:
	case ELOOP:  /* a symlink on the way: never followed */
	case EXDEV:  /* openat2 saw an escape attempt */
		return STORE_EACCES;
	case EEXIST: return STORE_EEXIST;
	case ENOTEMPTY: return STORE_ENOTEMPTY;
	case ENOSPC:
	case EDQUOT:
		return STORE_ENOSPC;
	case ENOTDIR: return STORE_ENOTDIR;
	case EISDIR: return STORE_EISDIR;
	case ENOMEM: return STORE_ENOMEM;
	case ENAMETOOLONG:
	case EINVAL:
		return STORE_EINVAL;
	case EFBIG: return STORE_ETOOBIG;
	default: return STORE_EIO;
	}
}

/* 1 if any segment of NAME is one of our temp names (store.c checks this
 * too; this is the second wall, for the calls fs.c makes itself). */
static int is_reserved(const char *name)
{
	return store_name_is_temp(name);
}

static void close_keep_errno(int fd)
{
	int e = errno;
	close(fd);
	errno = e;
}

/* Open REL (a valid name, never "") below the root with FLAGS, following
 * no symlink. Returns an fd or -1 with errno set. */
static int fs_openat(struct fs *fs, const char *rel, int flags, mode_t mode)
{
	flags |= O_NOFOLLOW | O_CLOEXEC;
	if (atomic_load(&fs->openat2_ok)) {
		struct open_how how = {
			.flags = (uint64_t)flags,
			.mode = (flags & O_CREAT) ? mode : 0,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
				   RESOLVE_NO_MAGICLINKS,
		};
		long fd;
		do
			fd = syscall(SYS_openat2, fs->rootfd, rel, &how,
				     sizeof how);
		while (fd < 0 && (errno == EAGAIN || errno == EINTR));
		if (fd < 0 && errno == ENOTDIR && (flags & O_DIRECTORY)) {
			/* O_DIRECTORY|O_NOFOLLOW on a trailing symlink says
			 * ENOTDIR; tell a symlink (denied) from a file. */
			how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
			how.mode = 0;
			long pfd = syscall(SYS_openat2, fs->rootfd, rel, &how,
					   sizeof how);
			struct stat sb;
			int lnk = pfd >= 0 && fstat((int)pfd, &sb) == 0 &&
				  S_ISLNK(sb.st_mode);
			if (pfd >= 0)
				close((int)pfd);
			errno = lnk ? ELOOP : ENOTDIR;
			return -1;
		}
		if (fd >= 0 || errno != ENOSYS)
			return (int)fd;
		atomic_store(&fs->openat2_ok, 0);
	}
	/* Component by component: every directory on the way is opened with
	 * O_NOFOLLOW, so a symlink fails with ELOOP/ENOTDIR. */
	int cur = fs->rootfd;
	const char *p = rel;
	for (;;) {
		const char *slash = strchr(p, '/');
		if (!slash)
			break;
		char seg[256];
		size_t n = (size_t)(slash - p);
		if (n == 0 || n >= sizeof seg) {
			if (cur != fs->rootfd)
				close(cur);
			errno = EINVAL;
			return -1;
		}
		memcpy(seg, p, n);
		seg[n] = '\0';
		int next = openat(cur, seg,
				  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOTDIR) {
			/* a symlink or a file: tell which */
			struct stat sb;
			if (fstatat(cur, seg, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode))
				errno = ELOOP;
			else
				errno = ENOTDIR;
		}
		if (cur != fs->rootfd)
			close_keep_errno(cur);
		if (next < 0)
			return -1;
		cur = next;
		p = slash + 1;
	}
	int fd = openat(cur, p, flags, mode);
	if (fd < 0 && errno == ENOTDIR && (flags & O_DIRECTORY)) {
		struct stat sb;
		if (fstatat(cur, p, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(sb.st_mode))
			errno = ELOOP;
		else
			errno = ENOTDIR;
	}
	if (cur != fs->rootfd)
		close_keep_errno(cur);
	return fd;
}

/* A new open file description of directory FD, so that its readdir
 * position is our own (dup would share it with every other user of FD). */
static int reopen_dir(int fd)
{
	return openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* A DIR stream on its own copy of directory FD (FD stays usable for the
 * *at() calls while the stream is read), or NULL with errno set. */
static DIR *read_dir(int fd)
{
	int own = reopen_dir(fd);
	if (own < 0)
		return NULL;
	DIR *dir = fdopendir(own);
	if (!dir) {
		int e = errno;
		close(own);
		errno = e;
	}
	return dir;
}

/* Open directory DIR ("" = the root) for use as a dirfd. */
static int fs_opendir(struct fs *fs, const char *dir)
{
	if (!dir[0])
		return openat(fs->rootfd, ".",
			      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fs_openat(fs, dir, O_RDONLY | O_DIRECTORY, 0);
}

/* mkdir -p DIR below the root, one component at a time (never following a
 * symlink), and return an fd of the last directory or -1/errno. */
static int fs_mkdirs(struct fs *fs, const char *dir)
{
	int cur = openat(fs->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return -1;
	const char *p = dir;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		char seg[256];
		if (n == 0 || n >= sizeof seg) {
			close(cur);
			errno = EINVAL;
			return -1;
		}
		memcpy(seg, p, n);
		seg[n] = '\0';
		if (mkdirat(cur, seg, 0755) < 0 && errno != EEXIST) {
			close_keep_errno(cur);
			return -1;
		}
		int next = openat(cur, seg,
				  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOTDIR) {
			struct stat sb;
			if (fstatat(cur, seg, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode))
				errno = ELOOP;
		}
		close_keep_errno(cur);
		if (next < 0)
			return -1;
		cur = next;
		p = slash ? slash + 1 : p + n;
	}
	return cur;
}

/* Open the directory that holds NAME (creating it and its parents if
 * CREATE) and point *LEAF at NAME's last segment. Returns an fd or a
 * store_error. */
static int fs_parent(struct fs *fs, const char *name, int create,
		     const char **leaf)
{
	char dir[STORE_NAME_MAX];
	const char *slash = strrchr(name, '/');
	size_t dl = slash ? (size_t)(slash - name) : 0;
	memcpy(dir, name, dl);
	dir[dl] = '\0';
	*leaf = slash ? slash + 1 : name;
	int fd = fs_opendir(fs, dir);
	if (fd < 0 && errno == ENOENT && create)
		fd = fs_mkdirs(fs, dir);
	if (fd < 0)
		return fs_err(errno);
	return fd;
}

static void fill_etag(char *out, const struct stat *sb)
{
	snprintf(out, STORE_ETAG_MAX, "%llx-%llx-%llx",
		 (unsigned long long)sb->st_ino,
		 (unsigned long long)sb->st_size,
		 (unsigned long long)sb->st_mtim.tv_sec * 1000000000ull +
			 (unsigned long long)sb->st_mtim.tv_nsec);
}

/* Fill OUT from an open fd of NAME. */
static int fill_stat(int fd, const char *name, struct store_stat *out)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return fs_err(errno);
	memset(out, 0, sizeof *out);
	out->mtime = sb.st_mtim.tv_sec;
	if (S_ISDIR(sb.st_mode)) {
		out->is_dir = 1;
		return 0;
	}
	if (!S_ISREG(sb.st_mode))
		return STORE_EACCES; /* fifo, device, socket: not ours */
	out->size = (uint64_t)sb.st_size;
	fill_etag(out->etag, &sb);
	ssize_t n = fgetxattr(fd, FS_XATTR_CTYPE, out->content_type,
			      sizeof out->content_type - 1);
	if (n > 0)
		out->content_type[n] = '\0';
	else
		snprintf(out->content_type, sizeof out->content_type, "%s",
			 store_content_type(name));
	return 0;
}

/* ---- open / close ---------------------------------------------------- */

static int fs_open(struct store *st, const char *url_rest,
		   const struct store_opts *opts)
{
	struct fs *fs = calloc(1, sizeof *fs);
	if (!fs)
		return STORE_ENOMEM;
	fs->rootfd = open(url_rest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->rootfd < 0) {
		int rc = fs_err(errno);
		free(fs);
		return rc;
	}
	const char *no2 = getenv("ASSETD_FS_NO_OPENAT2");
	atomic_init(&fs->openat2_ok, !(no2 && no2[0] == '1'));
	st->impl = fs;
	return 0;
}

static void fs_close(struct store *st)
{
	struct fs *fs = fs_of(st);
	if (!fs)
		return;
	close(fs->rootfd);
	free(fs);
	st->impl = NULL;
}

/* ---- stat / mtime ---------------------------------------------------- */

static int fs_open_existing(struct fs *fs, const char *name)
{
	if (!name[0])
		return openat(fs->rootfd, ".",
			      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* O_NONBLOCK: opening a fifo someone put there must not hang. */
	return fs_openat(fs, name, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
}

static int fs_stat(struct store *st, const char *name, struct store_stat *out)
{
	if (is_reserved(name))
		return STORE_ENOENT;
	int fd = fs_open_existing(fs_of(st), name);
	if (fd < 0)
		return fs_err(errno);
	int rc = fill_stat(fd, name, out);
	close(fd);
	return rc;
}

static int fs_set_mtime(struct store *st, const char *name, int64_t mtime)
{
	if (is_reserved(name))
		return STORE_ENOENT;
	int fd = fs_open_existing(fs_of(st), name);
	if (fd < 0)
		return fs_err(errno);
	struct timespec ts[2] = { { .tv_sec = mtime }, { .tv_sec = mtime } };
	int rc = futimens(fd, ts) < 0 ? fs_err(errno) : 0;
	close(fd);
	return rc;
}

/* ---- reading --------------------------------------------------------- */

static int fs_reader_open(struct store *st, const char *name, uint64_t offset,
			  uint64_t len, struct store_reader **out,
			  struct store_stat *out_stat)
{
	if (is_reserved(name))
		return STORE_ENOENT;
	int fd = fs_open_existing(fs_of(st), name);
	if (fd < 0)
		return fs_err(errno);
	int rc = fill_stat(fd, name, out_stat);
	if (rc == 0 && out_stat->is_dir)
		rc = STORE_EISDIR;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	struct fs_reader *r = calloc(1, sizeof *r);
	if (!r) {
		close(fd);
		return STORE_ENOMEM;
	}
	/* back to blocking reads (O_NONBLOCK was only for the open) */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	r->h.be = &store_fs_backend;
	r->fd = fd;
	uint64_t size = out_stat->size;
	r->pos = offset < size ? offset : size;
	r->end = (len > size - r->pos) ? size : r->pos + len;
	posix_fadvise(fd, (off_t)r->pos, (off_t)(r->end - r->pos),
		      POSIX_FADV_SEQUENTIAL);
	*out = &r->h;
	return 0;
}

static ssize_t fs_reader_read(struct store_reader *h, void *buf, size_t cap)
{
	struct fs_reader *r = (struct fs_reader *)h;
	if (r->pos >= r->end)
		return 0;
	if (cap > r->end - r->pos)
		cap = (size_t)(r->end - r->pos);
	if (cap > SSIZE_MAX)
		cap = SSIZE_MAX;
	ssize_t n;
	do
		n = pread(r->fd, buf, cap, (off_t)r->pos);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fs_err(errno);
	if (n == 0) {
		r->end = r->pos; /* the file shrank under us: end early */
		return 0;
	}
	r->pos += (uint64_t)n;
	return n;
}

static int fs_reader_fd(struct store_reader *h)
{
	return ((struct fs_reader *)h)->fd;
}

static void fs_reader_close(struct store_reader *h)
{
	struct fs_reader *r = (struct fs_reader *)h;
	close(r->fd);
	free(r);
}

/* ---- writing --------------------------------------------------------- */

static int make_temp(int dirfd, char *tmp, size_t tmplen)
{
	for (int tries = 0; tries < 8; tries++) {
		unsigned char rnd[8];
		if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
			/* fall back on time and address bits */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t x = (uint64_t)ts.tv_nsec ^
				     ((uint64_t)getpid() << 32) ^
				     (uint64_t)(uintptr_t)tmp ^ (uint64_t)tries;
			memcpy(rnd, &x, sizeof rnd);
		}
		snprintf(tmp, tmplen,
			 FS_TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x",
			 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
			 rnd[6], rnd[7]);
		/* read-write: store_writer_pread() reads bytes back */
		int fd = openat(dirfd, tmp,
				O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC,
				0644);
		if (fd >= 0) {
			/* Held until the writer ends: store_cleanup()
			 * leaves a temp file alone while its writer lives,
			 * however old it is. */
			flock(fd, LOCK_EX);
			return fd;
		}
		if (errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

/* Open a writer on the fs store ST (used by the fs copy too). */
static int fs_writer_new(struct store *st, const char *name,
			 const struct store_put_opts *opts,
			 struct fs_writer **out)
{
	if (is_reserved(name))
		return STORE_EINVAL;
	const char *leaf;
	int dirfd = fs_parent(fs_of(st), name, 1, &leaf);
	if (dirfd < 0)
		return dirfd;
	struct stat sb;
	if (fstatat(dirfd, leaf, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		int rc = 0;
		if (S_ISDIR(sb.st_mode))
			rc = STORE_EISDIR;
		else if (opts->exclusive)
			rc = STORE_EEXIST;
		else if (!S_ISREG(sb.st_mode))
			rc = STORE_EACCES;
		if (rc < 0) {
			close(dirfd);
			return rc;
		}
	}
	struct fs_writer *w = calloc(1, sizeof *w);
	if (!w) {
		close(dirfd);
		return STORE_ENOMEM;
	}
	w->h.be = &store_fs_backend;
	w->dirfd = dirfd;
	snprintf(w->leaf, sizeof w->leaf, "%s", leaf);
	w->exclusive = opts->exclusive;
	w->mtime = opts->mtime;
	if (opts->content_type &&
	    strcmp(opts->content_type, store_content_type(name)) != 0)
		snprintf(w->ctype, sizeof w->ctype, "%s", opts->content_type);
	w->fd = make_temp(dirfd, w->tmp, sizeof w->tmp);
	if (w->fd < 0) {
		int rc = fs_err(errno);
		close(dirfd);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

static int fs_writer_open(struct store *st, const char *name,
			  const struct store_put_opts *opts,
			  struct store_writer **out)
{
	struct fs_writer *w;
	int rc = fs_writer_new(st, name, opts, &w);
	if (rc < 0)
		return rc;
	*out = &w->h;
	return 0;
}

/* Throw the temp file away and free W. */
static void fs_writer_discard(struct fs_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	unlinkat(w->dirfd, w->tmp, 0);
	close(w->dirfd);
	free(w);
}

static int fs_writer_write(struct store_writer *h, const void *buf, size_t len)
{
	struct fs_writer *w = (struct fs_writer *)h;
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int rc = fs_err(n < 0 ? errno : ENOSPC);
			/* Give the space back now, not at abort time (if this
			 * fails too, abort's unlink still frees it). */
			if (ftruncate(w->fd, 0) < 0) {
			}
			return rc;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The temp file holds every byte written (write(2), no buffer of ours). */
static ssize_t fs_writer_pread(struct store_writer *h, void *buf, size_t len,
			       uint64_t offset)
{
	struct fs_writer *w = (struct fs_writer *)h;
	for (;;) {
		ssize_t n = pread(w->fd, buf, len, (off_t)offset);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return fs_err(errno);
	}
}

/* Rename TMP onto LEAF without replacing: renameat2 where the filesystem
 * has it, else link + unlink (link(2) never replaces either). */
static int rename_noreplace(int fromdir, const char *from, int todir,
			    const char *to)
{
	if (renameat2(fromdir, from, todir, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (linkat(fromdir, from, todir, to, 0) < 0)
		return -1;
	unlinkat(fromdir, from, 0);
	return 0;
}

/* Make the temp file whole and durable: the client's mtime, the content
 * type CTYPE (NULL: none) as an xattr, fsync, close. 0 or a store_error. */
static int fs_writer_seal(struct fs_writer *w, const char *ctype)
{
	int rc = 0;
	if (w->mtime) {
		struct timespec ts[2] = { { .tv_sec = w->mtime },
					  { .tv_sec = w->mtime } };
		if (futimens(w->fd, ts) < 0)
			rc = fs_err(errno);
	}
	if (!rc && ctype &&
	    fsetxattr(w->fd, FS_XATTR_CTYPE, ctype, strlen(ctype), 0) < 0 &&
	    errno != ENOTSUP && errno != EOPNOTSUPP)
		rc = fs_err(errno);
	if (!rc && fsync(w->fd) < 0)
		rc = fs_err(errno);
	if (!rc) {
		int fd = w->fd;
		w->fd = -1;
		if (close(fd) < 0)
			rc = fs_err(errno);
	}
	return rc;
}

static int fs_writer_commit(struct store_writer *h)
{
	struct fs_writer *w = (struct fs_writer *)h;
	int rc = 0;
	rc = fs_writer_seal(w, w->ctype[0] ? w->ctype : NULL);
	if (!rc) {
		int r = w->exclusive ? rename_noreplace(w->dirfd, w->tmp,
							w->dirfd, w->leaf)
				     : renameat(w->dirfd, w->tmp, w->dirfd,
						w->leaf);
		if (r < 0)
			rc = fs_err(errno);
	}
	if (rc < 0) {
		fs_writer_discard(w);
		return rc;
	}
	/* The rename is durable once the directory is. */
	if (fsync(w->dirfd) < 0 && errno != EINVAL)
		rc = fs_err(errno);
	close(w->dirfd);
	free(w);
	return rc;
}

static void fs_writer_abort(struct store_writer *h)
{
	fs_writer_discard((struct fs_writer *)h);
}

/* A staged writer: its temp file sits at the location's root until
 * commit_as names it. */
static int fs_writer_open_staged(struct store *st,
				 const struct store_put_opts *opts,
				 struct store_writer **out)
{
	struct fs_writer *w = calloc(1, sizeof *w);
	if (!w)
		return STORE_ENOMEM;
	w->h.be = &store_fs_backend;
	w->dirfd = fcntl(fs_of(st)->rootfd, F_DUPFD_CLOEXEC, 0);
	if (w->dirfd < 0) {
		free(w);
		return fs_err(errno);
	}
	w->mtime = opts->mtime;
	if (opts->content_type)
		snprintf(w->ctype, sizeof w->ctype, "%s", opts->content_type);
	w->fd = make_temp(w->dirfd, w->tmp, sizeof w->tmp);
	if (w->fd < 0) {
		int rc = fs_err(errno);
		close(w->dirfd);
		free(w);
		return rc;
	}
	*out = &w->h;
	return 0;
}

static ssize_t fd_read(void *arg, void *buf, size_t cap)
{
	int fd = *(int *)arg;
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? fs_err(errno) : n;
	}
}

/* Copy the sealed temp file into NAME of DST through a writer: DST is on
 * another filesystem or backend. */
static int fs_stream_temp(struct fs_writer *w, struct store *dst,
			  const char *name, const char *ctype)
{
	int fd = openat(w->dirfd, w->tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fs_err(errno);
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int rc = fs_err(errno);
		close(fd);
		return rc;
	}
	struct store_put_opts po = { .mtime = w->mtime, .content_type = ctype };
	int rc = store_stream_into(fd_read, &fd, (uint64_t)sb.st_size, dst,
				   name, &po);
	close(fd);
	return rc;
}

static int fs_writer_commit_as(struct store_writer *h, struct store *dst,
			       const char *name)
{
	struct fs_writer *w = (struct fs_writer *)h;
	int rc = 0;
	/* The type kept as an xattr only when it is not the one the final
	 * name's extension gives anyway. */
	const char *ctype = w->ctype[0] ? w->ctype : NULL;
	if (ctype && strcmp(ctype, store_content_type(name)) == 0)
		ctype = NULL;
	rc = fs_writer_seal(w, dst->be == &store_fs_backend ? ctype : NULL);
	int todir = -1, streamed = dst->be != &store_fs_backend;
	if (!rc && !streamed) {
		const char *leaf;
		todir = fs_parent(fs_of(dst), name, 1, &leaf);
		struct stat sb;
		if (todir < 0)
			rc = todir;
		else if (fstatat(todir, leaf, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			 !S_ISREG(sb.st_mode))
			/* as a writer: never replace a directory or a link */
			rc = S_ISDIR(sb.st_mode) ? STORE_EISDIR : STORE_EACCES;
		else if (renameat(w->dirfd, w->tmp, todir, leaf) < 0) {
			if (errno == EXDEV)
				streamed = 1; /* another filesystem */
			else
				rc = fs_err(errno);
		}
	}
	if (!rc && streamed)
		rc = fs_stream_temp(w, dst, name, ctype);
	if (!rc && !streamed && fsync(todir) < 0 && errno != EINVAL)
		rc = fs_err(errno);
	if (todir >= 0)
		close(todir);
	/* After a rename the temp name is gone; after a streamed copy or a
	 * failure it goes now. */
	unlinkat(w->dirfd, w->tmp, 0);
	close(w->dirfd);
	free(w);
	return rc;
}

/* ---- listing --------------------------------------------------------- */

/* One directory's matching entries: names packed in ARENA (a directory's
 * name stored with its trailing '/'), OFFS indexing them. */
struct dirents {
	char *arena;
	size_t used, cap;
	uint32_t *offs;
	size_t n, ncap;
};

static void dirents_free(struct dirents *d)
{
	free(d->arena);
	free(d->offs);
}

static int dirents_add(struct dirents *d, const char *name, size_t len,
		       int is_dir)
{
	size_t need = len + (is_dir ? 1 : 0) + 1;
	if (d->used + need > d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 4096;
		while (cap < d->used + need)
			cap *= 2;
		if (cap > UINT32_MAX)
			return STORE_ENOMEM;
		char *a = realloc(d->arena, cap);
		if (!a)
			return STORE_ENOMEM;
		d->arena = a;
		d->cap = cap;
	}
	if (d->n == d->ncap) {
		size_t ncap = d->ncap ? d->ncap * 2 : 256;
		uint32_t *o = realloc(d->offs, ncap * sizeof *o);
		if (!o)
			return STORE_ENOMEM;
		d->offs = o;
		d->ncap = ncap;
	}
	d->offs[d->n++] = (uint32_t)d->used;
	memcpy(d->arena + d->used, name, len);
	d->used += len;
	if (is_dir)
		d->arena[d->used++] = '/';
	d->arena[d->used++] = '\0';
	return 0;
}

static int cmp_offs(const void *a, const void *b, void *arena)
{
	/* strcmp compares as unsigned char: byte order, like S3 keys */
	return strcmp((const char *)arena + *(const uint32_t *)a,
		      (const char *)arena + *(const uint32_t *)b);
}

/* Read DIRFD's entries whose name starts with PART into D, sorted. */
static int dirents_read(int dirfd, const char *part, struct dirents *d)
{
	DIR *dir = read_dir(dirfd);
	if (!dir)
		return fs_err(errno);
	size_t pl = strlen(part);
	int rc = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(dir);
		if (!de) {
			if (errno)
				rc = fs_err(errno);
			break;
		}
		const char *nm = de->d_name;
		if (strncmp(nm, part, pl) != 0)
			continue;
		if (!strncmp(nm, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN) ||
		    !store_segment_valid(nm))
			continue; /* temp files, ".", "..", unaddressable */
		int is_dir;
		if (de->d_type == DT_DIR)
			is_dir = 1;
		else if (de->d_type == DT_REG)
			is_dir = 0;
		else if (de->d_type == DT_UNKNOWN) {
			struct stat sb;
			if (fstatat(dirfd, nm, &sb, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (S_ISDIR(sb.st_mode))
				is_dir = 1;
			else if (S_ISREG(sb.st_mode))
				is_dir = 0;
			else
				continue;
		} else {
			continue; /* symlinks, devices, fifos, sockets */
		}
		rc = dirents_add(d, nm, strlen(nm), is_dir);
		if (rc < 0)
			break;
	}
	closedir(dir);
	if (rc == 0 && d->n > 1)
		qsort_r(d->offs, d->n, sizeof *d->offs, cmp_offs, d->arena);
	return rc;
}

struct walk {
	char delim;
	const char *start_after;
	store_list_cb cb;
	void *arg;
	char name[STORE_NAME_MAX + 256]; /* the full name being built */
};

/* Report D's entries from *POS on (advancing it), as store_list does. */
static int walk_entries(struct walk *wk, int dirfd, size_t base,
			const struct dirents *d, size_t *pos, int depth);

static int walk_dir(struct walk *wk, int dirfd, size_t base, const char *part,
		    int depth)
{
	if (depth > FS_MAX_DEPTH)
		return STORE_EINVAL;
	struct dirents d = { 0 };
	size_t pos = 0;
	int rc = dirents_read(dirfd, part, &d);
	if (rc == 0)
		rc = walk_entries(wk, dirfd, base, &d, &pos, depth);
	dirents_free(&d);
	return rc;
}

static int walk_entries(struct walk *wk, int dirfd, size_t base,
			const struct dirents *d, size_t *pos, int depth)
{
	int rc = 0;
	while (rc == 0 && *pos < d->n) {
		const char *ent = d->arena + d->offs[(*pos)++];
		size_t el = strlen(ent);
		int is_dir = ent[el - 1] == '/';
		if (base + el >= STORE_NAME_MAX)
			continue; /* too long to be a name: unaddressable */
		memcpy(wk->name + base, ent, el + 1);
		const char *sa = wk->start_after;
		/* A directory whose every name sorts at or before START_AFTER
		 * is skipped whole; one that contains START_AFTER is entered
		 * (recursive) or reported again (delimited). */
		if (sa && strcmp(wk->name, sa) <= 0 &&
		    !(is_dir && strncmp(sa, wk->name, base + el) == 0 &&
		      sa[base + el] != '\0'))
			continue;
		/* the entry's own name, without the '/' */
		char leaf[256];
		memcpy(leaf, ent, el - (size_t)is_dir);
		leaf[el - (size_t)is_dir] = '\0';
		struct stat sb;
		if (fstatat(dirfd, leaf, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* vanished since the readdir */
		if (is_dir != !!S_ISDIR(sb.st_mode))
			continue; /* replaced by something else meanwhile */
		if (is_dir && wk->delim == 0) {
			int sub = openat(dirfd, leaf,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
			if (sub < 0) {
				if (errno == ENOENT)
					continue;
				rc = fs_err(errno);
				break;
			}
			rc = walk_dir(wk, sub, base + el, "", depth + 1);
			close(sub);
			continue;
		}
		struct store_entry e = {
			.name = wk->name,
			.is_dir = is_dir,
			.size = is_dir ? 0 : (uint64_t)sb.st_size,
			.mtime = sb.st_mtim.tv_sec,
			.mtime_is_client = 1,
		};
		char etag[STORE_ETAG_MAX] = "";
		if (!is_dir)
			fill_etag(etag, &sb);
		e.etag = etag;
		rc = wk->cb(wk->arg, &e);
	}
	return rc;
}

/* Open the directory PREFIX lists into *DIRFD (-1 for a listing that is
 * empty) and put its path into WK->name (its length in *BASE); *PART is
 * what the names in it must start with. */
static int list_begin(struct fs *fs, const char *prefix, struct walk *wk,
		      size_t *base, const char **part, int *dirfd)
{
	*dirfd = -1;
	*base = 0;
	wk->name[0] = '\0';
	if (is_reserved(prefix))
		return 0;
	char dir[STORE_NAME_MAX];
	const char *slash = strrchr(prefix, '/');
	size_t dl = slash ? (size_t)(slash - prefix) : 0;
	memcpy(dir, prefix, dl);
	dir[dl] = '\0';
	*part = slash ? slash + 1 : prefix;
	*dirfd = fs_opendir(fs, dir);
	if (*dirfd < 0) {
		/* Like S3: listing a prefix nobody has is empty. */
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return fs_err(errno);
	}
	if (dl) {
		memcpy(wk->name, dir, dl);
		wk->name[dl] = '/';
		*base = dl + 1;
	}
	wk->name[*base] = '\0';
	return 0;
}

static int fs_list(struct store *st, const char *prefix, char delim,
		   const char *start_after, store_list_cb cb, void *arg)
{
	struct walk *wk = malloc(sizeof *wk);
	if (!wk)
		return STORE_ENOMEM;
	wk->delim = delim;
	wk->start_after = start_after;
	wk->cb = cb;
	wk->arg = arg;
	size_t base;
	const char *part;
	int dirfd;
	int rc = list_begin(fs_of(st), prefix, wk, &base, &part, &dirfd);
	if (rc == 0 && dirfd >= 0) {
		rc = walk_dir(wk, dirfd, base, part, 0);
		close(dirfd);
	}
	free(wk);
	return rc;
}

/* A store_lister cursor: the directory read and sorted once, at open, and
 * walked a page at a time, so a paged listing of N names costs one read
 * and one sort, not one per page. The names stay in memory while the
 * listing is open (about 12 bytes plus the name each: ~5 MiB for
 * 100,000 40-byte names, once per open listing). */
struct fs_cursor {
	struct walk wk;
	int dirfd;                      /* -1: an empty listing */
	size_t base;
	struct dirents d;
	size_t pos;
};

static int fs_list_open(struct store *st, const char *prefix, void **out)
{
	struct fs_cursor *c = calloc(1, sizeof *c);
	if (!c)
		return STORE_ENOMEM;
	c->wk.delim = '/';
	const char *part;
	int rc = list_begin(fs_of(st), prefix, &c->wk, &c->base, &part,
			    &c->dirfd);
	if (rc == 0 && c->dirfd >= 0)
		rc = dirents_read(c->dirfd, part, &c->d);
	if (rc < 0) {
		if (c->dirfd >= 0)
			close(c->dirfd);
		dirents_free(&c->d);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int fs_list_next(void *cur, store_list_cb cb, void *arg)
{
	struct fs_cursor *c = cur;
	c->wk.cb = cb;
	c->wk.arg = arg;
	return walk_entries(&c->wk, c->dirfd, c->base, &c->d, &c->pos, 0);
}

static void fs_list_close(void *cur)
{
	struct fs_cursor *c = cur;
	if (c->dirfd >= 0)
		close(c->dirfd);
	dirents_free(&c->d);
	free(c);
}

/* ---- namespace ------------------------------------------------------- */

/* The parent directory of NAME (created first when CREATE), with the
 * leaf's name in *LEAF; a temp file's name is RESERVED_RC. */
static int leaf_parent(struct store *st, const char *name, int create,
		       int reserved_rc, const char **leaf)
{
	if (is_reserved(name))
		return reserved_rc;
	return fs_parent(fs_of(st), name, create, leaf);
}

static int fs_delete(struct store *st, const char *name)
{
	const char *leaf;
	int dirfd = leaf_parent(st, name, 0, STORE_ENOENT, &leaf);
	if (dirfd < 0)
		return dirfd;
	int rc = unlinkat(dirfd, leaf, 0) < 0 ? fs_err(errno) : 0;
	close(dirfd);
	return rc;
}

static int fs_mkdir(struct store *st, const char *name)
{
	const char *leaf;
	int dirfd = leaf_parent(st, name, 1, STORE_EINVAL, &leaf);
	if (dirfd < 0)
		return dirfd;
	int rc = mkdirat(dirfd, leaf, 0755) < 0 ? fs_err(errno) : 0;
	close(dirfd);
	return rc;
}

/* Remove the temp files in directory FD ("abandoned" writes into a
 * directory being removed). Returns 1 if the directory held nothing else. */
static int only_temps_removed(int fd)
{
	DIR *dir = read_dir(fd);
	if (!dir)
		return 0;
	int only = 1;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strncmp(de->d_name, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN) != 0)
			only = 0;
	}
	if (only) {
		rewinddir(dir);
		while ((de = readdir(dir)) != NULL)
			if (!strncmp(de->d_name, FS_TMP_PREFIX,
				     FS_TMP_PREFIX_LEN))
				unlinkat(fd, de->d_name, 0);
	}
	closedir(dir);
	return only;
}

static int fs_rmdir(struct store *st, const char *name)
{
	const char *leaf;
	int dirfd = leaf_parent(st, name, 0, STORE_ENOENT, &leaf);
	if (dirfd < 0)
		return dirfd;
	int rc = 0;
	if (unlinkat(dirfd, leaf, AT_REMOVEDIR) < 0) {
		int e = errno;
		if (e == ENOTEMPTY || e == EEXIST) {
			/* Listings hide temp files, so a directory that holds
			 * only those looks empty: remove them and retry. A
			 * writer still using one fails at commit. */
			int sub = openat(dirfd, leaf,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
			if (sub >= 0 && only_temps_removed(sub) &&
			    unlinkat(dirfd, leaf, AT_REMOVEDIR) == 0)
				e = 0;
			else if (sub >= 0)
				e = ENOTEMPTY;
			if (sub >= 0)
				close(sub);
		}
		if (e)
			rc = fs_err(e);
	}
	close(dirfd);
	return rc;
}

static int fs_rename(struct store *st, const char *from, const char *to,
		     int noreplace)
{
	struct fs *fs = fs_of(st);
	if (is_reserved(from))
		return STORE_ENOENT;
	if (is_reserved(to))
		return STORE_EINVAL;
	const char *fleaf, *tleaf;
	int fdir = fs_parent(fs, from, 0, &fleaf);
	if (fdir < 0)
		return fdir;
	/* Check the source before creating the target's parents. */
	struct stat sb;
	if (fstatat(fdir, fleaf, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		int rc = fs_err(errno);
		close(fdir);
		return rc;
	}
	if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
		close(fdir);
		return STORE_EACCES;
	}
	int tdir = fs_parent(fs, to, 1, &tleaf);
	if (tdir < 0) {
		close(fdir);
		return tdir;
	}
	int r;
	if (noreplace)
		r = S_ISDIR(sb.st_mode)
			    ? renameat2(fdir, fleaf, tdir, tleaf,
					RENAME_NOREPLACE)
			    : rename_noreplace(fdir, fleaf, tdir, tleaf);
	else
		r = renameat(fdir, fleaf, tdir, tleaf);
	int rc = r < 0 ? fs_err(errno) : 0;
	if (rc == 0) {
		fsync(tdir);
		fsync(fdir);
	}
	close(fdir);
	close(tdir);
	return rc;
}

/* Copy between two fs stores: into a temp file beside the target with
 * copy_file_range (reflinks or in-kernel copies where the filesystem can),
 * then the usual atomic commit. */
static int fs_copy(struct store *src, const char *from, struct store *dst,
		   const char *to)
{
	if (is_reserved(from))
		return STORE_ENOENT;
	int in = fs_open_existing(fs_of(src), from);
	if (in < 0)
		return fs_err(errno);
	struct store_stat ss;
	int rc = fill_stat(in, from, &ss);
	if (rc == 0 && ss.is_dir)
		rc = STORE_EISDIR;
	if (rc < 0) {
		close(in);
		return rc;
	}
	fcntl(in, F_SETFL, fcntl(in, F_GETFL) & ~O_NONBLOCK);
	struct store_put_opts po = {
		.mtime = ss.mtime,
		.content_type = ss.content_type,
		.size_hint = ss.size,
	};
	struct fs_writer *w;
	rc = fs_writer_new(dst, to, &po, &w);
	if (rc < 0) {
		close(in);
		return rc;
	}
	uint64_t done = 0;
	int use_cfr = 1;
	char *buf = NULL;
	while (done < ss.size && rc == 0) {
		size_t want = ss.size - done > FS_COPY_CHUNK
				      ? FS_COPY_CHUNK
				      : (size_t)(ss.size - done);
		ssize_t n;
		if (use_cfr) {
			off_t ioff = (off_t)done;
			n = copy_file_range(in, &ioff, w->fd, NULL, want, 0);
			if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
				      errno == EINVAL || errno == EOPNOTSUPP)) {
				use_cfr = 0;
				continue;
			}
		} else {
			if (!buf && !(buf = aligned_alloc(4096, FS_COPY_CHUNK))) {
				rc = STORE_ENOMEM;
				break;
			}
			n = pread(in, buf, want, (off_t)done);
			if (n > 0)
				rc = fs_writer_write(&w->h, buf, (size_t)n);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = fs_err(errno);
		else if (n == 0)
			rc = STORE_EIO; /* the source shrank */
		else
			done += (uint64_t)n;
	}
	free(buf);
	close(in);
	if (rc < 0) {
		fs_writer_discard(w);
		return rc;
	}
	return fs_writer_commit(&w->h);
}

static int fs_statfs(struct store *st, uint64_t *total, uint64_t *avail)
{
	struct statvfs sv;
	if (fstatvfs(fs_of(st)->rootfd, &sv) < 0)
		return fs_err(errno);
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

static int cleanup_dir(int dirfd, time_t cutoff, int depth)
{
	if (depth > FS_MAX_DEPTH)
		return 0;
	DIR *dir = read_dir(dirfd);
	if (!dir)
		return 0;
	int removed = 0;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		const char *nm = de->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		struct stat sb;
		if (fstatat(dirfd, nm, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			int sub = openat(dirfd, nm,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
			if (sub >= 0) {
				removed += cleanup_dir(sub, cutoff, depth + 1);
				close(sub);
			}
		} else if (S_ISREG(sb.st_mode) &&
			   !strncmp(nm, FS_TMP_PREFIX, FS_TMP_PREFIX_LEN) &&
			   sb.st_mtim.tv_sec <= cutoff) {
			/* Only a file whose writer is gone: a live writer
			 * holds its flock (see make_temp). */
			int tfd = openat(dirfd, nm,
					 O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
						 O_CLOEXEC);
			if (tfd < 0)
				continue;
			if (flock(tfd, LOCK_EX | LOCK_NB) == 0 &&
			    unlinkat(dirfd, nm, 0) == 0)
				removed++;
			close(tfd);
		}
	}
	closedir(dir);
	return removed;
}

static int fs_cleanup(struct store *st, int min_age)
{
	return cleanup_dir(fs_of(st)->rootfd, time(NULL) - min_age, 0);
}

const struct store_backend store_fs_backend = {
	.scheme = "file",
	.open = fs_open,
	.close = fs_close,
	.stat = fs_stat,
	.set_mtime = fs_set_mtime,
	.reader_open = fs_reader_open,
	.reader_read = fs_reader_read,
	.reader_fd = fs_reader_fd,
	.reader_close = fs_reader_close,
	.writer_open = fs_writer_open,
	.writer_write = fs_writer_write,
	.writer_commit = fs_writer_commit,
	.writer_abort = fs_writer_abort,
	.writer_pread = fs_writer_pread,
	.writer_open_staged = fs_writer_open_staged,
	.writer_commit_as = fs_writer_commit_as,
	.list = fs_list,
	.list_open = fs_list_open,
	.list_next = fs_list_next,
	.list_close = fs_list_close,
	.delete_object = fs_delete,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.rename = fs_rename,
	.copy = fs_copy,
	.statfs = fs_statfs,
	.cleanup = fs_cleanup,
};
