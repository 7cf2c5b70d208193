/*
 * metrics.h - counters, gauges and histograms in Prometheus' text format.
 *
 * Every metric family assetd exports is declared once, in the table at the
 * top of store/metrics.c, with its type, help text and label names; that
 * table is the documentation of /metrics. Front ends record with the
 * functions below, naming the family and giving the label values in the
 * order the table lists the label names. Recording is thread-safe and cheap
 * (one mutex, a small hash table); a series appears on first use.
 *
 * Label values are escaped when rendered; series per family are bounded
 * (METRICS_MAX_SERIES) so that a stream of odd values cannot grow memory:
 * past the bound, new series are folded into one with every label "other".
 */
#ifndef ASSETD_METRICS_H
#define ASSETD_METRICS_H

#include <stddef.h>

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_SERIES 512

/* Add V to a counter. LABELS: as many values as the family has label names
 * (NULL-terminated list not needed: the family's count is used). */
void metrics_add(const char *family, double v, const char *const *labels);

/* Set or add to a gauge. */
void metrics_gauge_set(const char *family, double v, const char *const *labels);
void metrics_gauge_add(const char *family, double v, const char *const *labels);

/* Record one observation in a histogram. */
void metrics_observe(const char *family, double v, const char *const *labels);

/* Shorthands for families with 0..3 labels. */
#define METRICS_L(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Render every family into a malloc'ed buffer (Prometheus text format
 * 0.0.4). Returns NULL on allocation failure. *LEN receives the length. */
char *metrics_render(size_t *len);

/* Forget every series (tests). */
void metrics_reset(void);

#endif
