/*
 * http.c - placeholder for the Specify endpoint until it is built: the
 * daemon starts, logs that HTTP is not served yet, and goes on.
 */
#include "http.h"

#include <stdlib.h>

#include "log.h"

struct http_server {
	int unused;
};

int http_start(const struct conf *conf, struct catalog *cat,
	       struct tenant_cache *tc, struct http_server **out)
{
	(void)conf;
	(void)cat;
	(void)tc;
	log_warn("http_not_built", "msg=%s", log_q("the HTTP endpoint is not built yet"));
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -1;
}

int http_port(const struct http_server *srv, int i)
{
	(void)srv;
	(void)i;
	return 0;
}

int http_reload(struct http_server *srv, const struct conf *conf)
{
	(void)srv;
	(void)conf;
	return 0;
}

void http_stop(struct http_server *srv, int grace_seconds)
{
	(void)grace_seconds;
	free(srv);
}
