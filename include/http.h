/*
 * http.h - the Specify web-asset-server endpoint (libmicrohttpd).
 *
 * The protocol is ../shared/docs/specify-protocol.md; http/ implements it
 * over the tenant cache. The daemon starts one server per process with the
 * listeners of the configuration.
 */
#ifndef ASSETD_HTTP_H
#define ASSETD_HTTP_H

#include "catalog.h"
#include "conf.h"
#include "tenant.h"

struct http_server;

/* Start listening on CONF's ListenHTTP addresses. CONF is copied. CAT and TC
 * must outlive the server. Returns 0 or -1 (the reason is logged). */
int http_start(const struct conf *conf, struct catalog *cat,
	       struct tenant_cache *tc, struct http_server **out);

/* The port actually bound for listener I (useful when configured as 0). */
int http_port(const struct http_server *srv, int i);

/* Apply a re-read configuration (keys, tolerance, limits, TLS files).
 * Listeners whose address did not change keep running. 0 or -1. */
int http_reload(struct http_server *srv, const struct conf *conf);

/* Stop accepting; let requests in flight finish for up to GRACE seconds,
 * then stop. Frees SRV. */
void http_stop(struct http_server *srv, int grace_seconds);

#endif
