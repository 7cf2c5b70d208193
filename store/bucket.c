/*
 * bucket.c - client-owned buckets: the policy to hand over, and the check
 * of a location before a client uses it (see bucket.h).
 *
 * The policy is written by hand, field by field, with every string escaped
 * (the principal comes from the command line or the config).
 *
 * The check is three passes over the location, each streamed:
 *  1. access: a delimited listing of the root (which also gathers the root
 *     level for the layout pass), then a probe object with a random name:
 *     put, read back, delete. A refusal is reported with the S3 action and
 *     the ARN the policy must grant, so the admin can hand the client the
 *     exact line to fix.
 *  2. layout: each collection folder (the root, or the subfolders) must hold
 *     originals/ and thumbnails/ (--fix creates the missing ones), and
 *     nothing else (a warning naming the strays); no object may sit directly
 *     under the root.
 *  3. file types: a recursive listing of every thumbnails/ and originals/;
 *     each object's first 16 bytes come from one ranged read and are matched
 *     against its extension; thumbnails must be <root>_<scale>.<ext> of a
 *     served image type, with an original beside them (one stat each).
 * Findings go to a callback as they are made, so a bucket of a million
 * objects costs no memory beyond one listing page.
 */
#include "bucket.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "bkutil.h"
#include "catalog.h"
#include "conf.h"
#include "store.h"
#include "tenant.h"

/* ---- locations and ARNs ----------------------------------------------------- */

/* Split "s3://bucket[/prefix[/]]" into BUCKET and PREFIX (no slashes at
 * either end; "" for none). 0 or -1 with ERR. */
static int split_s3(const char *url, char *bucket, size_t blen, char *prefix,
		    size_t plen, char *err, size_t errlen)
{
	if (strncmp(url, "s3://", 5) != 0) {
		snprintf(err, errlen, "%s: not an s3:// location", url);
		return -1;
	}
	const char *b = url + 5;
	size_t n = strcspn(b, "/");
	if (n < 3 || n > 63 || n >= blen) {
		snprintf(err, errlen, "bucket names are 3 to 63 characters");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) ||
		      c == '-' || c == '.')) {
			snprintf(err, errlen,
				 "invalid bucket name \"%.*s\" (a-z, 0-9, '-' "
				 "and '.')",
				 (int)n, b);
			return -1;
		}
	}
	if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1])) {
		snprintf(err, errlen,
			 "a bucket name starts and ends with a letter or digit");
		return -1;
	}
	memcpy(bucket, b, n);
	bucket[n] = '\0';
	const char *p = b + n;
	while (*p == '/')
		p++;
	size_t pl = strlen(p);
	while (pl && p[pl - 1] == '/')
		pl--;
	if (pl >= plen) {
		snprintf(err, errlen, "prefix too long");
		return -1;
	}
	memcpy(prefix, p, pl);
	prefix[pl] = '\0';
	if (pl && !store_name_valid(prefix)) {
		snprintf(err, errlen, "invalid prefix \"%s\"", prefix);
		return -1;
	}
	return 0;
}

static int principal_valid(const char *p)
{
	if (!p || strncmp(p, "arn:", 4) != 0 || strlen(p) > 500)
		return 0;
	for (const unsigned char *s = (const unsigned char *)p; *s; s++)
		if (*s < 0x21 || *s == '"' || *s == '\\' || *s >= 0x7f)
			return 0;
	return 1;
}

int bucket_policy_write(FILE *f, const char *url, const char *principal,
			int read_only, char *err, size_t errlen)
{
	char bucket[64], prefix[STORE_NAME_MAX];
	char arn[STORE_NAME_MAX + 100];
	if (split_s3(url, bucket, sizeof bucket, prefix, sizeof prefix, err,
		     errlen) != 0)
		return -1;
	if (!principal || !*principal) {
		snprintf(err, errlen,
			 "no principal: set AwsPrincipal in assetd.conf or "
			 "pass --principal ARN");
		return -1;
	}
	if (!principal_valid(principal)) {
		snprintf(err, errlen,
			 "\"%.100s\" is not an ARN "
			 "(arn:aws:iam::ACCOUNT:user/NAME)",
			 principal);
		return -1;
	}
	const char *obj_actions = read_only
					  ? "\"s3:GetObject\""
					  : "\"s3:GetObject\", \"s3:PutObject\", "
					    "\"s3:DeleteObject\"";
	fprintf(f, "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n");
	if (!prefix[0]) {
		fprintf(f, "    {\n      \"Sid\": \"AssetdAccess\",\n"
			   "      \"Effect\": \"Allow\",\n"
			   "      \"Principal\": { \"AWS\": ");
		bk_json_str(f, principal);
		fprintf(f, " },\n      \"Action\": [%s, \"s3:ListBucket\"],\n",
			obj_actions);
		snprintf(arn, sizeof arn, "arn:aws:s3:::%s", bucket);
		fprintf(f, "      \"Resource\": [");
		bk_json_str(f, arn);
		fprintf(f, ", ");
		snprintf(arn, sizeof arn, "arn:aws:s3:::%s/*", bucket);
		bk_json_str(f, arn);
		fprintf(f, "]\n    }\n");
	} else {
		fprintf(f, "    {\n      \"Sid\": \"AssetdObjects\",\n"
			   "      \"Effect\": \"Allow\",\n"
			   "      \"Principal\": { \"AWS\": ");
		bk_json_str(f, principal);
		fprintf(f, " },\n      \"Action\": [%s],\n", obj_actions);
		snprintf(arn, sizeof arn, "arn:aws:s3:::%s/%s/*", bucket,
			 prefix);
		fprintf(f, "      \"Resource\": ");
		bk_json_str(f, arn);
		fprintf(f, "\n    },\n");
		fprintf(f, "    {\n      \"Sid\": \"AssetdList\",\n"
			   "      \"Effect\": \"Allow\",\n"
			   "      \"Principal\": { \"AWS\": ");
		bk_json_str(f, principal);
		fprintf(f, " },\n      \"Action\": \"s3:ListBucket\",\n");
		snprintf(arn, sizeof arn, "arn:aws:s3:::%s", bucket);
		fprintf(f, "      \"Resource\": ");
		bk_json_str(f, arn);
		fprintf(f, ",\n      \"Condition\": { \"StringLike\": { "
			   "\"s3:prefix\": [");
		snprintf(arn, sizeof arn, "%s/*", prefix);
		bk_json_str(f, arn);
		fprintf(f, "] } }\n    }\n");
	}
	fprintf(f, "  ]\n}\n");
	return 0;
}

/* ---- the check --------------------------------------------------------------- */

#define MAX_FOLDERS 64
#define ROOT_NAMES_MAX 20       /* strays named in one message */

struct checker {
	struct store *st;
	const struct bucket_check_opts *o;
	struct bucket_report *rep;
	int s3;
	char bucket[64];
	char prefix[STORE_NAME_MAX]; /* no slashes at the ends, "" = none */
	char probe[64];         /* the probe's name while it exists */
};

static void report(struct checker *c, int level, const char *check,
		   const char *name, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void report(struct checker *c, int level, const char *check,
		   const char *name, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (level == BUCKET_ERROR)
		c->rep->errors++;
	else if (level == BUCKET_WARN)
		c->rep->warnings++;
	if (c->o->cb) {
		struct bucket_finding f = { level, check, name ? name : "",
					    msg };
		c->o->cb(c->o->cb_arg, &f);
	}
}

/* The objects ARN (".../PREFIX/ then a star") or the bucket ARN. */
static void arn_of(const struct checker *c, int objects, char *buf,
		   size_t len)
{
	if (objects)
		snprintf(buf, len, "arn:aws:s3:::%s/%.1000s%s*", c->bucket,
			 c->prefix, c->prefix[0] ? "/" : "");
	else
		snprintf(buf, len, "arn:aws:s3:::%s", c->bucket);
}

static int denied(int rc)
{
	return rc == STORE_EACCES || rc == STORE_EAUTH;
}

static void report_denied(struct checker *c, const char *action, int objects,
			  int rc, const char *extra)
{
	char arn[STORE_NAME_MAX + 64];
	const char *why = rc == STORE_EAUTH ? " (the credentials were "
					      "refused)"
					    : "";
	if (!c->s3) {
		report(c, BUCKET_ERROR, "access", "",
		       "%s denied: %s has no %s permission for this "
		       "process%s%s",
		       action, store_url(c->st),
		       strcmp(action, "list") == 0 ? "read" : "write", why,
		       extra);
		return;
	}
	arn_of(c, objects, arn, sizeof arn);
	if (!objects && c->prefix[0])
		report(c, BUCKET_ERROR, "access", "",
		       "%s denied: the policy lacks s3:%s on %s with s3:prefix "
		       "%s/*%s%s",
		       action, action, arn, c->prefix, why, extra);
	else
		report(c, BUCKET_ERROR, "access", "",
		       "%s denied: the policy lacks s3:%s on %s%s%s", action,
		       action, arn, why, extra);
}

/* The root level, gathered by the access pass's listing. */
struct root_level {
	char **names;           /* entries, dirs with a trailing '/' */
	int n, cap;
	int64_t total;
};

static int root_cb(void *arg, const struct store_entry *e)
{
	struct root_level *r = arg;
	r->total++;
	if (r->n >= 10000) /* enough to name strays and find collections */
		return 0;
	if (r->n == r->cap) {
		int cap = r->cap ? r->cap * 2 : 32;
		void *p = realloc(r->names, (size_t)cap * sizeof *r->names);
		if (!p)
			return STORE_ENOMEM;
		r->names = p;
		r->cap = cap;
	}
	r->names[r->n] = strdup(e->name);
	if (!r->names[r->n])
		return STORE_ENOMEM;
	r->n++;
	return 0;
}

static void check_access(struct checker *c, struct root_level *root)
{
	int rc = store_list(c->st, "", '/', NULL, root_cb, root);
	int ok = 1;
	if (rc != 0) {
		ok = 0;
		if (denied(rc))
			report_denied(c, c->s3 ? "ListBucket" : "list", 0, rc,
				      "");
		else
			report(c, BUCKET_ERROR, "access", "",
			       "listing failed: %s", store_strerror(rc));
	}
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		memset(rnd, 0x5a, sizeof rnd);
	snprintf(c->probe, sizeof c->probe,
		 "assetd-probe-%02x%02x%02x%02x%02x%02x%02x%02x.tmp", rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	char body[128], back[128];
	snprintf(body, sizeof body, "assetd access probe %s", c->probe);
	size_t blen = strlen(body);
	rc = store_put(c->st, c->probe, body, blen, NULL);
	if (rc != 0) {
		ok = 0;
		if (denied(rc))
			report_denied(c, c->s3 ? "PutObject" : "write", 1, rc,
				      "");
		else
			report(c, BUCKET_ERROR, "access", "",
			       "writing a probe object failed: %s",
			       store_strerror(rc));
		c->probe[0] = '\0';
		goto done;
	}
	ssize_t n = store_pread(c->st, c->probe, back, sizeof back, 0);
	if (n < 0) {
		ok = 0;
		if (denied((int)n))
			report_denied(c, c->s3 ? "GetObject" : "read", 1,
				      (int)n, "");
		else
			report(c, BUCKET_ERROR, "access", "",
			       "reading the probe back failed: %s",
			       store_strerror((int)n));
	} else if ((size_t)n != blen || memcmp(back, body, blen) != 0) {
		ok = 0;
		report(c, BUCKET_ERROR, "access", "",
		       "the probe object read back differs from what was "
		       "written");
	}
	rc = store_delete(c->st, c->probe);
	if (rc != 0 && rc != STORE_ENOENT) {
		char extra[200];
		ok = 0;
		snprintf(extra, sizeof extra,
			 "; the probe object %s is left behind: remove it by "
			 "hand",
			 c->probe);
		if (denied(rc))
			report_denied(c, c->s3 ? "DeleteObject" : "delete", 1,
				      rc, extra);
		else
			report(c, BUCKET_ERROR, "access", c->probe,
			       "deleting the probe object failed: %s%s",
			       store_strerror(rc), extra);
	}
	c->probe[0] = '\0';
done:
	if (ok)
		report(c, BUCKET_OK, "access", "",
		       "list, write, read back and delete are allowed");
}

static int is_dir_name(const char *n)
{
	size_t l = strlen(n);
	return l && n[l - 1] == '/';
}

static int folder_has(struct checker *c, const char *folder, const char *sub)
{
	char name[STORE_NAME_MAX];
	struct store_stat sst;
	if (store_name_join(folder, sub, name, sizeof name) != 0)
		return 0;
	return store_stat(c->st, name, &sst) == 0 && sst.is_dir;
}

struct level_list {
	struct checker *c;
	const char *folder;     /* "" or "Coll/" */
	char names[1024];
	int strays, objects;
	const char *const *allowed; /* extra dirs allowed here */
	int nallowed;
};

static int level_cb(void *arg, const struct store_entry *e)
{
	struct level_list *l = arg;
	const char *rel = e->name + strlen(l->folder);
	if (strcmp(rel, "originals/") == 0 || strcmp(rel, "thumbnails/") == 0)
		return 0;
	for (int i = 0; i < l->nallowed; i++) {
		size_t al = strlen(l->allowed[i]);
		if (strncmp(e->name, l->allowed[i], al) == 0 &&
		    (e->name[al] == '/' || e->name[al] == '\0'))
			return 0;
	}
	if (!e->is_dir)
		l->objects++;
	if (l->strays++ < ROOT_NAMES_MAX) {
		size_t used = strlen(l->names);
		snprintf(l->names + used, sizeof l->names - used, "%s%s",
			 used ? ", " : "", rel);
	}
	return 0;
}

static void check_layout(struct checker *c, const char *const *folders,
			 int nfolders, struct root_level *root)
{
	/* objects directly under the root */
	char names[1024] = "";
	int nroot = 0;
	for (int i = 0; i < root->n; i++) {
		if (is_dir_name(root->names[i]))
			continue;
		if (nroot++ < ROOT_NAMES_MAX) {
			size_t used = strlen(names);
			snprintf(names + used, sizeof names - used, "%s%s",
				 used ? ", " : "", root->names[i]);
		}
	}
	int root_is_folder = 0;
	for (int i = 0; i < nfolders; i++)
		if (folders[i][0] == '\0')
			root_is_folder = 1;
	if (nroot)
		report(c, BUCKET_ERROR, "layout", "",
		       "%d object%s directly under the root (files belong in "
		       "originals/): %s%s",
		       nroot, nroot == 1 ? "" : "s", names,
		       nroot > ROOT_NAMES_MAX ? ", ..." : "");

	for (int i = 0; i < nfolders; i++) {
		char f[STORE_NAME_MAX];
		const char *label = folders[i][0] ? folders[i] : "the root";
		snprintf(f, sizeof f, "%s%s", folders[i],
			 folders[i][0] ? "/" : "");
		int missing = 0;
		static const char *const subs[2] = { "originals",
						     "thumbnails" };
		for (int k = 0; k < 2; k++) {
			if (folder_has(c, folders[i], subs[k]))
				continue;
			char name[STORE_NAME_MAX];
			store_name_join(folders[i], subs[k], name,
					sizeof name);
			if (c->o->fix) {
				int rc = store_mkdir(c->st, name);
				if (rc == 0 || rc == STORE_EEXIST) {
					c->rep->fixed++;
					report(c, BUCKET_OK, "layout", name,
					       "created %s/", name);
					continue;
				}
				report(c, BUCKET_ERROR, "layout", name,
				       "missing %s/ in %s, and creating it "
				       "failed: %s",
				       subs[k], label, store_strerror(rc));
			} else {
				report(c, BUCKET_ERROR, "layout", name,
				       "missing %s/ in %s (--fix creates it)",
				       subs[k], label);
			}
			missing++;
		}
		/* anything else at this level */
		struct level_list l = { c, f, "", 0, 0, NULL, 0 };
		if (folders[i][0] == '\0' || !root_is_folder) {
			l.allowed = folders;
			l.nallowed = nfolders;
		}
		if (folders[i][0] == '\0') {
			/* the root: the gathered listing; its objects were
			 * reported above */
			for (int k = 0; k < root->n; k++) {
				struct store_entry e = { 0 };
				e.name = root->names[k];
				e.is_dir = is_dir_name(root->names[k]);
				if (e.is_dir)
					level_cb(&l, &e);
			}
		} else {
			store_list(c->st, f, '/', NULL, level_cb, &l);
		}
		if (l.strays)
			report(c, BUCKET_WARN, "layout", f,
			       "unexpected in %s (only originals/ and "
			       "thumbnails/ belong there): %s%s",
			       label, l.names,
			       l.strays > ROOT_NAMES_MAX ? ", ..." : "");
		if (!missing && !l.strays)
			report(c, BUCKET_OK, "layout", f,
			       "%s holds originals/ and thumbnails/", label);
	}
}

/* ---- file types ---------------------------------------------------------------- */

enum kind { K_UNKNOWN, K_JPEG, K_PNG, K_GIF, K_PDF, K_TIFF, K_HEIF, K_MP4,
	    K_WEBP, K_BMP, K_ZIP };

static const char *const kind_names[] = { "unknown", "JPEG", "PNG", "GIF",
					  "PDF", "TIFF", "HEIF", "MP4/MOV",
					  "WebP", "BMP", "ZIP" };

static enum kind kind_of_ext(const char *name)
{
	static const struct {
		const char *ext;
		enum kind k;
	} map[] = {
		{ "jpg", K_JPEG },  { "jpeg", K_JPEG }, { "jpe", K_JPEG },
		{ "png", K_PNG },   { "gif", K_GIF },   { "pdf", K_PDF },
		{ "tif", K_TIFF },  { "tiff", K_TIFF }, { "heic", K_HEIF },
		{ "heif", K_HEIF }, { "mp4", K_MP4 },   { "mov", K_MP4 },
		{ "m4v", K_MP4 },   { "webp", K_WEBP }, { "bmp", K_BMP },
		{ "zip", K_ZIP },
	};
	const char *dot = strrchr(name, '.');
	const char *slash = strrchr(name, '/');
	if (!dot || (slash && dot < slash))
		return K_UNKNOWN;
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcasecmp(dot + 1, map[i].ext) == 0)
			return map[i].k;
	return K_UNKNOWN;
}

static enum kind kind_of_bytes(const unsigned char *b, size_t n)
{
	if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return K_JPEG;
	if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
		return K_PNG;
	if (n >= 4 && memcmp(b, "GIF8", 4) == 0)
		return K_GIF;
	if (n >= 4 && memcmp(b, "%PDF", 4) == 0)
		return K_PDF;
	if (n >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0))
		return K_TIFF;
	if (n >= 12 && memcmp(b + 4, "ftyp", 4) == 0) {
		static const char *const heif[] = { "heic", "heix", "hevc",
						    "heim", "heis", "mif1",
						    "msf1", "avif" };
		for (size_t i = 0; i < sizeof heif / sizeof heif[0]; i++)
			if (memcmp(b + 8, heif[i], 4) == 0)
				return K_HEIF;
		return K_MP4;
	}
	if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
		return K_WEBP;
	if (n >= 2 && b[0] == 'B' && b[1] == 'M')
		return K_BMP;
	if (n >= 4 && memcmp(b, "PK\3\4", 4) == 0)
		return K_ZIP;
	return K_UNKNOWN;
}

struct type_walk {
	struct checker *c;
	const char *folder;     /* "" or "Coll" */
	int thumbs;             /* listing thumbnails/ (else originals/) */
	size_t skip;            /* bytes of "folder/originals/" */
	int64_t bad;
};

/* Compare the object's first bytes with its extension. */
static void check_magic(struct type_walk *w, const struct store_entry *e,
			const char *rel)
{
	enum kind want = kind_of_ext(rel);
	if (want == K_UNKNOWN)
		return;
	if (e->size == 0) {
		report(w->c, BUCKET_WARN, "type", e->name, "%s: empty file",
		       e->name);
		return;
	}
	unsigned char head[16];
	ssize_t n = store_pread(w->c->st, e->name, head, sizeof head, 0);
	if (n < 0) {
		report(w->c, BUCKET_ERROR, "type", e->name,
		       "%s: cannot read its first bytes: %s", e->name,
		       store_strerror((int)n));
		w->bad++;
		return;
	}
	enum kind got = kind_of_bytes(head, (size_t)n);
	if (got == want)
		return;
	/* MP4 and MOV share ftyp boxes; HEIF brands vary: accept the
	 * family */
	if ((want == K_MP4 || want == K_HEIF) && (got == K_MP4 || got == K_HEIF))
		return;
	w->bad++;
	if (got == K_UNKNOWN)
		report(w->c, BUCKET_ERROR, "type", e->name,
		       "%s: the name says %s but the content is not", e->name,
		       kind_names[want]);
	else
		report(w->c, BUCKET_ERROR, "type", e->name,
		       "%s: the name says %s but the content is %s", e->name,
		       kind_names[want], kind_names[got]);
}

/* 1 if an original for thumbnail root ROOT with extension EXT exists. */
static int original_exists(struct type_walk *w, const char *root,
			   const char *ext)
{
	static const char *const png_sources[] = {
		".pdf", ".PDF", ".tif", ".TIF", ".tiff", ".TIFF",
		".heic", ".HEIC", ".heif", ".HEIF",
	};
	char name[STORE_NAME_MAX];
	struct store_stat sst;
	int n = snprintf(name, sizeof name, "%s%soriginals/%s%s", w->folder,
			 w->folder[0] ? "/" : "", root, ext);
	if (n > 0 && (size_t)n < sizeof name &&
	    store_stat(w->c->st, name, &sst) == 0 && !sst.is_dir)
		return 1;
	if (strcasecmp(ext, ".png") != 0)
		return 0;
	for (size_t i = 0; i < sizeof png_sources / sizeof png_sources[0];
	     i++) {
		n = snprintf(name, sizeof name, "%s%soriginals/%s%s",
			     w->folder, w->folder[0] ? "/" : "", root,
			     png_sources[i]);
		if (n > 0 && (size_t)n < sizeof name &&
		    store_stat(w->c->st, name, &sst) == 0 && !sst.is_dir)
			return 1;
	}
	return 0;
}

static int type_cb(void *arg, const struct store_entry *e)
{
	struct type_walk *w = arg;
	if (e->is_dir)
		return 0;
	if (store_canceled(w->c->o->cancel))
		return STORE_ECANCELED;
	w->c->rep->objects++;
	const char *rel = e->name + w->skip;
	const char *where = w->thumbs ? "thumbnails/" : "originals/";
	if (strchr(rel, '/')) {
		w->bad++;
		report(w->c, BUCKET_ERROR, "name", e->name,
		       "%s: a subfolder in %s; Specify names are a single "
		       "segment",
		       e->name, where);
		return 0;
	}
	if (!store_segment_valid(rel)) {
		w->bad++;
		report(w->c, BUCKET_ERROR, "name", e->name,
		       "%s: a name Specify cannot use (no '/', '\\', '..', "
		       "control characters)",
		       e->name);
		return 0;
	}
	if (!w->thumbs) {
		check_magic(w, e, rel);
		return 0;
	}
	enum kind k = kind_of_ext(rel);
	if (k != K_JPEG && k != K_PNG && k != K_GIF) {
		w->bad++;
		report(w->c, BUCKET_ERROR, "type", e->name,
		       "%s: not an image served as a thumbnail (jpeg, png, "
		       "gif)",
		       e->name);
		return 0;
	}
	/* <root>_<scale>.<ext> */
	const char *dot = strrchr(rel, '.');
	const char *us = NULL;
	for (const char *p = rel; p < dot; p++)
		if (*p == '_')
			us = p;
	int digits = 0;
	if (us)
		for (const char *p = us + 1; p < dot; p++)
			digits = isdigit((unsigned char)*p) ? digits + 1 : -100;
	if (!us || us == rel || digits < 1 || digits > 5) {
		w->bad++;
		report(w->c, BUCKET_ERROR, "name", e->name,
		       "%s: a thumbnail is named <root>_<scale>.<ext> "
		       "(e.g. photo_200.jpg)",
		       e->name);
		return 0;
	}
	check_magic(w, e, rel);
	char root[STORE_NAME_MAX];
	memcpy(root, rel, (size_t)(us - rel));
	root[us - rel] = '\0';
	if (!original_exists(w, root, dot))
		report(w->c, BUCKET_WARN, "orphan", e->name,
		       "%s: orphan thumbnail, no original %s%s%s.* beside it",
		       e->name, w->folder[0] ? w->folder : "",
		       w->folder[0] ? "/originals/" : "originals/", root);
	return 0;
}

static void check_types(struct checker *c, const char *folder)
{
	for (int t = 0; t < 2; t++) {
		struct type_walk w = { c, folder, t, 0, 0 };
		char prefix[STORE_NAME_MAX];
		snprintf(prefix, sizeof prefix, "%s%s%s/", folder,
			 folder[0] ? "/" : "", t ? "thumbnails" : "originals");
		w.skip = strlen(prefix);
		int64_t before = c->rep->objects;
		int rc = store_list(c->st, prefix, 0, NULL, type_cb, &w);
		if (rc != 0 && rc != STORE_ENOENT && rc != STORE_ECANCELED)
			report(c, BUCKET_ERROR, "type", prefix,
			       "listing %s failed: %s", prefix,
			       store_strerror(rc));
		else if (rc == 0 && w.bad == 0)
			report(c, BUCKET_OK, "type", prefix,
			       "%s: %lld objects, names and types as expected",
			       prefix, (long long)(c->rep->objects - before));
	}
}

int bucket_check(struct store *st, const struct bucket_check_opts *o,
		 struct bucket_report *rep)
{
	struct checker c = { 0 };
	struct root_level root = { 0 };
	char err[256];
	const char *auto_folders[MAX_FOLDERS];
	const char *const *folders = o->folders;
	int nfolders = o->nfolders;
	memset(rep, 0, sizeof *rep);
	c.st = st;
	c.o = o;
	c.rep = rep;
	c.s3 = store_is_s3(st);
	if (c.s3 && split_s3(store_url(st), c.bucket, sizeof c.bucket,
			     c.prefix, sizeof c.prefix, err, sizeof err) != 0)
		return STORE_EINVAL;

	check_access(&c, &root);

	/* Which folders hold collections: given, or the root, or (when the
	 * root has neither originals/ nor thumbnails/) the subfolders that
	 * hold one of them. */
	char *auto_names[MAX_FOLDERS];
	int nauto = 0;
	if (nfolders == 0) {
		int root_has = folder_has(&c, "", "originals") ||
			       folder_has(&c, "", "thumbnails");
		for (int i = 0; !root_has && i < root.n && nauto < MAX_FOLDERS;
		     i++) {
			if (!is_dir_name(root.names[i]))
				continue;
			char d[STORE_NAME_MAX];
			snprintf(d, sizeof d, "%s", root.names[i]);
			d[strlen(d) - 1] = '\0';
			if (folder_has(&c, d, "originals") ||
			    folder_has(&c, d, "thumbnails")) {
				auto_names[nauto] = strdup(d);
				if (auto_names[nauto]) {
					auto_folders[nauto] = auto_names[nauto];
					nauto++;
				}
			}
		}
		if (nauto) {
			folders = auto_folders;
			nfolders = nauto;
		} else {
			static const char *const just_root[1] = { "" };
			folders = just_root;
			nfolders = 1;
		}
	}
	check_layout(&c, folders, nfolders, &root);
	for (int i = 0; i < nfolders; i++)
		check_types(&c, folders[i]);
	for (int i = 0; i < nauto; i++)
		free(auto_names[i]);
	for (int i = 0; i < root.n; i++)
		free(root.names[i]);
	free(root.names);
	return 0;
}

/* ---- for client add|set ------------------------------------------------------------ */

struct coll_folders {
	char *names[MAX_FOLDERS];
	int n;
};

static int coll_cb(void *arg, const struct catalog_collection *cc)
{
	struct coll_folders *f = arg;
	if (f->n >= MAX_FOLDERS)
		return 0;
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->names[i], cc->subfolder) == 0)
			return 0;
	f->names[f->n] = strdup(cc->subfolder);
	if (f->names[f->n])
		f->n++;
	return 0;
}

struct text_out {
	FILE *f;
	int show_ok;
};

static void text_cb(void *arg, const struct bucket_finding *fd)
{
	struct text_out *t = arg;
	if (fd->level == BUCKET_OK && !t->show_ok)
		return;
	fprintf(t->f, "%-5s %-7s %s\n",
		fd->level == BUCKET_OK     ? "ok"
		: fd->level == BUCKET_WARN ? "warn"
					   : "ERROR",
		fd->check, fd->message);
}

static int collect_folders(struct catalog *cat, const char *client,
			   struct coll_folders *f)
{
	memset(f, 0, sizeof *f);
	if (!client)
		return 0;
	return catalog_collection_list(cat, client, coll_cb, f);
}

static int open_as_client(const struct catalog_client *c, const char *url,
			  struct store **out)
{
	struct store_opts so = { 0 };
	so.endpoint = c->endpoint[0] ? c->endpoint : NULL;
	so.region = c->s3_region[0] ? c->s3_region : NULL;
	so.profile = c->profile[0] ? c->profile : NULL;
	so.path_style = -1;
	return store_open(url, &so, out);
}

int bucket_client_usable(struct catalog *cat, const struct catalog_client *c,
			 FILE *out)
{
	struct store *st;
	struct coll_folders f;
	struct bucket_report rep;
	struct text_out t = { out, 0 };
	int rc = open_as_client(c, c->location, &st);
	if (rc != 0)
		return rc;
	collect_folders(cat, c->name, &f);
	struct bucket_check_opts o = { 0 };
	o.folders = (const char *const *)f.names;
	o.nfolders = f.n;
	o.fix = 1;
	o.cb = out ? text_cb : NULL;
	o.cb_arg = &t;
	rc = bucket_check(st, &o, &rep);
	for (int i = 0; i < f.n; i++)
		free(f.names[i]);
	store_close(st);
	if (rc != 0)
		return rc;
	return rep.errors == 0;
}

/* ---- assetctl bucket ------------------------------------------------------------------ */

struct json_out {
	int n;
};

static void json_cb(void *arg, const struct bucket_finding *fd)
{
	struct json_out *j = arg;
	printf("%s\n    {\"level\": \"%s\", \"check\": ", j->n ? "," : "",
	       fd->level == BUCKET_OK     ? "ok"
	       : fd->level == BUCKET_WARN ? "warning"
					  : "error");
	bk_json_str(stdout, fd->check);
	printf(", \"name\": ");
	bk_json_str(stdout, fd->name);
	printf(", \"message\": ");
	bk_json_str(stdout, fd->message);
	printf("}");
	j->n++;
}

static void bucket_usage(void)
{
	fprintf(stderr,
		"usage: assetctl bucket policy s3://BUCKET[/PREFIX/] "
		"[--principal ARN] [--read-only]\n"
		"       assetctl bucket check LOCATION | --client NAME\n"
		"                [--collection DIR]... [--fix] [--json]\n");
}

static int cli_policy(const struct conf *cf, int argc, char **argv)
{
	const char *url = NULL, *principal = cf ? cf->aws_principal : NULL;
	int ro = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--principal") == 0 && i + 1 < argc)
			principal = argv[++i];
		else if (strncmp(argv[i], "--principal=", 12) == 0)
			principal = argv[i] + 12;
		else if (strcmp(argv[i], "--read-only") == 0)
			ro = 1;
		else if (strcmp(argv[i], "--json") == 0)
			; /* the output is JSON anyway */
		else if (argv[i][0] != '-' && !url)
			url = argv[i];
		else {
			bucket_usage();
			return 2;
		}
	}
	if (!url) {
		bucket_usage();
		return 2;
	}
	char err[256];
	/* write to memory first: nothing half-printed on an error */
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return 1;
	int rc = bucket_policy_write(m, url, principal, ro, err, sizeof err);
	fclose(m);
	if (rc != 0) {
		fprintf(stderr, "assetctl bucket policy: %s\n", err);
		free(buf);
		return 2;
	}
	fwrite(buf, 1, len, stdout);
	free(buf);
	return 0;
}

static int cli_check(struct catalog *cat, int json, int argc, char **argv)
{
	const char *url = NULL, *client = NULL;
	const char *dirs[MAX_FOLDERS];
	int ndirs = 0, fix = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--client") == 0 && i + 1 < argc)
			client = argv[++i];
		else if (strcmp(argv[i], "--collection") == 0 && i + 1 < argc &&
			 ndirs < MAX_FOLDERS)
			dirs[ndirs++] = argv[++i];
		else if (strcmp(argv[i], "--fix") == 0)
			fix = 1;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (argv[i][0] != '-' && !url)
			url = argv[i];
		else {
			bucket_usage();
			return 2;
		}
	}
	struct catalog_client *cl = NULL;
	if (client) {
		cl = calloc(1, sizeof *cl);
		if (!cl || catalog_client_get(cat, client, cl) != 0) {
			fprintf(stderr, "assetctl bucket check: no client %s\n",
				client);
			free(cl);
			return 1;
		}
		if (!url)
			url = cl->location;
	}
	if (!url) {
		bucket_usage();
		free(cl);
		return 2;
	}
	struct store *st = NULL;
	int rc;
	if (cl) {
		rc = open_as_client(cl, url, &st);
	} else {
		rc = tenant_open_location(cat, url, &st);
	}
	if (rc != 0) {
		fprintf(stderr, "assetctl bucket check: %s: %s\n", url,
			store_strerror(rc));
		free(cl);
		return 1;
	}
	struct coll_folders f = { 0 };
	if (client && ndirs == 0) {
		collect_folders(cat, client, &f);
		for (int i = 0; i < f.n; i++)
			dirs[ndirs++] = f.names[i];
	}
	struct bucket_check_opts o = { 0 };
	struct bucket_report rep;
	struct text_out t = { stdout, 1 };
	struct json_out j = { 0 };
	o.folders = dirs;
	o.nfolders = ndirs;
	o.fix = fix;
	o.cb = json ? json_cb : text_cb;
	o.cb_arg = json ? (void *)&j : (void *)&t;
	if (json) {
		printf("{\"location\": ");
		bk_json_str(stdout, store_url(st));
		printf(", \"findings\": [");
	} else {
		printf("checking %s\n", store_url(st));
	}
	rc = bucket_check(st, &o, &rep);
	int usable = rc == 0 && rep.errors == 0;
	if (json) {
		printf("\n  ], \"errors\": %d, \"warnings\": %d, \"objects\": "
		       "%lld, \"fixed\": %lld, \"usable\": %s}\n",
		       rep.errors, rep.warnings, (long long)rep.objects,
		       (long long)rep.fixed, usable ? "true" : "false");
	} else if (rc != 0) {
		printf("the check could not run: %s\n", store_strerror(rc));
	} else {
		printf("%d error%s, %d warning%s, %lld objects checked: %s\n",
		       rep.errors, rep.errors == 1 ? "" : "s", rep.warnings,
		       rep.warnings == 1 ? "" : "s", (long long)rep.objects,
		       usable ? "usable" : "NOT usable");
	}
	for (int i = 0; i < f.n; i++)
		free(f.names[i]);
	store_close(st);
	free(cl);
	return usable ? 0 : 1;
}

int bucket_cli(struct catalog *cat, const struct conf *cf, int json, int argc,
	       char **argv)
{
	if (argc < 2) {
		bucket_usage();
		return 2;
	}
	if (strcmp(argv[1], "policy") == 0)
		return cli_policy(cf, argc, argv);
	if (strcmp(argv[1], "check") == 0)
		return cli_check(cat, json, argc, argv);
	bucket_usage();
	return 2;
}
