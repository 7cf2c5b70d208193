/*
 * bkutil.c - helpers shared by the backup modules' command-line faces.
 *
 * Kept apart so that sync, archives, schedules and bucket checks print
 * JSON, sizes and times the same way. The running marker records the pid
 * and host name of the process that owns a "running" catalog row; a row
 * whose process is gone was interrupted (killed, power lost) and is then
 * marked failed by whoever notices first.
 */
#include "bkutil.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void bk_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)(s ? s : "");
	     *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

const char *bk_human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB",
					     "TiB", "PiB" };
	if (n < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)n);
		return buf;
	}
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

const char *bk_time_str(int64_t t, char *buf, size_t len)
{
	if (t <= 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

static void host_name(char *buf, size_t len)
{
	if (gethostname(buf, len) != 0)
		snprintf(buf, len, "unknown");
	buf[len - 1] = '\0';
	/* keep the marker one token */
	for (char *p = buf; *p; p++)
		if (*p == ' ')
			*p = '_';
}

void bk_running_marker(char *buf, size_t len)
{
	char host[128];
	host_name(host, sizeof host);
	snprintf(buf, len, "running pid=%ld host=%s", (long)getpid(), host);
}

int bk_marker_is_stale(const char *marker)
{
	long pid;
	char host[128], mine[128];
	if (!marker || sscanf(marker, "running pid=%ld host=%127s", &pid,
			      host) != 2)
		return 0;
	host_name(mine, sizeof mine);
	if (strcmp(host, mine) != 0 || pid <= 0)
		return 0;
	if (pid == (long)getpid())
		return 0;
	if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
		return 0;
	return 1;
}

int bk_parse_int(const char *s, long min, long max, long *out)
{
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int bk_grow(void *arrp, int *cap, int n, size_t size, int first)
{
	if (n < *cap)
		return 0;
	void *arr;
	memcpy(&arr, arrp, sizeof arr);
	int nc = *cap ? *cap * 2 : first;
	void *p = realloc(arr, (size_t)nc * size);
	if (!p)
		return -1;
	memcpy(arrp, &p, sizeof p);
	*cap = nc;
	return 0;
}
