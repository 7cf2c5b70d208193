/*
 * admin.h - the admin listener: /metrics (Prometheus text) and /healthz.
 *
 * It listens on ListenAdmin (loopback by default), apart from the Specify
 * endpoint, so that metrics are never exposed where Specify's users reach.
 * /healthz answers 200 only when the catalog answers and every region's
 * assets location answers a one-entry listing; otherwise 503 with the
 * failing parts named.
 */
#ifndef ASSETD_ADMIN_H
#define ASSETD_ADMIN_H

#include "catalog.h"
#include "conf.h"

struct admin_server;

/* Start on CONF's ListenAdmin addresses (none configured: nothing starts and
 * *OUT is a valid empty server). CAT must outlive the server. 0 or -1. */
int admin_start(const struct conf *conf, struct catalog *cat,
		struct admin_server **out);

/* The port bound for listener I, or 0. */
int admin_port(const struct admin_server *srv, int i);

void admin_stop(struct admin_server *srv);

#endif
