/*
 * isotime.h - ISO 8601 UTC times, read into unix seconds.
 *
 * Two readers need them and accept different things: S3 and the AWS
 * credential sources write "2026-11-25T19:40:01.000Z" (a fraction, a 'Z'
 * or nothing may follow the seconds), and a person typing `assetctl audit
 * --since` may leave out the time of day or its seconds and write a space
 * for the 'T'. One parser serves both; the mode says which grammar.
 *
 * Every field has its fixed number of digits; month 1-12, day 1-31, hour
 * 0-23, minute 0-59, second 0-60 (a leap second rolls into the next
 * minute), year 1970-9999. The day is not checked against the month's
 * length: timegm() rolls "02-30" into March, as both readers always did.
 */
#ifndef ASSETD_ISOTIME_H
#define ASSETD_ISOTIME_H

#include <stdint.h>

enum isotime_mode {
	/* "YYYY-MM-DDThh:mm:ss", then anything (".000Z", "Z", nothing) is
	 * ignored: S3's LastModified, credential expiry times. */
	ISOTIME_S3,
	/* "YYYY-MM-DD", optionally followed by 'T' or ' ' and "hh:mm" with
	 * optional ":ss", then an optional 'Z' and nothing else. */
	ISOTIME_USER,
};

/* Parse S by MODE into *OUT (unix seconds, UTC). 0, or -1 when S does not
 * follow the grammar or a field is out of range (*OUT untouched). */
int isotime_parse(const char *s, enum isotime_mode mode, int64_t *out);

#endif
