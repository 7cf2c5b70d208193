/*
 * bkutil.h - private to store/: small helpers the backup modules (sync.c,
 * archive.c, schedule.c, bucket.c) share for their command-line faces:
 * JSON string output, human-readable sizes, and the "who is running this
 * row" marker that lets a later run tell an interrupted job from a live one,
 * and the growth of the small arrays they collect rows into.
 */
#ifndef ASSETD_STORE_BKUTIL_H
#define ASSETD_STORE_BKUTIL_H

#include <stdint.h>
#include <stdio.h>

/* Write S to F as a JSON string literal (quotes included). */
void bk_json_str(FILE *f, const char *s);

/* "1.5 MiB", "312 B" into BUF. Returns BUF. */
const char *bk_human_bytes(uint64_t n, char *buf, size_t len);

/* "2026-11-25 19:40:01" (UTC) into BUF; "-" for 0. Returns BUF. */
const char *bk_time_str(int64_t t, char *buf, size_t len);

/* The marker a running job leaves in its row's text field:
 * "running pid=1234 host=NAME". */
void bk_running_marker(char *buf, size_t len);

/* 1 if MARKER names a process on this host that no longer exists (the job
 * was killed), 0 if it may still be running or the marker is not ours. */
int bk_marker_is_stale(const char *marker);

/* Make room for one more element in a growable array: ARRP points to the
 * array's pointer (of any element type, SIZE bytes an element), *CAP is
 * its capacity and N the elements in use; doubles from FIRST. 0, or -1
 * (the array untouched) when out of memory. */
int bk_grow(void *arrp, int *cap, int n, size_t size, int first);

/* Parse a non-negative decimal integer in [MIN, MAX]. 0 or -1. */
int bk_parse_int(const char *s, long min, long max, long *out);

#endif
