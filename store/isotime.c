/*
 * isotime.c - ISO 8601 UTC times into unix seconds (see include/isotime.h).
 *
 * A hand-written reader rather than sscanf(): "%2d" would also take a sign,
 * leading blanks or a single digit, so "2026-+1-5" would pass for a date.
 * Each field here is exactly its number of ASCII digits; the fields are
 * range-checked and handed to timegm(), which knows nothing of time zones.
 */
#include "isotime.h"

#include <string.h>
#include <time.h>

/* N digits at *P into *V, advancing *P. 0, or -1 if any is not a digit. */
static int digits(const char **p, int n, int *v)
{
	int x = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		x = x * 10 + (c - '0');
	}
	*p += n;
	*v = x;
	return 0;
}

/* Read C at *P, advancing. 0, or -1 if *P is something else. */
static int expect(const char **p, char c)
{
	if (**p != c)
		return -1;
	(*p)++;
	return 0;
}

int isotime_parse(const char *s, enum isotime_mode mode, int64_t *out)
{
	int y, mo, d, h = 0, mi = 0, sec = 0;
	const char *p = s;
	if (!p || digits(&p, 4, &y) || expect(&p, '-') || digits(&p, 2, &mo) ||
	    expect(&p, '-') || digits(&p, 2, &d))
		return -1;
	if (mode == ISOTIME_S3) {
		/* The time of day with its seconds is required; what follows
		 * (a fraction, 'Z') changes nothing at one-second grain. */
		if (expect(&p, 'T') || digits(&p, 2, &h) || expect(&p, ':') ||
		    digits(&p, 2, &mi) || expect(&p, ':') ||
		    digits(&p, 2, &sec))
			return -1;
	} else {
		if (*p == 'T' || *p == ' ') {
			p++;
			if (digits(&p, 2, &h) || expect(&p, ':') ||
			    digits(&p, 2, &mi))
				return -1;
			if (*p == ':' && (p++, digits(&p, 2, &sec)))
				return -1;
		}
		if (*p == 'Z')
			p++;
		if (*p)
			return -1;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = (int64_t)t;
	return 0;
}
