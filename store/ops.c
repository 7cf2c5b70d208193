/*
 * ops.c - what the front ends did, counted and audited in one place.
 *
 * Every front end (http/, sshd/) reports a finished operation here, once
 * per request, file or login. The metric labels are bounded by
 * construction (protocols, operation names and status words come from
 * fixed tables in the callers; a client-supplied string never becomes a
 * label), and the audit line is written only for the operations that
 * change a client's files or open access to them. See include/ops.h.
 */
#include "ops.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "metrics.h"
#include "store.h"

void ops_record(const struct ops_actor *who, const struct ops_event *e)
{
	const char *proto = who->protocol ? who->protocol : "other";
	const char *status = e->status ? e->status : "ok";
	metrics_add("assetd_requests_total", 1,
		    METRICS_L(proto, e->op, status));
	if (e->bytes_in)
		metrics_add("assetd_bytes_total", (double)e->bytes_in,
			    METRICS_L(proto, e->op, "in"));
	if (e->bytes_out)
		metrics_add("assetd_bytes_total", (double)e->bytes_out,
			    METRICS_L(proto, e->op, "out"));
	if (!e->audit_op)
		return;
	struct audit_event a = {
		.t = 0,
		.client = who->client ? who->client : "",
		.identity = who->identity ? who->identity : "",
		.addr = who->addr ? who->addr : "",
		.protocol = proto,
		.op = e->audit_op,
		.path = e->path ? e->path : "",
		.to = e->to,
		.bytes = e->bytes,
		.result = e->result ? e->result : status,
	};
	audit_record(&a);
}

const char *ops_status_of(int err)
{
	switch (err) {
	case 0: return "ok";
	case STORE_ENOENT: return "not_found";
	case STORE_EACCES: return "denied";
	case STORE_EEXIST: return "exists";
	case STORE_ENOTEMPTY: return "not_empty";
	case STORE_ENOSPC: return "no_space";
	case STORE_ETHROTTLED: return "throttled";
	case STORE_EUNAVAIL: return "unavailable";
	case STORE_EINVAL: return "invalid";
	case STORE_ECANCELED: return "aborted";
	case STORE_EQUOTA: return "quota_exceeded";
	default: return "error";
	}
}

/* Operations that change a client's files: these are audited. */
static int changes_files(const char *op)
{
	static const char *const changing[] = { "write", "delete", "rename",
						"mkdir", "rmdir", "setstat" };
	for (size_t i = 0; i < sizeof changing / sizeof changing[0]; i++)
		if (strcmp(op, changing[i]) == 0)
			return 1;
	return 0;
}

void ops_file(const struct ops_actor *who, const char *op, const char *path,
	      const char *to, int rc, uint64_t bytes, int in)
{
	char result[160];
	if (rc == 0)
		snprintf(result, sizeof result, "ok");
	else
		snprintf(result, sizeof result, "error: %s",
			 store_strerror(rc));
	struct ops_event e = {
		.op = op,
		.status = ops_status_of(rc),
		.audit_op = changes_files(op) ? op : NULL,
		.path = path,
		.to = to,
		/* bytes only mean something for what moves data */
		.bytes = strcmp(op, "write") == 0 || strcmp(op, "read") == 0
				 ? (int64_t)bytes
				 : -1,
		.bytes_in = in ? bytes : 0,
		.bytes_out = in ? 0 : bytes,
		.result = result,
	};
	ops_record(who, &e);
}

void ops_auth(const char *protocol, int ok)
{
	metrics_add("assetd_auth_total", 1,
		    METRICS_L(protocol, ok ? "ok" : "denied"));
}

void ops_login(const struct ops_actor *who, int ok, const char *reason)
{
	char result[200];
	if (ok)
		snprintf(result, sizeof result, "ok");
	else
		snprintf(result, sizeof result, "denied: %s",
			 reason ? reason : "refused");
	ops_auth(who->protocol, ok);
	struct audit_event a = {
		.t = 0,
		.client = who->client ? who->client : "",
		.identity = who->identity ? who->identity : "",
		.addr = who->addr ? who->addr : "",
		.protocol = who->protocol,
		.op = "login",
		.path = "",
		.to = NULL,
		.bytes = -1,
		.result = result,
	};
	audit_record(&a);
}

void ops_session(const char *protocol, int delta)
{
	metrics_gauge_add("assetd_sessions_active", delta, METRICS_L(protocol));
}

void ops_transfer(const char *protocol, int delta)
{
	metrics_gauge_add("assetd_transfers_active", delta,
			  METRICS_L(protocol));
}

void ops_unauthenticated(const char *protocol, int delta)
{
	metrics_gauge_add("assetd_unauthenticated_connections", delta,
			  METRICS_L(protocol));
}

void ops_refused(const char *protocol, const char *reason)
{
	metrics_add("assetd_connections_refused_total", 1,
		    METRICS_L(protocol, reason));
}

void ops_job(const char *kind, int ok, int64_t t)
{
	metrics_add("assetd_job_runs_total", 1,
		    METRICS_L(kind, ok ? "ok" : "failed"));
	metrics_gauge_set("assetd_job_last_run_timestamp_seconds", (double)t,
			  METRICS_L(kind));
	metrics_gauge_set("assetd_job_last_success", ok ? 1 : 0,
			  METRICS_L(kind));
}
