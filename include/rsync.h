/*
 * rsync.h - the rsync wire protocol, served natively onto a struct store.
 *
 * A stock rsync client runs `rsync --server [--sender] OPTIONS . PATH` on
 * the far side of an SSH connection (or of any pipe). This module is that
 * far side: it parses the command line the client sent, negotiates the
 * protocol (30 to 32; MD5 checksums), and then either sends a file list built
 * from the store's listing and answers the client's block checksums with
 * deltas (pull, --sender), or receives a file list, asks for what differs by
 * size and mtime, and rebuilds each file from the delta and the old object
 * straight into a store writer, committed only once the whole-file checksum
 * verified (push). No rsync binary runs, and nothing is copied to local disk.
 *
 * The caller supplies three things: the command line, an I/O pair (blocking
 * read/write on the channel plus a way to write error text to the client's
 * stderr), and a resolver that maps the client's path ("attachments/x/",
 * "/backups/y.tar.xz") onto a store, an object-name prefix and a read-only
 * flag. The engine never sees anything the resolver did not hand it.
 *
 * Thread safety: one call serves one connection on the calling thread; any
 * number of connections may be served at once on different threads.
 */
#ifndef ASSETD_RSYNC_H
#define ASSETD_RSYNC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

/* rsync's own exit codes (the client prints them as "(code N)"). */
enum rsync_exit {
	RSYNC_OK = 0,
	RSYNC_ESYNTAX = 1,      /* syntax or usage error (refused option) */
	RSYNC_EPROTOCOL = 2,    /* protocol incompatibility */
	RSYNC_EFILESELECT = 3,  /* errors selecting input/output files, dirs */
	RSYNC_EUNSUPPORTED = 4, /* requested action not supported */
	RSYNC_ESOCKETIO = 10,   /* error in socket I/O */
	RSYNC_EFILEIO = 11,     /* error in file I/O (the store) */
	RSYNC_ESTREAMIO = 12,   /* error in the rsync protocol data stream */
	RSYNC_EMALLOC = 22,     /* out of memory */
	RSYNC_EPARTIAL = 23,    /* partial transfer due to error */
	RSYNC_EVANISHED = 24,   /* file(s) vanished on sender side */
	RSYNC_ETIMEOUT = 30,    /* timeout in data send/receive */
};

/* The byte stream to the client. */
struct rsync_io {
	void *arg;
	/* Read up to LEN bytes: > 0 bytes read, 0 at end of stream, < 0 on an
	 * error. Blocks until at least one byte is there. */
	ssize_t (*read)(void *arg, void *buf, size_t len);
	/* Write all LEN bytes: 0, or < 0 on an error. */
	int (*write)(void *arg, const void *buf, size_t len);
	/* Write text to the client's stderr (used before the protocol has
	 * started multiplexing; afterwards errors travel in-band). May be
	 * NULL: the text is then dropped. */
	void (*err)(void *arg, const char *text, size_t len);
};

/* One file of a virtual directory (see rsync_target.list). */
struct rsync_ventry {
	const char *name;       /* file name shown to the client (no '/') */
	uint64_t size;
	int64_t mtime;          /* unix seconds */
	struct store *store;    /* where its bytes are; borrowed, must
				   outlive the rsync_serve call */
	const char *object;     /* its object name in that store */
};
typedef int (*rsync_ventry_cb)(void *cb_arg, const struct rsync_ventry *e);

/* What a client path resolves to. */
struct rsync_target {
	struct store *store;    /* borrowed; must outlive the call */
	char prefix[STORE_NAME_MAX]; /* object name of the path within the
				   store ("" = the store's root; no leading
				   or trailing '/'): a directory or an
				   object, or a name that does not exist
				   yet (push into a new directory) */
	int read_only;          /* 1: refuse pushes and deletions */
	/* Optional, for a read-only virtual directory whose files live in
	 * several stores (the client's /backups, from the catalog): when set,
	 * the path names that directory, store and prefix are ignored, and
	 * list() calls CB once per file (returning CB's non-zero value stops
	 * it). Pushes into it are refused. */
	int (*list)(void *list_arg, rsync_ventry_cb cb, void *cb_arg);
	void *list_arg;
	/* Optional: what a push did to STORE, once per object: OP "write",
	 * "delete", "mkdir" or "rmdir" on object name OBJECT, with its store
	 * result RC (0 = done) and, for a write, the file's size. For the
	 * caller's metrics and audit log; called on the serving thread. */
	void (*event)(void *event_arg, const char *op, const char *object,
		      int rc, uint64_t bytes);
	void *event_arg;
};

/* Map PATH, as the client wrote it (relative to its home, or absolute),
 * onto OUT. Return 0, or -1 with a one-line reason in ERRBUF (shown to the
 * client, e.g. "no such directory" or "permission denied"). */
typedef int (*rsync_resolve_fn)(void *arg, const char *path,
				struct rsync_target *out, char *errbuf,
				size_t errlen);

/* Figures of one run, for the caller's log. */
struct rsync_stats {
	int protocol;           /* negotiated protocol version, 0 if none */
	int sender;             /* 1 for a pull (we sent), 0 for a push */
	uint64_t files;         /* entries in the file list */
	uint64_t files_transferred; /* regular files sent or received */
	uint64_t files_deleted;
	uint64_t bytes_read;    /* protocol bytes from the client */
	uint64_t bytes_written; /* protocol bytes to the client */
	uint64_t literal_bytes; /* file data sent/received literally */
	uint64_t matched_bytes; /* file data reused from the basis */
};

/* 1 if CMD (an SSH exec string) is an rsync server invocation, i.e. starts
 * with "rsync --server" (after optional leading spaces). */
int rsync_is_server_command(const char *cmd);

/* Serve one connection. CMD is the exec string exactly as the client sent
 * it ("rsync --server --sender -vlogDtpre.iLsfxCIvu . attachments/x/");
 * it is split the way a POSIX shell would split it (backslash escapes,
 * single and double quotes). Returns an rsync_exit code; STATS (may be
 * NULL) is filled in either case. */
int rsync_serve(const char *cmd, const struct rsync_io *io,
		rsync_resolve_fn resolve, void *resolve_arg,
		struct rsync_stats *stats);

/* The same with the command already split into ARGV ("rsync", "--server",
 * ...). */
int rsync_serve_argv(int argc, char **argv, const struct rsync_io *io,
		     rsync_resolve_fn resolve, void *resolve_arg,
		     struct rsync_stats *stats);

/* Split a shell command line into at most MAX_ARGS words written into
 * BUF (of BUFLEN bytes) with pointers in ARGV. Returns the word count, or
 * -1 if it does not fit or a quote is unterminated. Exposed for tests. */
int rsync_split_command(const char *cmd, char *buf, size_t buflen,
			char **argv, int max_args);

#endif
