/*
 * synccli.c - the catalog-facing side of snapshot sync (declared in
 * sync.h): opening a region's or two URLs' locations, recording each run
 * in the catalog's runs, and assetctl's `sync` and `runs` verbs.
 *
 * The engine itself (sync.c) knows nothing of the catalog, so it is tested
 * on bare stores. A run's row is written "running" with a pid/host marker
 * before the first copy and completed with the counts afterwards; `runs`
 * turns a row whose process is gone into "failed (interrupted)".
 */
#include "sync.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archives.h"
#include "bkutil.h"
#include "catalog.h"
#include "conf.h"
#include "log.h"
#include "store.h"
#include "tenant.h"

#define DEFAULT_CONCURRENCY 32
#define MAX_CONCURRENCY 256

/* ---- recorded runs ------------------------------------------------------- */

static int run_begin(struct catalog *cat, const char *what,
		     struct catalog_run *run)
{
	memset(run, 0, sizeof *run);
	snprintf(run->kind, sizeof run->kind, "sync");
	snprintf(run->what, sizeof run->what, "%s", what);
	run->started = (int64_t)time(NULL);
	run->state = CATALOG_RUNNING;
	bk_running_marker(run->summary, sizeof run->summary);
	if (catalog_run_add(cat, run) != 0) {
		log_warn("run_record_failed", "what=%s error=%s", log_q(what),
			 log_q(catalog_errmsg(cat)));
		run->id = 0;
		return -1;
	}
	return 0;
}

static void run_end(struct catalog *cat, struct catalog_run *run, int rc,
		    const struct sync_stats *st)
{
	if (run->id == 0)
		return;
	run->finished = (int64_t)time(NULL);
	run->state = rc == 0 ? CATALOG_DONE : CATALOG_FAILED;
	run->listed = st->listed;
	run->copied = st->copied;
	run->skipped = st->skipped;
	run->deleted = st->deleted;
	run->failed = st->failed;
	run->bytes = st->bytes;
	char sum[200];
	sync_summary(st, sum, sizeof sum);
	if (st->error[0])
		snprintf(run->summary, sizeof run->summary, "%.100s; %.150s",
			 st->error, sum);
	else
		snprintf(run->summary, sizeof run->summary, "%.200s", sum);
	if (catalog_run_update(cat, run) != 0)
		log_warn("run_record_failed", "what=%s error=%s",
			 log_q(run->what), log_q(catalog_errmsg(cat)));
}

static int sync_recorded(struct catalog *cat, struct store *src,
			 struct store *dst, const char *what,
			 const struct sync_opts *o, struct sync_stats *stats)
{
	struct catalog_run run = { 0 };
	if (!o->dry_run)
		run_begin(cat, what, &run);
	int rc = sync_run(src, dst, o, stats);
	if (!o->dry_run)
		run_end(cat, &run, rc, stats);
	return rc;
}

static int open_pair(struct catalog *cat, const char *a, const char *b,
		     struct store **sa, struct store **sb,
		     struct sync_stats *stats)
{
	int rc = tenant_open_location(cat, a, sa);
	if (rc != 0) {
		snprintf(stats->error, sizeof stats->error, "%s: %s", a,
			 store_strerror(rc));
		return rc;
	}
	rc = tenant_open_location(cat, b, sb);
	if (rc != 0) {
		snprintf(stats->error, sizeof stats->error, "%s: %s", b,
			 store_strerror(rc));
		store_close(*sa);
		return rc;
	}
	return 0;
}

int sync_region(struct catalog *cat, const struct conf *cf, const char *region,
		const struct sync_opts *o, struct sync_stats *stats)
{
	struct catalog_region *rg = calloc(1, sizeof *rg);
	struct store *src = NULL, *dst = NULL;
	int rc;
	memset(stats, 0, sizeof *stats);
	if (!rg)
		return STORE_ENOMEM;
	if (catalog_region_get(cat, region, rg) != 0) {
		snprintf(stats->error, sizeof stats->error,
			 "no region \"%.64s\"", region);
		free(rg);
		return STORE_EINVAL;
	}
	if (rg->snapshot[0] == '\0') {
		snprintf(stats->error, sizeof stats->error,
			 "region %s has no snapshot location "
			 "(assetctl region set %s --snapshot URL)",
			 rg->name, rg->name);
		free(rg);
		return STORE_EINVAL;
	}
	rc = open_pair(cat, rg->assets, rg->snapshot, &src, &dst, stats);
	if (rc != 0) {
		free(rg);
		return rc;
	}
	/* Archives may live inside the snapshot location (the default for
	 * S3 regions is archives/ at the snapshot bucket's root): never
	 * delete them as "extra" objects. */
	char base[STORE_URL_MAX];
	char keep[STORE_URL_MAX];
	const char *keeps[2] = { NULL, NULL };
	const char *du = store_url(dst);
	if (archives_region_base_url(cat, cf, rg, base, sizeof base) == 0 &&
	    strncmp(base, du, strlen(du)) == 0) {
		snprintf(keep, sizeof keep, "%s", base + strlen(du));
		keeps[0] = keep;
	}
	struct sync_opts oo = *o;
	if (keeps[0]) {
		/* merge with any caller-given prefixes: keep it simple, the
		 * scheduler and assetctl pass none */
		oo.keep_prefixes = keeps;
	}
	rc = sync_recorded(cat, src, dst, rg->name, &oo, stats);
	store_close(src);
	store_close(dst);
	free(rg);
	return rc;
}

int sync_urls(struct catalog *cat, const char *srcurl, const char *dsturl,
	      const struct sync_opts *o, struct sync_stats *stats)
{
	struct store *src = NULL, *dst = NULL;
	memset(stats, 0, sizeof *stats);
	int rc = open_pair(cat, srcurl, dsturl, &src, &dst, stats);
	if (rc != 0)
		return rc;
	char what[CATALOG_URL_MAX];
	snprintf(what, sizeof what, "%.1000s -> %.1000s", store_url(src),
		 store_url(dst));
	rc = sync_recorded(cat, src, dst, what, o, stats);
	store_close(src);
	store_close(dst);
	return rc;
}

/* ---- assetctl sync / runs -------------------------------------------------- */

static volatile int cli_cancel;

static void on_signal(int sig)
{
	(void)sig;
	store_cancel(&cli_cancel);
}

static void sync_usage(void)
{
	fprintf(stderr,
		"usage: assetctl sync REGION [options]\n"
		"       assetctl sync SRC-URL DST-URL [options]\n"
		"options: --size-only (default) | --checksum, --delete, "
		"--dry-run,\n"
		"         --concurrency N, -v/--verbose, -q/--quiet, --json\n");
}

static void print_stats_json(FILE *f, const struct sync_stats *s, int rc)
{
	fprintf(f,
		"{\"listed\": %lld, \"listed_dst\": %lld, \"copied\": %lld, "
		"\"bytes\": %lld, \"skipped\": %lld, \"deleted\": %lld, "
		"\"failed\": %lld, \"seconds\": %.3f, \"ok\": %s, \"error\": ",
		(long long)s->listed, (long long)s->listed_dst,
		(long long)s->copied, (long long)s->bytes,
		(long long)s->skipped, (long long)s->deleted,
		(long long)s->failed, s->seconds, rc == 0 ? "true" : "false");
	bk_json_str(f, s->error);
	fputs("}\n", f);
}

int sync_cli(struct catalog *cat, const struct conf *cf, int json, int argc,
	     char **argv)
{
	struct sync_opts o = { 0 };
	const char *pos[2];
	int npos = 0, quiet = 0;
	o.concurrency = cf && cf->sync_concurrency > 0 ? cf->sync_concurrency
						       : DEFAULT_CONCURRENCY;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--size-only") == 0)
			o.checksum = 0;
		else if (strcmp(a, "--checksum") == 0 || strcmp(a, "-c") == 0)
			o.checksum = 1;
		else if (strcmp(a, "--delete") == 0)
			o.delete_extra = 1;
		else if (strcmp(a, "--dry-run") == 0 ||
			 strcmp(a, "--dryrun") == 0 || strcmp(a, "-n") == 0)
			o.dry_run = 1;
		else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
			o.verbose = 1;
		else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
			quiet = 1;
		else if (strcmp(a, "--json") == 0)
			json = 1;
		else if (strcmp(a, "--concurrency") == 0 ||
			 strncmp(a, "--concurrency=", 14) == 0) {
			const char *v = a[13] == '=' ? a + 14
				       : i + 1 < argc ? argv[++i]
						      : NULL;
			long n;
			if (bk_parse_int(v, 1, MAX_CONCURRENCY, &n) != 0) {
				fprintf(stderr,
					"assetctl sync: --concurrency needs "
					"a number from 1 to %d\n",
					MAX_CONCURRENCY);
				return 2;
			}
			o.concurrency = (int)n;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			sync_usage();
			return 0;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "assetctl sync: unknown option %s\n",
				a);
			sync_usage();
			return 2;
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			sync_usage();
			return 2;
		}
	}
	if (npos == 0) {
		sync_usage();
		return 2;
	}
	o.progress = !json && isatty(2);
	o.out = stdout;
	o.err = stderr;
	o.cancel = &cli_cancel;
	struct sigaction sa = { 0 }, old_int, old_term;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	struct sync_stats st;
	int rc = npos == 1 ? sync_region(cat, cf, pos[0], &o, &st)
			   : sync_urls(cat, pos[0], pos[1], &o, &st);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (json) {
		print_stats_json(stdout, &st, rc);
	} else {
		if (st.error[0])
			fprintf(stderr, "assetctl sync: %s\n", st.error);
		if (!quiet || rc != 0) {
			char sum[256];
			sync_summary(&st, sum, sizeof sum);
			printf("%s%s\n", o.dry_run ? "(dryrun) " : "", sum);
		}
	}
	fflush(stdout);
	if (rc == STORE_EINVAL && st.listed == 0 && st.listed_dst == 0)
		return 2;
	return rc == 0 ? 0 : 1;
}

/* ---- runs ------------------------------------------------------------------- */

struct runs_print {
	struct catalog *cat;
	int json;
	int n;
};

static const char *state_name(int s)
{
	return s == CATALOG_RUNNING ? "running"
	       : s == CATALOG_DONE  ? "done"
				    : "failed";
}

static int print_run(void *arg, const struct catalog_run *r0)
{
	struct runs_print *p = arg;
	struct catalog_run r = *r0;
	char t1[32], t2[32];
	if (r.state == CATALOG_RUNNING && bk_marker_is_stale(r.summary)) {
		r.state = CATALOG_FAILED;
		snprintf(r.summary, sizeof r.summary, "interrupted");
		if (!r.finished)
			r.finished = r.started;
		catalog_run_update(p->cat, &r);
	}
	if (p->json) {
		printf("%s{\"id\": %lld, \"kind\": ", p->n ? ",\n " : "",
		       (long long)r.id);
		bk_json_str(stdout, r.kind);
		printf(", \"what\": ");
		bk_json_str(stdout, r.what);
		printf(", \"started\": %lld, \"finished\": %lld, \"state\": "
		       "\"%s\", \"listed\": %lld, \"copied\": %lld, "
		       "\"skipped\": %lld, \"deleted\": %lld, \"failed\": "
		       "%lld, \"bytes\": %lld, \"summary\": ",
		       (long long)r.started, (long long)r.finished,
		       state_name(r.state), (long long)r.listed,
		       (long long)r.copied, (long long)r.skipped,
		       (long long)r.deleted, (long long)r.failed,
		       (long long)r.bytes);
		bk_json_str(stdout, r.summary);
		printf("}");
	} else {
		if (p->n == 0)
			printf("%-6s %-8s %-19s %-8s %-8s %s\n", "ID", "KIND",
			       "STARTED (UTC)", "SECONDS", "STATE", "WHAT");
		char secs[24];
		if (r.finished)
			snprintf(secs, sizeof secs, "%lld",
				 (long long)(r.finished - r.started));
		else
			snprintf(secs, sizeof secs, "-");
		printf("%-6lld %-8s %-19s %-8s %-8s %s\n       %s\n",
		       (long long)r.id, r.kind,
		       bk_time_str(r.started, t1, sizeof t1), secs,
		       state_name(r.state), r.what, r.summary);
		(void)t2;
	}
	p->n++;
	return 0;
}

int sync_runs_cli(struct catalog *cat, const struct conf *cf, int json,
		  int argc, char **argv)
{
	const char *kind = NULL;
	long limit = 20;
	(void)cf;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc)
			kind = argv[++i];
		else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
			if (bk_parse_int(argv[++i], 0, 1000000, &limit) != 0) {
				fprintf(stderr, "assetctl runs: bad --limit\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--all") == 0)
			limit = 0;
		else {
			fprintf(stderr,
				"usage: assetctl runs [--kind sync|archive] "
				"[--limit N | --all] [--json]\n");
			return 2;
		}
	}
	struct runs_print p = { cat, json, 0 };
	if (json)
		printf("[");
	int rc = catalog_run_list(cat, kind, (int)limit, print_run, &p);
	if (json)
		printf("]\n");
	else if (p.n == 0 && rc == 0)
		printf("no runs recorded\n");
	if (rc != 0) {
		fprintf(stderr, "assetctl runs: %s\n", catalog_errmsg(cat));
		return 1;
	}
	return 0;
}
