/*
 * assetctl.c - the admin CLI over the catalog.
 *
 *   assetctl [-f CONFIG | -D DB] [--json] NOUN VERB [ARGS]
 *
 * Table-driven: nouns[] lists the nouns, each with its table of verbs; a
 * verb names its handler, its positional arguments, its options and a line
 * of help. One generic parser turns argv into a struct args against the
 * verb's option table, so every verb gets --help, --opt=value, "--" and the
 * same usage errors for free. To add a verb, write its handler and add a
 * row; to add a noun, add its verb table to nouns[]. A noun whose only verb
 * has the empty name takes no verb ("assetctl runs --limit 5").
 *
 * Exit codes: 0 success, 1 an error (the catalog refused, a file could not
 * be read, the store failed), 2 a usage error (unknown noun, verb or
 * option, missing or extra arguments). Every change is one catalog
 * transaction, so an error leaves the catalog as it was.
 *
 * Output: aligned tables for people; with --json (anywhere on the line) a
 * JSON document from a small writer that escapes every string.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archives.h"
#include "audit.h"
#include "bucket.h"
#include "catalog.h"
#include "conf.h"
#include "log.h"
#include "sshkey.h"
#include "store.h"
#include "sync.h"
#include "tenant.h"

#define EXIT_OK	   0
#define EXIT_ERR   1
#define EXIT_USAGE 2

#define DEFAULT_CONFIG "/etc/assetd/assetd.conf"
#define DEFAULT_DB     "var/assetd.db"

#define MAX_POS	 8
#define MAX_OPTS 16

/* ---- the tables' shapes -------------------------------------------------- */

struct ctx;
struct args;

struct opt {
	const char *name; /* "--region" */
	const char *arg;  /* "NAME", or NULL for a flag */
	const char *help;
};

struct verb {
	const char *name; /* "" = the noun takes no verb */
	int (*run)(struct ctx *ctx, const struct args *a);
	const char *synopsis; /* positional part: "NAME [FILE|-]" */
	int min_pos, max_pos;
	int writes;		/* 1 if it may change the catalog */
	const struct opt *opts; /* NULL-terminated, or NULL */
	const char *help;	/* one line */
	const char *more;	/* further paragraphs for --help, or NULL */
};

struct noun {
	const char *name;
	const struct verb *verbs; /* terminated by a row with name NULL */
	const char *help;
};

struct args {
	const struct noun *noun;
	const struct verb *verb;
	const char *pos[MAX_POS];
	int npos;
	const char *val[MAX_OPTS]; /* by index in verb->opts; "" for a flag */
};

struct ctx {
	int json;
	char db_path[CONF_PATH_MAX];
	struct catalog *cat;
	const struct conf *conf; /* the -f file's settings, else defaults */
};

/* ---- messages ----------------------------------------------------------- */

static int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "assetctl: MESSAGE" on stderr. */
static void vmessage(const char *fmt, va_list ap)
{
	fputs("assetctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static int error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	return EXIT_ERR;
}

static int cat_error(void)
{
	return error("%s", catalog_errmsg(NULL));
}

static int usage_error(const struct args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const struct args *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	if (a && a->noun && a->verb && a->verb->name[0])
		fprintf(stderr, "Try 'assetctl %s %s --help'.\n", a->noun->name,
			a->verb->name);
	else if (a && a->noun)
		fprintf(stderr, "Try 'assetctl %s --help'.\n", a->noun->name);
	else
		fprintf(stderr, "Try 'assetctl --help'.\n");
	return EXIT_USAGE;
}

/* ---- JSON writer ------------------------------------------------------------
 */

/* Writes pretty-printed JSON to stdout; tracks whether a comma is due at
 * each nesting level. */
struct jw {
	int depth;
	int first[16];
};

static void jw_indent(struct jw *j)
{
	for (int i = 0; i < j->depth; i++)
		fputs("  ", stdout);
}

static void jw_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	putchar('"');
	while (*p) {
		unsigned c = *p;
		if (c == '"' || c == '\\') {
			printf("\\%c", c);
			p++;
		} else if (c == '\n') {
			fputs("\\n", stdout);
			p++;
		} else if (c == '\t') {
			fputs("\\t", stdout);
			p++;
		} else if (c == '\r') {
			fputs("\\r", stdout);
			p++;
		} else if (c < 0x20 || c == 0x7f) {
			printf("\\u%04x", c);
			p++;
		} else if (c < 0x80) {
			putchar((int)c);
			p++;
		} else {
			/* Pass valid UTF-8 through; replace anything else so
			 * the document stays valid JSON. */
			int n = c >= 0xf0 && c < 0xf5	? 4
				: c >= 0xe0		? 3
				: c >= 0xc2 && c < 0xe0 ? 2
							: 0;
			int ok = n > 0;
			for (int i = 1; ok && i < n; i++)
				if ((p[i] & 0xc0) != 0x80)
					ok = 0;
			if (ok) {
				fwrite(p, 1, (size_t)n, stdout);
				p += n;
			} else {
				fputs("\\ufffd", stdout);
				p++;
			}
		}
	}
	putchar('"');
}

/* Start a value: comma and indentation as needed, then "KEY": if KEY. */
static void jw_pre(struct jw *j, const char *key)
{
	if (j->depth > 0) {
		if (!j->first[j->depth])
			putchar(',');
		putchar('\n');
		j->first[j->depth] = 0;
		jw_indent(j);
	}
	if (key) {
		jw_string(key);
		fputs(": ", stdout);
	}
}

static void jw_open(struct jw *j, const char *key, char c)
{
	jw_pre(j, key);
	putchar(c);
	j->depth++;
	j->first[j->depth] = 1;
}

static void jw_close(struct jw *j, char c)
{
	int empty = j->first[j->depth];
	j->depth--;
	if (!empty) {
		putchar('\n');
		jw_indent(j);
	}
	putchar(c);
	if (j->depth == 0)
		putchar('\n');
}

static void jw_str(struct jw *j, const char *key, const char *v)
{
	jw_pre(j, key);
	jw_string(v);
}

static void jw_int(struct jw *j, const char *key, int64_t v)
{
	jw_pre(j, key);
	printf("%" PRId64, v);
}

static void jw_bool(struct jw *j, const char *key, int v)
{
	jw_pre(j, key);
	fputs(v ? "true" : "false", stdout);
}

static void jw_null(struct jw *j, const char *key)
{
	jw_pre(j, key);
	fputs("null", stdout);
}

/* A string, or null when empty. */
static void jw_str_or_null(struct jw *j, const char *key, const char *v)
{
	if (v && v[0])
		jw_str(j, key, v);
	else
		jw_null(j, key);
}

/* ---- tables for people ------------------------------------------------- */

/* Rows of cells, printed with each column as wide as its widest cell. */
struct table {
	int ncols;
	char **cells;
	size_t n, cap;
};

static int table_vadd(struct table *t, va_list ap)
{
	if (t->n + (size_t)t->ncols > t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : (size_t)t->ncols * 16;
		while (ncap < t->n + (size_t)t->ncols)
			ncap *= 2;
		char **nc = realloc(t->cells, ncap * sizeof *nc);
		if (!nc)
			return -1;
		t->cells = nc;
		t->cap = ncap;
	}
	for (int i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		t->cells[t->n++] = strdup(s ? s : "");
	}
	return 0;
}

/* One row of T->ncols cells (NULL prints as empty). */
static int table_add(struct table *t, ...)
{
	va_list ap;
	va_start(ap, t);
	int rc = table_vadd(t, ap);
	va_end(ap);
	return rc;
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->n = t->cap = 0;
}

static void table_print(struct table *t)
{
	size_t w[16] = {0};
	for (size_t i = 0; i < t->n; i++) {
		size_t l = t->cells[i] ? strlen(t->cells[i]) : 0;
		if (l > w[i % (size_t)t->ncols])
			w[i % (size_t)t->ncols] = l;
	}
	for (size_t i = 0; i < t->n; i++) {
		int col = (int)(i % (size_t)t->ncols);
		const char *s = t->cells[i] ? t->cells[i] : "";
		if (col == t->ncols - 1)
			printf("%s\n", s);
		else
			printf("%-*s  ", (int)w[col], s);
	}
	table_free(t);
}

static const char *fmt_time(int64_t t, char *buf, size_t len)
{
	if (t <= 0)
		return "never";
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

static const char *fmt_int(int64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64, v);
	return buf;
}

/* ---- argument helpers ------------------------------------------------------
 */

static int opt_index(const struct verb *v, const char *name)
{
	for (int i = 0; v->opts && v->opts[i].name; i++)
		if (strcmp(v->opts[i].name, name) == 0)
			return i;
	return -1;
}

/* The value of option NAME, or NULL if not given ("" for a set flag). */
static const char *opt(const struct args *a, const char *name)
{
	int i = opt_index(a->verb, name);
	return i >= 0 ? a->val[i] : NULL;
}

/* Copy V into a fixed field, refusing what does not fit. */
static int set_field(char *dst, size_t size, const char *v, const char *what)
{
	if (strlen(v) >= size)
		return error("%s is too long (at most %zu bytes)", what,
			     size - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* A count with an optional K/M/G/T suffix (binary). */
static int parse_count(const char *s, const char *what, int64_t *out)
{
	uint64_t v;
	if (!s[0] || !isdigit((unsigned char)s[0]) ||
	    conf_parse_size(s, &v) != 0 || v > INT64_MAX)
		return error("invalid %s '%s': a number, optionally with a "
			     "K, M, G or T suffix",
			     what, s);
	*out = (int64_t)v;
	return 0;
}

/* A quota: a count with a suffix as above, or "none" (= 0, no quota). */
static int parse_quota(const char *s, const char *what, int64_t *out)
{
	if (strcasecmp(s, "none") == 0) {
		*out = 0;
		return 0;
	}
	return parse_count(s, what, out);
}

static const char *fmt_size(int64_t v, char *buf, size_t len)
{
	if (v == 0)
		return "none";
	const char *units = "KMGT";
	int u = -1;
	int64_t x = v;
	while (x % 1024 == 0 && x >= 1024 && u < 3) {
		x /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRId64, v);
	else
		snprintf(buf, len, "%" PRId64 "%c", x, units[u]);
	return buf;
}

/* ---- regions ------------------------------------------------------------ */

static const struct opt region_add_opts[] = {
    {"--assets", "URL",
     "where the region's clients' folders live "
     "(file:///path/ or s3://bucket/prefix/)"},
    {"--snapshot", "URL", "the snapshot (backup) target of the region"},
    {"--endpoint", "URL",
     "S3 endpoint for an S3-compatible store "
     "(default: AWS)"},
    {"--s3-region", "NAME", "S3 region name, e.g. us-east-1"},
    {"--profile", "NAME", "AWS shared-credentials profile"},
    {NULL, NULL, NULL},
};

/* Print "key: value" lines for people. */
static void kv(const char *k, const char *v)
{
	printf("%-16s %s\n", k, v && v[0] ? v : "-");
}

_Static_assert(sizeof(((struct catalog_region *)0)->endpoint) ==
		       CATALOG_URL_MAX &&
		   sizeof(((struct catalog_client *)0)->endpoint) ==
		       CATALOG_URL_MAX &&
		   sizeof(((struct catalog_region *)0)->s3_region) ==
		       CATALOG_NAME_MAX &&
		   sizeof(((struct catalog_client *)0)->s3_region) ==
		       CATALOG_NAME_MAX &&
		   sizeof(((struct catalog_region *)0)->profile) ==
		       CATALOG_NAME_MAX &&
		   sizeof(((struct catalog_client *)0)->profile) ==
		       CATALOG_NAME_MAX,
	       "s3_fill() writes regions' and clients' S3 fields alike");

/* How a region or a client reaches S3 (the fields are alike in both):
 * from --endpoint, --s3-region and --profile, */
static int s3_fill(const struct args *a, char *endpoint, char *s3_region,
		   char *profile)
{
	const char *v;
	if ((v = opt(a, "--endpoint")) &&
	    set_field(endpoint, CATALOG_URL_MAX, v, "endpoint"))
		return EXIT_ERR;
	if ((v = opt(a, "--s3-region")) &&
	    set_field(s3_region, CATALOG_NAME_MAX, v, "S3 region"))
		return EXIT_ERR;
	if ((v = opt(a, "--profile")) &&
	    set_field(profile, CATALOG_NAME_MAX, v, "profile"))
		return EXIT_ERR;
	return 0;
}

/* in JSON (null where unset), */
static void s3_json(struct jw *j, const char *endpoint, const char *s3_region,
		    const char *profile)
{
	jw_str_or_null(j, "endpoint", endpoint);
	jw_str_or_null(j, "s3_region", s3_region);
	jw_str_or_null(j, "profile", profile);
}

/* and for people. */
static void s3_kv(const char *endpoint, const char *s3_region,
		  const char *profile)
{
	kv("endpoint", endpoint[0] ? endpoint : "AWS");
	kv("s3 region", s3_region);
	kv("profile", profile);
}

static int region_fill(struct catalog_region *r, const struct args *a)
{
	const char *v;
	if ((v = opt(a, "--assets")) &&
	    set_field(r->assets, sizeof r->assets, v, "assets location"))
		return EXIT_ERR;
	if ((v = opt(a, "--snapshot")) &&
	    set_field(r->snapshot, sizeof r->snapshot, v, "snapshot location"))
		return EXIT_ERR;
	return s3_fill(a, r->endpoint, r->s3_region, r->profile);
}

static int region_add(struct ctx *ctx, const struct args *a)
{
	static struct catalog_region r;
	memset(&r, 0, sizeof r);
	if (!opt(a, "--assets"))
		return usage_error(a, "region add needs --assets URL");
	if (set_field(r.name, sizeof r.name, a->pos[0], "region name") ||
	    region_fill(&r, a))
		return EXIT_ERR;
	if (catalog_region_add(ctx->cat, &r) != 0)
		return cat_error();
	if (catalog_region_get(ctx->cat, r.name, &r) != 0)
		return cat_error();
	printf("region %s added: assets %s%s%s\n", r.name, r.assets,
	       r.snapshot[0] ? ", snapshot " : "", r.snapshot);
	return EXIT_OK;
}

static void region_json(struct jw *j, const char *key,
			const struct catalog_region *r)
{
	jw_open(j, key, '{');
	jw_str(j, "name", r->name);
	jw_str(j, "assets", r->assets);
	jw_str_or_null(j, "snapshot", r->snapshot);
	s3_json(j, r->endpoint, r->s3_region, r->profile);
	jw_close(j, '}');
}

/* A list verb's output: rows into a JSON array, or into a table that is
 * printed, aligned, once the catalog has handed over every row. */
struct list_state {
	struct ctx *ctx;
	struct jw j;
	struct table t;
};

/* Start a list of NCOLS columns; the headings follow (for the table). */
static void list_begin(struct list_state *ls, struct ctx *ctx, int ncols, ...)
{
	memset(ls, 0, sizeof *ls);
	ls->ctx = ctx;
	ls->t.ncols = ncols;
	if (ctx->json) {
		jw_open(&ls->j, NULL, '[');
	} else {
		va_list ap;
		va_start(ap, ncols);
		table_vadd(&ls->t, ap);
		va_end(ap);
	}
}

/* End the list the catalog's list function returned RC for: close the
 * array, or print the table (nothing of it on an error). */
static int list_end(struct list_state *ls, int rc)
{
	if (ls->ctx->json)
		jw_close(&ls->j, ']');
	else if (rc == 0)
		table_print(&ls->t);
	else
		table_free(&ls->t);
	return rc ? cat_error() : EXIT_OK;
}

static int region_row(void *arg, const struct catalog_region *r)
{
	struct list_state *ls = arg;
	if (ls->ctx->json)
		region_json(&ls->j, NULL, r);
	else
		table_add(&ls->t, r->name, r->assets,
			  r->snapshot[0] ? r->snapshot : "-",
			  r->endpoint[0] ? r->endpoint : "AWS",
			  r->s3_region[0] ? r->s3_region : "-");
	return 0;
}

static int region_list(struct ctx *ctx, const struct args *a)
{
	struct list_state ls;
	list_begin(&ls, ctx, 5, "NAME", "ASSETS", "SNAPSHOT", "ENDPOINT",
		   "S3 REGION");
	return list_end(&ls, catalog_region_list(ctx->cat, region_row, &ls));
}

static int region_show(struct ctx *ctx, const struct args *a)
{
	static struct catalog_region r;
	if (catalog_region_get(ctx->cat, a->pos[0], &r) != 0)
		return cat_error();
	if (ctx->json) {
		struct jw j = {0};
		region_json(&j, NULL, &r);
		return EXIT_OK;
	}
	kv("name", r.name);
	kv("assets", r.assets);
	kv("snapshot", r.snapshot);
	s3_kv(r.endpoint, r.s3_region, r.profile);
	return EXIT_OK;
}

static int region_set(struct ctx *ctx, const struct args *a)
{
	static struct catalog_region r;
	if (catalog_region_get(ctx->cat, a->pos[0], &r) != 0)
		return cat_error();
	if (region_fill(&r, a))
		return EXIT_ERR;
	if (catalog_region_update(ctx->cat, &r) != 0)
		return cat_error();
	printf("region %s changed\n", r.name);
	return EXIT_OK;
}

static int region_remove(struct ctx *ctx, const struct args *a)
{
	if (catalog_region_remove(ctx->cat, a->pos[0]) != 0)
		return cat_error();
	printf("region %s removed\n", a->pos[0]);
	return EXIT_OK;
}

static const struct verb region_verbs[] = {
    {"add", region_add, "NAME", 1, 1, 1, region_add_opts, "add a region",
     "A region is a place where clients' folders live: an assets\n"
     "location, an optional snapshot (backup) location, and how to reach\n"
     "S3 there. Example:\n"
     "  assetctl region add us --assets s3://sp-assets-us/ \\\n"
     "      --snapshot s3://sp-assets-na-snapshots/ --s3-region us-east-1"},
    {"list", region_list, "", 0, 0, 0, NULL, "list the regions", NULL},
    {"show", region_show, "NAME", 1, 1, 0, NULL, "show one region", NULL},
    {"set", region_set, "NAME", 1, 1, 1, region_add_opts,
     "change a region's settings",
     "Only the options given change; an empty value (--snapshot '')\n"
     "clears an optional setting. Existing clients keep their folders."},
    {"remove", region_remove, "NAME", 1, 1, 1, NULL,
     "remove a region that no client uses", NULL},
    {NULL, NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* ---- the store, for client folders
 * -------------------------------------------- */

static int open_client_store(const struct catalog_client *c, const char *url,
			     struct store **st)
{
	struct store_opts o = {
	    .endpoint = c->endpoint[0] ? c->endpoint : NULL,
	    .region = c->s3_region[0] ? c->s3_region : NULL,
	    .profile = c->profile[0] ? c->profile : NULL,
	    .path_style = -1,
	};
	return store_open(url, &o, st);
}

/* Make sure the client's folder exists and holds originals/ and
 * thumbnails/. On fs the folder itself is created inside its parent
 * (normally the region's assets directory), which must exist. */
static int prepare_location(const struct catalog_client *c)
{
	struct store *st = NULL;
	int rc = open_client_store(c, c->location, &st);
	if (rc == STORE_ENOENT && strncmp(c->location, "file://", 7) == 0) {
		char parent[CATALOG_URL_MAX];
		snprintf(parent, sizeof parent, "%s", c->location);
		size_t n = strlen(parent);
		parent[--n] = '\0'; /* the trailing '/' */
		char *slash = strrchr(parent, '/');
		if (!slash || slash - parent < 8)
			return error("cannot create %s", c->location);
		char child[CATALOG_URL_MAX];
		snprintf(child, sizeof child, "%s", slash + 1);
		slash[1] = '\0';
		struct store *pst = NULL;
		rc = open_client_store(c, parent, &pst);
		if (rc == 0) {
			rc = store_mkdir(pst, child);
			if (rc == STORE_EEXIST)
				rc = 0;
			store_close(pst);
		}
		if (rc)
			return error(
			    "cannot create the folder %s: %s (its "
			    "parent must exist; --no-check skips this)",
			    c->location, store_strerror(rc));
		rc = open_client_store(c, c->location, &st);
	}
	if (rc)
		return error("cannot open %s: %s (--no-check skips this)",
			     c->location, store_strerror(rc));
	static const char *const dirs[] = {"originals", "thumbnails"};
	for (size_t i = 0; i < 2; i++) {
		rc = store_mkdir(st, dirs[i]);
		if (rc == STORE_EEXIST)
			rc = 0;
		if (rc) {
			store_close(st);
			return error(
			    "cannot create %s%s/: %s (--no-check skips "
			    "this)",
			    c->location, dirs[i], store_strerror(rc));
		}
	}
	store_close(st);
	return 0;
}

static int first_entry(void *arg, const struct store_entry *e)
{
	snprintf(arg, STORE_NAME_MAX, "%s", e->name);
	return 1;
}

/* 1 if the client's folder holds any object, 0 if none (or no folder),
 * negative store error if it cannot be told. NAME receives the first. */
static int location_has_files(const struct catalog_client *c, char *name)
{
	struct store *st = NULL;
	int rc = open_client_store(c, c->location, &st);
	if (rc == STORE_ENOENT)
		return 0;
	if (rc)
		return rc;
	rc = store_list(st, "", 0, NULL, first_entry, name);
	store_close(st);
	if (rc == STORE_ENOENT)
		return 0;
	return rc;
}

/* ---- clients ------------------------------------------------------------ */

static const struct opt client_add_opts[] = {
    {"--region", "NAME",
     "the region: the folder becomes "
     "<region assets><client>/"},
    {"--location", "URL",
     "an explicit folder (file:///path/ or "
     "s3://bucket/prefix/), e.g. the client's own "
     "bucket"},
    {"--attachment-key", "KEY",
     "the Specify attachment key (default: "
     "32 random bytes, printed once)"},
    {"--quota-bytes", "N",
     "storage quota, with K/M/G/T suffix ('none' or 0 = none)"},
    {"--quota-objects", "N", "object count quota ('none' or 0 = none)"},
    {"--endpoint", "URL", "S3 endpoint of the client's own bucket"},
    {"--s3-region", "NAME", "S3 region of the client's own bucket"},
    {"--profile", "NAME",
     "credentials profile for the client's own "
     "bucket"},
    {"--no-check", NULL, "do not create or check the folder"},
    {NULL, NULL, NULL},
};

static const struct opt client_set_opts[] = {
    {"--region", "NAME",
     "move the client to another region (files are "
     "not moved; '' = none)"},
    {"--location", "URL", "a new folder (files are not moved)"},
    {"--attachment-key", "KEY", "a new attachment key"},
    {"--new-attachment-key", NULL,
     "generate a new attachment key and "
     "print it"},
    {"--quota-bytes", "N",
     "storage quota, with K/M/G/T suffix ('none' or 0 = none)"},
    {"--quota-objects", "N", "object count quota ('none' or 0 = none)"},
    {"--endpoint", "URL", "S3 endpoint of the client's own bucket"},
    {"--s3-region", "NAME", "S3 region of the client's own bucket"},
    {"--profile", "NAME", "credentials profile"},
    {"--no-check", NULL, "do not check a new --location first"},
    {NULL, NULL, NULL},
};

/* Fill the fields common to add and set from the options. */
static int client_fill(struct catalog_client *c, const struct args *a)
{
	const char *v;
	if ((v = opt(a, "--region")) &&
	    set_field(c->region, sizeof c->region, v, "region name"))
		return EXIT_ERR;
	if ((v = opt(a, "--location")) &&
	    set_field(c->location, sizeof c->location, v, "location"))
		return EXIT_ERR;
	if ((v = opt(a, "--attachment-key"))) {
		if (!v[0])
			return error("the attachment key cannot be empty");
		if (set_field(c->attachment_key, sizeof c->attachment_key, v,
			      "attachment key"))
			return EXIT_ERR;
	}
	if ((v = opt(a, "--quota-bytes")) &&
	    parse_quota(v, "byte quota", &c->quota_bytes))
		return EXIT_ERR;
	if ((v = opt(a, "--quota-objects")) &&
	    parse_quota(v, "object quota", &c->quota_objects))
		return EXIT_ERR;
	return s3_fill(a, c->endpoint, c->s3_region, c->profile);
}

/* A quota is only as good as the figures it is held to: when one is set
 * on a client whose usage was never counted (files from before the
 * upgrade, or an own bucket that came full), count it now. */
static void recount_for_quota(struct ctx *ctx, const struct catalog_client *c,
			      const struct args *a)
{
	struct catalog_usage_total t;
	if ((!opt(a, "--quota-bytes") && !opt(a, "--quota-objects")) ||
	    (c->quota_bytes == 0 && c->quota_objects == 0) ||
	    opt(a, "--no-check") ||
	    catalog_usage_total(ctx->cat, c->name, &t) != 0 || t.recounted)
		return;
	struct store *st = NULL;
	int rc = open_client_store(c, c->location, &st);
	if (rc == 0)
		rc = tenant_usage_recount(ctx->cat, c->name, st);
	store_close(st);
	if (rc == 0 && catalog_usage_total(ctx->cat, c->name, &t) == 0)
		printf("  usage counted   %" PRId64 " objects, %" PRId64
		       " bytes\n",
		       t.objects, t.bytes);
	else
		fprintf(stderr,
			"assetctl: warning: could not count the usage of %s "
			"(%s): run 'assetctl client usage %s --recount'\n",
			c->name, rc ? store_strerror(rc) : catalog_errmsg(NULL),
			c->name);
}

/* The bucket check of a location given with --location (a client's own
 * bucket, or any folder named by hand): refuse an unusable one. */
static int check_location(struct ctx *ctx, const struct catalog_client *c)
{
	int rc = bucket_client_usable(ctx->cat, c, stderr);
	if (rc == 1)
		return 0;
	if (rc < 0)
		return error("cannot check %s: %s (--no-check skips this)",
			     c->location, store_strerror(rc));
	return error("%s is not usable (see above; 'assetctl bucket check' "
		     "tells more, --no-check skips this)",
		     c->location);
}

static int client_add(struct ctx *ctx, const struct args *a)
{
	static struct catalog_client c;
	memset(&c, 0, sizeof c);
	if (!opt(a, "--region") && !opt(a, "--location"))
		return usage_error(a, "client add needs --region NAME or "
				      "--location URL");
	if (set_field(c.name, sizeof c.name, a->pos[0], "client name") ||
	    client_fill(&c, a))
		return EXIT_ERR;
	int generated = c.attachment_key[0] == '\0';
	if (catalog_client_add(ctx->cat, &c) != 0)
		return cat_error();
	if (!opt(a, "--no-check") &&
	    (prepare_location(&c) != 0 ||
	     (opt(a, "--location") && check_location(ctx, &c) != 0))) {
		/* Take the row back: a client whose folder cannot be made
		 * would only fail later, at its first upload. */
		if (catalog_client_remove(ctx->cat, c.name) != 0)
			cat_error();
		return EXIT_ERR;
	}
	printf("client %s added\n", c.name);
	printf("  location        %s\n", c.location);
	recount_for_quota(ctx, &c, a);
	if (generated)
		printf("  attachment key  %s\n"
		       "  (generated: give it to Specify as the asset server "
		       "key; 'assetctl client show %s --show-key' prints it "
		       "again)\n",
		       c.attachment_key, c.name);
	return EXIT_OK;
}

struct client_extra {
	struct jw *j;
	struct table *t;
	int count;
};

static int coll_count(void *arg, const struct catalog_collection *co)
{
	struct client_extra *x = arg;
	if (x->j) {
		jw_open(x->j, NULL, '{');
		jw_str(x->j, "name", co->name);
		jw_str(x->j, "subfolder", co->subfolder);
		jw_close(x->j, '}');
	} else {
		printf("%-16s %s%s%s\n", x->count ? "" : "collections",
		       co->name, co->subfolder[0] ? " -> " : "", co->subfolder);
	}
	x->count++;
	return 0;
}

static int key_count(void *arg, const struct catalog_key *k)
{
	struct client_extra *x = arg;
	x->count++;
	return 0;
}

static void client_json_fields(struct jw *j, struct catalog *cat,
			       const struct catalog_client *c)
{
	struct catalog_usage_total t;
	if (catalog_usage_total(cat, c->name, &t) != 0)
		memset(&t, 0, sizeof t);
	jw_str(j, "name", c->name);
	jw_str_or_null(j, "region", c->region);
	jw_str(j, "location", c->location);
	jw_str(j, "attachment_key", c->attachment_key);
	jw_bool(j, "disabled", c->disabled);
	jw_int(j, "quota_bytes", c->quota_bytes);
	jw_int(j, "quota_objects", c->quota_objects);
	jw_int(j, "usage_objects", t.objects);
	jw_int(j, "usage_bytes", t.bytes);
	jw_int(j, "usage_recounted", t.recounted);
	jw_int(j, "created", c->created);
	s3_json(j, c->endpoint, c->s3_region, c->profile);
}

static int client_show(struct ctx *ctx, const struct args *a)
{
	static struct catalog_client c;
	if (catalog_client_get(ctx->cat, a->pos[0], &c) != 0)
		return cat_error();
	struct client_extra keys = {0};
	if (catalog_key_list(ctx->cat, c.name, key_count, &keys) != 0)
		return cat_error();
	if (ctx->json) {
		struct jw j = {0};
		jw_open(&j, NULL, '{');
		client_json_fields(&j, ctx->cat, &c);
		jw_int(&j, "keys", keys.count);
		jw_open(&j, "collections", '[');
		struct client_extra colls = {.j = &j};
		int rc = catalog_collection_list(ctx->cat, c.name, coll_count,
						 &colls);
		jw_close(&j, ']');
		jw_close(&j, '}');
		return rc ? cat_error() : EXIT_OK;
	}
	char b1[64], b2[64];
	kv("name", c.name);
	kv("state", c.disabled ? "disabled" : "active");
	kv("region", c.region);
	kv("location", c.location);
	if (c.endpoint[0] || c.s3_region[0] || c.profile[0])
		s3_kv(c.endpoint, c.s3_region, c.profile);
	kv("attachment key", opt(a, "--show-key") ? c.attachment_key
						  : "(set; --show-key prints "
						    "it)");
	kv("quota bytes", fmt_size(c.quota_bytes, b1, sizeof b1));
	kv("quota objects",
	   c.quota_objects ? fmt_int(c.quota_objects, b2, sizeof b2) : "none");
	struct catalog_usage_total t;
	if (catalog_usage_total(ctx->cat, c.name, &t) != 0)
		return cat_error();
	snprintf(b1, sizeof b1, "%" PRId64 " objects, %" PRId64 " bytes", t.objects,
		 t.bytes);
	kv("usage", b1);
	kv("created", fmt_time(c.created, b1, sizeof b1));
	kv("keys", fmt_int(keys.count, b2, sizeof b2));
	struct client_extra colls = {0};
	if (catalog_collection_list(ctx->cat, c.name, coll_count, &colls) != 0)
		return cat_error();
	if (colls.count == 0)
		kv("collections", "none");
	return EXIT_OK;
}

static int client_row(void *arg, const struct catalog_client *c)
{
	struct list_state *ls = arg;
	if (ls->ctx->json) {
		jw_open(&ls->j, NULL, '{');
		client_json_fields(&ls->j, ls->ctx->cat, c);
		jw_close(&ls->j, '}');
	} else {
		char b[64];
		table_add(&ls->t, c->name, c->region[0] ? c->region : "-",
			  c->disabled ? "disabled" : "active", c->location,
			  fmt_time(c->created, b, sizeof b));
	}
	return 0;
}

static int client_list(struct ctx *ctx, const struct args *a)
{
	struct list_state ls;
	list_begin(&ls, ctx, 5, "NAME", "REGION", "STATE", "LOCATION",
		   "CREATED");
	return list_end(&ls, catalog_client_list(ctx->cat, client_row, &ls));
}

static int client_set(struct ctx *ctx, const struct args *a)
{
	static struct catalog_client c;
	if (catalog_client_get(ctx->cat, a->pos[0], &c) != 0)
		return cat_error();
	char old_location[CATALOG_URL_MAX];
	snprintf(old_location, sizeof old_location, "%s", c.location);
	if (opt(a, "--new-attachment-key") && opt(a, "--attachment-key"))
		return usage_error(a, "give --attachment-key or "
				      "--new-attachment-key, not both");
	if (client_fill(&c, a))
		return EXIT_ERR;
	if (opt(a, "--new-attachment-key"))
		c.attachment_key[0] = '\0';
	if (c.attachment_key[0] == '\0' &&
	    catalog_attachment_key_generate(c.attachment_key,
					    sizeof c.attachment_key) != 0)
		return cat_error();
	/* A new folder is made ready (as client add does) and checked
	 * before the client is pointed at it. */
	if (opt(a, "--location") && !opt(a, "--no-check") &&
	    strcmp(old_location, c.location) != 0 &&
	    (strncmp(c.location, "file:///", 8) == 0 ||
	     strncmp(c.location, "s3://", 5) == 0) && /* else the catalog
							 says what is wrong */
	    (prepare_location(&c) != 0 || check_location(ctx, &c) != 0))
		return EXIT_ERR;
	if (catalog_client_update(ctx->cat, &c) != 0)
		return cat_error();
	printf("client %s changed\n", c.name);
	if (strcmp(old_location, c.location) != 0)
		printf("  location %s -> %s (files were not moved)\n",
		       old_location, c.location);
	if (opt(a, "--new-attachment-key"))
		printf("  attachment key  %s\n", c.attachment_key);
	recount_for_quota(ctx, &c, a);
	return EXIT_OK;
}

static int client_set_disabled(struct ctx *ctx, const struct args *a,
			       int disabled)
{
	static struct catalog_client c;
	if (catalog_client_get(ctx->cat, a->pos[0], &c) != 0)
		return cat_error();
	/* The row as read carries the region's S3 settings; the catalog
	 * recognises them as the region's and keeps storing none. */
	c.disabled = disabled;
	if (catalog_client_update(ctx->cat, &c) != 0)
		return cat_error();
	printf("client %s %s\n", c.name, disabled ? "disabled" : "enabled");
	return EXIT_OK;
}

static int client_disable(struct ctx *ctx, const struct args *a)
{
	return client_set_disabled(ctx, a, 1);
}

static int client_enable(struct ctx *ctx, const struct args *a)
{
	return client_set_disabled(ctx, a, 0);
}

static int client_remove(struct ctx *ctx, const struct args *a)
{
	static struct catalog_client c;
	if (catalog_client_get(ctx->cat, a->pos[0], &c) != 0)
		return cat_error();
	if (!opt(a, "--force")) {
		static char first[STORE_NAME_MAX];
		int rc = location_has_files(&c, first);
		if (rc == 1)
			return error("client %s still has files in %s (e.g. "
				     "%s): remove them first, or use --force "
				     "to remove the client and keep its files",
				     c.name, c.location, first);
		if (rc < 0)
			return error("cannot check the files of client %s in "
				     "%s: %s; use --force to remove it anyway",
				     c.name, c.location, store_strerror(rc));
	}
	if (catalog_client_remove(ctx->cat, c.name) != 0)
		return cat_error();
	printf("client %s removed (its files in %s were left in place)\n",
	       c.name, c.location);
	return EXIT_OK;
}

/* ---- usage --------------------------------------------------------------- */

/* Bytes in words: "3.4 MiB", "512 B". */
static const char *fmt_bytes(int64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB",
					     "PiB" };
	if (v < 1024) {
		snprintf(buf, len, "%" PRId64 " B", v);
		return buf;
	}
	double x = (double)v / 1024;
	int u = 0;
	while (x >= 1024 && u < 4) {
		x /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", x, units[u]);
	return buf;
}

/* "12.5%" of QUOTA, or "-" without one. */
static const char *fmt_percent(int64_t used, int64_t quota, char *buf,
			       size_t len)
{
	if (quota <= 0)
		return "-";
	snprintf(buf, len, "%.1f%%", 100.0 * (double)used / (double)quota);
	return buf;
}

static void jw_percent(struct jw *j, const char *key, int64_t used,
		       int64_t quota)
{
	if (quota <= 0) {
		jw_null(j, key);
		return;
	}
	jw_pre(j, key);
	printf("%.2f", 100.0 * (double)used / (double)quota);
}

/* One client's report: its figures, per top-level folder and per
 * collection. */
struct usage_report {
	struct catalog_usage *rows;
	size_t n, cap;
	struct catalog_collection *colls;
	size_t ncolls, capcolls;
};

static int usage_row(void *arg, const struct catalog_usage *u)
{
	struct usage_report *r = arg;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct catalog_usage *nr = realloc(r->rows, cap * sizeof *nr);
		if (!nr)
			return error("out of memory");
		r->rows = nr;
		r->cap = cap;
	}
	r->rows[r->n++] = *u;
	return 0;
}

static int usage_coll(void *arg, const struct catalog_collection *c)
{
	struct usage_report *r = arg;
	if (r->ncolls == r->capcolls) {
		size_t cap = r->capcolls ? r->capcolls * 2 : 8;
		struct catalog_collection *nc =
		    realloc(r->colls, cap * sizeof *nc);
		if (!nc)
			return error("out of memory");
		r->colls = nc;
		r->capcolls = cap;
	}
	r->colls[r->ncolls++] = *c;
	return 0;
}

/* A collection's figures: those of its subfolder's top-level folder, or
 * the client's whole when its subfolder is the client's root. */
static void coll_figures(const struct usage_report *r,
			 const struct catalog_usage_total *t,
			 const struct catalog_collection *c, int64_t *objects,
			 int64_t *bytes)
{
	char folder[CATALOG_TEXT_MAX];
	*objects = *bytes = 0;
	if (!c->subfolder[0]) {
		*objects = t->objects;
		*bytes = t->bytes;
		return;
	}
	char path[CATALOG_URL_MAX + 2];
	snprintf(path, sizeof path, "%s/", c->subfolder);
	if (tenant_usage_folder(path, folder, sizeof folder) != 0)
		return;
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->rows[i].folder, folder) == 0) {
			*objects = r->rows[i].objects;
			*bytes = r->rows[i].bytes;
		}
}

static int usage_one(struct ctx *ctx, const struct catalog_client *c,
		     int recount, struct jw *j)
{
	struct usage_report r;
	struct catalog_usage_total t;
	char b1[64], b2[64], b3[64];
	int rc = 0;
	memset(&r, 0, sizeof r);
	if (recount) {
		struct store *st = NULL;
		rc = open_client_store(c, c->location, &st);
		if (rc == 0)
			rc = tenant_usage_recount(ctx->cat, c->name, st);
		store_close(st);
		if (rc)
			return error("cannot recount client %s in %s: %s",
				     c->name, c->location, store_strerror(rc));
	}
	if (catalog_usage_total(ctx->cat, c->name, &t) != 0 ||
	    catalog_usage_list(ctx->cat, c->name, usage_row, &r) != 0 ||
	    catalog_collection_list(ctx->cat, c->name, usage_coll, &r) != 0) {
		rc = cat_error();
		goto out;
	}
	if (j) {
		jw_open(j, NULL, '{');
		jw_str(j, "client", c->name);
		jw_int(j, "objects", t.objects);
		jw_int(j, "bytes", t.bytes);
		jw_int(j, "quota_objects", t.quota_objects);
		jw_int(j, "quota_bytes", t.quota_bytes);
		jw_percent(j, "percent_objects", t.objects, t.quota_objects);
		jw_percent(j, "percent_bytes", t.bytes, t.quota_bytes);
		jw_int(j, "recounted", t.recounted);
		jw_open(j, "folders", '[');
		for (size_t i = 0; i < r.n; i++) {
			jw_open(j, NULL, '{');
			jw_str(j, "folder", r.rows[i].folder);
			jw_int(j, "objects", r.rows[i].objects);
			jw_int(j, "bytes", r.rows[i].bytes);
			jw_int(j, "updated", r.rows[i].updated);
			jw_close(j, '}');
		}
		jw_close(j, ']');
		jw_open(j, "collections", '[');
		for (size_t i = 0; i < r.ncolls; i++) {
			int64_t o, b;
			coll_figures(&r, &t, &r.colls[i], &o, &b);
			jw_open(j, NULL, '{');
			jw_str(j, "name", r.colls[i].name);
			jw_str(j, "subfolder", r.colls[i].subfolder);
			jw_int(j, "objects", o);
			jw_int(j, "bytes", b);
			jw_close(j, '}');
		}
		jw_close(j, ']');
		jw_close(j, '}');
		goto out;
	}
	printf("client %s: %" PRId64 " objects, %s (%" PRId64 " bytes)\n",
	       c->name, t.objects, fmt_bytes(t.bytes, b1, sizeof b1), t.bytes);
	if (t.quota_bytes > 0)
		printf("  byte quota    %s, %s used\n",
		       fmt_bytes(t.quota_bytes, b1, sizeof b1),
		       fmt_percent(t.bytes, t.quota_bytes, b2, sizeof b2));
	else
		printf("  byte quota    none\n");
	if (t.quota_objects > 0)
		printf("  object quota  %" PRId64 ", %s used\n", t.quota_objects,
		       fmt_percent(t.objects, t.quota_objects, b2,
				   sizeof b2));
	else
		printf("  object quota  none\n");
	printf("  recounted     %s%s\n", fmt_time(t.recounted, b1, sizeof b1),
	       t.recounted ? ""
			   : " (the figures hold only the writes seen by "
			     "the daemon; --recount counts the store)");
	struct table tb = {.ncols = 3};
	table_add(&tb, "FOLDER", "OBJECTS", "BYTES");
	for (size_t i = 0; i < r.n; i++)
		table_add(&tb, r.rows[i].folder[0] ? r.rows[i].folder : "(root)",
			  fmt_int(r.rows[i].objects, b1, sizeof b1),
			  fmt_int(r.rows[i].bytes, b2, sizeof b2));
	if (r.n)
		table_print(&tb);
	else
		table_free(&tb); /* the heading alone is not printed */
	if (r.ncolls) {
		struct table tc = {.ncols = 4};
		table_add(&tc, "COLLECTION", "SUBFOLDER", "OBJECTS", "BYTES");
		for (size_t i = 0; i < r.ncolls; i++) {
			int64_t o, b;
			coll_figures(&r, &t, &r.colls[i], &o, &b);
			table_add(&tc, r.colls[i].name,
				  r.colls[i].subfolder[0] ? r.colls[i].subfolder
							  : "(root)",
				  fmt_int(o, b2, sizeof b2),
				  fmt_int(b, b3, sizeof b3));
		}
		table_print(&tc);
	}
out:
	free(r.rows);
	free(r.colls);
	return rc;
}

struct usage_all {
	struct ctx *ctx;
	int recount;
	struct jw *j;
	int failed;
};

static int usage_each(void *arg, const struct catalog_client *c)
{
	struct usage_all *u = arg;
	if (usage_one(u->ctx, c, u->recount, u->j) != 0)
		u->failed = 1; /* say so, and go on with the others */
	else if (!u->j)
		putchar('\n');
	return 0;
}

static int client_usage(struct ctx *ctx, const struct args *a)
{
	int recount = opt(a, "--recount") != NULL;
	struct jw j = {0};
	if (a->npos) {
		static struct catalog_client c;
		if (catalog_client_get(ctx->cat, a->pos[0], &c) != 0)
			return cat_error();
		return usage_one(ctx, &c, recount, ctx->json ? &j : NULL)
			   ? EXIT_ERR
			   : EXIT_OK;
	}
	struct usage_all u = {ctx, recount, ctx->json ? &j : NULL, 0};
	if (ctx->json)
		jw_open(&j, NULL, '[');
	int rc = catalog_client_list(ctx->cat, usage_each, &u);
	if (ctx->json)
		jw_close(&j, ']');
	if (rc)
		return cat_error();
	return u.failed ? EXIT_ERR : EXIT_OK;
}

static const struct opt client_usage_opts[] = {
    {"--recount", NULL,
     "count the store's objects and replace the kept figures"},
    {NULL, NULL, NULL},
};

static const struct opt client_show_opts[] = {
    {"--show-key", NULL, "print the attachment key"},
    {NULL, NULL, NULL},
};

static const struct opt client_remove_opts[] = {
    {"--force", NULL,
     "remove even if the folder still holds files "
     "(the files are kept)"},
    {NULL, NULL, NULL},
};

static const struct verb client_verbs[] = {
    {"add", client_add, "NAME", 1, 1, 1, client_add_opts,
     "add a client (an institution) with its folder",
     "The folder is <region assets>NAME/ with --region, or the URL given\n"
     "with --location (the client's own bucket or directory). Unless\n"
     "--no-check, the folder and its originals/ and thumbnails/ are\n"
     "created. The attachment key is generated if not given and printed\n"
     "once."},
    {"list", client_list, "", 0, 0, 0, NULL, "list the clients", NULL},
    {"show", client_show, "NAME", 1, 1, 0, client_show_opts, "show one client",
     NULL},
    {"set", client_set, "NAME", 1, 1, 1, client_set_opts,
     "change a client's settings",
     "Only the options given change. Changing the region or location\n"
     "does not move files."},
    {"usage", client_usage, "[NAME]", 0, 1, 1, client_usage_opts,
     "objects and bytes stored, per folder and collection, against the "
     "quota",
     "The daemon keeps the figures as writes commit, whichever protocol.\n"
     "--recount lists the client's folder (all clients' without NAME)\n"
     "and replaces them; do it after an upgrade, or when files were\n"
     "changed behind assetd's back. A collection's figures are those of\n"
     "its subfolder's top-level folder (the whole client for a collection\n"
     "at the client's root)."},
    {"disable", client_disable, "NAME", 1, 1, 1, NULL,
     "refuse the client everywhere (HTTP and SSH) without removing it", NULL},
    {"enable", client_enable, "NAME", 1, 1, 1, NULL,
     "accept a disabled client again", NULL},
    {"remove", client_remove, "NAME", 1, 1, 1, client_remove_opts,
     "remove a client, its keys and collections (never its files)",
     "Refused while the client's folder holds files, unless --force."},
    {NULL, NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* ---- collections ----------------------------------------------------------
 */

static const struct opt collection_add_opts[] = {
    {"--subfolder", "DIR",
     "the folder below the client's location that "
     "holds originals/ and thumbnails/ (default: "
     "the location itself)"},
    {NULL, NULL, NULL},
};

static int collection_add(struct ctx *ctx, const struct args *a)
{
	static struct catalog_collection c;
	memset(&c, 0, sizeof c);
	const char *sub = opt(a, "--subfolder");
	if (set_field(c.client, sizeof c.client, a->pos[0], "client name") ||
	    set_field(c.name, sizeof c.name, a->pos[1], "collection name") ||
	    (sub &&
	     set_field(c.subfolder, sizeof c.subfolder, sub, "subfolder")))
		return EXIT_ERR;
	if (catalog_collection_add(ctx->cat, &c) != 0)
		return cat_error();
	printf("collection '%s' added to client %s%s%s\n", c.name, c.client,
	       sub && sub[0] ? ", subfolder " : "", sub ? sub : "");
	return EXIT_OK;
}

static int collection_row(void *arg, const struct catalog_collection *c)
{
	struct list_state *ls = arg;
	if (ls->ctx->json) {
		jw_open(&ls->j, NULL, '{');
		jw_str(&ls->j, "client", c->client);
		jw_str(&ls->j, "name", c->name);
		jw_str(&ls->j, "subfolder", c->subfolder);
		jw_close(&ls->j, '}');
	} else {
		table_add(&ls->t, c->client, c->name,
			  c->subfolder[0] ? c->subfolder : "-");
	}
	return 0;
}

static int collection_list(struct ctx *ctx, const struct args *a)
{
	struct list_state ls;
	list_begin(&ls, ctx, 3, "CLIENT", "COLLECTION", "SUBFOLDER");
	return list_end(&ls, catalog_collection_list(
				 ctx->cat, a->npos ? a->pos[0] : NULL,
				 collection_row, &ls));
}

static int collection_remove(struct ctx *ctx, const struct args *a)
{
	if (catalog_collection_remove(ctx->cat, a->pos[0], a->pos[1]) != 0)
		return cat_error();
	printf("collection '%s' removed from client %s\n", a->pos[1],
	       a->pos[0]);
	return EXIT_OK;
}

static const struct verb collection_verbs[] = {
    {"add", collection_add, "CLIENT NAME", 2, 2, 1, collection_add_opts,
     "map a Specify collection name to a client",
     "NAME is the collection's name as Specify sends it (quote it if it\n"
     "has spaces)."},
    {"list", collection_list, "[CLIENT]", 0, 1, 0, NULL,
     "list collections (of one client)", NULL},
    {"remove", collection_remove, "CLIENT NAME", 2, 2, 1, NULL,
     "remove a collection mapping (files are kept)", NULL},
    {NULL, NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* ---- SSH keys -------------------------------------------------------------
 */

static const struct opt key_add_opts[] = {
    {"--line", "LINE", "the key as one authorized_keys line"},
    {NULL, NULL, NULL},
};

#define KEYS_MAX 256

/* Parse every key line of F into KEYS; 0, or exit status after a message
 * naming SRC:LINE. */
static int read_keys(FILE *f, const char *src, const char *client,
		     struct catalog_key *keys, struct sshkey_info *info,
		     size_t *n)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		char err[256];
		if (*n == KEYS_MAX) {
			rc = error("%s: more than %d keys", src, KEYS_MAX);
			break;
		}
		if ((size_t)len != strlen(line)) {
			rc = error("%s:%d: the line holds a NUL byte", src,
				   lineno);
			break;
		}
		struct sshkey_info *k = &info[*n];
		int r = sshkey_parse_line(line, k, err, sizeof err);
		if (r == 1)
			continue;
		if (r < 0) {
			rc = error("%s:%d: %s", src, lineno, err);
			break;
		}
		struct catalog_key *ck = &keys[*n];
		memset(ck, 0, sizeof *ck);
		snprintf(ck->client, sizeof ck->client, "%s", client);
		snprintf(ck->type, sizeof ck->type, "%s", k->type);
		snprintf(ck->blob, sizeof ck->blob, "%s", k->blob);
		snprintf(ck->fingerprint, sizeof ck->fingerprint, "%s",
			 k->fingerprint);
		snprintf(ck->comment, sizeof ck->comment, "%s", k->comment);
		(*n)++;
	}
	if (!rc && ferror(f))
		rc = error("%s: %s", src, strerror(errno));
	free(line);
	return rc;
}

static int key_add(struct ctx *ctx, const struct args *a)
{
	const char *client = a->pos[0];
	const char *file = a->npos > 1 ? a->pos[1] : NULL;
	const char *line = opt(a, "--line");
	if (file && line)
		return usage_error(a, "give a FILE or --line, not both");
	if (!file && !line)
		return usage_error(a, "give a key FILE, '-' for stdin, or "
				      "--line 'TYPE BASE64 [COMMENT]'");
	struct catalog_key *keys = calloc(KEYS_MAX, sizeof *keys);
	struct sshkey_info *info = calloc(KEYS_MAX, sizeof *info);
	size_t n = 0;
	int rc = 0;
	if (!keys || !info) {
		rc = error("out of memory");
		goto out;
	}
	/* Refuse an unknown client before reading anything. */
	static struct catalog_client c;
	if (catalog_client_get(ctx->cat, client, &c) != 0) {
		rc = cat_error();
		goto out;
	}
	FILE *f;
	const char *src;
	if (line) {
		f = fmemopen((void *)line, strlen(line), "r");
		src = "--line";
	} else if (strcmp(file, "-") == 0) {
		f = stdin;
		src = "stdin";
	} else {
		struct stat sb;
		f = fopen(file, "r");
		if (f && fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
			fclose(f);
			rc = error("%s: is a directory", file);
			goto out;
		}
		src = file;
	}
	if (!f) {
		rc = error("%s: %s", src, strerror(errno));
		goto out;
	}
	rc = read_keys(f, src, client, keys, info, &n);
	if (f != stdin)
		fclose(f);
	if (rc)
		goto out;
	if (n == 0) {
		rc = error("%s: no key found", src);
		goto out;
	}
	size_t bad = 0;
	if (catalog_key_add_many(ctx->cat, keys, n, &bad) != 0) {
		rc = cat_error();
		if (n > 1)
			fprintf(stderr, "assetctl: no key was added\n");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char out[512];
		sshkey_format(&info[i], out, sizeof out);
		printf("%s\n", out);
	}
	fprintf(stderr, "%zu key%s added for client %s\n", n, n == 1 ? "" : "s",
		client);
out:
	free(keys);
	free(info);
	return rc;
}

static int key_row(void *arg, const struct catalog_key *k)
{
	struct list_state *ls = arg;
	if (ls->ctx->json) {
		jw_open(&ls->j, NULL, '{');
		jw_int(&ls->j, "id", k->id);
		jw_str(&ls->j, "client", k->client);
		jw_str(&ls->j, "type", k->type);
		jw_str(&ls->j, "fingerprint", k->fingerprint);
		jw_str(&ls->j, "comment", k->comment);
		jw_int(&ls->j, "added", k->added);
		jw_int(&ls->j, "last_used", k->last_used);
		jw_close(&ls->j, '}');
	} else {
		char id[32], b1[64], b2[64];
		table_add(&ls->t, fmt_int(k->id, id, sizeof id), k->client,
			  k->type, k->fingerprint,
			  fmt_time(k->added, b1, sizeof b1),
			  fmt_time(k->last_used, b2, sizeof b2),
			  k->comment[0] ? k->comment : "-");
	}
	return 0;
}

static int key_list(struct ctx *ctx, const struct args *a)
{
	struct list_state ls;
	list_begin(&ls, ctx, 7, "ID", "CLIENT", "TYPE", "FINGERPRINT", "ADDED",
		   "LAST USED", "COMMENT");
	return list_end(&ls, catalog_key_list(ctx->cat,
					      a->npos ? a->pos[0] : NULL,
					      key_row, &ls));
}

static int key_remove(struct ctx *ctx, const struct args *a)
{
	if (catalog_key_remove(ctx->cat, a->pos[0], a->pos[1]) != 0)
		return cat_error();
	printf("key %s removed from client %s\n", a->pos[1], a->pos[0]);
	return EXIT_OK;
}

static const struct verb key_verbs[] = {
    {"add", key_add, "CLIENT [FILE|-]", 1, 2, 1, key_add_opts,
     "register SSH public keys for a client",
     "FILE holds one or more authorized_keys lines (an id_*.pub file or\n"
     "an authorized_keys file); '-' reads them from stdin; --line takes\n"
     "one line. Either all keys are added or none. Each key's\n"
     "fingerprint is printed as 'ssh-keygen -l' prints it. Options\n"
     "that assetd would not enforce (from=, command=, ...) are refused."},
    {"list", key_list, "[CLIENT]", 0, 1, 0, NULL,
     "list SSH keys (of one client)", NULL},
    {"remove", key_remove, "CLIENT FINGERPRINT|ID", 2, 2, 1, NULL,
     "remove a key; the next login with it is refused", NULL},
    {NULL, NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* ---- audit ---------------------------------------------------------------- */

struct audit_out {
	int json;
	int64_t n;
	struct jw j;
	struct table t;
};

static int audit_row(void *arg, const char *line, const char *client,
		     int64_t t)
{
	struct audit_out *o = arg;
	(void)client;
	(void)t;
	if (o->json) {
		/* Each line is already one JSON object, written by us. */
		printf("%s\n  %s", o->n ? "," : "", line);
		o->n++;
		return 0;
	}
	static const char *const keys[] = { "ts", "client", "protocol", "op",
					    "path", "bytes", "result",
					    "identity", "addr" };
	char v[9][512];
	for (int i = 0; i < 9; i++)
		if (audit_line_field(line, keys[i], v[i], sizeof v[i]) != 0)
			v[i][0] = '\0';
	char path[1100];
	char to[512];
	if (audit_line_field(line, "to", to, sizeof to) == 0)
		snprintf(path, sizeof path, "%s -> %s", v[4], to);
	else
		snprintf(path, sizeof path, "%s", v[4]);
	if (strcmp(v[5], "-1") == 0)
		v[5][0] = '\0';
	table_add(&o->t, v[0], v[1], v[2], v[3], path, v[5], v[6], v[7], v[8]);
	o->n++;
	return 0;
}

/* The audit directory: AuditDir of the -f file, else "audit" beside the
 * catalog. */
static int audit_dir_of(const struct ctx *ctx, char *out, size_t len)
{
	if (ctx->conf && ctx->conf->audit_dir[0]) {
		if (strcmp(ctx->conf->audit_dir, "off") == 0)
			return error("the audit log is off (AuditDir off)");
		snprintf(out, len, "%s", ctx->conf->audit_dir);
		return 0;
	}
	if (conf_audit_dir_default(ctx->db_path, out, len) != 0)
		return error("catalog path too long");
	return 0;
}

static const struct opt audit_opts[] = {
    {"--client", "NAME", "only this client's events"},
    {"--since", "TIME",
     "only events at or after TIME: 2026-11-25, 2026-11-25T10:00[:00][Z] "
     "(UTC), or an age: 90s, 30m, 2h, 7d, 2w"},
    {NULL, NULL, NULL},
};

static int audit_show(struct ctx *ctx, const struct args *a)
{
	const char *client = a->val[0];
	int64_t since = 0;
	if (a->val[1] &&
	    audit_parse_since(a->val[1], (int64_t)time(NULL), &since) != 0)
		return usage_error(a, "--since: '%s' is neither a date, a time "
				      "nor an age like 2h or 7d", a->val[1]);
	char dir[CONF_PATH_MAX];
	if (audit_dir_of(ctx, dir, sizeof dir))
		return EXIT_ERR;
	struct audit_out o;
	memset(&o, 0, sizeof o);
	o.json = ctx->json;
	o.t.ncols = 9;
	if (o.json)
		printf("[");
	else
		table_add(&o.t, "TIME", "CLIENT", "PROTOCOL", "OP", "PATH",
			  "BYTES", "RESULT", "IDENTITY", "ADDRESS");
	int rc = audit_query(dir, client, since, audit_row, &o);
	if (rc == -ENOENT)
		rc = 0; /* no event was ever recorded */
	if (o.json)
		printf("%s]\n", o.n ? "\n" : "");
	else
		table_print(&o.t);
	if (rc < 0)
		return error("%s: %s", dir, strerror(-rc));
	return EXIT_OK;
}

static const struct verb audit_verbs[] = {
    {"", audit_show, "", 0, 0, 0, audit_opts,
     "show the audit log: logins, writes, deletes, renames",
     "Reads the daily files of AuditDir (default: 'audit' beside the\n"
     "catalog), oldest first. Each event has the time, client, key\n"
     "fingerprint (SSH) or key scope (HTTP: key:client or key:server),\n"
     "remote address, protocol, operation, path, bytes and result.\n"
     "--json prints an array of the events as they are stored."},
    {NULL, NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

/* ---- the table of nouns ---------------------------------------------------
 */

static const struct noun nouns[] = {
    {"region", region_verbs, "where clients' folders live, and backups"},
    {"client", client_verbs,
     "institutions: folder, attachment key, "
     "quota, state"},
    {"collection", collection_verbs, "Specify collection -> client"},
    {"key", key_verbs, "SSH public keys -> client"},
    {"audit", audit_verbs, "who wrote, deleted, renamed, logged in"},
    {NULL, NULL, NULL},
};

/* Nouns whose module parses its own arguments (the backup commands): each
 * gets the catalog, the configuration, --json and argv from the noun on. */
struct ext_noun {
	const char *name;
	int (*run)(struct catalog *cat, const struct conf *cf, int json,
		   int argc, char **argv);
	const char *help;
	/* What --help prints at any level below the noun, without opening
	 * the catalog (help must work before there is one). */
	const char *usage;
};

static const struct ext_noun ext_nouns[] = {
    {"sync", sync_cli, "snapshot sync: REGION, or SRC DST (--help)",
     "usage: assetctl sync REGION [OPTIONS]\n"
     "       assetctl sync SRC-URL DST-URL [OPTIONS]\n"
     "\n"
     "Copy what is missing or differs from a region's assets to its\n"
     "snapshot location (or from SRC to DST); delete nothing unless asked.\n"
     "Recorded in 'assetctl runs'.\n"
     "\n"
     "Options:\n"
     "  --size-only        compare by size (default)\n"
     "  --checksum         compare by content\n"
     "  --delete           delete what the source no longer has\n"
     "  --dry-run          only report\n"
     "  --concurrency N    parallel copies\n"
     "  -v, -q             more or less output\n"},
    {"archive", archives_cli,
     "client archives: create, list, show, "
     "remove, prune",
     "usage: assetctl archive create CLIENT|--all [--format tar.xz|tar.zst]\n"
     "       assetctl archive list [CLIENT]\n"
     "       assetctl archive show ID\n"
     "       assetctl archive remove ID\n"
     "       assetctl archive prune [CLIENT] [--keep N] [--dry-run]\n"},
    {"runs", sync_runs_cli, "recent syncs and archives, with outcome",
     "usage: assetctl runs [--kind sync|archive] [--limit N | --all]\n"},
    {"bucket", bucket_cli, "client-owned buckets: policy, check",
     "usage: assetctl bucket policy s3://BUCKET[/PREFIX/] [--principal ARN] "
     "[--read-only]\n"
     "       assetctl bucket check LOCATION | --client NAME "
     "[--collection DIR]... [--fix] [--json]\n"},
    {NULL, NULL, NULL, NULL},
};

/* ---- help -----------------------------------------------------------------
 */

static void help_main(FILE *f)
{
	fprintf(
	    f, "usage: assetctl [-f CONFIG | -D DB] [--json] NOUN VERB [ARGS]\n"
	       "\n"
	       "Administer assetd's catalog: regions, clients, collections and "
	       "SSH keys.\n"
	       "Changes take effect in the running daemon without a restart.\n"
	       "\n"
	       "Nouns:\n");
	for (const struct noun *n = nouns; n->name; n++) {
		fprintf(f, "  %-12s %s\n", n->name, n->help);
	}
	for (const struct ext_noun *n = ext_nouns; n->name; n++)
		fprintf(f, "  %-12s %s\n", n->name, n->help);
	fprintf(f, "\n"
		   "Options:\n"
		   "  -f CONFIG   read the catalog path from this assetd.conf\n"
		   "  -D DB       use this catalog file\n"
		   "              (default: the Catalog of " DEFAULT_CONFIG
		   " if it exists,\n"
		   "              else ./" DEFAULT_DB ")\n"
		   "  --json      machine-readable output for list and show\n"
		   "  -V          print the version\n"
		   "  --help      this text; 'assetctl NOUN --help' and\n"
		   "              'assetctl NOUN VERB --help' for more\n"
		   "\n"
		   "Exit status: 0 success, 1 error, 2 usage error.\n");
}

static void help_noun(FILE *f, const struct noun *n)
{
	fprintf(f, "usage: assetctl %s VERB [ARGS]\n\n%s.\n\nVerbs:\n", n->name,
		n->help);
	for (const struct verb *v = n->verbs; v->name; v++) {
		char syn[128];
		snprintf(syn, sizeof syn, "%s %s", v->name[0] ? v->name : "",
			 v->synopsis);
		fprintf(f, "  %-28s %s\n", syn, v->help);
	}
	fprintf(f, "\n'assetctl %s VERB --help' shows a verb's options.\n",
		n->name);
}

static void help_verb(FILE *f, const struct noun *n, const struct verb *v)
{
	fprintf(f, "usage: assetctl %s%s%s%s%s%s\n\n%s.\n", n->name,
		v->name[0] ? " " : "", v->name, v->synopsis[0] ? " " : "",
		v->synopsis, v->opts ? " [OPTIONS]" : "", v->help);
	if (v->more)
		fprintf(f, "\n%s\n", v->more);
	if (v->opts) {
		fprintf(f, "\nOptions:\n");
		for (const struct opt *o = v->opts; o->name; o++) {
			char head[64];
			snprintf(head, sizeof head, "%s%s%s", o->name,
				 o->arg ? " " : "", o->arg ? o->arg : "");
			fprintf(f, "  %-22s %s\n", head, o->help);
		}
	}
}

/* ---- argument parsing
 * -------------------------------------------------------- */

/* Parse the verb's arguments ARGV[0..ARGC) into A. Returns 0, EXIT_USAGE
 * after a message, or -1 when --help was printed. */
static int parse_args(int argc, char **argv, struct args *a)
{
	const struct verb *v = a->verb;
	int only_pos = 0;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (!only_pos && strcmp(s, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (!only_pos &&
		    (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)) {
			help_verb(stdout, a->noun, v);
			return -1;
		}
		if (!only_pos && s[0] == '-' && s[1] != '\0') {
			char name[64];
			const char *eq = strchr(s, '=');
			size_t nl = eq ? (size_t)(eq - s) : strlen(s);
			if (nl >= sizeof name)
				return usage_error(a, "unknown option '%s'", s);
			memcpy(name, s, nl);
			name[nl] = '\0';
			int k = opt_index(v, name);
			if (k < 0)
				return usage_error(a, "unknown option '%s'",
						   name);
			const struct opt *o = &v->opts[k];
			if (a->val[k])
				return usage_error(a, "option %s given twice",
						   name);
			if (!o->arg) {
				if (eq)
					return usage_error(a,
							   "option %s takes "
							   "no value",
							   name);
				a->val[k] = "";
			} else if (eq) {
				a->val[k] = eq + 1;
			} else if (i + 1 < argc) {
				a->val[k] = argv[++i];
			} else {
				return usage_error(a, "option %s needs %s",
						   name, o->arg);
			}
			continue;
		}
		if (a->npos == v->max_pos || a->npos == MAX_POS)
			return usage_error(a, "unexpected argument '%s'", s);
		a->pos[a->npos++] = s;
	}
	if (a->npos < v->min_pos)
		return usage_error(a, "missing %s", v->synopsis);
	return 0;
}

/* Where the catalog is: -D, else -f's Catalog, else the default config's,
 * else ./var/assetd.db. */
static int find_catalog(struct ctx *ctx, const char *conf_path,
			const char *db_path)
{
	if (db_path) {
		if (snprintf(ctx->db_path, sizeof ctx->db_path, "%s",
			     db_path) >= (int)sizeof ctx->db_path)
			return error("catalog path too long");
		return 0;
	}
	if (!conf_path && access(DEFAULT_CONFIG, F_OK) == 0)
		conf_path = DEFAULT_CONFIG;
	if (conf_path) {
		static struct conf c;
		char err[512];
		conf_defaults(&c);
		if (conf_load(conf_path, &c, err, sizeof err) != 0)
			return error("%s", err);
		snprintf(ctx->db_path, sizeof ctx->db_path, "%s", c.catalog);
		ctx->conf = &c;
		return 0;
	}
	snprintf(ctx->db_path, sizeof ctx->db_path, "%s", DEFAULT_DB);
	return 0;
}

/* Journal this process's S3 multipart uploads beside the catalog, as the
 * daemon does, so that its next start aborts those a killed assetctl
 * left (store/upjournal.c). Best effort: a read-only catalog folder only
 * loses the safety net. */
static void journal_uploads(const char *db_path)
{
	char dir[PATH_MAX];
	if (store_upload_journal_dir(db_path, dir, sizeof dir) == 0)
		store_upload_journal(dir);
}

int main(int argc, char **argv)
{
	struct ctx ctx = {0};
	const char *conf_path = NULL, *db_path = NULL;

	/* --json may stand anywhere before "--"; take it out first. */
	int n = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		if (i > 0 && strcmp(argv[i], "--json") == 0)
			ctx.json = 1;
		else
			argv[n++] = argv[i];
	}
	argc = n;
	argv[argc] = NULL;

	/* Global options, before the noun. */
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			help_main(stdout);
			return EXIT_OK;
		}
		if (strcmp(s, "-V") == 0 || strcmp(s, "--version") == 0) {
			printf("assetctl %s\n", ASSETD_VERSION);
			return EXIT_OK;
		}
		if (strcmp(s, "-f") == 0 || strcmp(s, "-D") == 0) {
			if (i + 1 >= argc)
				return usage_error(NULL, "%s needs an argument",
						   s);
			if (conf_path || db_path)
				return usage_error(NULL,
						   "give one of -f and -D, "
						   "once");
			if (s[1] == 'f')
				conf_path = argv[++i];
			else
				db_path = argv[++i];
			continue;
		}
		return usage_error(NULL, "unknown option '%s'", s);
	}
	if (i >= argc) {
		help_main(stderr);
		return EXIT_USAGE;
	}

	for (const struct ext_noun *en = ext_nouns; en->name; en++) {
		if (strcmp(en->name, argv[i]) != 0)
			continue;
		for (int k = i + 1; k < argc && strcmp(argv[k], "--"); k++) {
			if (strcmp(argv[k], "--help") == 0 ||
			    strcmp(argv[k], "-h") == 0) {
				fputs(en->usage, stdout);
				return EXIT_OK;
			}
		}
		static struct conf defaults;
		char err[512];
		if (find_catalog(&ctx, conf_path, db_path))
			return EXIT_ERR;
		if (!ctx.conf) {
			conf_defaults(&defaults);
			ctx.conf = &defaults;
		}
		if (catalog_open(ctx.db_path, &ctx.cat, err, sizeof err) != 0)
			return error("%s", err);
		journal_uploads(ctx.db_path);
		/* quiet like --only-show-errors: the store's info lines
		 * (credentials found, ...) are for the daemon's log */
		log_set_level(LOG_LVL_WARN);
		int rc =
		    en->run(ctx.cat, ctx.conf, ctx.json, argc - i, argv + i);
		if (fflush(stdout) != 0 && rc == EXIT_OK)
			rc = error("writing the output: %s", strerror(errno));
		catalog_close(ctx.cat);
		return rc;
	}

	struct args a;
	memset(&a, 0, sizeof a);
	for (const struct noun *no = nouns; no->name; no++)
		if (strcmp(no->name, argv[i]) == 0)
			a.noun = no;
	if (!a.noun)
		return usage_error(NULL, "unknown noun '%s'", argv[i]);
	i++;
	if (a.noun->verbs[0].name[0] == '\0') {
		a.verb = &a.noun->verbs[0];
	} else {
		if (i >= argc) {
			help_noun(stderr, a.noun);
			return EXIT_USAGE;
		}
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			help_noun(stdout, a.noun);
			return EXIT_OK;
		}
		for (const struct verb *v = a.noun->verbs; v->name; v++)
			if (strcmp(v->name, argv[i]) == 0)
				a.verb = v;
		if (!a.verb)
			return usage_error(&a, "unknown verb '%s %s'",
					   a.noun->name, argv[i]);
		i++;
	}
	int rc = parse_args(argc - i, argv + i, &a);
	if (rc < 0)
		return EXIT_OK;
	if (rc)
		return rc;

	if (find_catalog(&ctx, conf_path, db_path))
		return EXIT_ERR;
	/* Looking must not create a catalog where there was none (a typo in
	 * -D would otherwise leave an empty file behind). */
	if (!a.verb->writes && access(ctx.db_path, F_OK) != 0)
		return error("no catalog at %s (%s)", ctx.db_path,
			     strerror(errno));
	char err[512];
	if (catalog_open(ctx.db_path, &ctx.cat, err, sizeof err) != 0)
		return error("%s", err);
	journal_uploads(ctx.db_path);
	rc = a.verb->run(&ctx, &a);
	if (fflush(stdout) != 0 && rc == EXIT_OK)
		rc = error("writing the output: %s", strerror(errno));
	catalog_close(ctx.cat);
	return rc;
}
