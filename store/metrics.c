/*
 * metrics.c - the process' metrics and their Prometheus text rendering.
 *
 * metrics_families[] below is the single list of what assetd exports. Each
 * family keeps its series in a fixed open-addressing table keyed by the
 * joined label values; the whole registry sits behind one mutex, which is
 * fine at the rates we record (per request, per S3 call, per login — never
 * per byte). Histograms use one bucket layout suited to request latencies.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_type { M_COUNTER, M_GAUGE, M_HISTOGRAM };

struct metric_family {
	const char *name;
	enum metric_type type;
	const char *help;
	const char *labels[METRICS_MAX_LABELS]; /* NULL-terminated */
};

static const struct metric_family metrics_families[] = {
	{ "assetd_requests_total", M_COUNTER,
	  "Requests handled, by protocol (http, sftp, scp, rsync), operation and outcome.",
	  { "protocol", "operation", "status", NULL } },
	{ "assetd_bytes_total", M_COUNTER,
	  "Payload bytes moved, by protocol, operation and direction (in = to the store).",
	  { "protocol", "operation", "direction", NULL } },
	{ "assetd_sessions_active", M_GAUGE,
	  "Open sessions or connections, by protocol.", { "protocol", NULL } },
	{ "assetd_transfers_active", M_GAUGE,
	  "Uploads and downloads in progress, by protocol.", { "protocol", NULL } },
	{ "assetd_unauthenticated_connections", M_GAUGE,
	  "Connections accepted that have not logged in yet, by protocol.",
	  { "protocol", NULL } },
	{ "assetd_connections_refused_total", M_COUNTER,
	  "Connections closed at accept, before any protocol work, by protocol "
	  "and reason (max_startups, per_source, max_connections, penalty).",
	  { "protocol", "reason", NULL } },
	{ "assetd_auth_total", M_COUNTER,
	  "Authentication attempts, by protocol and result (ok, denied).",
	  { "protocol", "result", NULL } },
	{ "assetd_s3_requests_total", M_COUNTER,
	  "S3 requests, by operation and HTTP status (or \"error\" for transport failures).",
	  { "operation", "status", NULL } },
	{ "assetd_s3_retries_total", M_COUNTER,
	  "S3 requests retried after a throttle, 5xx or transport error.",
	  { "operation", NULL } },
	{ "assetd_s3_request_seconds", M_HISTOGRAM,
	  "Latency of S3 requests, by operation.", { "operation", NULL } },
	{ "assetd_thumbnails_total", M_COUNTER,
	  "Thumbnail requests, by result (generated, cached, failed).",
	  { "result", NULL } },
	{ "assetd_job_runs_total", M_COUNTER,
	  "Snapshot syncs and archives run, by kind and outcome.",
	  { "kind", "state", NULL } },
	{ "assetd_job_last_run_timestamp_seconds", M_GAUGE,
	  "When each kind of job last finished (unix seconds).", { "kind", NULL } },
	{ "assetd_job_last_success", M_GAUGE,
	  "1 if the last run of each kind of job succeeded, else 0.",
	  { "kind", NULL } },
	{ "assetd_start_time_seconds", M_GAUGE,
	  "When the daemon started (unix seconds).", { NULL } },
};

#define N_FAMILIES (sizeof metrics_families / sizeof metrics_families[0])

static const double hist_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				      0.5,   1,    2.5,   5,    10,  30, 60 };
#define N_BOUNDS (sizeof hist_bounds / sizeof hist_bounds[0])

#define TABLE_SIZE 1024 /* > 2 * METRICS_MAX_SERIES: probes stay short */
#define KEY_MAX 512

struct series {
	char *key;      /* label values joined with '\x1f'; NULL = empty slot */
	double value;   /* counter/gauge value, or histogram sum */
	uint64_t count; /* histogram: observations */
	uint64_t buckets[N_BOUNDS];
};

struct family_state {
	struct series *slots; /* TABLE_SIZE, allocated on first use */
	int used;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct family_state states[N_FAMILIES];

static int nlabels(const struct metric_family *f)
{
	int n = 0;
	while (n < METRICS_MAX_LABELS && f->labels[n])
		n++;
	return n;
}

static int family_index(const char *name)
{
	for (size_t i = 0; i < N_FAMILIES; i++)
		if (strcmp(metrics_families[i].name, name) == 0)
			return (int)i;
	return -1;
}

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* Join the label values into KEY. Returns 0, or -1 if they do not fit. */
static int make_key(int n, const char *const *labels, char *key, size_t cap)
{
	size_t o = 0;
	key[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *v = labels && labels[i] ? labels[i] : "";
		size_t l = strlen(v);
		if (o + l + 2 > cap)
			return -1;
		if (i > 0)
			key[o++] = '\x1f';
		memcpy(key + o, v, l);
		o += l;
		key[o] = '\0';
	}
	return 0;
}

/* Find KEY in ST's table; create it if ALLOW_NEW. Called locked. */
static struct series *lookup(struct family_state *st, const char *key,
			     int allow_new)
{
	uint64_t h = hash_key(key);
	for (size_t i = 0; i < TABLE_SIZE; i++) {
		struct series *s = &st->slots[(h + i) % TABLE_SIZE];
		if (s->key && strcmp(s->key, key) == 0)
			return s;
		if (!s->key) {
			if (!allow_new)
				return NULL;
			s->key = strdup(key);
			if (!s->key)
				return NULL;
			st->used++;
			return s;
		}
	}
	return NULL;
}

/* The series for LABELS in family FI, created if needed; past
 * METRICS_MAX_SERIES new label sets share one "other" series. Locked. */
static struct series *find_series(int fi, const char *const *labels)
{
	static const char *const other[METRICS_MAX_LABELS] = { "other", "other",
							       "other", "other" };
	struct family_state *st = &states[fi];
	int n = nlabels(&metrics_families[fi]);
	char key[KEY_MAX];
	if (!st->slots) {
		st->slots = calloc(TABLE_SIZE, sizeof *st->slots);
		if (!st->slots)
			return NULL;
	}
	if (make_key(n, labels, key, sizeof key) == 0) {
		struct series *s = lookup(st, key, st->used < METRICS_MAX_SERIES);
		if (s)
			return s;
	}
	make_key(n, other, key, sizeof key);
	return lookup(st, key, 1);
}

static void record(const char *family, int op, double v, const char *const *labels)
{
	int fi = family_index(family);
	if (fi < 0)
		return; /* an unknown family is a programming error; stay quiet */
	pthread_mutex_lock(&metrics_lock);
	struct series *s = find_series(fi, labels);
	if (s) {
		if (op == 0) {
			s->value += v;
		} else if (op == 1) {
			s->value = v;
		} else {
			s->value += v;
			s->count++;
			for (size_t b = 0; b < N_BOUNDS; b++)
				if (v <= hist_bounds[b])
					s->buckets[b]++;
		}
	}
	pthread_mutex_unlock(&metrics_lock);
}

void metrics_add(const char *family, double v, const char *const *labels)
{
	record(family, 0, v, labels);
}

void metrics_gauge_set(const char *family, double v, const char *const *labels)
{
	record(family, 1, v, labels);
}

void metrics_gauge_add(const char *family, double v, const char *const *labels)
{
	record(family, 0, v, labels);
}

void metrics_observe(const char *family, double v, const char *const *labels)
{
	record(family, 2, v, labels);
}

/* A growing output buffer. */
struct outbuf {
	char *p;
	size_t len, cap;
	int failed;
};

static void out_printf(struct outbuf *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out_printf(struct outbuf *o, const char *fmt, ...)
{
	if (o->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t ncap = o->cap * 2 + (size_t)n;
		char *np = realloc(o->p, ncap);
		if (!np) {
			o->failed = 1;
			return;
		}
		o->p = np;
		o->cap = ncap;
	}
}

/* Write the label set {a="x",b="y"[,le="..."]} for KEY. */
static void out_labels(struct outbuf *o, const struct metric_family *f,
		       const char *key, const char *le)
{
	int n = nlabels(f);
	if (n == 0 && !le)
		return;
	out_printf(o, "{");
	const char *p = key;
	for (int i = 0; i < n; i++) {
		out_printf(o, "%s%s=\"", i ? "," : "", f->labels[i]);
		for (; *p && *p != '\x1f'; p++) {
			if (*p == '\\' || *p == '"')
				out_printf(o, "\\%c", *p);
			else if (*p == '\n')
				out_printf(o, "\\n");
			else
				out_printf(o, "%c", *p);
		}
		if (*p == '\x1f')
			p++;
		out_printf(o, "\"");
	}
	if (le)
		out_printf(o, "%sle=\"%s\"", n ? "," : "", le);
	out_printf(o, "}");
}

static int cmp_series(const void *a, const void *b)
{
	const struct series *x = *(const struct series *const *)a;
	const struct series *y = *(const struct series *const *)b;
	return strcmp(x->key, y->key);
}

char *metrics_render(size_t *len)
{
	struct outbuf o = { malloc(4096), 0, 4096, 0 };
	if (!o.p)
		return NULL;
	o.p[0] = '\0';
	static const char *const type_names[] = { "counter", "gauge", "histogram" };
	pthread_mutex_lock(&metrics_lock);
	for (size_t fi = 0; fi < N_FAMILIES; fi++) {
		const struct metric_family *f = &metrics_families[fi];
		struct family_state *st = &states[fi];
		out_printf(&o, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help,
			   f->name, type_names[f->type]);
		if (!st->slots)
			continue;
		struct series *sorted[TABLE_SIZE];
		int n = 0;
		for (size_t i = 0; i < TABLE_SIZE; i++)
			if (st->slots[i].key)
				sorted[n++] = &st->slots[i];
		qsort(sorted, (size_t)n, sizeof sorted[0], cmp_series);
		for (int i = 0; i < n; i++) {
			struct series *s = sorted[i];
			if (f->type != M_HISTOGRAM) {
				out_printf(&o, "%s", f->name);
				out_labels(&o, f, s->key, NULL);
				out_printf(&o, " %.17g\n", s->value);
				continue;
			}
			for (size_t b = 0; b < N_BOUNDS; b++) {
				char le[32];
				snprintf(le, sizeof le, "%g", hist_bounds[b]);
				out_printf(&o, "%s_bucket", f->name);
				out_labels(&o, f, s->key, le);
				out_printf(&o, " %llu\n", (unsigned long long)s->buckets[b]);
			}
			out_printf(&o, "%s_bucket", f->name);
			out_labels(&o, f, s->key, "+Inf");
			out_printf(&o, " %llu\n", (unsigned long long)s->count);
			out_printf(&o, "%s_sum", f->name);
			out_labels(&o, f, s->key, NULL);
			out_printf(&o, " %.17g\n", s->value);
			out_printf(&o, "%s_count", f->name);
			out_labels(&o, f, s->key, NULL);
			out_printf(&o, " %llu\n", (unsigned long long)s->count);
		}
	}
	pthread_mutex_unlock(&metrics_lock);
	if (o.failed) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}

void metrics_reset(void)
{
	pthread_mutex_lock(&metrics_lock);
	for (size_t fi = 0; fi < N_FAMILIES; fi++) {
		if (states[fi].slots) {
			for (size_t i = 0; i < TABLE_SIZE; i++)
				free(states[fi].slots[i].key);
			free(states[fi].slots);
		}
		states[fi].slots = NULL;
		states[fi].used = 0;
	}
	pthread_mutex_unlock(&metrics_lock);
}
