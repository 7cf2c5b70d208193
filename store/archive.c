/*
 * archive.c - per-client archives: one tar.xz / tar.zst of a client's files.
 *
 * The client's location is listed (streamed, in key order) and each object
 * is read through a store_reader and handed to libarchive as one pax tar
 * entry. libarchive writes the tar stream to our callback, which compresses
 * it with liblzma's multi-threaded xz encoder (xz -6, one thread a core,
 * like `tar -cJf` but parallel) or libzstd with its worker threads, and
 * feeds the compressed bytes to a store_writer at the archive location and
 * to a SHA-256. (libarchive's own compression filters are not used: closing
 * them, even after a failure, first compresses everything they buffered,
 * tens of MiB for threaded xz, so an interrupted archive would take as long
 * to stop as to finish; liblzma and libzstd can be dropped at once.) So
 * the archive is never staged on local disk, memory is a read buffer plus
 * the compressor's (about 100 MiB a thread for xz -6), and the archive
 * becomes visible only
 * when store_writer_commit() succeeds after the tar trailer: a failure or
 * an interruption anywhere leaves the old state and a "failed" row.
 *
 * (The catalog side - where archives go, their rows, prune, assetctl's
 * verb - is archivecli.c.)
 */
#include "archives.h"

#include <archive.h>
#include <archive_entry.h>
#include <lzma.h>
#include <zstd.h>
#include <errno.h>
#include <locale.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

#define READ_BUF (256 * 1024)

int archives_format_valid(const char *format)
{
	return format && (strcmp(format, "tar.xz") == 0 ||
			  strcmp(format, "tar.zst") == 0);
}

/* ---- creating ----------------------------------------------------------------- */

struct maker {
	struct archive *ar;
	int zstd;               /* 1: zstd, 0: xz */
	lzma_stream lz;         /* xz encoder (zstd == 0) */
	int lz_ready;
	ZSTD_CCtx *zc;          /* zstd encoder (zstd == 1) */
	unsigned char *out;     /* compressed bytes on their way out */
	struct store *src;      /* the client's location */
	struct store_writer *w; /* the archive object */
	EVP_MD_CTX *sha;
	volatile int *cancel;
	unsigned char *buf;
	int64_t objects;
	int rc;                 /* first store error */
	char err[CATALOG_TEXT_MAX];
	char lastdir[STORE_NAME_MAX]; /* directory entries emitted up to here */
	int64_t now;
};

#define OUT_BUF (1024 * 1024)

/* Compressed bytes: to the archive object and the digest. */
static int sink(struct maker *m, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	int rc = store_writer_write(m->w, buf, len);
	if (rc != 0) {
		m->rc = rc;
		return rc;
	}
	EVP_DigestUpdate(m->sha, buf, len);
	return 0;
}

static int stopped(struct maker *m)
{
	if (store_canceled(m->cancel)) {
		if (m->rc == 0)
			m->rc = STORE_ECANCELED;
		return 1;
	}
	return 0;
}

/* Compress LEN bytes of tar stream (FINISH: end the stream). */
static int compress_bytes(struct maker *m, const void *buf, size_t len,
			  int finish)
{
	if (m->zstd) {
		ZSTD_inBuffer in = { buf, len, 0 };
		for (;;) {
			ZSTD_outBuffer out = { m->out, OUT_BUF, 0 };
			size_t left = ZSTD_compressStream2(
				m->zc, &out, &in,
				finish ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(left)) {
				if (m->rc == 0)
					m->rc = STORE_EIO;
				return m->rc;
			}
			if (sink(m, m->out, out.pos) != 0)
				return m->rc;
			if (finish ? left == 0 : in.pos == in.size)
				return 0;
			if (stopped(m))
				return m->rc;
		}
	}
	m->lz.next_in = buf;
	m->lz.avail_in = len;
	for (;;) {
		m->lz.next_out = m->out;
		m->lz.avail_out = OUT_BUF;
		lzma_ret r = lzma_code(&m->lz, finish ? LZMA_FINISH : LZMA_RUN);
		if (sink(m, m->out, OUT_BUF - m->lz.avail_out) != 0)
			return m->rc;
		if (r == LZMA_STREAM_END)
			return 0;
		if (r != LZMA_OK) {
			if (m->rc == 0)
				m->rc = r == LZMA_MEM_ERROR ? STORE_ENOMEM
							    : STORE_EIO;
			return m->rc;
		}
		if (!finish && m->lz.avail_in == 0)
			return 0;
		/* LZMA_OK with input left: the threads were busy for the
		 * whole timeout; look at the stop flag, then go on */
		if (stopped(m))
			return m->rc;
	}
}

/* libarchive's output: the tar stream. */
static la_ssize_t write_cb(struct archive *a, void *arg, const void *buf,
			   size_t len)
{
	struct maker *m = arg;
	if (m->rc != 0 || stopped(m)) {
		/* failing: the tar trailer written while freeing goes
		 * nowhere */
		archive_set_error(a, ECANCELED, "%s", store_strerror(m->rc));
		return -1;
	}
	if (compress_bytes(m, buf, len, 0) != 0) {
		archive_set_error(a, EIO, "writing the archive: %s",
				  store_strerror(m->rc));
		return -1;
	}
	return (la_ssize_t)len;
}

/* Remember the first failure and its message; returns the error. */
static int fail(struct maker *m, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct maker *m, int rc, const char *fmt, ...)
{
	if (m->rc == 0)
		m->rc = rc;
	if (m->err[0] == '\0') {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->err, sizeof m->err, fmt, ap);
		va_end(ap);
	}
	return m->rc;
}

/* Emit directory entries for the parents of NAME not yet emitted. Keys of
 * one folder are contiguous in key order, so comparing with the previous
 * object's folder is enough. */
static int emit_dirs(struct maker *m, const char *name)
{
	const char *slash = strrchr(name, '/');
	size_t dl = slash ? (size_t)(slash - name) : 0;
	size_t k = 0, ll = strlen(m->lastdir);
	/* K: the end of the longest run of whole segments both share */
	for (size_t i = 0;; i++) {
		int ea = i == dl, eb = i == ll;
		if ((ea || name[i] == '/') && (eb || m->lastdir[i] == '/'))
			k = i;
		if (ea || eb || name[i] != m->lastdir[i])
			break;
	}
	for (size_t i = k + 1; i <= dl; i++) {
		if (i != dl && name[i] != '/')
			continue;
		char d[STORE_NAME_MAX + 1];
		memcpy(d, name, i);
		d[i] = '/';
		d[i + 1] = '\0';
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname_utf8(e, d);
		if (archive_entry_pathname(e) == NULL) {
			archive_entry_free(e);
			return fail(m, STORE_EINVAL,
				    "%s: name cannot be converted", d);
		}
		archive_entry_set_filetype(e, AE_IFDIR);
		archive_entry_set_perm(e, 0755);
		archive_entry_set_mtime(e, m->now, 0);
		int r = archive_write_header(m->ar, e);
		archive_entry_free(e);
		if (r < ARCHIVE_WARN)
			return fail(m, STORE_EIO, "%s: %s", d,
				    archive_error_string(m->ar));
	}
	memcpy(m->lastdir, name, dl);
	m->lastdir[dl] = '\0';
	return 0;
}

static int add_object(void *arg, const struct store_entry *ent)
{
	struct maker *m = arg;
	if (ent->is_dir)
		return 0;
	if (store_canceled(m->cancel))
		return fail(m, STORE_ECANCELED, "interrupted");
	if (emit_dirs(m, ent->name) != 0)
		return m->rc;
	struct store_reader *rd;
	struct store_stat st;
	int rc = store_reader_open(m->src, ent->name, 0, UINT64_MAX, &rd, &st);
	if (rc == STORE_ENOENT)
		return 0; /* deleted since it was listed */
	if (rc != 0)
		return fail(m, rc, "reading %s: %s", ent->name,
			    store_strerror(rc));
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname_utf8(e, ent->name);
	if (archive_entry_pathname(e) == NULL) {
		/* no UTF-8 locale to convert through */
		archive_entry_free(e);
		store_reader_close(rd);
		return fail(m, STORE_EINVAL, "%s: name cannot be converted",
			    ent->name);
	}
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)st.size);
	archive_entry_set_mtime(e, st.mtime, 0);
	int r = archive_write_header(m->ar, e);
	archive_entry_free(e);
	if (r < ARCHIVE_WARN) {
		store_reader_close(rd);
		return fail(m, m->rc ? m->rc : STORE_EIO, "%s: %s", ent->name,
			    archive_error_string(m->ar));
	}
	uint64_t total = 0;
	ssize_t n;
	while ((n = store_reader_read(rd, m->buf, READ_BUF)) > 0) {
		/* xz may hold a whole block (tens of MiB) before it gives
		 * output, so look at the flag here too */
		if (store_canceled(m->cancel)) {
			store_reader_close(rd);
			return fail(m, STORE_ECANCELED, "interrupted");
		}
		if (total + (uint64_t)n > st.size)
			n = (ssize_t)(st.size - total);
		la_ssize_t w = archive_write_data(m->ar, m->buf, (size_t)n);
		if (w < 0) {
			store_reader_close(rd);
			return fail(m, m->rc ? m->rc : STORE_EIO, "%s: %s",
				    ent->name, archive_error_string(m->ar));
		}
		total += (uint64_t)n;
		if (total == st.size)
			break;
	}
	store_reader_close(rd);
	if (n < 0)
		return fail(m, (int)n, "reading %s: %s", ent->name,
			    store_strerror((int)n));
	if (total != st.size)
		return fail(m, STORE_EIO, "%s: shorter than its size",
			    ent->name);
	m->objects++;
	return 0;
}

static int setup_archive(struct maker *m, const char *format)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	m->out = malloc(OUT_BUF);
	if (!m->out)
		return STORE_ENOMEM;
	m->zstd = strcmp(format, "tar.zst") == 0;
	if (m->zstd) {
		m->zc = ZSTD_createCCtx();
		if (!m->zc)
			return STORE_ENOMEM;
		ZSTD_CCtx_setParameter(m->zc, ZSTD_c_compressionLevel, 3);
		ZSTD_CCtx_setParameter(m->zc, ZSTD_c_checksumFlag, 1);
		/* refused by a single-threaded libzstd: then it runs on one */
		ZSTD_CCtx_setParameter(m->zc, ZSTD_c_nbWorkers, (int)ncpu);
	} else {
		lzma_mt mt = { 0 };
		lzma_stream init = LZMA_STREAM_INIT;
		m->lz = init;
		mt.threads = (uint32_t)ncpu;
		mt.preset = 6;          /* xz's (and tar -cJf's) default */
		mt.check = LZMA_CHECK_CRC64;
		/* Blocks of the dictionary's size (8 MiB at -6) rather than
		 * xz's 3 x: every thread gets work sooner and the last,
		 * partial round is short, so two cores stay busy even on a
		 * client of a few tens of MiB; images do not compress, and
		 * text loses under 1 % to the extra block starts. */
		mt.block_size = 8 << 20;
		mt.timeout = 250;       /* ms: lzma_code returns while the
					   threads are busy, so a stop request
					   is seen within a quarter second */
		if (lzma_stream_encoder_mt(&m->lz, &mt) != LZMA_OK)
			return STORE_ENOMEM;
		m->lz_ready = 1;
	}
	m->ar = archive_write_new();
	if (!m->ar)
		return STORE_ENOMEM;
	if (archive_write_set_format_pax_restricted(m->ar) != ARCHIVE_OK)
		return STORE_EIO;
	/* fewer, larger calls into the compressor; no padding at the end */
	archive_write_set_bytes_per_block(m->ar, 64 * 1024);
	archive_write_set_bytes_in_last_block(m->ar, 1);
	return 0;
}


int archives_write(struct store *src, struct store *dst, const char *name,
		   const char *format, volatile int *cancel,
		   struct archives_result *res)
{
	struct maker m = { 0 };
	int rc;
	memset(res, 0, sizeof *res);
	if (!archives_format_valid(format)) {
		snprintf(res->error, sizeof res->error,
			 "unknown format \"%.32s\" (tar.xz or tar.zst)",
			 format ? format : "");
		return STORE_EINVAL;
	}
	struct store_put_opts po = { 0 };
	po.content_type = strcmp(format, "tar.xz") == 0 ? "application/x-xz"
							: "application/zstd";
	/* libarchive converts names through the thread's locale; object names
	 * are UTF-8, so make this thread's LC_CTYPE UTF-8 while it writes
	 * (uselocale is per thread: the rest of the process is untouched). */
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	locale_t old_locale = utf8 ? uselocale(utf8) : (locale_t)0;
	m.src = src;
	m.cancel = cancel;
	m.now = (int64_t)time(NULL);
	m.buf = malloc(READ_BUF);
	m.sha = EVP_MD_CTX_new();
	if (!m.buf || !m.sha ||
	    EVP_DigestInit_ex(m.sha, EVP_sha256(), NULL) != 1) {
		rc = fail(&m, STORE_ENOMEM, "out of memory");
		goto finish;
	}
	rc = store_writer_open(dst, name, &po, &m.w);
	if (rc != 0) {
		fail(&m, rc, "writing %s%s: %s", store_url(dst), name,
		     store_strerror(rc));
		goto finish;
	}
	rc = setup_archive(&m, format);
	if (rc != 0) {
		fail(&m, rc, "libarchive: %s",
		     m.ar ? archive_error_string(m.ar) : "no memory");
		goto finish;
	}
	if (archive_write_open(m.ar, &m, NULL, write_cb, NULL) != ARCHIVE_OK) {
		rc = fail(&m, m.rc ? m.rc : STORE_EIO, "libarchive: %s",
			  archive_error_string(m.ar));
		goto finish;
	}
	rc = store_list(src, "", 0, NULL, add_object, &m);
	if (rc != 0) {
		fail(&m, rc, "listing %s: %s", store_url(src),
		     store_strerror(rc));
		goto finish;
	}
	if (archive_write_close(m.ar) != ARCHIVE_OK) {
		rc = fail(&m, m.rc ? m.rc : STORE_EIO, "finishing: %s",
			  archive_error_string(m.ar));
		goto finish;
	}
	if (compress_bytes(&m, NULL, 0, 1) != 0) {
		rc = fail(&m, m.rc, "finishing: %s", store_strerror(m.rc));
		goto finish;
	}
	res->size = (int64_t)store_writer_size(m.w);
	rc = store_writer_commit(m.w);
	m.w = NULL;
	if (rc != 0) {
		fail(&m, rc, "committing %s%s: %s", store_url(dst), name,
		     store_strerror(rc));
		goto finish;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(m.sha, md, &mdlen);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(res->sha256 + 2 * i, 3, "%02x", md[i]);
finish:
	if (m.ar) {
		/* Not archive_write_fail(): after it, free skips the close that
		 * releases the output filter's block buffer (64 KiB leaked per
		 * failed archive). The close's trailer goes nowhere: write_cb
		 * refuses every write once m.rc is set. */
		archive_write_free(m.ar);
	}
	if (m.lz_ready)
		lzma_end(&m.lz); /* stops the worker threads at once */
	ZSTD_freeCCtx(m.zc);
	free(m.out);
	if (m.w)
		store_writer_abort(m.w);
	res->objects = m.objects;
	if (rc != 0) {
		res->size = 0;
		if (rc == STORE_ECANCELED || m.rc == STORE_ECANCELED)
			snprintf(res->error, sizeof res->error,
				 "interrupted: stopped before the end");
		else
			snprintf(res->error, sizeof res->error, "%s",
				 m.err[0] ? m.err : store_strerror(rc));
	}
	EVP_MD_CTX_free(m.sha);
	free(m.buf);
	if (utf8) {
		uselocale(old_locale);
		freelocale(utf8);
	}
	return rc;
}
