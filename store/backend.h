/*
 * backend.h - private to store/: the table each storage backend fills in.
 *
 * store.c validates names and arguments, then calls the backend through this
 * table; fs.c and s3.c each define one `const struct store_backend`. A
 * backend's reader and writer structs embed the headers below as their first
 * member, so store.c can dispatch on them.
 */
#ifndef ASSETD_STORE_BACKEND_H
#define ASSETD_STORE_BACKEND_H

#include "store.h"

struct store_backend;

struct store {
	const struct store_backend *be;
	char url[STORE_URL_MAX];        /* normalised, ends in '/' */
	void *impl;                     /* the backend's own state */
	struct store_meter meter;       /* usage accounting; account NULL =
					   none (store_set_meter) */
};

struct store_reader {
	const struct store_backend *be; /* first member of a backend reader */
};

struct store_writer {
	const struct store_backend *be; /* first member of a backend writer */
	uint64_t size;                  /* bytes accepted so far (store.c) */
	int dead;                       /* a write failed: only abort remains */
	int staged;                     /* opened by store_writer_open_staged:
					   only commit_as or abort end it */
	int has_md5;                    /* store_writer_set_md5() was called */
	unsigned char md5[16];          /* ... with this MD5 of every byte */
	/* Accounting (store.c), when the store has a meter: */
	struct store *st;               /* the metered store, else NULL */
	char *name;                     /* the object's name (malloc'd) */
	int64_t old_size;               /* size of the object replaced, -1 */
	uint64_t limit;                 /* most bytes the quota allows */
};

struct store_backend {
	const char *scheme;             /* "file" or "s3" */
	/* URL_REST is what follows "scheme://" ("/srv/x/" or "bucket/p/"). */
	int (*open)(struct store *st, const char *url_rest,
		    const struct store_opts *opts);
	void (*close)(struct store *st);

	int (*stat)(struct store *st, const char *name, struct store_stat *out);
	/* Optional: the size of object NAME only (no directory probing);
	 * STORE_ENOENT if there is no such object. store.c uses stat when
	 * a backend leaves it NULL. */
	int (*object_size)(struct store *st, const char *name, uint64_t *out);
	int (*set_mtime)(struct store *st, const char *name, int64_t mtime);

	int (*reader_open)(struct store *st, const char *name, uint64_t offset,
			   uint64_t len, struct store_reader **out,
			   struct store_stat *out_stat);
	ssize_t (*reader_read)(struct store_reader *r, void *buf, size_t cap);
	int (*reader_fd)(struct store_reader *r);
	void (*reader_close)(struct store_reader *r);

	int (*writer_open)(struct store *st, const char *name,
			   const struct store_put_opts *opts,
			   struct store_writer **out);
	int (*writer_write)(struct store_writer *w, const void *buf,
			    size_t len);
	int (*writer_commit)(struct store_writer *w);
	void (*writer_abort)(struct store_writer *w);
	/* Optional: read back bytes already written (store_writer_pread);
	 * NULL where the backend keeps no copy (S3 sends parts away). */
	ssize_t (*writer_pread)(struct store_writer *w, void *buf, size_t len,
				uint64_t offset);
	/* Staged writes (store_writer_open_staged / _commit_as). DST may be
	 * a store of another backend. */
	int (*writer_open_staged)(struct store *st,
				  const struct store_put_opts *opts,
				  struct store_writer **out);
	int (*writer_commit_as)(struct store_writer *w, struct store *dst,
				const char *name);

	int (*list)(struct store *st, const char *prefix, char delim,
		    const char *start_after, store_list_cb cb, void *arg);
	/* Optional cursor for store_lister (one level, DELIM '/'); without
	 * it store.c pages with list() and start_after. */
	int (*list_open)(struct store *st, const char *prefix, void **cur);
	int (*list_next)(void *cur, store_list_cb cb, void *arg);
	void (*list_close)(void *cur);
	/* Optional: every name below PREFIX, directory markers included
	 * (store_list_tree); NULL: store.c walks the levels with list(). */
	int (*list_tree)(struct store *st, const char *prefix,
			 store_list_cb cb, void *arg);
	/* Optional: 1 if list() with DELIM '/' reads every name below the
	 * prefix anyway (store_list_reads_tree); NULL: 0. */
	int (*list_reads_tree)(struct store *st);
	int (*delete_object)(struct store *st, const char *name);
	int (*mkdir)(struct store *st, const char *name);
	/* Optional: mkdir of a name known absent under an existing parent
	 * (store_mkdir_new); NULL: store.c calls mkdir. */
	int (*mkdir_new)(struct store *st, const char *name);
	int (*rmdir)(struct store *st, const char *name);
	int (*rename)(struct store *st, const char *from, const char *to,
		      int noreplace);
	/* Server-side copy within this backend; may return STORE_EINVAL when
	 * it cannot (different endpoints): store.c then streams the copy. */
	int (*copy)(struct store *src, const char *from, struct store *dst,
		    const char *to);
	/* Optional: copy with the source's SIZE known (store_copy_sized);
	 * the same contract as copy. NULL: store.c calls copy. */
	int (*copy_sized)(struct store *src, const char *from,
			  struct store *dst, const char *to, uint64_t size);
	int (*statfs)(struct store *st, uint64_t *total, uint64_t *avail);
	int (*cleanup)(struct store *st, int min_age);
};

/* A source of bytes for store_stream_into: bytes read (> 0), 0 at the
 * end, or a store_error. */
typedef ssize_t (*store_read_fn)(void *arg, void *buf, size_t cap);

/* Stream EXPECT bytes from RD into a new object NAME of DST (through the
 * public writer, so DST may be any backend), and commit it. Fails with
 * STORE_EIO if RD ends early or gives more. For staged writers whose
 * final store cannot take a rename or a server-side copy. */
int store_stream_into(store_read_fn rd, void *arg, uint64_t expect,
		      struct store *dst, const char *name,
		      const struct store_put_opts *opts);

/* ---- the journal of multipart uploads (store/upjournal.c) ---------- */

/* How to reach one multipart upload again: every string non-NULL ("" when
 * unset). */
struct store_journal_entry {
	const char *bucket;
	const char *endpoint;           /* custom endpoint URL, or "" */
	const char *region;
	const char *profile;
	int path_style;                 /* as in struct store_opts */
	const char *key;                /* the full key (prefix included) */
	const char *upload_id;
};

/* Journal an upload that S3 has just created. Returns the entry's locked
 * fd (kept open until store_journal_end) and its PATH, or -1 when the
 * journal is off or could not be written (logged; the upload goes on). */
int store_journal_begin(const struct store_journal_entry *e, char *path,
			size_t pathlen);

/* The upload was completed or aborted: remove its entry. FD may be -1. */
void store_journal_end(int fd, const char *path);

/* AbortMultipartUpload of KEY (full key) on an s3:// store; CODE gets S3's
 * error code on failure. Returns 0 or a store_error. */
int store_s3_abort_upload(struct store *st, const char *key,
			  const char *upload_id, char *code, size_t codelen);

extern const struct store_backend store_fs_backend;
extern const struct store_backend store_s3_backend;

#endif
