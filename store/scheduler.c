/*
 * scheduler.c - the daemon's backup scheduler (declared in schedule.h).
 *
 * Two threads, one per kind of job (snapshot syncs, client archives), so a
 * long archive never delays a sync and no kind ever runs twice at once.
 * Each thread waits on a condition variable until its schedule's next due
 * time or until stop is asked; the stop flag doubles as the jobs' cancel
 * flag, so a shutdown abandons an archive (recorded failed, nothing
 * visible) and stops a sync from issuing more copies.
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
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 16;
		void *p = realloc(l->names, (size_t)cap * sizeof *l->names);
		if (!p)
			return CATALOG_ENOMEM;
		l->names = p;
		l->cap = cap;
	}
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
	for (int i = 0; i < l.n && !(cancel && *cancel); i++) {
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

/* ---- the runner --------------------------------------------------------- */

struct job_thread {
	struct schedule_runner *r;
	const char *kind;
	struct schedule sched;
	pthread_t tid;
	int started;
};

struct schedule_runner {
	struct catalog *cat;
	const struct conf *cf;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	volatile int stop;
	struct job_thread jobs[2];
};

static void *job_main(void *arg)
{
	struct job_thread *j = arg;
	struct schedule_runner *r = j->r;
	for (;;) {
		time_t now = time(NULL), due;
		if (schedule_next(&j->sched, now, &due) != 0) {
			log_warn("schedule_never", "kind=%s", j->kind);
			return NULL;
		}
		{
			char ts[32];
			log_debug("schedule_next", "kind=%s due=\"%s UTC\"",
				  j->kind, bk_time_str(due, ts, sizeof ts));
		}
		pthread_mutex_lock(&r->mu);
		while (!r->stop && time(NULL) < due) {
			struct timespec ts = { .tv_sec = due, .tv_nsec = 0 };
			pthread_cond_timedwait(&r->cv, &r->mu, &ts);
		}
		int stop = r->stop;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			return NULL;
		int failed = schedule_run_kind(r->cat, r->cf, j->kind,
					       &r->stop);
		log_info("schedule_ran", "kind=%s failed=%d", j->kind, failed);
	}
}

int schedule_runner_start(struct catalog *cat, const struct conf *cf,
			  struct schedule_runner **out, char *err,
			  size_t errlen)
{
	struct schedule_runner *r = calloc(1, sizeof *r);
	const char *texts[2] = { cf->sync_schedule, cf->archive_schedule };
	const char *kinds[2] = { "sync", "archive" };
	char e[200];
	*out = NULL;
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->cat = cat;
	r->cf = cf;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&r->cv, &ca); /* CLOCK_REALTIME: due times are
					   wall-clock times */
	pthread_condattr_destroy(&ca);
	for (int i = 0; i < 2; i++) {
		struct job_thread *j = &r->jobs[i];
		j->r = r;
		j->kind = kinds[i];
		if (texts[i][0] == '\0' || strcasecmp(texts[i], "off") == 0 ||
		    strcasecmp(texts[i], "none") == 0)
			continue;
		if (schedule_parse(texts[i], &j->sched, e, sizeof e) != 0) {
			snprintf(err, errlen, "%s: %s",
				 i == 0 ? "SyncSchedule" : "ArchiveSchedule",
				 e);
			schedule_runner_stop(r);
			return -1;
		}
	}
	for (int i = 0; i < 2; i++) {
		struct job_thread *j = &r->jobs[i];
		if (texts[i][0] == '\0' || strcasecmp(texts[i], "off") == 0 ||
		    strcasecmp(texts[i], "none") == 0)
			continue;
		if (pthread_create(&j->tid, NULL, job_main, j) != 0) {
			snprintf(err, errlen, "cannot start the scheduler");
			schedule_runner_stop(r);
			return -1;
		}
		j->started = 1;
		log_info("schedule_start", "kind=%s schedule=%s", j->kind,
			 log_q(texts[i]));
	}
	*out = r;
	return 0;
}

void schedule_runner_stop(struct schedule_runner *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < 2; i++)
		if (r->jobs[i].started)
			pthread_join(r->jobs[i].tid, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
