/*
 * sshd.c - placeholder for the SSH side until it is built: the daemon
 * starts, logs that SSH is not served yet, and goes on.
 */
#include "sshd.h"

#include <stdlib.h>

#include "log.h"

struct sshd_server {
	int unused;
};

int sshd_ensure_host_keys(const struct conf *conf)
{
	(void)conf;
	return 0;
}

int sshd_start(const struct conf *conf, struct catalog *cat,
	       struct tenant_cache *tc, struct sshd_server **out)
{
	(void)conf;
	(void)cat;
	(void)tc;
	log_warn("sshd_not_built", "msg=%s", log_q("the SSH side is not built yet"));
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -1;
}

int sshd_port(const struct sshd_server *srv, int i)
{
	(void)srv;
	(void)i;
	return 0;
}

int sshd_reload(struct sshd_server *srv, const struct conf *conf)
{
	(void)srv;
	(void)conf;
	return 0;
}

void sshd_stop(struct sshd_server *srv, int grace_seconds)
{
	(void)grace_seconds;
	free(srv);
}
