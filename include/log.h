/*
 * log.h - one line per event, in logfmt (key=value), to stderr.
 *
 *   ts=2026-11-25T19:40:01Z level=info event=login client=kufish addr=::1
 *
 * The message after the event is a printf format that the caller writes as
 * key=value pairs. Values that come from outside (names, paths, addresses)
 * must go through log_q(), which quotes and escapes them; the result lives
 * in a small per-thread ring, valid until the line is written. Never pass a
 * key, token or secret to the log.
 */
#ifndef ASSETD_LOG_H
#define ASSETD_LOG_H

#include "conf.h" /* LOG_LVL_* */

/* Set the threshold (LOG_LVL_*); lines above it are dropped. */
void log_set_level(int level);
int log_get_level(void);

/* Write lines to FD instead of stderr (the daemon keeps stderr). */
void log_set_fd(int fd);

/* Parse "error", "warn", "info", "debug" (any case). -1 if unknown. */
int log_level_parse(const char *s);

/* Write one line: ts=... level=... event=EVENT then FMT's pairs. */
void log_event(int level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A logfmt-safe rendering of S: bare if it has no space, '"', '=' or
 * control character, else double-quoted with \" \\ \n \xNN escapes;
 * truncated with "..." past 256 bytes. NULL renders as "". */
const char *log_q(const char *s);

#define log_error(ev, ...) log_event(LOG_LVL_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_event(LOG_LVL_WARN, ev, __VA_ARGS__)
#define log_info(ev, ...) log_event(LOG_LVL_INFO, ev, __VA_ARGS__)
#define log_debug(ev, ...) log_event(LOG_LVL_DEBUG, ev, __VA_ARGS__)

#endif
