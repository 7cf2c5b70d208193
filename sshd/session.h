/*
 * session.h - private to sshd/: one authenticated SSH session as the
 * protocol handlers (sftp.c, scp.c) see it, and the blocking channel I/O
 * they use.
 *
 * A session belongs to exactly one thread (server.c starts one per
 * session channel); the channel I/O below takes care of the connection's
 * lock, so the handlers need none.
 */
#ifndef ASSETD_SSHD_SESSION_H
#define ASSETD_SSHD_SESSION_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <libssh/libssh.h>

#include "catalog.h"
#include "store.h"
#include "tenant.h"

struct sshd_session {
	ssh_session ssh;
	ssh_channel chan;
	const int *stopping;            /* server shutting down (atomic) */
	const int *killed;              /* this session must end (atomic) */
	int idle_timeout;               /* seconds without traffic, 0 = none */
	time_t last_io;                 /* last byte in or out */

	struct catalog *cat;
	struct tenant_cache *tc;
	char client[CATALOG_NAME_MAX];  /* authenticated client = user name */
	char addr[64];                  /* peer address, for logs */
	char fingerprint[128];          /* "SHA256:..." of the key used */
	struct store *store;            /* the client's location (cache-owned) */
	const char *spool_dir;          /* out-of-order SFTP writes */
	uint64_t bytes_in, bytes_out;   /* payload counters for the log */
	void *io;                       /* server.c's state of the channel */
	const char *protocol;           /* "sftp", "scp" or "rsync": the
					   metrics and audit label */
	int busy;                       /* file transfers open (an SFTP
					   handle, a scp or rsync file): a
					   stop waits for them, within the
					   grace, even across pauses */
};

/* Report a finished operation of this session to metrics and the audit
 * log (ops.h): OP ("read", "write", "delete", "rename", "mkdir", "rmdir",
 * "list") on client path PATH (TO for a rename), store error RC (0 = ok),
 * BYTES moved, IN = to the store. Once per file, never per packet. */
void sshd_record(struct sshd_session *s, const char *op, const char *path,
		 const char *to, int rc, uint64_t bytes, int in);

/* A file transfer of this session began (+1) or ended (-1). */
void sshd_transfer(struct sshd_session *s, int delta);

/* Read up to CAP bytes of channel data. Returns > 0, 0 at EOF, -1 on error,
 * idle timeout or shutdown. Waits in short slices so that a stop or an idle
 * timeout is noticed even while the client is silent. */
ssize_t sshd_io_read(struct sshd_session *s, void *buf, size_t cap);

/* Read exactly N bytes. 0, or -1 (EOF before N bytes counts as -1). */
int sshd_io_read_full(struct sshd_session *s, void *buf, size_t n);

/* Write all of BUF. 0 or -1. */
int sshd_io_write(struct sshd_session *s, const void *buf, size_t n);

/* Write a line to the channel's stderr (the client prints it). */
void sshd_io_stderr(struct sshd_session *s, const char *msg);

/* The protocol handlers. Each returns the exit status to send. */
int sshd_sftp_serve(struct sshd_session *s);
int sshd_scp_serve(struct sshd_session *s, const char *command);
int sshd_rsync_serve(struct sshd_session *s, const char *command);

#endif
