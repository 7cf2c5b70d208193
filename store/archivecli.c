/*
 * archivecli.c - the catalog side of client archives (declared in
 * archives.h): where a client's archives go, their rows, removal, pruning
 * and assetctl's `archive` verb. The streaming itself is archive.c.
 *
 * Rows go "running" (with a pid/host marker, see bkutil.h) -> "done" or
 * "failed". A row still "running" whose process is gone was killed; the
 * next list, create or prune marks it failed ("interrupted"): its
 * uncommitted object never became visible.
 */
#include "archives.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bkutil.h"
#include "conf.h"
#include "log.h"
#include "store.h"
#include "tenant.h"

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
	if (bk_grow(&r->ids, &r->cap, r->n, sizeof *r->ids, 8) < 0)
		return CATALOG_ENOMEM;
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

int archives_create(struct catalog *cat, const struct conf *cf,
		    const char *client, const char *format,
		    volatile int *cancel, struct catalog_archive *out)
{
	struct catalog_client *c = calloc(1, sizeof *c);
	struct catalog_archive *a = calloc(1, sizeof *a);
	struct archives_result res;
	struct store *dst = NULL, *src = NULL;
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
		goto out;
	}
	if (catalog_client_get(cat, client, c) != 0) {
		snprintf(a->error, sizeof a->error, "no client \"%.64s\"",
			 client);
		rc = CATALOG_ENOENT;
		goto out;
	}
	rc = archives_base_url(cat, cf, c, base, sizeof base);
	if (rc == 0)
		rc = open_folder(cat, base, &dst);
	if (rc != 0) {
		snprintf(a->error, sizeof a->error,
			 "archive location %.150s: %s", base,
			 store_strerror(rc));
		goto out;
	}
	rc = tenant_open_client(c, &src);
	if (rc != 0) {
		snprintf(a->error, sizeof a->error, "%.150s: %s", c->location,
			 store_strerror(rc));
		goto out;
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
		goto out;
	}
	rc = archives_write(src, dst, name, format, cancel, &res);
	a->objects = res.objects;
	a->size = res.size;
	if (rc == 0) {
		a->state = CATALOG_DONE;
		a->error[0] = '\0';
		snprintf(a->sha256, sizeof a->sha256, "%s", res.sha256);
	} else {
		a->state = CATALOG_FAILED;
		snprintf(a->error, sizeof a->error, "%s", res.error);
	}
	if (catalog_archive_update(cat, a) != 0)
		log_warn("archive_record_failed", "client=%s error=%s",
			 log_q(client), log_q(catalog_errmsg(cat)));
	record_run(cat, a, started);
out:
	if (rc != 0 && a->state != CATALOG_FAILED) {
		a->state = CATALOG_FAILED;
		if (!a->error[0])
			snprintf(a->error, sizeof a->error, "%s",
				 store_strerror(rc));
	}
	if (out)
		*out = *a;
	store_close(src);
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
	store_cancel(&cli_cancel);
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
	if (bk_grow(&l->n, &l->cap, l->count, sizeof *l->n, 16) < 0)
		return CATALOG_ENOMEM;
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
