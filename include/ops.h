/*
 * ops.h - one place where the front ends report what they did for a
 * client: each call counts the operation in /metrics (metrics.h) and, for
 * the operations that change or open access to a client's files (login,
 * write, delete, rename, mkdir, rmdir, setstat), appends an audit event
 * (audit.h). HTTP, SFTP, scp and rsync all call ops_record(), so the
 * labels and the audit fields mean the same thing whichever protocol did
 * the work.
 *
 * Cost: one metrics update (a short mutex hold) per call, plus one write(2)
 * for audited operations. Callers report once per file or request, never
 * per packet or per byte: a transfer's bytes are summed in the caller's own
 * handle and reported when it closes.
 */
#ifndef ASSETD_OPS_H
#define ASSETD_OPS_H

#include <stdint.h>

/* Who is acting: filled once per session or request. */
struct ops_actor {
	const char *protocol;   /* "http", "sftp", "scp", "rsync", "ssh" */
	const char *client;     /* client name, "" when not known */
	const char *identity;   /* SSH key fingerprint, or "key:client" /
				   "key:server" for HTTP tokens; never a
				   secret */
	const char *addr;       /* remote address */
};

struct ops_event {
	const char *op;         /* metrics label: "write", "read", "delete",
				   "rename", "mkdir", "rmdir", "login", or an
				   HTTP route ("fileget", ...) */
	const char *status;     /* metrics label: "ok", "denied", "error",
				   an HTTP status code, ... */
	const char *audit_op;   /* the audit "op", or NULL: not audited */
	const char *path;       /* client-visible path (audit) */
	const char *to;         /* rename target (audit), or NULL */
	int64_t bytes;          /* payload bytes for the audit line, -1 n/a */
	uint64_t bytes_in;      /* counted in assetd_bytes_total ... */
	uint64_t bytes_out;     /* ... by direction (in = to the store) */
	const char *result;     /* audit "result"; NULL = STATUS */
};

/* Count E (and audit it if E->audit_op is set) on behalf of WHO. */
void ops_record(const struct ops_actor *who, const struct ops_event *e);

/* Shorthand for the SSH side: OP on PATH finished with store error RC
 * (0 = ok); BYTES moved IN (to the store) or out. Audited when OP is one
 * of the changing operations. */
void ops_file(const struct ops_actor *who, const char *op, const char *path,
	      const char *to, int rc, uint64_t bytes, int in);

/* An authentication attempt: counted in assetd_auth_total and audited as
 * op "login" with result "ok" or "denied: REASON". */
void ops_login(const struct ops_actor *who, int ok, const char *reason);

/* An authentication check without an audit line (HTTP tokens: the request
 * that carried the token is audited itself). */
void ops_auth(const char *protocol, int ok);

/* Gauges: a session or a transfer of PROTOCOL began (+1) or ended (-1). */
void ops_session(const char *protocol, int delta);
void ops_transfer(const char *protocol, int delta);

/* A connection of PROTOCOL was accepted and is not logged in yet (+1), or
 * it logged in or ended (-1): the gauge MaxStartups limits. */
void ops_unauthenticated(const char *protocol, int delta);

/* A connection of PROTOCOL was closed at accept for REASON (a fixed word:
 * "max_startups", "per_source", "max_connections", "penalty"). */
void ops_refused(const char *protocol, const char *reason);

/* A job (KIND "sync" or "archive") finished at time T, OK or not. */
void ops_job(const char *kind, int ok, int64_t t);

/* The metrics status word for a store error (0 = "ok"). */
const char *ops_status_of(int store_err);

#endif
