/*
 * schedule.h - cron-like schedules and the daemon's backup scheduler.
 *
 * A schedule is the five fields of crontab(5): minute hour day-of-month
 * month day-of-week, each "*", a number, a range "a-b", a list "a,b-c" and
 * an optional step "/n" ("*" + "/15" = every 15), with month and weekday
 * names (jan..dec, sun..sat; 0 and 7 are Sunday), or one of @hourly,
 * @daily (= @midnight), @weekly, @monthly, @yearly (= @annually). As in
 * cron, when both day fields are restricted a day matches either. Times are
 * the machine's local time (TZ), as cron's are.
 *
 * The scheduler (schedule_runner_*) is one thread per kind of job (snapshot
 * sync of every region that has a snapshot location; an archive of every
 * enabled client followed by a prune to ArchiveKeep). Each thread sleeps
 * until its next due time, runs its jobs one at a time, logs them and
 * records them in the catalog's runs; a job still running when the next
 * time comes is not started twice (the missed time is skipped, as cron
 * would).
 */
#ifndef ASSETD_SCHEDULE_H
#define ASSETD_SCHEDULE_H

#include <stdint.h>
#include <time.h>

struct catalog;
struct conf;

struct schedule {
	uint64_t minutes;       /* bit m set: minute m (0-59) matches */
	uint32_t hours;         /* bits 0-23 */
	uint32_t mdays;         /* bits 1-31 */
	uint16_t months;        /* bits 1-12 */
	uint8_t wdays;          /* bits 0-6, 0 = Sunday */
	int mday_any;           /* day-of-month field was "*" */
	int wday_any;           /* day-of-week field was "*" */
};

/* Parse TEXT. Returns 0, or -1 with a message in ERR ("field 2 (hour):
 * 25 is out of range 0-23"). */
int schedule_parse(const char *text, struct schedule *out, char *err,
		   size_t errlen);

/* The first minute strictly after AFTER at which S is due (local time).
 * Returns 0, or -1 if none within five years (e.g. "0 0 30 2 *"). */
int schedule_next(const struct schedule *s, time_t after, time_t *next);

/* 1 if S is due in the minute containing T. */
int schedule_matches(const struct schedule *s, time_t t);

/* ---- the daemon's scheduler ------------------------------------------ */

struct schedule_runner;

/* Start the scheduler threads for CF's SyncSchedule and ArchiveSchedule
 * (either may be "" = off), and the start-up recovery (store_upload_recover,
 * store_cleanup of every fs location) in the background. CF is copied; CAT
 * must outlive the runner. Returns 0,
 * or -1 with ERR set when a schedule does not parse. */
int schedule_runner_start(struct catalog *cat, const struct conf *cf,
			  struct schedule_runner **out, char *err,
			  size_t errlen);

/* Apply a reloaded configuration (SIGHUP): the runner copies CF (the
 * caller may free or overwrite it afterwards); jobs already running finish
 * with the configuration they started with, the next ones use CF, and
 * changed schedules take effect at once. Returns 0, or -1 with ERR set
 * (and nothing changed) when a schedule does not parse. */
int schedule_runner_reload(struct schedule_runner *r, const struct conf *cf,
			   char *err, size_t errlen);

/* Ask running jobs to stop (a sync stops issuing copies; an archive in
 * progress is abandoned and recorded as failed), wait for the threads and
 * free R. NULL is a no-op. */
void schedule_runner_stop(struct schedule_runner *r);

/* Run the jobs of KIND ("sync" or "archive") now, in the calling thread,
 * as the scheduler does when they are due. Returns the number of jobs that
 * failed. CANCEL (may be NULL) is polled. */
int schedule_run_kind(struct catalog *cat, const struct conf *cf,
		      const char *kind, volatile int *cancel);

#endif
