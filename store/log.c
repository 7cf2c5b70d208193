/*
 * log.c - logfmt lines to stderr (or another fd).
 *
 * Each line is formatted whole into a stack buffer and written with one
 * write(2), so lines from different threads never interleave. Values from
 * outside pass through log_q(), which quotes them into a per-thread ring of
 * buffers; a line may therefore quote up to LOG_Q_SLOTS values.
 */
#include "log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define LOG_Q_SLOTS 8
#define LOG_Q_MAX 256

static int log_level = LOG_LVL_INFO;
static int log_fd = 2;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(int level)
{
	if (level < LOG_LVL_ERROR)
		level = LOG_LVL_ERROR;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

int log_get_level(void)
{
	return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void log_set_fd(int fd)
{
	__atomic_store_n(&log_fd, fd, __ATOMIC_RELAXED);
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "warning") == 0)
		return LOG_LVL_WARN;
	return -1;
}

void log_event(int level, const char *event, const char *fmt, ...)
{
	if (level > log_get_level())
		return;
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line,
			 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
			 level_names[level < 0 ? 0 : level > 3 ? 3 : level], event);
	if (n < 0)
		return;
	if ((size_t)n < sizeof line - 2 && fmt && *fmt) {
		line[n++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
		va_end(ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n > sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	const char *p = line;
	size_t left = (size_t)n;
	int fd = __atomic_load_n(&log_fd, __ATOMIC_RELAXED);
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w <= 0)
			break;
		p += w;
		left -= (size_t)w;
	}
}

const char *log_q(const char *s)
{
	static __thread char ring[LOG_Q_SLOTS][LOG_Q_MAX * 4 + 8];
	static __thread unsigned slot;
	char *out = ring[slot++ % LOG_Q_SLOTS];
	if (!s)
		s = "";
	int needs = (*s == '\0');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			needs = 1;
	size_t o = 0, i = 0;
	if (needs)
		out[o++] = '"';
	for (; s[i] && i < LOG_Q_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!needs) {
			out[o++] = (char)c;
		} else if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c < ' ' || c == 0x7f) {
			o += (size_t)sprintf(out + o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (s[i]) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	if (needs)
		out[o++] = '"';
	out[o] = '\0';
	return out;
}
