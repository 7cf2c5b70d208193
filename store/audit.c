/*
 * audit.c - the append-only audit log (see include/audit.h for the format).
 *
 * One process-wide writer: a mutex guards the current day's fd, which is
 * reopened when the UTC day changes; at that moment files past the
 * retention are removed. Each event is formatted into one buffer and
 * written with a single write(2) on an O_APPEND fd, so lines from threads
 * (and from assetctl, which never writes here) cannot interleave.
 * audit_query() reads the day files in name order, which is time order.
 */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "isotime.h"
#include "log.h"

#define AUDIT_LINE_MAX 8192
#define AUDIT_DIR_MAX 1024

static pthread_mutex_t audit_lock = PTHREAD_MUTEX_INITIALIZER;
static char audit_dir[AUDIT_DIR_MAX];
static int audit_retention;     /* days, 0 = keep all */
static int audit_fd = -1;
static int audit_day = -1;      /* days since the epoch of audit_fd */
static time_t audit_last_error;

int audit_json_escape(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	while (*p) {
		unsigned char c = *p;
		char tmp[8];
		const char *rep = NULL;
		size_t replen = 0, adv = 1;
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			rep = tmp;
			replen = 2;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof tmp, "\\u%04x", c);
			rep = tmp;
			replen = 6;
		} else if (c < 0x80) {
			rep = (const char *)p;
			replen = 1;
		} else {
			/* Copy a valid UTF-8 sequence whole; escape stray bytes. */
			size_t n = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
			size_t k = 1;
			while (n && k < n && (p[k] & 0xc0) == 0x80)
				k++;
			if (n && k == n) {
				rep = (const char *)p;
				replen = n;
				adv = n;
			} else {
				snprintf(tmp, sizeof tmp, "\\u%04x", c);
				rep = tmp;
				replen = 6;
			}
		}
		if (o + replen >= cap)
			return -1;
		memcpy(out + o, rep, replen);
		o += replen;
		p += adv;
	}
	if (o >= cap)
		return -1;
	out[o] = '\0';
	return (int)o;
}

static void day_name(int day, char *out, size_t cap)
{
	time_t t = (time_t)day * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, cap, "audit-%04d%02d%02d.jsonl", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday);
}

/* Remove day files older than the retention. Called locked. */
static void prune_old(int today)
{
	if (audit_retention <= 0)
		return;
	char oldest[64];
	day_name(today - audit_retention + 1, oldest, sizeof oldest);
	DIR *d = opendir(audit_dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "audit-", 6) != 0 ||
		    strlen(e->d_name) != strlen(oldest))
			continue;
		if (strcmp(e->d_name, oldest) < 0)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

/* Make sure audit_fd is today's file. Called locked. */
static int open_day(int day)
{
	if (audit_fd >= 0 && day == audit_day)
		return 0;
	char name[64], path[AUDIT_DIR_MAX + 64];
	day_name(day, name, sizeof name);
	snprintf(path, sizeof path, "%s/%s", audit_dir, name);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (audit_fd >= 0)
		close(audit_fd);
	audit_fd = fd;
	audit_day = day;
	prune_old(day);
	return 0;
}

int audit_open(const char *dir, int retention_days)
{
	if (strlen(dir) >= sizeof audit_dir)
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	pthread_mutex_lock(&audit_lock);
	snprintf(audit_dir, sizeof audit_dir, "%s", dir);
	audit_retention = retention_days;
	audit_day = -1;
	int rc = open_day((int)(time(NULL) / 86400));
	pthread_mutex_unlock(&audit_lock);
	return rc;
}

void audit_close(void)
{
	pthread_mutex_lock(&audit_lock);
	if (audit_fd >= 0)
		close(audit_fd);
	audit_fd = -1;
	audit_dir[0] = '\0';
	pthread_mutex_unlock(&audit_lock);
}

/* Append ,"KEY":"escaped S" to LINE. Returns 0 or -1 when it does not fit. */
static int put_str(char *line, size_t *o, size_t cap, const char *key, const char *s)
{
	int n = snprintf(line + *o, cap - *o, ",\"%s\":\"", key);
	if (n < 0 || (size_t)n >= cap - *o)
		return -1;
	*o += (size_t)n;
	int e = audit_json_escape(s, line + *o, cap - *o);
	if (e < 0 || *o + (size_t)e + 2 > cap)
		return -1;
	*o += (size_t)e;
	line[(*o)++] = '"';
	line[*o] = '\0';
	return 0;
}

void audit_record(const struct audit_event *e)
{
	if (!audit_dir[0])
		return;
	char line[AUDIT_LINE_MAX];
	time_t t = e->t ? (time_t)e->t : time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t o = (size_t)snprintf(line, sizeof line,
				    "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02dZ\",\"t\":%" PRId64,
				    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				    tm.tm_hour, tm.tm_min, tm.tm_sec, (int64_t)t);
	int bad = put_str(line, &o, sizeof line, "client", e->client) ||
		  put_str(line, &o, sizeof line, "identity", e->identity) ||
		  put_str(line, &o, sizeof line, "addr", e->addr) ||
		  put_str(line, &o, sizeof line, "protocol", e->protocol) ||
		  put_str(line, &o, sizeof line, "op", e->op) ||
		  put_str(line, &o, sizeof line, "path", e->path) ||
		  (e->to && put_str(line, &o, sizeof line, "to", e->to));
	if (!bad) {
		int n = snprintf(line + o, sizeof line - o, ",\"bytes\":%" PRId64,
				 e->bytes);
		bad = n < 0 || (size_t)n >= sizeof line - o;
		if (!bad)
			o += (size_t)n;
	}
	if (!bad)
		bad = put_str(line, &o, sizeof line, "result", e->result);
	if (bad || o + 3 > sizeof line) {
		/* Too long (a huge path): keep the event, drop the path. */
		struct audit_event shorter = *e;
		shorter.path = "(path too long)";
		shorter.to = e->to ? "(path too long)" : NULL;
		if (e->path && strcmp(e->path, "(path too long)") != 0)
			audit_record(&shorter);
		return;
	}
	line[o++] = '}';
	line[o++] = '\n';

	pthread_mutex_lock(&audit_lock);
	int rc = open_day((int)(t / 86400));
	ssize_t w = rc == 0 ? write(audit_fd, line, o) : -1;
	if (w != (ssize_t)o) {
		time_t now = time(NULL);
		if (now - audit_last_error >= 60) {
			audit_last_error = now;
			log_error("audit_write", "dir=%s msg=%s", log_q(audit_dir),
				  log_q(strerror(rc ? -rc : errno)));
		}
	}
	pthread_mutex_unlock(&audit_lock);
}

/* Pull the string value of "client" and the number "t" out of one of our
 * own lines (we wrote them, so a tiny scanner suffices). */
static void scan_line(const char *line, char *client, size_t cap, int64_t *t)
{
	*t = 0;
	client[0] = '\0';
	const char *p = strstr(line, "\"t\":");
	if (p)
		*t = strtoll(p + 4, NULL, 10);
	p = strstr(line, "\"client\":\"");
	if (!p)
		return;
	p += 10;
	size_t o = 0;
	while (*p && *p != '"' && o + 1 < cap) {
		if (*p == '\\' && p[1])
			p++;
		client[o++] = *p++;
	}
	client[o] = '\0';
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int audit_query(const char *dir, const char *client, int64_t since,
		audit_cb cb, void *arg)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "audit-", 6) != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **nn = realloc(names, cap * sizeof *names);
			if (!nn) {
				rc = -ENOMEM;
				break;
			}
			names = nn;
		}
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc == 0 && n > 1) /* names is NULL when there are none */
		qsort(names, n, sizeof *names, cmp_names);
	char since_name[64];
	day_name((int)(since / 86400), since_name, sizeof since_name);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (since > 0 && strlen(names[i]) == strlen(since_name) &&
		    strcmp(names[i], since_name) < 0)
			continue; /* the whole day is before SINCE */
		char path[AUDIT_DIR_MAX + 64];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		char *line = NULL;
		size_t lcap = 0;
		ssize_t len;
		while ((len = getline(&line, &lcap, f)) > 0) {
			if (line[len - 1] != '\n')
				break; /* a line cut by a crash: not an event */
			line[len - 1] = '\0';
			char who[256];
			int64_t t;
			scan_line(line, who, sizeof who, &t);
			if (t < since || (client && strcmp(client, who) != 0))
				continue;
			if (cb(arg, line, who, t)) {
				rc = 1;
				break;
			}
		}
		free(line);
		fclose(f);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc < 0 ? rc : 0;
}

int audit_line_field(const char *json, const char *key, char *out, size_t cap)
{
	char pat[64];
	if (cap == 0 || snprintf(pat, sizeof pat, "\"%s\":", key) >= (int)sizeof pat)
		return -1;
	/* Our lines never hold '"' unescaped inside a value, so the first
	 * match of "KEY": that follows '{' or ',' is the field. */
	const char *p = json;
	for (;;) {
		p = strstr(p, pat);
		if (!p)
			return -1;
		if (p > json && (p[-1] == '{' || p[-1] == ','))
			break;
		p++;
	}
	p += strlen(pat);
	size_t o = 0;
	if (*p != '"') {
		while (*p && *p != ',' && *p != '}' && o + 1 < cap)
			out[o++] = *p++;
		out[o] = '\0';
		return 0;
	}
	p++;
	while (*p && *p != '"' && o + 1 < cap) {
		if (*p == '\\' && p[1]) {
			p++;
			if (*p == 'u' && strlen(p) >= 5) {
				char hexd[5] = { p[1], p[2], p[3], p[4], 0 };
				unsigned v = (unsigned)strtoul(hexd, NULL, 16);
				out[o++] = v && v < 0x80 ? (char)v : '?';
				p += 5;
				continue;
			}
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
	return 0;
}

int audit_parse_since(const char *s, int64_t now, int64_t *out)
{
	if (!s || !*s)
		return -1;
	char *end;
	/* an age: digits and one unit */
	if (s[0] >= '0' && s[0] <= '9') {
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (errno == 0 && end != s && end[0] && !end[1] && n >= 0 &&
		    n <= 100LL * 365 * 86400) {
			long long unit = end[0] == 's' ? 1 : end[0] == 'm' ? 60 :
					 end[0] == 'h' ? 3600 :
					 end[0] == 'd' ? 86400 :
					 end[0] == 'w' ? 7 * 86400 : 0;
			if (unit) {
				*out = now - (int64_t)(n * unit);
				return 0;
			}
		}
	}
	/* an ISO date or time, UTC */
	return isotime_parse(s, ISOTIME_USER, out);
}
