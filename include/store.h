/*
 * store.h - locations, object names and the storage backend interface.
 *
 * A location is a URL naming a folder: "file:///srv/assets/kufish/" or
 * "s3://bucket/prefix/". Everything that persists a client's files goes
 * through a struct store opened on one location; object names below it are
 * relative, '/'-separated, and never leave it (see store_name_valid()).
 *
 * Both backends (store/fs.c, store/s3.c) give the same semantics:
 *  - writes are atomic: a reader sees the old object or the whole new one;
 *  - reads and writes stream with bounded memory;
 *  - directories are real directories (fs) or "name/" markers plus common
 *    prefixes (s3);
 *  - errors are the typed STORE_E* values below, never errno leaking out.
 *
 * Thread safety: a struct store may be used by many threads at once.
 * A reader or writer belongs to one thread at a time.
 */
#ifndef ASSETD_STORE_H
#define ASSETD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Typed errors. Every store_ function returns 0 (or a count) on success and
 * one of these (all negative) on failure. */
enum store_error {
	STORE_OK = 0,
	STORE_ENOENT = -1,      /* no such object or directory */
	STORE_EACCES = -2,      /* denied by the backend (403, EACCES, EPERM) */
	STORE_EEXIST = -3,      /* already exists (exclusive create, mkdir) */
	STORE_ENOTEMPTY = -4,   /* rmdir of a non-empty directory/prefix */
	STORE_ENOSPC = -5,      /* disk full / quota at the backend */
	STORE_ETHROTTLED = -6,  /* backend kept throttling after the retries */
	STORE_EUNAVAIL = -7,    /* backend unreachable / 5xx after the retries */
	STORE_EINVAL = -8,      /* invalid name, location or argument */
	STORE_EIO = -9,         /* any other I/O failure, or a bad reply */
	STORE_ENOTDIR = -10,    /* a path component is an object, not a dir */
	STORE_EISDIR = -11,     /* the name is a directory */
	STORE_ENOMEM = -12,     /* allocation failed */
	STORE_EAUTH = -13,      /* no usable credentials, or signature refused */
	STORE_ETOOBIG = -14,    /* beyond a backend limit (S3's 5 TiB) */
	STORE_ECANCELED = -15,  /* aborted by the caller */
	STORE_EQUOTA = -16,     /* the client's quota (bytes or objects)
				   would be exceeded: nothing was stored */
};

/* A short human text for a store_error ("no such file", ...). Static. */
const char *store_strerror(int err);

/* Maximum lengths, including the NUL. S3 keys are at most 1,024 bytes. */
#define STORE_NAME_MAX 1025
#define STORE_URL_MAX 2048
#define STORE_ETAG_MAX 80
#define STORE_CTYPE_MAX 128

/* How to reach an S3 location. Ignored for file:// locations. Every pointer
 * may be NULL: then AWS's defaults apply (virtual-hosted AWS endpoints, the
 * region from AWS_REGION / AWS_DEFAULT_REGION or us-east-1, credentials in
 * AWS's order: environment, shared credentials file + AWS_PROFILE, IMDSv2).
 * The environment variable ASSETD_S3_PART_SIZE (bytes, at least 5 MiB)
 * overrides the S3 backend's starting part size, which is also its
 * single-PUT threshold: the conformance suite (tests/integration/
 * test_store.py) sets it so that its "3-part" objects are three parts. */
struct store_opts {
	const char *endpoint;   /* "http://127.0.0.1:4569" or NULL for AWS */
	const char *region;     /* S3 region name, "us-east-1" */
	const char *profile;    /* shared-credentials profile name, or NULL */
	int path_style;         /* 1 path-style, 0 virtual-hosted, -1 auto
				   (auto: path-style iff a custom endpoint) */
	int max_retries;        /* tries for idempotent requests; 0 = default 5 */
	int timeout_seconds;    /* per-request stall timeout; 0 = default 60 */
};

/* One opened location. Opaque. */
struct store;

/* Open a location URL. The URL must be file:///absolute/path[/] or
 * s3://bucket[/prefix[/]]. A file:// location's directory must exist.
 * Nothing is contacted for S3 until the first request. */
int store_open(const char *url, const struct store_opts *opts,
	       struct store **out);
void store_close(struct store *st);

/* The normalised URL of the location (always ends in '/'). */
const char *store_url(const struct store *st);

/* 1 if the location is on S3, 0 for the filesystem. */
int store_is_s3(const struct store *st);

/* ---- names ---------------------------------------------------------- */

/* 1 if NAME is a valid object name: non-empty, no leading or trailing '/',
 * no empty, "." or ".." segment, no NUL/control characters, no backslash,
 * at most STORE_NAME_MAX-1 bytes, each segment at most 255 bytes, valid
 * UTF-8. A trailing '/' is allowed only where a function says so. */
int store_name_valid(const char *name);

/* 1 if SEG is a valid single path segment (a name with no '/'), the rule
 * Specify stored names and client names follow. */
int store_segment_valid(const char *seg);

/* Resolve a client-visible PATH against the current directory CWD (both
 * absolute in the client's virtual tree, '/' = the root), collapsing ".",
 * ".." and repeated '/'. ".." above the root stays at the root, as
 * POSIX does for "/..". Writes the result, always absolute and without a
 * trailing '/' (except "/" itself), to OUT. Returns 0, or STORE_EINVAL for
 * NUL/control characters, overlong results or invalid segments. This is the
 * one place where client paths are normalised. */
int store_path_resolve(const char *cwd, const char *path, char *out,
		       size_t outlen);

/* Join a location-relative directory and a name: "a/b" + "c" -> "a/b/c",
 * "" + "c" -> "c". Returns 0 or STORE_EINVAL if it does not fit. */
int store_name_join(const char *dir, const char *name, char *out,
		    size_t outlen);

/* ---- metadata ------------------------------------------------------- */

struct store_stat {
	uint64_t size;          /* bytes; 0 for directories */
	int64_t mtime;          /* unix seconds: the client's mtime when one
				   was set (x-amz-meta-mtime / file mtime),
				   else the backend's last-modified */
	int is_dir;             /* 1 for a directory (fs) or prefix (s3) */
	char etag[STORE_ETAG_MAX];      /* without quotes; "" if unknown */
	char content_type[STORE_CTYPE_MAX]; /* "" if unknown */
};

/* Stat NAME. NAME may be "" for the location's root (always a dir). On S3 a
 * name is a directory if "NAME/" exists or any key starts with "NAME/". */
int store_stat(struct store *st, const char *name, struct store_stat *out);

/* Set the client's mtime of an existing object (S3: copy onto itself with
 * replaced metadata; fs: utimensat). Directories: no-op success on S3. */
int store_set_mtime(struct store *st, const char *name, int64_t mtime);

/* ---- reading -------------------------------------------------------- */

struct store_reader;

/* Open NAME for reading LEN bytes from OFFSET (LEN = UINT64_MAX: to the end).
 * OUT_STAT, if not NULL, receives the object's stat. Reading past the end
 * simply ends early. S3: one ranged GET streamed through a bounded buffer. */
int store_reader_open(struct store *st, const char *name, uint64_t offset,
		      uint64_t len, struct store_reader **out,
		      struct store_stat *out_stat);

/* Read up to CAP bytes. Returns bytes read (> 0), 0 at the end of the
 * range, or a store_error. */
ssize_t store_reader_read(struct store_reader *r, void *buf, size_t cap);

/* For fs: an fd positioned nowhere in particular, usable with pread() or
 * sendfile() for the object's bytes; -1 for S3. Owned by the reader. */
int store_reader_fd(struct store_reader *r);

void store_reader_close(struct store_reader *r);

/* Convenience: read [OFFSET, OFFSET+LEN) into BUF (at most LEN bytes).
 * Returns bytes read or a store_error. */
ssize_t store_pread(struct store *st, const char *name, void *buf,
		    size_t len, uint64_t offset);

/* ---- writing -------------------------------------------------------- */

struct store_put_opts {
	int64_t mtime;          /* client mtime to keep; 0 = none (now) */
	const char *content_type; /* NULL: from the name's extension */
	uint64_t size_hint;     /* expected total size, 0 = unknown; lets S3
				   pick a part size that fits 10,000 parts */
	int exclusive;          /* 1: fail with STORE_EEXIST if NAME exists */
	int size_exact;         /* 1: size_hint is exactly the size to come
				   (scp's and rsync's announced sizes), so a
				   metered store refuses at open, with
				   STORE_EQUOTA, what cannot fit */
	int old_known;          /* 1: old_size is what NAME holds now, as a
				   listing the caller just made shows it, so a
				   metered store does not look it up again
				   (one HEAD per file on S3) */
	int64_t old_size;       /* with old_known: the size of the object
				   this write replaces, or -1 for none */
};

struct store_writer;

/* Begin writing NAME. Nothing is visible until store_writer_commit().
 * Parent directories are created as needed on fs; on S3 nothing is needed.
 * fs: a hidden temp file in the target directory; s3: a single PUT for
 * small objects, else a multipart upload whose parts are sent as they fill.
 * Memory per writer is bounded: fs, none beyond the caller's buffer;
 * s3, 2 x part size (one part being sent, one filling): 10 MiB with the
 * 5 MiB parts used for objects up to 44 GiB with a size hint, 16 MiB with
 * the 8 MiB parts an unknown size starts at, up to 7 GiB (parts then
 * double every 900 parts; store/s3.c). A reader holds 256 KiB on S3. */
int store_writer_open(struct store *st, const char *name,
		      const struct store_put_opts *opts,
		      struct store_writer **out);

/* Append LEN bytes. Returns 0 or a store_error (the writer is then dead:
 * only store_writer_abort() may follow). */
int store_writer_write(struct store_writer *w, const void *buf, size_t len);

/* Bytes written so far. */
uint64_t store_writer_size(const struct store_writer *w);

/* Whether store_writer_pread() can read W's bytes back: 1 on fs (the
 * bytes are in the temp file), 0 on S3 (they are sent as parts fill). */
int store_writer_readable(const struct store_writer *w);

/* Read back up to LEN bytes that W was given, from OFFSET (below
 * store_writer_size()). Returns bytes read (0 at the end) or a
 * store_error: STORE_EINVAL where store_writer_readable() is 0. A caller
 * that may have to go back over what it wrote (SFTP writes at any offset)
 * needs no copy of its own where the writer can give the bytes back. */
ssize_t store_writer_pread(struct store_writer *w, void *buf, size_t len,
			   uint64_t offset);

/* Tell W the MD5 of every byte it was given, as the caller computed it
 * while the bytes arrived (and, better, checked against its own client's
 * checksum, as rsync's receiver does); call it after the last write,
 * before the commit. A backend that sends a checksum with the object
 * sends this one instead of hashing the bytes again: S3's single PUT
 * carries it as Content-MD5, so S3 refuses (BadDigest) bytes that differ
 * from what the client sent, and the commit fails. Multipart parts and
 * the fs backend hash their own bytes as before. Returns 0, or
 * STORE_EINVAL for a NULL argument. */
int store_writer_set_md5(struct store_writer *w, const unsigned char md5[16]);

/* Make the object visible atomically, replacing any old one; frees W.
 * Returns 0 only once the backend has confirmed the whole object. On
 * failure nothing new is visible and the old object is untouched. */
int store_writer_commit(struct store_writer *w);

/* Discard everything written; frees W. Nothing becomes visible. */
void store_writer_abort(struct store_writer *w);

/* ---- staged writes: the name is known only at the end -------------- */

/* Begin writing an object whose final name, and even final location, is
 * decided only after its bytes have arrived (an HTTP upload whose fields
 * follow the file). The bytes stream into a hidden temp object of ST as
 * they come: fs, a temp file at the location's root; S3, the first part
 * buffer in memory, then a multipart upload to the temp key
 * "<location>" STORE_TMP_PREFIX "<16 hex>". OPTS->exclusive is not
 * supported (STORE_EINVAL); a NULL content type is taken from the final
 * name. Finish with store_writer_commit_as() or store_writer_abort();
 * store_writer_commit() refuses a staged writer. */
int store_writer_open_staged(struct store *st,
			     const struct store_put_opts *opts,
			     struct store_writer **out);

/* Commit a staged writer as NAME of DST (the staging store or another
 * one), atomically, replacing any old object; frees W. fs: rename(2) into
 * place (a streamed copy when DST is on another filesystem or backend).
 * S3: an object that fit in one part is PUT straight to its final key (no
 * temp object ever exists); a larger one completes its temp object, is
 * copied server-side (CopyObject, UploadPartCopy above 5 GiB; streamed
 * when DST is on another endpoint or backend) and the temp is deleted. On
 * failure nothing new is visible at NAME and the temp is removed. */
int store_writer_commit_as(struct store_writer *w, struct store *dst,
			   const char *name);

/* Convenience: write a whole small object from memory. */
int store_put(struct store *st, const char *name, const void *buf,
	      size_t len, const struct store_put_opts *opts);

/* ---- listing -------------------------------------------------------- */

struct store_entry {
	const char *name;       /* relative to the listed prefix' location
				   root: the full object name; for a common
				   prefix, the prefix with its trailing '/' */
	int is_dir;             /* 1 for a common prefix / directory */
	uint64_t size;
	int64_t mtime;          /* backend last-modified (S3 listings carry
				   no user metadata; see mtime_is_client) */
	int mtime_is_client;    /* 1 if mtime is the client's own mtime */
	const char *etag;       /* without quotes, "" if unknown */
};

/* Return 0 to go on, non-zero to stop the listing (that value is then
 * returned by store_list). */
typedef int (*store_list_cb)(void *arg, const struct store_entry *e);

/* List names under PREFIX ("" = everything; "dir/" for a directory's
 * contents), in byte order of names. With DELIM '/' only one level is listed
 * and deeper names are reported once as directories ("dir/sub/"); with
 * DELIM 0 every object below is listed (directory markers are skipped).
 * START_AFTER (may be NULL) resumes after that name. Entries are streamed
 * page by page: memory does not grow with the listing's length. Temp files
 * and the marker of PREFIX itself are never reported. */
int store_list(struct store *st, const char *prefix, char delim,
	       const char *start_after, store_list_cb cb, void *arg);

/* Every name below PREFIX ("" = everything; "dir/" for a directory's),
 * at any depth, in no particular order (a caller that needs one sorts):
 * objects as files, directories as is_dir entries "dir/sub/" wherever the
 * backend has them (fs: every directory; S3: the "dir/sub/" markers, so a
 * directory without a marker shows only through the names below it).
 * Temp objects and PREFIX's own marker are never reported. S3: one
 * listing without a delimiter, a request per 1,000 names; elsewhere a
 * walk of the levels. For a caller that needs the listings of a whole
 * subtree where store_list_reads_tree() says a level costs as much. */
int store_list_tree(struct store *st, const char *prefix, store_list_cb cb,
		    void *arg);

/* 1 if a one-level listing (store_list with DELIM '/') has to read every
 * name below its prefix: S3 with ASSETD_S3_CLIENT_DELIMITER=1, for
 * servers whose delimiter listings are incomplete (store/s3.c). A caller
 * that will list the subdirectories too then gets all of them for the
 * price of that one listing from store_list_tree(). */
int store_list_reads_tree(struct store *st);

/* A paged listing of one level (what store_list gives with DELIM '/'),
 * for a reader that takes it a page at a time, e.g. an SFTP directory
 * handle. store_lister_next reports entries from where the previous call
 * stopped: CB returns non-zero to pause (that entry counts as reported and
 * the value is returned), 0 means the listing is exhausted (later calls
 * report nothing), negative is an error. Backends with a cursor (fs: the
 * directory is read and sorted once, at open, and its names kept until
 * close, ~5 MiB for 100,000 names) continue where they stopped; the others
 * (S3) resume each page with start_after, one request per page. No name is
 * ever reported twice. */
struct store_lister;
int store_lister_open(struct store *st, const char *prefix,
		      struct store_lister **out);
int store_lister_next(struct store_lister *l, store_list_cb cb, void *arg);
void store_lister_close(struct store_lister *l);

/* ---- changing the namespace ----------------------------------------- */

/* Delete an object. STORE_ENOENT if missing; STORE_EISDIR for a dir. */
int store_delete(struct store *st, const char *name);

/* Create directory NAME (fs: mkdir -p of missing parents; s3: "NAME/"
 * marker). STORE_EEXIST if it exists. */
int store_mkdir(struct store *st, const char *name);

/* Create directory NAME that the caller has just seen absent in a listing
 * of its parent, which exists: nothing is looked up first (S3: one PUT of
 * the "NAME/" marker instead of store_mkdir's probes of NAME and of every
 * parent). Backends without a shortcut do store_mkdir. */
int store_mkdir_new(struct store *st, const char *name);

/* Remove an empty directory. STORE_ENOTEMPTY / STORE_ENOENT. */
int store_rmdir(struct store *st, const char *name);

/* Rename a file or a directory (recursively on S3: copy then delete).
 * With NOREPLACE set, fail with STORE_EEXIST if TO exists; otherwise an
 * existing file at TO is replaced (posix-rename semantics). */
int store_rename(struct store *st, const char *from, const char *to,
		 int noreplace);

/* Copy object FROM of SRC to TO of DST (which may be SRC). Server-side when
 * both are on the same S3 endpoint (CopyObject, UploadPartCopy above
 * 5 GiB), streamed otherwise. Keeps the client mtime and content type. */
int store_copy(struct store *src, const char *from, struct store *dst,
	       const char *to);

/* store_copy() of an object whose SIZE the caller has just listed: a
 * server-side copy then needs no HEAD of the source first (it picks
 * CopyObject or UploadPartCopy by SIZE; an object changed since fails or
 * copies what is there now, as any copy would). */
int store_copy_sized(struct store *src, const char *from, struct store *dst,
		     const char *to, uint64_t size);

/* Space figures for statvfs: total and free bytes; for S3 both are
 * reported as large constants. On a metered store with a byte quota the
 * quota is the total and what remains of it is free. */
int store_statfs(struct store *st, uint64_t *total, uint64_t *avail);

/* ---- usage and quotas ------------------------------------------------ */

/* A store opened for a client (tenant_get) carries a meter: every object
 * committed, replaced, deleted, renamed or copied through this interface
 * is accounted (objects, bytes, under the object's top-level folder), and
 * a quota is enforced before anything becomes visible:
 *  - store_writer_open() refuses with STORE_EQUOTA when a new object would
 *    exceed the object quota, or when opts->size_exact is set and the
 *    announced size cannot fit in what remains of the byte quota;
 *  - store_writer_write() fails with STORE_EQUOTA as soon as the bytes
 *    written exceed what remained at open (plus the replaced object);
 *  - store_writer_commit() reserves the change in the catalog in one
 *    transaction (two writers racing to cross the quota cannot both pass)
 *    and aborts the write with STORE_EQUOTA if it no longer fits;
 *  - store_copy() into a metered store is checked the same way.
 * Replacing an object costs only the difference in size; deletes and
 * renames never need room. Stores without a meter (assetctl's, snapshot
 * and archive locations) account nothing. */

struct store_usage {
	int64_t objects;        /* objects stored (directory markers aside) */
	int64_t bytes;          /* their total size */
	int64_t quota_objects;  /* 0 = none */
	int64_t quota_bytes;    /* 0 = none */
};

struct store_meter {
	/* Account OBJECTS and BYTES (either may be negative) under object
	 * NAME. With CHECK set, refuse with STORE_EQUOTA, changing nothing,
	 * if an increase would take usage above a quota. 0 or a store_error.
	 * May be called from any thread. */
	int (*account)(void *arg, const char *name, int64_t objects,
		       int64_t bytes, int check);
	/* The client's current usage and quotas. */
	int (*usage)(void *arg, struct store_usage *out);
	void *arg;              /* outlives the store */
};

/* Give ST a meter (copied), or none with M NULL. Set once, before the
 * store is shared between threads. */
void store_set_meter(struct store *st, const struct store_meter *m);

/* The usage and quotas behind ST's meter. STORE_EINVAL if it has none. */
int store_usage(struct store *st, struct store_usage *out);

/* Would adding OBJECTS and BYTES to ST fit its quotas as they stand now?
 * 0 (also for a store without a meter) or STORE_EQUOTA. Reserves
 * nothing: for refusing early what a commit would refuse anyway (rsync's
 * generator, which knows each file's size and what it replaces). */
int store_quota_check(struct store *st, int64_t objects, int64_t bytes);

/* Remove leftovers of interrupted writes: fs temp files anywhere below
 * the location older than MIN_AGE seconds whose writer is gone (a live
 * writer holds a lock on its temp file, so 0 is safe while other writers
 * run); S3 staged temp objects at the location's root (see
 * store_writer_open_staged) older than MIN_AGE and at least a day
 * (nothing can lock an S3 object, and a live commit_as may be copying
 * one; ASSETD_S3_TEMP_MIN_AGE overrides the day, for tests). Called by
 * the daemon at start-up on every location. Returns the number removed.
 * Unfinished multipart uploads: see store_upload_recover(). */
int store_cleanup(struct store *st, int min_age);

/* Temp objects. Every temp object a writer makes has a last segment that
 * begins with STORE_TMP_PREFIX. A name with such a segment is reserved on
 * both backends: never listed, never addressable (stat, read and delete
 * answer STORE_ENOENT; writes, mkdir and rename onto it STORE_EINVAL), and
 * removed by store_cleanup(). */
#define STORE_TMP_PREFIX ".assetd-tmp."

/* 1 if any segment of NAME (a name, a key or a path below a location)
 * begins with STORE_TMP_PREFIX: the one rule every listing and check of
 * the project applies to temp objects. */
int store_name_is_temp(const char *name);

/* ---- recovery after a crash ----------------------------------------- */

/* Journal the S3 multipart uploads this process starts in DIR (created,
 * mode 0700, at the first upload; NULL turns the journal off, the
 * default): one
 * small locked file per upload in flight, removed once it is completed or
 * aborted. Call once at start, before any writer opens. Both the daemon
 * and assetctl journal to the same directory. See store/upjournal.c. */
int store_upload_journal(const char *dir);

/* The journal directory that goes with a catalog: "DIR/s3-uploads" for
 * the catalog "DIR/assetd.db". Returns 0 or STORE_EINVAL if too long. */
int store_upload_journal_dir(const char *catalog_path, char *out,
			     size_t outlen);

/* Abort (AbortMultipartUpload) every journalled upload whose process has
 * died, and remove its entry; entries of live processes are left alone,
 * and one whose endpoint cannot be reached now stays for the next run.
 * Stops early when *CANCEL (may be NULL) becomes non-zero. Returns the
 * number of entries settled, or a store_error. Uploads left by a process
 * that never journalled are for the bucket's lifecycle rule
 * (AbortIncompleteMultipartUpload). */
int store_upload_recover(const char *dir, volatile int *cancel);

/* 1 if the cancel flag at CANCEL (may be NULL) is set. Long jobs (sync,
 * archive, recovery) poll such a flag, which another thread or a signal
 * handler sets with store_cancel(): both access it atomically. */
static inline int store_canceled(const volatile int *cancel)
{
	return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED);
}

static inline void store_cancel(volatile int *cancel)
{
	__atomic_store_n(cancel, 1, __ATOMIC_RELAXED);
}

/* The value of the hexadecimal digit C (0-15), or -1 if C is not one.
 * Shared by the percent-decoders (S3 listings, SigV4, the HTTP side). */
int store_hex_digit(int c);

/* The Content-Type for a name's extension ("image/jpeg"), or
 * "application/octet-stream". Static string. */
const char *store_content_type(const char *name);

#endif
