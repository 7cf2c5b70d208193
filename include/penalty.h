/*
 * penalty.h - per-source penalties for failed authentication, shared by
 * the SSH and HTTP front ends (like OpenSSH's PerSourcePenalties).
 *
 * Each bad event from an address (a failed SSH login, a connection that
 * never authenticated, LoginGraceTime running out, a refused HTTP token)
 * adds seconds to that address' penalty; the penalty runs down with the
 * clock. Once it exceeds the `min` threshold the source is refused until
 * it has run out (never longer than `max`). Addresses are grouped by
 * network block (PerSourceNetBlockSize, /32 and /64 by default) so that an
 * IPv6 guesser cannot dodge by changing its host part. Exempt networks
 * (PerSourcePenaltyExemptList) are never penalised.
 *
 * The table is bounded (max-sources); when it is full of live penalties a
 * new source is let in untracked (OpenSSH's "overflow:permissive"), and
 * this is logged. Every function takes the time so tests can inject it.
 * A table is safe to use from many threads.
 */
#ifndef ASSETD_PENALTY_H
#define ASSETD_PENALTY_H

#include <stddef.h>
#include <stdint.h>

/* What a source did wrong. */
enum penalty_event {
	PENALTY_AUTHFAIL = 0,   /* SSH: the connection failed authentication */
	PENALTY_NOAUTH,         /* SSH: it ended without trying (a scan, a
				   key exchange that failed, garbage) */
	PENALTY_GRACE,          /* SSH: LoginGraceTime ran out */
	PENALTY_TOKENFAIL,      /* HTTP: a token or key was refused */
	PENALTY_NEVENTS
};

#define PENALTY_MAX_EXEMPT 64

struct penalty_net {
	int family;             /* AF_INET or AF_INET6 */
	uint8_t addr[16];       /* network bytes (4 used for AF_INET) */
	int bits;               /* prefix length */
};

struct penalty_settings {
	int enabled;                    /* PerSourcePenalties no = 0 */
	int seconds[PENALTY_NEVENTS];   /* added per event; 0 = not counted */
	int min;                        /* refused once above this (seconds) */
	int max;                        /* a penalty never runs longer */
	int max_sources;                /* table bound */
	int v4_bits, v6_bits;           /* PerSourceNetBlockSize */
	struct penalty_net exempt[PENALTY_MAX_EXEMPT];
	int n_exempt;
};

/* The defaults: authfail:5s noauth:1s grace-exceeded:10s tokenfail:1s
 * min:15s max:600s max-sources:65536, block sizes 32:64, nothing exempt. */
void penalty_defaults(struct penalty_settings *ps);

/* Parse the three configuration values over the defaults in PS (NULL or
 * "" leaves a part at its default):
 *   PENALTIES  "yes", "no", or words "authfail:5s noauth:1s
 *              grace-exceeded:10s tokenfail:1s min:15s max:10m
 *              max-sources:65536" (any subset, durations with s/m/h);
 *   EXEMPT     "none" or a comma-separated list of addresses and CIDR
 *              networks ("127.0.0.1,10.0.0.0/8,::1,fd00::/8");
 *   NETBLOCK   "V4BITS[:V6BITS]", like "32:64".
 * Returns 0, or -1 with a message in ERR. conf.c checks each value with
 * the same parser when it reads the file. */
int penalty_parse(struct penalty_settings *ps, const char *penalties,
		  const char *exempt, const char *netblock, char *err,
		  size_t errlen);

/* The settings of a configuration (PerSourcePenalties,
 * PerSourcePenaltyExemptList, PerSourceNetBlockSize), already checked when
 * the file was read. 0, or -1 (logged) if a value does not parse. */
struct conf;
int penalty_from_conf(const struct conf *c, struct penalty_settings *ps);

struct penalty_table;

/* A table for one front end; SERVICE ("ssh", "http") names it in logs.
 * NULL on allocation failure. */
struct penalty_table *penalty_new(const struct penalty_settings *ps,
				  const char *service);
void penalty_free(struct penalty_table *t);

/* Apply new settings (a reload). Penalties already recorded are kept. */
void penalty_reload(struct penalty_table *t, const struct penalty_settings *ps);

/* Is the source ADDR (numeric IPv4/IPv6 text) refused at NOW (unix
 * seconds)? 0 = let it in, else the seconds until it is let in again. */
int penalty_refused(struct penalty_table *t, const char *addr, int64_t now);

/* Record EVENT from ADDR at NOW. Returns 1 if this made the source
 * refused (then logged as "penalty_source_refused"), else 0. */
int penalty_add(struct penalty_table *t, const char *addr,
		enum penalty_event event, int64_t now);

/* Sources currently tracked (for tests and metrics). */
int penalty_count(struct penalty_table *t);

#endif
