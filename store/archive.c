/*
 * archive.c - per-client archives: one tar.xz / tar.zst of a client's files.
 *
 * The client's location is listed (streamed, in key order) and each object
 * is read through a store_reader and handed to libarchive as one pax tar
 * entry; libarchive's xz or zstd filter compresses, and its write callback
 * feeds the compressed bytes to a store_writer at the archive location and
 * to a SHA-256. So the archive is never staged on local disk, memory is a
 * read buffer plus the compressor's, and the archive becomes visible only
 * when store_writer_commit() succeeds after the tar trailer: a failure or
 * an interruption anywhere leaves the old state and a "failed" row.
 *
 * Rows go "running" (with a pid/host marker, see bkutil.h) -> "done" or
 * "failed". A row still "running" whose process is gone was killed; the
 * next list, create or prune marks it failed ("interrupted"): its
 * uncommitted object never became visible.
 */
#include "archives.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bkutil.h"
#include "conf.h"
#include "log.h"
#include "store.h"
#include "tenant.h"

#define READ_BUF (256 * 1024)

int archives_format_valid(const char *format)
{
	return format && (strcmp(format, "tar.xz") == 0 ||
			  strcmp(format, "tar.zst") == 0);
}

/* file:// URL of a local path, made absolute against the working
 * directory, ending in '/'. */
static int file_url(const char *path, const char *sub, char *buf, size_t len)
{
	char cwd[PATH_MAX];
	const char *pre = "";
	if (path[0] != '/') {
		if (!getcwd(cwd, sizeof cwd))
			return STORE_EIO;
		pre = cwd;
	}
	size_t pl = strlen(path);
	int n = snprintf(buf, len, "file://%s%s%s%s%s", pre,
			 path[0] != '/' ? "/" : "", path,
			 pl && path[pl - 1] == '/' ? "" : "/", sub);
	return n < 0 || (size_t)n >= len ? STORE_EINVAL : 0;
}

int archives_region_base_url(struct catalog *cat, const struct conf *cf,
			     const struct catalog_region *r, char *buf,
			     size_t len)
{
	(void)cat;
	const char *loc = cf ? cf->archive_location : "";
	int n;
	if (loc[0]) {
		if (strstr(loc, "://") == NULL)
			return file_url(loc, "", buf, len);
		size_t l = strlen(loc);
		n = snprintf(buf, len, "%s%s", loc,
			     loc[l - 1] == '/' ? "" : "/");
		return n < 0 || (size_t)n >= len ? STORE_EINVAL : 0;
	}
	if (r && strncmp(r->snapshot, "s3://", 5) == 0) {
		/* "_archives" can never be a client's folder (client names
		 * start with [a-z0-9]), so inside the snapshot location it
		 * cannot collide with the synced assets. */
		size_t l = strlen(r->snapshot);
		n = snprintf(buf, len, "%s%s_archives/", r->snapshot,
			     r->snapshot[l - 1] == '/' ? "" : "/");
		return n < 0 || (size_t)n >= len ? STORE_EINVAL : 0;
	}
	return file_url(cf && cf->data_dir[0] ? cf->data_dir : "var",
			"archives/", buf, len);
}

int archives_base_url(struct catalog *cat, const struct conf *cf,
		      const struct catalog_client *client, char *buf,
		      size_t len)
{
	struct catalog_region *r = calloc(1, sizeof *r);
	if (!r)
		return STORE_ENOMEM;
	int have = client->region[0] &&
		   catalog_region_get(cat, client->region, r) == 0;
	int rc = archives_region_base_url(cat, cf, have ? r : NULL, buf, len);
	free(r);
	return rc;
}

/* mkdir -p for a local archive folder (store_open needs it to exist). */
static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Open the folder URL, creating it first when local. */
static int open_folder(struct catalog *cat, const char *url,
		       struct store **out)
{
	if (strncmp(url, "file://", 7) == 0 && mkdir_p(url + 7) != 0)
		return STORE_EACCES;
	return tenant_open_location(cat, url, out);
}

int archives_open(struct catalog *cat, const struct catalog_archive *a,
		  struct store **st, char *name, size_t namelen)
{
	const char *slash = strrchr(a->location, '/');
	char dir[CATALOG_URL_MAX];
	*st = NULL;
	if (!slash || slash[1] == '\0' ||
	    (size_t)(slash - a->location + 1) >= sizeof dir)
		return STORE_EINVAL;
	memcpy(dir, a->location, (size_t)(slash - a->location + 1));
	dir[slash - a->location + 1] = '\0';
	if (snprintf(name, namelen, "%s", slash + 1) >= (int)namelen)
		return STORE_EINVAL;
	return tenant_open_location(cat, dir, st);
}

/* ---- interrupted rows ------------------------------------------------------ */

struct reap {
	struct catalog *cat;
	int64_t *ids;
	int n, cap;
};

static int collect_stale(void *arg, const struct catalog_archive *a)
{
	struct reap *r = arg;
	if (a->state != CATALOG_RUNNING || !bk_marker_is_stale(a->error))
		return 0;
	if (r->n == r->cap) {
		int cap = r->cap ? r->cap * 2 : 8;
		void *p = realloc(r->ids, (size_t)cap * sizeof *r->ids);
		if (!p)
			return CATALOG_ENOMEM;
		r->ids = p;
		r->cap = cap;
	}
	r->ids[r->n++] = a->id;
	return 0;
}

int archives_reap_interrupted(struct catalog *cat)
{
	struct reap r = { cat, NULL, 0, 0 };
	int done = 0;
	catalog_archive_list(cat, NULL, collect_stale, &r);
	for (int i = 0; i < r.n; i++) {
		struct catalog_archive a;
		if (catalog_archive_get(cat, r.ids[i], &a) != 0)
			continue;
		a.state = CATALOG_FAILED;
		snprintf(a.error, sizeof a.error,
			 "interrupted: the process making it ended");
		if (catalog_archive_update(cat, &a) == 0)
			done++;
	}
	free(r.ids);
	return done;
}

/* ---- creating ----------------------------------------------------------------- */

struct maker {
	struct archive *ar;
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

static la_ssize_t write_cb(struct archive *a, void *arg, const void *buf,
			   size_t len)
{
	struct maker *m = arg;
	if (m->cancel && *m->cancel) {
		m->rc = STORE_ECANCELED;
		archive_set_error(a, ECANCELED, "interrupted");
		return -1;
	}
	int rc = store_writer_write(m->w, buf, len);
	if (rc != 0) {
		m->rc = rc;
		archive_set_error(a, EIO, "writing the archive: %s",
				  store_strerror(rc));
		return -1;
	}
	EVP_DigestUpdate(m->sha, buf, len);
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
	if (m->cancel && *m->cancel)
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
	char threads[24];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(threads, sizeof threads, "%ld", ncpu > 0 ? ncpu : 1);
	m->ar = archive_write_new();
	if (!m->ar)
		return STORE_ENOMEM;
	if (archive_write_set_format_pax_restricted(m->ar) != ARCHIVE_OK)
		return STORE_EIO;
	if (strcmp(format, "tar.zst") == 0) {
		if (archive_write_add_filter_zstd(m->ar) != ARCHIVE_OK)
			return STORE_EINVAL;
		/* libarchive 3.6 has no zstd threads option; level 3 is
		 * zstd's own default and already fast. */
	} else {
		if (archive_write_add_filter_xz(m->ar) != ARCHIVE_OK)
			return STORE_EINVAL;
		/* xz -6 like tar -cJf, on every core */
		if (archive_write_set_filter_option(m->ar, "xz", "threads",
						    threads) < ARCHIVE_WARN)
			log_warn("archive_xz_threads", "error=%s",
				 log_q(archive_error_string(m->ar)));
	}
	/* no padding of the compressed stream to 10 KiB blocks */
	archive_write_set_bytes_in_last_block(m->ar, 1);
	return 0;
}

static void record_run(struct catalog *cat, const struct catalog_archive *a,
		       int64_t started)
{
	struct catalog_run run = { 0 };
	char b[32];
	snprintf(run.kind, sizeof run.kind, "archive");
	snprintf(run.what, sizeof run.what, "%s", a->client);
	run.started = started;
	run.finished = (int64_t)time(NULL);
	run.state = a->state;
	run.listed = a->objects;
	run.copied = a->state == CATALOG_DONE ? a->objects : 0;
	run.failed = a->state == CATALOG_DONE ? 0 : 1;
	run.bytes = a->size;
	if (a->state == CATALOG_DONE)
		snprintf(run.summary, sizeof run.summary,
			 "%s: %lld objects, %s, sha256 %.16s...",
			 a->format, (long long)a->objects,
			 bk_human_bytes((uint64_t)a->size, b, sizeof b),
			 a->sha256);
	else
		snprintf(run.summary, sizeof run.summary, "failed: %.200s",
			 a->error);
	if (catalog_run_add(cat, &run) != 0)
		log_warn("run_record_failed", "what=%s error=%s",
			 log_q(a->client), log_q(catalog_errmsg(cat)));
}

static int open_client_store(const struct catalog_client *c,
			     struct store **out)
{
	struct store_opts o = { 0 };
	o.endpoint = c->endpoint[0] ? c->endpoint : NULL;
	o.region = c->s3_region[0] ? c->s3_region : NULL;
	o.profile = c->profile[0] ? c->profile : NULL;
	o.path_style = -1;
	return store_open(c->location, &o, out);
}

int archives_create(struct catalog *cat, const struct conf *cf,
		    const char *client, const char *format,
		    volatile int *cancel, struct catalog_archive *out)
{
	struct catalog_client *c = calloc(1, sizeof *c);
	struct catalog_archive *a = calloc(1, sizeof *a);
	struct maker m = { 0 };
	struct store *dst = NULL;
	char base[CATALOG_URL_MAX], name[STORE_NAME_MAX];
	int rc = 0;
	int64_t started = (int64_t)time(NULL);

	if (out)
		memset(out, 0, sizeof *out);
	if (!c || !a) {
		free(c);
		free(a);
		return STORE_ENOMEM;
	}
	archives_reap_interrupted(cat);
	snprintf(a->client, sizeof a->client, "%s", client);
	if (!format || !format[0])
		format = cf && cf->archive_format[0] ? cf->archive_format
						     : ARCHIVES_FORMAT_DEFAULT;
	if (!archives_format_valid(format)) {
		snprintf(a->error, sizeof a->error,
			 "unknown format \"%.32s\" (tar.xz or tar.zst)",
			 format);
		rc = STORE_EINVAL;
		goto done_norow;
	}
	if (catalog_client_get(cat, client, c) != 0) {
		snprintf(a->error, sizeof a->error, "no client \"%.64s\"",
			 client);
		rc = CATALOG_ENOENT;
		goto done_norow;
	}
	rc = archives_base_url(cat, cf, c, base, sizeof base);
	if (rc == 0)
		rc = open_folder(cat, base, &dst);
	if (rc != 0) {
		snprintf(a->error, sizeof a->error,
			 "archive location %.150s: %s", base,
			 store_strerror(rc));
		goto done_norow;
	}
	rc = open_client_store(c, &m.src);
	if (rc != 0) {
		snprintf(a->error, sizeof a->error, "%.150s: %s", c->location,
			 store_strerror(rc));
		goto done_norow;
	}

	/* CLIENT/CLIENT-assets-20261125T194001Z.tar.xz, a suffix if taken */
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	for (int i = 1; i <= 100; i++) {
		struct store_stat sst;
		if (i == 1)
			snprintf(name, sizeof name, "%s/%s-assets-%s.%s",
				 c->name, c->name, stamp, format);
		else
			snprintf(name, sizeof name, "%s/%s-assets-%s-%d.%s",
				 c->name, c->name, stamp, i, format);
		if (store_stat(dst, name, &sst) == STORE_ENOENT)
			break;
	}
	snprintf(a->location, sizeof a->location, "%s%s", store_url(dst),
		 name);
	snprintf(a->format, sizeof a->format, "%s", format);
	a->created = (int64_t)now;
	a->state = CATALOG_RUNNING;
	bk_running_marker(a->error, sizeof a->error);
	if (catalog_archive_add(cat, a) != 0) {
		snprintf(a->error, sizeof a->error, "catalog: %.200s",
			 catalog_errmsg(cat));
		rc = CATALOG_EDB;
		goto done_norow;
	}
	a->error[0] = '\0';

	struct store_put_opts po = { 0 };
	po.content_type = strcmp(format, "tar.xz") == 0 ? "application/x-xz"
							: "application/zstd";
	m.cancel = cancel;
	m.now = (int64_t)now;
	m.buf = malloc(READ_BUF);
	m.sha = EVP_MD_CTX_new();
	if (!m.buf || !m.sha || EVP_DigestInit_ex(m.sha, EVP_sha256(), NULL) != 1) {
		rc = fail(&m, STORE_ENOMEM, "out of memory");
		goto finish;
	}
	rc = store_writer_open(dst, name, &po, &m.w);
	if (rc != 0) {
		fail(&m, rc, "writing %s: %s", a->location, store_strerror(rc));
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
	rc = store_list(m.src, "", 0, NULL, add_object, &m);
	if (rc != 0) {
		fail(&m, rc, "listing %s: %s", c->location,
		     store_strerror(rc));
		goto finish;
	}
	if (archive_write_close(m.ar) != ARCHIVE_OK) {
		rc = fail(&m, m.rc ? m.rc : STORE_EIO, "finishing: %s",
			  archive_error_string(m.ar));
		goto finish;
	}
	a->size = (int64_t)store_writer_size(m.w);
	rc = store_writer_commit(m.w);
	m.w = NULL;
	if (rc != 0) {
		fail(&m, rc, "committing %s: %s", a->location,
		     store_strerror(rc));
		goto finish;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(m.sha, md, &mdlen);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(a->sha256 + 2 * i, 3, "%02x", md[i]);
finish:
	if (m.ar) {
		if (rc != 0)
			archive_write_fail(m.ar);
		archive_write_free(m.ar);
	}
	if (m.w)
		store_writer_abort(m.w);
	a->objects = m.objects;
	if (rc == 0) {
		a->state = CATALOG_DONE;
		a->error[0] = '\0';
	} else {
		a->state = CATALOG_FAILED;
		a->size = 0;
		snprintf(a->error, sizeof a->error, "%s",
			 m.err[0] ? m.err : store_strerror(rc));
	}
	if (catalog_archive_update(cat, a) != 0)
		log_warn("archive_record_failed", "client=%s error=%s",
			 log_q(client), log_q(catalog_errmsg(cat)));
	record_run(cat, a, started);
done_norow:
	if (rc != 0 && a->state != CATALOG_FAILED) {
		a->state = CATALOG_FAILED;
		if (!a->error[0])
			snprintf(a->error, sizeof a->error, "%s",
				 store_strerror(rc));
	}
	if (out)
		*out = *a;
	EVP_MD_CTX_free(m.sha);
	free(m.buf);
	store_close(m.src);
	store_close(dst);
	free(c);
	free(a);
	return rc;
}

/* ---- removing and pruning ------------------------------------------------------ */

int archives_remove(struct catalog *cat, int64_t id)
{
	struct catalog_archive *a = calloc(1, sizeof *a);
	struct store *st = NULL;
	char name[STORE_NAME_MAX];
	if (!a)
		return STORE_ENOMEM;
	int rc = catalog_archive_get(cat, id, a);
	if (rc != 0)
		goto out;
	if (a->state == CATALOG_RUNNING && !bk_marker_is_stale(a->error)) {
		rc = CATALOG_EINUSE;
		goto out;
	}
	if (a->state == CATALOG_DONE) {
		rc = archives_open(cat, a, &st, name, sizeof name);
		if (rc == 0) {
			rc = store_delete(st, name);
			if (rc == STORE_ENOENT)
				rc = 0;
		}
		store_close(st);
		if (rc != 0)
			goto out;
	}
	rc = catalog_archive_remove(cat, id);
out:
	free(a);
	return rc;
}

struct prune_state {
	const char *client;
	struct catalog_archive *rows;
	int n, cap;
};

static int collect_rows(void *arg, const struct catalog_archive *a)
{
	struct prune_state *p = arg;
	if (p->n == p->cap) {
		int cap = p->cap ? p->cap * 2 : 16;
		void *q = realloc(p->rows, (size_t)cap * sizeof *p->rows);
		if (!q)
			return CATALOG_ENOMEM;
		p->rows = q;
		p->cap = cap;
	}
	p->rows[p->n++] = *a;
	return 0;
}

int archives_prune(struct catalog *cat, const char *client, int keep,
		   int dry_run, FILE *out)
{
	struct prune_state p = { client, NULL, 0, 0 };
	int removed = 0;
	if (keep < 1)
		keep = 1;
	archives_reap_interrupted(cat);
	int rc = catalog_archive_list(cat, client, collect_rows, &p);
	if (rc != 0) {
		free(p.rows);
		return rc;
	}
	/* rows are newest first; count per client */
	for (int i = 0; i < p.n; i++) {
		struct catalog_archive *a = &p.rows[i];
		if (a->state == CATALOG_RUNNING)
			continue;
		int newer_done = 0;
		for (int j = 0; j < i; j++)
			if (p.rows[j].state == CATALOG_DONE &&
			    strcmp(p.rows[j].client, a->client) == 0)
				newer_done++;
		int drop = a->state == CATALOG_DONE ? newer_done >= keep
						    : newer_done >= 1;
		if (!drop)
			continue;
		if (out)
			fprintf(out, "%s archive %lld of %s (%s, %s)\n",
				dry_run ? "would remove" : "removing",
				(long long)a->id, a->client,
				a->state == CATALOG_DONE ? "done" : "failed",
				a->location);
		if (dry_run) {
			removed++;
			continue;
		}
		rc = archives_remove(cat, a->id);
		if (rc != 0) {
			if (out)
				fprintf(out, "  failed: %s\n",
					rc < 0 && rc >= STORE_ECANCELED
						? store_strerror(rc)
						: catalog_errmsg(cat));
			continue;
		}
		removed++;
	}
	free(p.rows);
	return removed;
}

/* ---- assetctl archive ------------------------------------------------------------ */

static volatile int cli_cancel;

static void on_signal(int sig)
{
	(void)sig;
	cli_cancel = 1;
}

static const char *state_name(int s)
{
	return s == CATALOG_RUNNING ? "running"
	       : s == CATALOG_DONE  ? "done"
				    : "failed";
}

static void print_json(const struct catalog_archive *a)
{
	printf("{\"id\": %lld, \"client\": ", (long long)a->id);
	bk_json_str(stdout, a->client);
	printf(", \"location\": ");
	bk_json_str(stdout, a->location);
	printf(", \"format\": ");
	bk_json_str(stdout, a->format);
	printf(", \"created\": %lld, \"size\": %lld, \"objects\": %lld, "
	       "\"sha256\": \"%s\", \"state\": \"%s\", \"error\": ",
	       (long long)a->created, (long long)a->size,
	       (long long)a->objects, a->sha256, state_name(a->state));
	bk_json_str(stdout, a->state == CATALOG_RUNNING ? "" : a->error);
	printf("}");
}

static void print_show(const struct catalog_archive *a)
{
	char t[32], b[32];
	printf("id:       %lld\n", (long long)a->id);
	printf("client:   %s\n", a->client);
	printf("state:    %s\n", state_name(a->state));
	printf("created:  %s UTC\n", bk_time_str(a->created, t, sizeof t));
	printf("format:   %s\n", a->format);
	printf("size:     %lld (%s)\n", (long long)a->size,
	       bk_human_bytes((uint64_t)a->size, b, sizeof b));
	printf("objects:  %lld\n", (long long)a->objects);
	printf("sha256:   %s\n", a->sha256[0] ? a->sha256 : "-");
	printf("location: %s\n", a->location);
	if (a->state == CATALOG_FAILED)
		printf("error:    %s\n", a->error);
}

struct list_print {
	int json, n;
};

static int print_row(void *arg, const struct catalog_archive *a)
{
	struct list_print *p = arg;
	if (p->json) {
		printf("%s", p->n ? ",\n " : "");
		print_json(a);
	} else {
		char t[32], b[32];
		if (p->n == 0)
			printf("%-6s %-16s %-19s %-7s %-7s %10s %8s  %s\n",
			       "ID", "CLIENT", "CREATED (UTC)", "STATE",
			       "FORMAT", "SIZE", "OBJECTS", "LOCATION");
		printf("%-6lld %-16s %-19s %-7s %-7s %10s %8lld  %s\n",
		       (long long)a->id, a->client,
		       bk_time_str(a->created, t, sizeof t),
		       state_name(a->state), a->format,
		       a->state == CATALOG_DONE
			       ? bk_human_bytes((uint64_t)a->size, b, sizeof b)
			       : "-",
		       (long long)a->objects,
		       a->state == CATALOG_FAILED ? a->error : a->location);
	}
	p->n++;
	return 0;
}

static void archive_usage(void)
{
	fprintf(stderr,
		"usage: assetctl archive create CLIENT|--all "
		"[--format tar.xz|tar.zst]\n"
		"       assetctl archive list [CLIENT] [--json]\n"
		"       assetctl archive show ID [--json]\n"
		"       assetctl archive remove ID\n"
		"       assetctl archive prune [CLIENT] [--keep N] "
		"[--dry-run]\n");
}

static int parse_id(const char *s, int64_t *id)
{
	long v;
	if (bk_parse_int(s, 1, LONG_MAX, &v) != 0)
		return -1;
	*id = v;
	return 0;
}

struct client_names {
	char (*n)[CATALOG_NAME_MAX];
	int count, cap;
};

static int collect_client(void *arg, const struct catalog_client *c)
{
	struct client_names *l = arg;
	if (c->disabled)
		return 0;
	if (l->count == l->cap) {
		int cap = l->cap ? l->cap * 2 : 16;
		void *p = realloc(l->n, (size_t)cap * sizeof *l->n);
		if (!p)
			return CATALOG_ENOMEM;
		l->n = p;
		l->cap = cap;
	}
	snprintf(l->n[l->count++], CATALOG_NAME_MAX, "%s", c->name);
	return 0;
}

static int cli_create(struct catalog *cat, const struct conf *cf, int json,
		      int argc, char **argv)
{
	const char *client = NULL, *format = NULL;
	int all = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
			format = argv[++i];
		else if (strncmp(argv[i], "--format=", 9) == 0)
			format = argv[i] + 9;
		else if (strcmp(argv[i], "--all") == 0)
			all = 1;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (argv[i][0] != '-' && !client)
			client = argv[i];
		else {
			archive_usage();
			return 2;
		}
	}
	if ((!client) == !all) {
		archive_usage();
		return 2;
	}
	if (format && !archives_format_valid(format)) {
		fprintf(stderr,
			"assetctl archive: unknown format %s (tar.xz or "
			"tar.zst)\n",
			format);
		return 2;
	}
	struct client_names l = { 0 };
	if (all) {
		if (catalog_client_list(cat, collect_client, &l) != 0) {
			fprintf(stderr, "assetctl archive: %s\n",
				catalog_errmsg(cat));
			return 1;
		}
	} else {
		struct catalog_client *c = calloc(1, sizeof *c);
		int rc = c ? catalog_client_get(cat, client, c) : CATALOG_ENOMEM;
		free(c);
		if (rc != 0) {
			fprintf(stderr, "assetctl archive: no client %s\n",
				client);
			return 1;
		}
		l.n = calloc(1, sizeof *l.n);
		if (!l.n)
			return 1;
		snprintf(l.n[0], CATALOG_NAME_MAX, "%s", client);
		l.count = 1;
	}
	struct sigaction sa = { 0 }, old_int, old_term;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	int failed = 0;
	if (json)
		printf("[");
	for (int i = 0; i < l.count && !cli_cancel; i++) {
		struct catalog_archive a;
		int rc = archives_create(cat, cf, l.n[i], format, &cli_cancel,
					 &a);
		if (rc != 0)
			failed++;
		if (json) {
			printf("%s", i ? ",\n " : "");
			print_json(&a);
		} else if (rc != 0) {
			fprintf(stderr, "assetctl archive: %s: %s\n", l.n[i],
				a.error);
		} else {
			char b[32];
			printf("archive %lld of %s: %lld objects, %s, "
			       "sha256 %s\n  %s\n",
			       (long long)a.id, a.client,
			       (long long)a.objects,
			       bk_human_bytes((uint64_t)a.size, b, sizeof b),
			       a.sha256, a.location);
		}
	}
	if (json)
		printf("]\n");
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	free(l.n);
	return failed ? 1 : 0;
}

int archives_cli(struct catalog *cat, const struct conf *cf, int json,
		 int argc, char **argv)
{
	if (argc < 2) {
		archive_usage();
		return 2;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "create") == 0)
		return cli_create(cat, cf, json, argc, argv);
	if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0) {
		const char *client = NULL;
		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--json") == 0)
				json = 1;
			else if (argv[i][0] != '-' && !client)
				client = argv[i];
			else {
				archive_usage();
				return 2;
			}
		}
		archives_reap_interrupted(cat);
		struct list_print p = { json, 0 };
		if (json)
			printf("[");
		int rc = catalog_archive_list(cat, client, print_row, &p);
		if (json)
			printf("]\n");
		else if (rc == 0 && p.n == 0)
			printf("no archives\n");
		if (rc != 0) {
			fprintf(stderr, "assetctl archive: %s\n",
				catalog_errmsg(cat));
			return 1;
		}
		return 0;
	}
	if (strcmp(sub, "show") == 0 || strcmp(sub, "remove") == 0 ||
	    strcmp(sub, "rm") == 0) {
		int64_t id = 0;
		int have = 0;
		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--json") == 0)
				json = 1;
			else if (!have && parse_id(argv[i], &id) == 0)
				have = 1;
			else {
				archive_usage();
				return 2;
			}
		}
		if (!have) {
			archive_usage();
			return 2;
		}
		archives_reap_interrupted(cat);
		if (strcmp(sub, "show") == 0) {
			struct catalog_archive a;
			if (catalog_archive_get(cat, id, &a) != 0) {
				fprintf(stderr,
					"assetctl archive: no archive %lld\n",
					(long long)id);
				return 1;
			}
			if (json) {
				print_json(&a);
				printf("\n");
			} else
				print_show(&a);
			return 0;
		}
		int rc = archives_remove(cat, id);
		if (rc == CATALOG_ENOENT) {
			fprintf(stderr, "assetctl archive: no archive %lld\n",
				(long long)id);
			return 1;
		}
		if (rc == CATALOG_EINUSE) {
			fprintf(stderr,
				"assetctl archive: archive %lld is still being "
				"made\n",
				(long long)id);
			return 1;
		}
		if (rc != 0) {
			fprintf(stderr, "assetctl archive: removing %lld: %s\n",
				(long long)id,
				rc >= STORE_ECANCELED ? store_strerror(rc)
						      : catalog_errmsg(cat));
			return 1;
		}
		printf("removed archive %lld\n", (long long)id);
		return 0;
	}
	if (strcmp(sub, "prune") == 0) {
		const char *client = NULL;
		long keep = cf && cf->archive_keep > 0 ? cf->archive_keep : 4;
		int dry = 0;
		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc) {
				if (bk_parse_int(argv[++i], 1, 100000, &keep)) {
					fprintf(stderr, "assetctl archive: "
							"--keep needs a number "
							">= 1\n");
					return 2;
				}
			} else if (strcmp(argv[i], "--dry-run") == 0 ||
				   strcmp(argv[i], "-n") == 0)
				dry = 1;
			else if (argv[i][0] != '-' && !client)
				client = argv[i];
			else {
				archive_usage();
				return 2;
			}
		}
		int n = archives_prune(cat, client, (int)keep, dry, stdout);
		if (n < 0) {
			fprintf(stderr, "assetctl archive: %s\n",
				catalog_errmsg(cat));
			return 1;
		}
		printf("%s %d archive%s\n", dry ? "would remove" : "removed", n,
		       n == 1 ? "" : "s");
		return 0;
	}
	archive_usage();
	return 2;
}
