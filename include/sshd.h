/*
 * sshd.h - the SSH side: listener, sessions, key authentication against the
 * catalog, the client's virtual tree, SFTP, legacy scp and rsync.
 */
#ifndef ASSETD_SSHD_H
#define ASSETD_SSHD_H

#include "catalog.h"
#include "conf.h"
#include "tenant.h"

struct sshd_server;

/* Create any missing host key of CONF (ed25519, rsa 3072) with mode 0600.
 * Returns 0 or -1 (logged). Also used by assetctl's demo setup. */
int sshd_ensure_host_keys(const struct conf *conf);

/* Start listening on CONF's ListenSSH addresses. 0 or -1 (logged). */
int sshd_start(const struct conf *conf, struct catalog *cat,
	       struct tenant_cache *tc, struct sshd_server **out);

/* The port actually bound for listener I. */
int sshd_port(const struct sshd_server *srv, int i);

/* Apply a re-read configuration (limits, timeouts). 0 or -1. */
int sshd_reload(struct sshd_server *srv, const struct conf *conf);

/* MaxStartups' decision for a new connection while UNAUTH others are not
 * logged in yet: 1 = drop it. Below start never; from start on with
 * probability rate%, rising linearly to 100% at full. DRAW is a uniform
 * random number in [0, 100), passed in so the decision can be tested. */
int sshd_startups_drop(const struct conf_startups *ms, int unauth,
		       unsigned draw);

/* Stop accepting; let sessions in flight finish for up to GRACE seconds,
 * then close them. Frees SRV. */
void sshd_stop(struct sshd_server *srv, int grace_seconds);

#endif
