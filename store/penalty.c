/*
 * penalty.c - the per-source penalty table (see include/penalty.h).
 *
 * A source is an address masked to its network block, kept as 17 bytes
 * (family, then the masked address). Entries live in one array that grows
 * by doubling up to max-sources and are chained from a fixed array of hash
 * buckets; an entry whose penalty has run out is removed when it is next
 * looked at, and all of them are swept when the table is full. Each entry
 * holds only the moment its penalty runs out and whether it has crossed
 * the `min` threshold: the penalty left is that moment minus now, so it
 * decays with the clock at no cost. One mutex guards a table: every
 * operation is a few hash steps, far cheaper than the SSH key exchange or
 * the HTTP request it guards.
 */
#include "penalty.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "conf.h"
#include "log.h"

#define KEY_LEN 17
#define INITIAL_ENTRIES 256
#define MAX_SOURCES_LIMIT (1 << 22)
#define OVERFLOW_LOG_EVERY 60   /* seconds between "table full" lines */

static const char *const event_names[PENALTY_NEVENTS] = {
	"authfail", "noauth", "grace-exceeded", "tokenfail",
};

struct pentry {
	uint8_t key[KEY_LEN];
	int32_t next;           /* next entry in the bucket, -1 = end; the
				   free list when unused */
	int64_t until;          /* the penalty runs out then (unix s) */
	int refused;            /* crossed `min`: refused until UNTIL */
};

struct penalty_table {
	pthread_mutex_t mu;
	struct penalty_settings set;
	char service[16];
	struct pentry *e;       /* CAP entries, grown by doubling */
	int32_t cap;
	int32_t used;           /* entries ever handed out (< CAP) */
	int32_t free_head;      /* removed entries to reuse, -1 = none */
	int32_t count;          /* live entries */
	int32_t *bucket;        /* NB heads */
	uint32_t nb;            /* a power of two */
	int64_t overflow_logged;
};

/* ---- settings --------------------------------------------------------- */

void penalty_defaults(struct penalty_settings *ps)
{
	memset(ps, 0, sizeof *ps);
	ps->enabled = 1;
	ps->seconds[PENALTY_AUTHFAIL] = 5;
	ps->seconds[PENALTY_NOAUTH] = 1;
	ps->seconds[PENALTY_GRACE] = 10;
	ps->seconds[PENALTY_TOKENFAIL] = 1;
	ps->min = 15;
	ps->max = 600;
	ps->max_sources = 65536;
	ps->v4_bits = 32;
	ps->v6_bits = 64;
}

static void set_err(char *err, size_t errlen, const char *msg,
		    const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: '%s'", msg, what);
}

/* "90", "90s", "15m", "2h", "1d" -> seconds. 0 or -1. */
static int parse_duration(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || v < 0)
		return -1;
	long mult = 1;
	if (*end == 's' || *end == 'S')
		end++;
	else if (*end == 'm' || *end == 'M')
		mult = 60, end++;
	else if (*end == 'h' || *end == 'H')
		mult = 3600, end++;
	else if (*end == 'd' || *end == 'D')
		mult = 86400, end++;
	if (*end || v > INT_MAX / mult)
		return -1;
	*out = (int)(v * mult);
	return 0;
}

static int parse_penalties(struct penalty_settings *ps, const char *s,
			   char *err, size_t errlen)
{
	char buf[512], *save = NULL;
	if (strlen(s) >= sizeof buf) {
		set_err(err, errlen, "too long", "PerSourcePenalties");
		return -1;
	}
	snprintf(buf, sizeof buf, "%s", s);
	if (!strcasecmp(buf, "yes")) {
		ps->enabled = 1;
		return 0;
	}
	if (!strcasecmp(buf, "no")) {
		ps->enabled = 0;
		return 0;
	}
	ps->enabled = 1;
	for (char *w = strtok_r(buf, " \t,", &save); w;
	     w = strtok_r(NULL, " \t,", &save)) {
		char *colon = strchr(w, ':');
		if (!colon) {
			set_err(err, errlen, "expected word:value", w);
			return -1;
		}
		*colon = '\0';
		const char *v = colon + 1;
		int *field = NULL;
		for (int i = 0; i < PENALTY_NEVENTS; i++)
			if (!strcasecmp(w, event_names[i]))
				field = &ps->seconds[i];
		if (!strcasecmp(w, "min"))
			field = &ps->min;
		else if (!strcasecmp(w, "max"))
			field = &ps->max;
		if (field) {
			if (parse_duration(v, field) < 0) {
				set_err(err, errlen, "not a duration", v);
				return -1;
			}
			continue;
		}
		if (!strcasecmp(w, "max-sources")) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || end == v || n < 1 || n > MAX_SOURCES_LIMIT) {
				set_err(err, errlen,
					"max-sources is not a number from 1 "
					"to 4194304", v);
				return -1;
			}
			ps->max_sources = (int)n;
			continue;
		}
		set_err(err, errlen,
			"unknown word (authfail, noauth, grace-exceeded, "
			"tokenfail, min, max, max-sources)", w);
		return -1;
	}
	return 0;
}

/* "addr" or "addr/bits" -> NET. 0 or -1. */
static int parse_net(const char *s, struct penalty_net *net)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof host)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	memset(net, 0, sizeof *net);
	if (inet_pton(AF_INET, host, net->addr) == 1) {
		net->family = AF_INET;
		net->bits = 32;
	} else if (inet_pton(AF_INET6, host, net->addr) == 1) {
		net->family = AF_INET6;
		net->bits = 128;
	} else {
		return -1;
	}
	if (slash) {
		char *end;
		long b = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || b < 0 || b > net->bits)
			return -1;
		net->bits = (int)b;
	}
	return 0;
}

static int parse_exempt(struct penalty_settings *ps, const char *s,
			char *err, size_t errlen)
{
	char buf[2048], *save = NULL;
	ps->n_exempt = 0;
	if (!strcasecmp(s, "none"))
		return 0;
	if (strlen(s) >= sizeof buf) {
		set_err(err, errlen, "too long", "PerSourcePenaltyExemptList");
		return -1;
	}
	snprintf(buf, sizeof buf, "%s", s);
	for (char *w = strtok_r(buf, " \t,", &save); w;
	     w = strtok_r(NULL, " \t,", &save)) {
		if (ps->n_exempt >= PENALTY_MAX_EXEMPT) {
			set_err(err, errlen, "at most 64 networks", w);
			return -1;
		}
		if (parse_net(w, &ps->exempt[ps->n_exempt]) < 0) {
			set_err(err, errlen, "not an address or network", w);
			return -1;
		}
		ps->n_exempt++;
	}
	return 0;
}

static int parse_netblock(struct penalty_settings *ps, const char *s,
			  char *err, size_t errlen)
{
	char *end;
	long v4 = strtol(s, &end, 10), v6 = ps->v6_bits;
	if (end == s || v4 < 1 || v4 > 32)
		goto bad;
	if (*end == ':') {
		const char *p = end + 1;
		v6 = strtol(p, &end, 10);
		if (end == p || v6 < 1 || v6 > 128)
			goto bad;
	}
	if (*end)
		goto bad;
	ps->v4_bits = (int)v4;
	ps->v6_bits = (int)v6;
	return 0;
bad:
	set_err(err, errlen, "not V4BITS[:V6BITS] (like 32:64)", s);
	return -1;
}

int penalty_parse(struct penalty_settings *ps, const char *penalties,
		  const char *exempt, const char *netblock, char *err,
		  size_t errlen)
{
	if (penalties && *penalties &&
	    parse_penalties(ps, penalties, err, errlen) < 0)
		return -1;
	if (exempt && *exempt && parse_exempt(ps, exempt, err, errlen) < 0)
		return -1;
	if (netblock && *netblock &&
	    parse_netblock(ps, netblock, err, errlen) < 0)
		return -1;
	return 0;
}

int penalty_from_conf(const struct conf *c, struct penalty_settings *ps)
{
	char err[256];
	penalty_defaults(ps);
	if (penalty_parse(ps, c->per_source_penalties, c->penalty_exempt,
			  c->net_block_size, err, sizeof err) == 0)
		return 0;
	log_error("penalty_conf", "msg=%s", log_q(err));
	penalty_defaults(ps);
	return -1;
}

/* ---- addresses ------------------------------------------------------- */

static void mask_bits(uint8_t *a, int len, int bits)
{
	for (int i = 0; i < len; i++) {
		int keep = bits - i * 8;
		if (keep >= 8)
			continue;
		a[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
}

/* Parse ADDR (an IPv4-mapped IPv6 address counts as IPv4). 0 or -1. */
static int parse_addr(const char *addr, int *family, uint8_t raw[16])
{
	memset(raw, 0, 16);
	if (inet_pton(AF_INET, addr, raw) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, raw) != 1)
		return -1;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					    0xff, 0xff };
	if (!memcmp(raw, mapped, sizeof mapped)) {
		memmove(raw, raw + 12, 4);
		memset(raw + 4, 0, 12);
		*family = AF_INET;
		return 0;
	}
	*family = AF_INET6;
	return 0;
}

static int net_contains(const struct penalty_net *net, int family,
			const uint8_t raw[16])
{
	uint8_t a[16], n[16];
	int len = family == AF_INET ? 4 : 16;
	if (net->family != family)
		return 0;
	memcpy(a, raw, 16);
	memcpy(n, net->addr, 16);
	mask_bits(a, len, net->bits);
	mask_bits(n, len, net->bits);
	return !memcmp(a, n, (size_t)len);
}

/* The table key of ADDR, or -1 if ADDR is no address or is exempt. */
static int source_key(const struct penalty_settings *ps, const char *addr,
		      uint8_t key[KEY_LEN], int *bits)
{
	int family;
	uint8_t raw[16];
	if (parse_addr(addr, &family, raw) < 0)
		return -1;
	for (int i = 0; i < ps->n_exempt; i++)
		if (net_contains(&ps->exempt[i], family, raw))
			return -1;
	*bits = family == AF_INET ? ps->v4_bits : ps->v6_bits;
	mask_bits(raw, family == AF_INET ? 4 : 16, *bits);
	key[0] = family == AF_INET ? 4 : 6;
	memcpy(key + 1, raw, 16);
	return 0;
}

/* ---- the table -------------------------------------------------------- */

static uint32_t key_hash(const uint8_t key[KEY_LEN])
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (int i = 0; i < KEY_LEN; i++)
		h = (h ^ key[i]) * 16777619u;
	return h;
}

struct penalty_table *penalty_new(const struct penalty_settings *ps,
				  const char *service)
{
	struct penalty_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->set = *ps;
	snprintf(t->service, sizeof t->service, "%s", service);
	t->nb = 1024;
	while (t->nb < (uint32_t)ps->max_sources / 2 && t->nb < (1u << 20))
		t->nb <<= 1;
	t->bucket = malloc(t->nb * sizeof *t->bucket);
	if (!t->bucket) {
		free(t);
		return NULL;
	}
	for (uint32_t i = 0; i < t->nb; i++)
		t->bucket[i] = -1;
	t->free_head = -1;
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

void penalty_free(struct penalty_table *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->e);
	free(t->bucket);
	free(t);
}

void penalty_reload(struct penalty_table *t, const struct penalty_settings *ps)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->set = *ps;
	pthread_mutex_unlock(&t->mu);
}

/* Find KEY; *PREVP gets the link that points to it. */
static int32_t find(struct penalty_table *t, const uint8_t key[KEY_LEN],
		    int32_t **prevp)
{
	int32_t *link = &t->bucket[key_hash(key) & (t->nb - 1)];
	while (*link >= 0) {
		if (!memcmp(t->e[*link].key, key, KEY_LEN)) {
			if (prevp)
				*prevp = link;
			return *link;
		}
		link = &t->e[*link].next;
	}
	return -1;
}

static void unlink_entry(struct penalty_table *t, int32_t *link)
{
	int32_t i = *link;
	*link = t->e[i].next;
	t->e[i].next = t->free_head;
	t->free_head = i;
	t->count--;
}

/* Remove every entry whose penalty has run out. */
static void sweep(struct penalty_table *t, int64_t now)
{
	for (uint32_t b = 0; b < t->nb; b++) {
		int32_t *link = &t->bucket[b];
		while (*link >= 0) {
			if (t->e[*link].until <= now)
				unlink_entry(t, link);
			else
				link = &t->e[*link].next;
		}
	}
}

/* A new entry for KEY, or -1 when the table is full of live penalties. */
static int32_t insert(struct penalty_table *t, const uint8_t key[KEY_LEN],
		      int64_t now)
{
	if (t->count >= t->set.max_sources)
		sweep(t, now);
	if (t->count >= t->set.max_sources)
		return -1;
	int32_t i = t->free_head;
	if (i >= 0) {
		t->free_head = t->e[i].next;
	} else {
		if (t->used == t->cap) {
			int32_t nc = t->cap ? t->cap * 2 : INITIAL_ENTRIES;
			struct pentry *ne = realloc(t->e, (size_t)nc * sizeof *ne);
			if (!ne)
				return -1;
			t->e = ne;
			t->cap = nc;
		}
		i = t->used++;
	}
	struct pentry *e = &t->e[i];
	memcpy(e->key, key, KEY_LEN);
	e->until = now;
	e->refused = 0;
	uint32_t b = key_hash(key) & (t->nb - 1);
	e->next = t->bucket[b];
	t->bucket[b] = i;
	t->count++;
	return i;
}

int penalty_refused(struct penalty_table *t, const char *addr, int64_t now)
{
	uint8_t key[KEY_LEN];
	int bits, left = 0;
	int32_t *link;
	if (!t)
		return 0;
	pthread_mutex_lock(&t->mu);
	if (t->set.enabled && source_key(&t->set, addr, key, &bits) == 0) {
		int32_t i = find(t, key, &link);
		if (i >= 0 && t->e[i].until <= now)
			unlink_entry(t, link);
		else if (i >= 0 && t->e[i].refused)
			left = (int)(t->e[i].until - now);
	}
	pthread_mutex_unlock(&t->mu);
	return left;
}

int penalty_add(struct penalty_table *t, const char *addr,
		enum penalty_event event, int64_t now)
{
	uint8_t key[KEY_LEN];
	int bits, became = 0, overflow = 0;
	int64_t left = 0;
	if (!t || (int)event < 0 || (int)event >= PENALTY_NEVENTS)
		return 0;
	pthread_mutex_lock(&t->mu);
	int secs = t->set.seconds[event];
	if (!t->set.enabled || secs <= 0 ||
	    source_key(&t->set, addr, key, &bits) != 0) {
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	int32_t i = find(t, key, NULL);
	if (i < 0)
		i = insert(t, key, now);
	if (i < 0) {
		if (now - t->overflow_logged >= OVERFLOW_LOG_EVERY) {
			t->overflow_logged = now;
			overflow = 1;
		}
	} else {
		struct pentry *e = &t->e[i];
		if (e->until <= now) {
			e->until = now;
			e->refused = 0;
		}
		e->until += secs;
		if (e->until > now + t->set.max)
			e->until = now + t->set.max;
		left = e->until - now;
		if (!e->refused && left > t->set.min) {
			e->refused = 1;
			became = 1;
		}
	}
	pthread_mutex_unlock(&t->mu);
	if (overflow)
		log_warn("penalty_table_full", "service=%s max_sources=%d msg=%s",
			 t->service, t->set.max_sources,
			 log_q("new sources are not penalised until entries "
			       "expire"));
	else if (became)
		log_warn("penalty_source_refused",
			 "service=%s addr=%s block=%d reason=%s seconds=%lld",
			 t->service, log_q(addr), bits, event_names[event],
			 (long long)left);
	else
		log_debug("penalty_added",
			  "service=%s addr=%s reason=%s penalty=%lld",
			  t->service, log_q(addr), event_names[event],
			  (long long)left);
	return became;
}

int penalty_count(struct penalty_table *t)
{
	if (!t)
		return 0;
	pthread_mutex_lock(&t->mu);
	int n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}
