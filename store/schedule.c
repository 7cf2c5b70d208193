/*
 * schedule.c - crontab-style schedules: parsing and the next due time.
 *
 * (The daemon's scheduler threads that use them are in scheduler.c.)
 * Parsing turns each of the five fields into a bit set. Finding the next
 * due time walks forward from the minute after the given time, jumping a
 * whole month, day or hour whenever that unit cannot match, so at most a
 * few thousand steps cover the five years we look ahead; mktime() with
 * tm_isdst = -1 normalises each jump, which also steps over DST gaps.
 */
#include "schedule.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


/* ---- parsing ---------------------------------------------------------- */

struct field_def {
	const char *name;
	int lo, hi;
	const char *const *names; /* names for lo.. (or NULL) */
};

static const char *const month_names[] = { "jan", "feb", "mar", "apr",
					   "may", "jun", "jul", "aug",
					   "sep", "oct", "nov", "dec" };
static const char *const day_names[] = { "sun", "mon", "tue", "wed",
					 "thu", "fri", "sat" };

static const struct field_def fields[5] = {
	{ "minute", 0, 59, NULL },
	{ "hour", 0, 23, NULL },
	{ "day of month", 1, 31, NULL },
	{ "month", 1, 12, month_names },
	{ "day of week", 0, 7, day_names },
};

/* A number or a name at *P; advances *P. */
static int parse_value(const char **p, const struct field_def *fd, int *out)
{
	const char *s = *p;
	if (isdigit((unsigned char)*s)) {
		long v = 0;
		while (isdigit((unsigned char)*s)) {
			v = v * 10 + (*s - '0');
			if (v > 1000)
				return -1;
			s++;
		}
		*out = (int)v;
		*p = s;
		return 0;
	}
	if (fd->names && isalpha((unsigned char)s[0]) &&
	    isalpha((unsigned char)s[1]) && isalpha((unsigned char)s[2]) &&
	    !isalpha((unsigned char)s[3])) {
		int n = fd == &fields[3] ? 12 : 7;
		for (int i = 0; i < n; i++)
			if (strncasecmp(s, fd->names[i], 3) == 0) {
				*out = fd == &fields[3] ? i + 1 : i;
				*p = s + 3;
				return 0;
			}
	}
	return -1;
}

static int parse_field(const char *text, int idx, uint64_t *bits, int *any,
		       char *err, size_t errlen)
{
	const struct field_def *fd = &fields[idx];
	const char *p = text;
	*bits = 0;
	*any = strcmp(text, "*") == 0;
	for (;;) {
		int lo, hi, step = 1;
		if (*p == '*') {
			lo = fd->lo;
			hi = fd->hi;
			p++;
		} else {
			if (parse_value(&p, fd, &lo) != 0)
				goto bad;
			hi = lo;
			if (*p == '-') {
				p++;
				if (parse_value(&p, fd, &hi) != 0)
					goto bad;
			}
		}
		if (*p == '/') {
			p++;
			if (!isdigit((unsigned char)*p))
				goto bad;
			step = 0;
			while (isdigit((unsigned char)*p)) {
				step = step * 10 + (*p - '0');
				if (step > 1000)
					goto bad;
				p++;
			}
			if (step == 0)
				goto bad;
			/* "5/10" means 5-max/10, as in Vixie cron */
			if (hi == lo && text[0] != '*')
				hi = fd->hi;
		}
		if (lo < fd->lo || hi > fd->hi || lo > hi) {
			snprintf(err, errlen,
				 "field %d (%s): %d-%d is out of range %d-%d",
				 idx + 1, fd->name, lo, hi, fd->lo, fd->hi);
			return -1;
		}
		for (int v = lo; v <= hi; v += step)
			*bits |= 1ULL << v;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '\0')
			return 0;
		goto bad;
	}
bad:
	snprintf(err, errlen, "field %d (%s): cannot parse \"%s\"", idx + 1,
		 fd->name, text);
	return -1;
}

int schedule_parse(const char *text, struct schedule *out, char *err,
		   size_t errlen)
{
	static const struct {
		const char *name, *expansion;
	} macros[] = {
		{ "@hourly", "0 * * * *" },   { "@daily", "0 0 * * *" },
		{ "@midnight", "0 0 * * *" }, { "@weekly", "0 0 * * 0" },
		{ "@monthly", "0 0 1 * *" },  { "@yearly", "0 0 1 1 *" },
		{ "@annually", "0 0 1 1 *" },
	};
	char buf[256];
	char dummy[8];
	if (!err) {
		err = dummy;
		errlen = sizeof dummy;
	}
	if (!text) {
		snprintf(err, errlen, "no schedule");
		return -1;
	}
	while (isspace((unsigned char)*text))
		text++;
	if (text[0] == '@') {
		size_t n = strcspn(text, " \t");
		const char *rest = text + n;
		while (isspace((unsigned char)*rest))
			rest++;
		for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
			if (strlen(macros[i].name) == n &&
			    strncasecmp(text, macros[i].name, n) == 0 &&
			    *rest == '\0')
				return schedule_parse(macros[i].expansion, out,
						      err, errlen);
		snprintf(err, errlen, "unknown schedule \"%s\"", text);
		return -1;
	}
	if (strlen(text) >= sizeof buf) {
		snprintf(err, errlen, "schedule too long");
		return -1;
	}
	strcpy(buf, text);
	char *tok[6];
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (n == 6)
			break;
		tok[n++] = t;
	}
	if (n != 5) {
		snprintf(err, errlen,
			 "expected 5 fields (minute hour day month weekday), "
			 "got %d",
			 n);
		return -1;
	}
	memset(out, 0, sizeof *out);
	uint64_t bits;
	int any;
	if (parse_field(tok[0], 0, &bits, &any, err, errlen))
		return -1;
	out->minutes = bits;
	if (parse_field(tok[1], 1, &bits, &any, err, errlen))
		return -1;
	out->hours = (uint32_t)bits;
	if (parse_field(tok[2], 2, &bits, &out->mday_any, err, errlen))
		return -1;
	out->mdays = (uint32_t)bits;
	if (parse_field(tok[3], 3, &bits, &any, err, errlen))
		return -1;
	out->months = (uint16_t)bits;
	if (parse_field(tok[4], 4, &bits, &out->wday_any, err, errlen))
		return -1;
	if (bits & (1u << 7)) /* 7 is Sunday too */
		bits |= 1u;
	out->wdays = (uint8_t)(bits & 0x7f);
	return 0;
}

static int day_matches(const struct schedule *s, const struct tm *tm)
{
	int md = (s->mdays >> tm->tm_mday) & 1;
	int wd = (s->wdays >> tm->tm_wday) & 1;
	if (s->mday_any && s->wday_any)
		return 1;
	if (s->mday_any)
		return wd;
	if (s->wday_any)
		return md;
	return md || wd;
}

int schedule_matches(const struct schedule *s, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	return ((s->months >> (tm.tm_mon + 1)) & 1) && day_matches(s, &tm) &&
	       ((s->hours >> tm.tm_hour) & 1) &&
	       ((s->minutes >> tm.tm_min) & 1);
}

int schedule_next(const struct schedule *s, time_t after, time_t *next)
{
	struct tm tm;
	time_t t = after - (after % 60) + 60;
	if (after < 0)
		return -1;
	localtime_r(&t, &tm);
	tm.tm_sec = 0;
	int start_year = tm.tm_year;
	for (int steps = 0; steps < 200000; steps++) {
		if (tm.tm_year > start_year + 5)
			return -1;
		if (!((s->months >> (tm.tm_mon + 1)) & 1)) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = 0;
			tm.tm_min = 0;
		} else if (!day_matches(s, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = 0;
			tm.tm_min = 0;
		} else if (!((s->hours >> tm.tm_hour) & 1)) {
			tm.tm_hour++;
			tm.tm_min = 0;
		} else if (!((s->minutes >> tm.tm_min) & 1)) {
			tm.tm_min++;
		} else {
			tm.tm_isdst = -1;
			time_t r = mktime(&tm);
			if (r <= after) { /* DST fold: move on */
				tm.tm_min++;
			} else {
				*next = r;
				return 0;
			}
		}
		tm.tm_isdst = -1;
		time_t r = mktime(&tm);
		if (r == (time_t)-1)
			return -1;
		localtime_r(&r, &tm);
	}
	return -1;
}

