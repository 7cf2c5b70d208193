/*
 * scheduler.c - the daemon's backup scheduler (declared in schedule.h).
 *
 * Two threads, one per kind of job (snapshot syncs, client archives), so a
 * long archive never delays a sync and no kind ever runs twice at once.
 * Each thread waits on a condition variable until its schedule's next due
 * time or until stop is asked; the stop flag doubles as the jobs' cancel
 * flag, so a shutdown abandons an archive (recorded failed, nothing
 * visible) and stops a sync from issuing more copies. The runner keeps its
 * own copy of the configuration, replaced by schedule_runner_reload() on
 * SIGHUP (see the runner below). A third thread runs once at start: the
 * recovery of what a crashed process left (S3 multipart uploads from the
 * upload journal, fs temp files).
 */
#include "schedule.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "archives.h"
#include "bkutil.h"
#include "catalog.h"
#include "conf.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "sync.h"
#include "tenant.h"

/* ---- jobs --------------------------------------------------------------- */

struct region_list {
	char (*names)[CATALOG_NAME_MAX];
	int n, cap;
	int snapshot_only;
};

static int collect_region(void *arg, const struct catalog_region *r)
{
	struct region_list *l = arg;
	if (l->snapshot_only && r->snapshot[0] == '\0')
		return 0;
	if (bk_grow(&l->names, &l->cap, l->n, sizeof *l->names, 16) < 0)
		return CATALOG_ENOMEM;
	snprintf(l->names[l->n++], CATALOG_NAME_MAX, "%s", r->name);
	return 0;
}

static int collect_client(void *arg, const struct catalog_client *c)
{
	if (c->disabled)
		return 0;
	struct catalog_region r = { 0 };
	snprintf(r.name, sizeof r.name, "%s", c->name);
	r.snapshot[0] = 'x';
	return collect_region(arg, &r);
}

int schedule_run_kind(struct catalog *cat, const struct conf *cf,
		      const char *kind, volatile int *cancel)
{
	struct region_list l = { NULL, 0, 0, 1 };
	int failures = 0;
	int is_sync = strcmp(kind, "sync") == 0;
	int rc = is_sync ? catalog_region_list(cat, collect_region, &l)
			 : catalog_client_list(cat, collect_client, &l);
	if (rc != 0) {
		log_error("schedule_list_failed", "kind=%s error=%s", kind,
			  log_q(catalog_errmsg(cat)));
		free(l.names);
		return 1;
	}
	for (int i = 0; i < l.n && !store_canceled(cancel); i++) {
		if (is_sync) {
			struct sync_opts o = { 0 };
			struct sync_stats st;
			char sum[256];
			o.concurrency = cf->sync_concurrency;
			o.cancel = cancel;
			o.out = stdout;
			o.err = stderr;
			log_info("sync_start", "region=%s", log_q(l.names[i]));
			rc = sync_region(cat, cf, l.names[i], &o, &st);
			ops_job("sync", rc == 0, (int64_t)time(NULL));
			sync_summary(&st, sum, sizeof sum);
			if (rc != 0) {
				failures++;
				log_error("sync_failed",
					  "region=%s summary=%s error=%s",
					  log_q(l.names[i]), log_q(sum),
					  log_q(st.error[0] ? st.error
							    : "some objects "
							      "failed"));
			} else {
				log_info("sync_done", "region=%s summary=%s",
					 log_q(l.names[i]), log_q(sum));
			}
		} else {
			struct catalog_archive a;
			log_info("archive_start", "client=%s",
				 log_q(l.names[i]));
			rc = archives_create(cat, cf, l.names[i], NULL, cancel,
					     &a);
			ops_job("archive", rc == 0, (int64_t)time(NULL));
			if (rc != 0) {
				failures++;
				log_error("archive_failed",
					  "client=%s error=%s",
					  log_q(l.names[i]), log_q(a.error));
				continue;
			}
			log_info("archive_done",
				 "client=%s location=%s size=%lld "
				 "objects=%lld",
				 log_q(l.names[i]), log_q(a.location),
				 (long long)a.size, (long long)a.objects);
			int n = archives_prune(cat, l.names[i],
					       cf->archive_keep > 0
						       ? cf->archive_keep
						       : 4,
					       0, NULL);
			if (n > 0)
				log_info("archive_pruned",
					 "client=%s removed=%d",
					 log_q(l.names[i]), n);
		}
	}
	free(l.names);
	return failures;
}

/* ---- start-up recovery -------------------------------------------------- */

/* The locations whose interrupted writes are cleaned at start: every
 * assets, snapshot and archive folder of a region, every client's
 * location. A file:// URL inside one already listed is skipped, so no
 * tree is walked twice; an s3:// one is kept whatever its parent, since
 * S3's cleanup looks only at the location's own root (where staged
 * uploads keep their temp objects: store_writer_open_staged). */
struct url_set {
	char (*urls)[CATALOG_URL_MAX];
	int n, cap;
	struct catalog *cat;
	const struct conf *cf;
};

static void url_add(struct url_set *u, const char *url)
{
	int fs = strncmp(url, "file://", 7) == 0;
	if (!fs && strncmp(url, "s3://", 5) != 0)
		return;
	for (int i = 0; i < u->n; i++) {
		if (!fs || strncmp(u->urls[i], "file://", 7) != 0) {
			if (strcmp(u->urls[i], url) == 0)
				return;
			continue;
		}
		size_t l = strlen(u->urls[i]);
		if (strncmp(url, u->urls[i], l) == 0)
			return; /* inside one we have */
		if (strncmp(u->urls[i], url, strlen(url)) == 0) {
			/* contains one we have: take its place */
			snprintf(u->urls[i], CATALOG_URL_MAX, "%s", url);
			return;
		}
	}
	if (bk_grow(&u->urls, &u->cap, u->n, sizeof *u->urls, 16) < 0)
		return;
	snprintf(u->urls[u->n++], CATALOG_URL_MAX, "%s", url);
}

static int url_region(void *arg, const struct catalog_region *r)
{
	struct url_set *u = arg;
	char a[CATALOG_URL_MAX];
	url_add(u, r->assets);
	url_add(u, r->snapshot);
	if (archives_region_base_url(u->cat, u->cf, r, a, sizeof a) == 0)
		url_add(u, a);
	return 0;
}

static int url_client(void *arg, const struct catalog_client *c)
{
	url_add(arg, c->location);
	return 0;
}

/* Abort the S3 multipart uploads a dead process left (the journal), then
 * remove the fs temp files of interrupted writes. Runs once, in its own
 * thread, so a large tree never delays serving: temp files are invisible
 * meanwhile. */
static void recover(struct catalog *cat, const struct conf *cf,
		    volatile int *cancel)
{
	char dir[CONF_PATH_MAX + 16];
	int uploads = 0, temps = 0;
	if (store_upload_journal_dir(cf->catalog, dir, sizeof dir) == 0)
		uploads = store_upload_recover(dir, cancel);
	struct url_set u = { .cat = cat, .cf = cf };
	char a[CATALOG_URL_MAX];
	catalog_region_list(cat, url_region, &u);
	catalog_client_list(cat, url_client, &u);
	if (archives_region_base_url(cat, cf, NULL, a, sizeof a) == 0)
		url_add(&u, a);
	for (int i = 0; i < u.n && !store_canceled(cancel); i++) {
		struct store *st;
		if (tenant_open_location(cat, u.urls[i], &st) != 0)
			continue; /* not there (yet): nothing to clean */
		int n = store_cleanup(st, 0);
		if (n > 0)
			temps += n;
		store_close(st);
	}
	free(u.urls);
	log_info("recovered", "s3_uploads_settled=%d temp_files_removed=%d",
		 uploads < 0 ? 0 : uploads, temps);
}

/* ---- the runner --------------------------------------------------------- */

/* The runner owns its copy of the configuration: the daemon replaces its
 * own on SIGHUP, and a job must never read a struct being overwritten. A
 * reload swaps the copy under the lock and bumps GEN; each job thread takes
 * its own copy (and its schedule) under the lock before each job, so a job
 * runs start to end with one consistent configuration, and the next one
 * sees the new schedule. */
struct job_thread {
	struct schedule_runner *r;
	int kind_no;            /* 0 sync, 1 archive */
	const char *kind;
	pthread_t tid;
	int started;
	struct conf *cf;        /* this thread's copy, for the running job */
};

struct schedule_runner {
	struct catalog *cat;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	volatile int stop;
	struct conf *cf;        /* the current configuration (guarded) */
	struct schedule sched[2];       /* parsed SyncSchedule, ArchiveSchedule */
	int enabled[2];
	unsigned gen;           /* bumped by each reload */
	struct job_thread jobs[2];
	pthread_t recover_tid;
	int recover_started;
};

static int schedule_off(const char *text)
{
	return text[0] == '\0' || strcasecmp(text, "off") == 0 ||
	       strcasecmp(text, "none") == 0;
}

/* Parse CF's two schedules into SCHED/ENABLED; -1 with ERR set on error. */
static int parse_both(const struct conf *cf, struct schedule sched[2],
		      int enabled[2], char *err, size_t errlen)
{
	const char *texts[2] = { cf->sync_schedule, cf->archive_schedule };
	char e[200];
	for (int i = 0; i < 2; i++) {
		enabled[i] = !schedule_off(texts[i]);
		if (enabled[i] &&
		    schedule_parse(texts[i], &sched[i], e, sizeof e) != 0) {
			snprintf(err, errlen, "%s: %s",
				 i == 0 ? "SyncSchedule" : "ArchiveSchedule",
				 e);
			return -1;
		}
	}
	return 0;
}

static void *recover_main(void *arg)
{
	struct schedule_runner *r = arg;
	struct conf *cf = malloc(sizeof *cf);
	if (!cf)
		return NULL;
	pthread_mutex_lock(&r->mu);
	*cf = *r->cf;
	pthread_mutex_unlock(&r->mu);
	recover(r->cat, cf, &r->stop);
	free(cf);
	return NULL;
}

static void *job_main(void *arg)
{
	struct job_thread *j = arg;
	struct schedule_runner *r = j->r;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		/* (Re)compute the due time from the current schedule. */
		unsigned gen = r->gen;
		time_t due = 0;
		int on = r->enabled[j->kind_no];
		if (on && schedule_next(&r->sched[j->kind_no], time(NULL),
					&due) != 0) {
			log_warn("schedule_never", "kind=%s", j->kind);
			on = 0;
		}
		if (on) {
			char ts[32];
			log_debug("schedule_next", "kind=%s due=\"%s UTC\"",
				  j->kind, bk_time_str(due, ts, sizeof ts));
		}
		while (!r->stop && r->gen == gen && (!on || time(NULL) < due)) {
			if (on) {
				struct timespec ts = { .tv_sec = due };
				pthread_cond_timedwait(&r->cv, &r->mu, &ts);
			} else {
				pthread_cond_wait(&r->cv, &r->mu);
			}
		}
		if (r->stop)
			break;
		if (r->gen != gen)
			continue; /* reloaded: the schedule may have changed */
		*j->cf = *r->cf; /* this job's configuration */
		pthread_mutex_unlock(&r->mu);
		int failed = schedule_run_kind(r->cat, j->cf, j->kind,
					       &r->stop);
		log_info("schedule_ran", "kind=%s failed=%d", j->kind, failed);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int schedule_runner_start(struct catalog *cat, const struct conf *cf,
			  struct schedule_runner **out, char *err,
			  size_t errlen)
{
	static const char *const kinds[2] = { "sync", "archive" };
	struct schedule_runner *r = calloc(1, sizeof *r);
	*out = NULL;
	if (!r || !(r->cf = malloc(sizeof *r->cf)) ||
	    !(r->jobs[0].cf = malloc(sizeof *r->cf)) ||
	    !(r->jobs[1].cf = malloc(sizeof *r->cf))) {
		if (r) {
			free(r->jobs[0].cf);
			free(r->cf);
		}
		free(r);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->cat = cat;
	*r->cf = *cf;
	if (parse_both(cf, r->sched, r->enabled, err, errlen) < 0) {
		free(r->jobs[0].cf);
		free(r->jobs[1].cf);
		free(r->cf);
		free(r);
		return -1;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL); /* CLOCK_REALTIME: due times are
					    wall-clock times */
	if (pthread_create(&r->recover_tid, NULL, recover_main, r) == 0)
		r->recover_started = 1;
	for (int i = 0; i < 2; i++) {
		struct job_thread *j = &r->jobs[i];
		j->r = r;
		j->kind_no = i;
		j->kind = kinds[i];
		if (pthread_create(&j->tid, NULL, job_main, j) != 0) {
			snprintf(err, errlen, "cannot start the scheduler");
			schedule_runner_stop(r);
			return -1;
		}
		j->started = 1;
		if (r->enabled[i])
			log_info("schedule_start", "kind=%s schedule=%s",
				 j->kind,
				 log_q(i == 0 ? cf->sync_schedule
					      : cf->archive_schedule));
	}
	*out = r;
	return 0;
}

int schedule_runner_reload(struct schedule_runner *r, const struct conf *cf,
			   char *err, size_t errlen)
{
	struct schedule sched[2];
	int enabled[2];
	if (!r)
		return 0;
	if (parse_both(cf, sched, enabled, err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < 2; i++) {
		const char *was = i == 0 ? r->cf->sync_schedule
					 : r->cf->archive_schedule;
		const char *now = i == 0 ? cf->sync_schedule
					 : cf->archive_schedule;
		if (strcmp(was, now) != 0)
			log_info("schedule_changed", "kind=%s schedule=%s",
				 r->jobs[i].kind,
				 log_q(enabled[i] ? now : "off"));
		r->sched[i] = sched[i];
		r->enabled[i] = enabled[i];
	}
	*r->cf = *cf;
	r->gen++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

void schedule_runner_stop(struct schedule_runner *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	store_cancel(&r->stop);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < 2; i++)
		if (r->jobs[i].started)
			pthread_join(r->jobs[i].tid, NULL);
	if (r->recover_started)
		pthread_join(r->recover_tid, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r->jobs[0].cf);
	free(r->jobs[1].cf);
	free(r->cf);
	free(r);
}
