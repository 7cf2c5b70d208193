/*
 * audit.h - the audit log: every login, write, delete and rename, whichever
 * protocol, as one JSON object per line in daily files beside the catalog.
 *
 *   {"ts":"2026-11-25T19:40:01Z","t":1795635601,"client":"kufish",
 *    "identity":"SHA256:...","addr":"192.0.2.1","protocol":"sftp",
 *    "op":"write","path":"/attachments/originals/a.jpg","bytes":1234,
 *    "result":"ok"}
 *
 * Files are DIR/audit-YYYYMMDD.jsonl (UTC days), opened for append; each
 * event is one write(2), so concurrent writers never interleave lines and
 * a crash loses at most the line being written. Days older than the
 * retention are deleted when the day turns (and at open).
 */
#ifndef ASSETD_AUDIT_H
#define ASSETD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct audit_event {
	int64_t t;              /* unix seconds; 0 = now */
	const char *client;     /* client name, or "" when unknown */
	const char *identity;   /* SSH key fingerprint, or "key:client" /
				   "key:server" for HTTP tokens */
	const char *addr;       /* remote address */
	const char *protocol;   /* "http", "sftp", "scp", "rsync", "ssh" */
	const char *op;         /* "login", "write", "delete", "rename",
				   "mkdir", "rmdir", "setstat", ... */
	const char *path;       /* client-visible path */
	const char *to;         /* rename target, or NULL */
	int64_t bytes;          /* payload bytes, -1 if not applicable */
	const char *result;     /* "ok", "denied", or an error text */
};

/* Start logging into DIR (created 0700 if missing), keeping RETENTION_DAYS
 * days (0 = forever). Returns 0 or -errno. Until called, audit_record() is
 * a no-op. */
int audit_open(const char *dir, int retention_days);
void audit_close(void);

/* Append one event. Never fails visibly: a failure to write is logged once
 * per minute. */
void audit_record(const struct audit_event *e);

/* Read back events from DIR with t >= SINCE, for CLIENT (NULL = all), in
 * time order. The callback gets each line's JSON text and the parsed
 * client and time; non-zero stops. Returns 0 or -errno. */
typedef int (*audit_cb)(void *arg, const char *json, const char *client,
			int64_t t);
int audit_query(const char *dir, const char *client, int64_t since,
		audit_cb cb, void *arg);

/* Copy the value of string field KEY of one of our JSON lines into OUT
 * (unescaped; \uXXXX below 0x80 decoded, others kept as is), or of a
 * number field as its digits. 0, or -1 if KEY is absent. */
int audit_line_field(const char *json, const char *key, char *out,
		     size_t cap);

/* Parse a --since value: an ISO 8601 UTC date or time ("2026-11-25",
 * "2026-11-25T10:00", "2026-11-25 10:00:00", optional "Z"), or an age
 * before NOW ("90s", "30m", "2h", "7d", "2w"). 0 with *OUT in unix
 * seconds, or -1. */
int audit_parse_since(const char *s, int64_t now, int64_t *out);

/* Escape S into OUT as JSON string content (no quotes). Returns the length
 * written, or -1 if OUT is too small. Bytes that are not valid UTF-8 are
 * written as \u00XX. */
int audit_json_escape(const char *s, char *out, size_t cap);

#endif
