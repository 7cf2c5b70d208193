/*
 * rsync_int.h - private to sshd/rsync/: the structures the engine's files
 * share (the connection, the options, the file list, filters, checksums).
 * The public face is include/rsync.h.
 */
#ifndef ASSETD_RSYNC_INT_H
#define ASSETD_RSYNC_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <zlib.h>
#include <zstd.h>

#include "rsync.h"
#include "store.h"

/* Protocol versions we speak. 30 brought MD5 and the varint encodings. */
#define RS_PROTO_MIN 30
#define RS_PROTO_MAX 32

/* Wire constants (the rsync protocol's values). */
#define RS_MPLEX_BASE 7
#define RS_MSG_DATA 0
#define RS_MSG_ERROR_XFER 1
#define RS_MSG_INFO 2
#define RS_MSG_ERROR 3
#define RS_MSG_WARNING 4
#define RS_MSG_ERROR_SOCKET 5
#define RS_MSG_LOG 6
#define RS_MSG_CLIENT 7
#define RS_MSG_ERROR_UTF8 8
#define RS_MSG_REDO 9
#define RS_MSG_STATS 10
#define RS_MSG_IO_ERROR 22
#define RS_MSG_IO_TIMEOUT 33
#define RS_MSG_NOOP 42
#define RS_MSG_ERROR_EXIT 86
#define RS_MSG_SUCCESS 100
#define RS_MSG_DELETED 101
#define RS_MSG_NO_SEND 102

#define RS_NDX_DONE (-1)
#define RS_NDX_FLIST_EOF (-2)
#define RS_NDX_DEL_STATS (-3)

#define RS_XMIT_TOP_DIR (1 << 0)
#define RS_XMIT_SAME_MODE (1 << 1)
#define RS_XMIT_EXTENDED_FLAGS (1 << 2)
#define RS_XMIT_SAME_UID (1 << 3)
#define RS_XMIT_SAME_GID (1 << 4)
#define RS_XMIT_SAME_NAME (1 << 5)
#define RS_XMIT_LONG_NAME (1 << 6)
#define RS_XMIT_SAME_TIME (1 << 7)
#define RS_XMIT_SAME_RDEV_MAJOR (1 << 8)
#define RS_XMIT_NO_CONTENT_DIR (1 << 8)
#define RS_XMIT_HLINKED (1 << 9)
#define RS_XMIT_USER_NAME_FOLLOWS (1 << 10)
#define RS_XMIT_GROUP_NAME_FOLLOWS (1 << 11)
#define RS_XMIT_HLINK_FIRST (1 << 12)
#define RS_XMIT_IO_ERROR_ENDLIST (1 << 12)
#define RS_XMIT_MOD_NSEC (1 << 13)
#define RS_XMIT_SAME_ATIME (1 << 14)
#define RS_XMIT_CRTIME_EQ_MTIME (1 << 17)

#define RS_ITEM_REPORT_ATIME (1 << 0)
#define RS_ITEM_REPORT_CHANGE (1 << 1)
#define RS_ITEM_REPORT_SIZE (1 << 2)
#define RS_ITEM_REPORT_TIME (1 << 3)
#define RS_ITEM_REPORT_PERMS (1 << 4)
#define RS_ITEM_BASIS_TYPE_FOLLOWS (1 << 11)
#define RS_ITEM_XNAME_FOLLOWS (1 << 12)
#define RS_ITEM_IS_NEW (1 << 13)
#define RS_ITEM_LOCAL_CHANGE (1 << 14)
#define RS_ITEM_TRANSFER (1 << 15)

#define RS_CF_INC_RECURSE (1 << 0)
#define RS_CF_SYMLINK_TIMES (1 << 1)
#define RS_CF_SYMLINK_ICONV (1 << 2)
#define RS_CF_SAFE_FLIST (1 << 3)
#define RS_CF_AVOID_XATTR_OPTIM (1 << 4)
#define RS_CF_CHKSUM_SEED_FIX (1 << 5)
#define RS_CF_INPLACE_PARTIAL_DIR (1 << 6)
#define RS_CF_VARINT_FLIST_FLAGS (1 << 7)
#define RS_CF_ID0_NAMES (1 << 8)

#define RS_IOERR_GENERAL (1 << 0)
#define RS_IOERR_VANISHED (1 << 1)

#define RS_CHUNK_SIZE (32 * 1024)     /* largest literal run on the wire */
#define RS_BLOCK_SIZE 700             /* smallest block length */
#define RS_MAX_BLOCK_SIZE (1 << 17)   /* largest block length (proto 30+) */
#define RS_SUM_LENGTH 16              /* MD5 digest length */
#define RS_MAX_PATH 4096              /* longest name on the wire */
#define RS_MAX_SUM_COUNT (1 << 21)    /* most block sums per file: 2M blocks
					  (56 MiB held for a pull; at 128 KiB
					  blocks a 256 GiB basis) */

/* ---- options (options.c) ------------------------------------------- */

struct rs_opts {
	int server;             /* --server seen */
	int sender;             /* --sender: the client pulls, we send */
	int verbose;            /* count of -v */
	int recurse;            /* -r */
	int xfer_dirs;          /* -d */
	int preserve_links;     /* -l (we have no links; noted) */
	int preserve_perms;     /* -p */
	int preserve_times;     /* -t */
	int preserve_uid;       /* -o */
	int preserve_gid;       /* -g */
	int preserve_devices;   /* -D */
	int preserve_specials;  /* -D / --specials */
	int always_checksum;    /* -c */
	int ignore_times;       /* -I */
	int size_only;          /* --size-only */
	int whole_file;         /* -W */
	int update_only;        /* -u */
	int ignore_existing;    /* --ignore-existing */
	int existing_only;      /* --existing */
	int dry_run;            /* -n */
	int compress;           /* -z */
	int compress_choice;    /* RS_CPRES_* named by the client's options
				   (--new-compress, --old-compress,
				   --compress-choice), -1 = negotiate */
	int compress_level;     /* --compress-level, -1 = default */
	int checksum_named;     /* --checksum-choice=md5: not negotiated */
	int delete_mode;        /* any --delete* */
	int delete_excluded;    /* --delete-excluded */
	int numeric_ids;        /* --numeric-ids */
	int partial;            /* --partial / --partial-dir (see receiver.c) */
	int inplace;            /* --inplace / --append (treated as normal) */
	int ignore_errors;      /* --ignore-errors */
	int prune_empty_dirs;   /* -m */
	int64_t max_size;       /* --max-size, -1 = none */
	int64_t min_size;       /* --min-size, -1 = none */
	int max_delete;         /* --max-delete, -1 = none */
	int block_size;         /* -B, 0 = automatic */
	int checksum_seed;      /* --checksum-seed, 0 = chosen by us */
	int modify_window;      /* --modify-window */
	char caps[32];          /* the -e.xxx capability letters after '.' */
	int nargs;              /* path arguments after "." */
	char *args[64];         /* pointers into the split command buffer */
};

/* Parse ARGV (argv[0] is "rsync"). On a refusal writes rsync's style of
 * message into ERR and returns an rsync_exit code; 0 on success. */
int rs_parse_options(int argc, char **argv, struct rs_opts *o, char *err,
		     size_t errlen);

/* ---- the connection (io.c) ----------------------------------------- */

#define RS_OBUF_SIZE (64 * 1024)
#define RS_IBUF_SIZE (64 * 1024)
#define RS_OHDR 4               /* a multiplexed frame's header */

struct rs_conn {
	const struct rsync_io *io;
	int mplex_out;          /* output is framed in MSG_DATA messages */
	int mplex_in;           /* input is framed */
	int protocol;           /* negotiated version */
	int err;                /* sticky rsync_exit code once I/O failed */
	int io_error;           /* IOERR_* bits the client reported */
	int got_error_exit;     /* the client sent MSG_ERROR_EXIT */
	int no_send_pending;    /* MSG_NO_SEND indexes seen (pushes) */
	int32_t last_no_send;   /* the last MSG_NO_SEND index */
	size_t olen;
	size_t ipos, ilen;
	size_t in_frame_left;   /* data bytes left in the current frame */
	int32_t wndx_pos, wndx_neg; /* write_ndx delta state */
	int32_t rndx_pos, rndx_neg; /* read_ndx delta state */
	uint64_t total_read;    /* protocol bytes in */
	uint64_t total_written; /* protocol bytes out */
	/* Called for MSG_NO_SEND / MSG_SUCCESS / MSG_REDO from the client. */
	void (*on_index_msg)(void *arg, int tag, int32_t ndx);
	void *on_index_arg;
	/* The buffers come last: rs_conn_init leaves them as they are, so
	 * a session only touches as much of them as it uses. obuf keeps
	 * room for a frame header in front of the pending payload (which
	 * starts at obuf + RS_OHDR), so a frame goes out in one write
	 * without being copied. */
	unsigned char obuf[RS_OHDR + RS_OBUF_SIZE];
	unsigned char ibuf[RS_IBUF_SIZE]; /* raw bytes read, not consumed */
};

void rs_conn_init(struct rs_conn *c, const struct rsync_io *io);

/* Raw bytes (before multiplexing starts, and the payload after). */
void rs_write(struct rs_conn *c, const void *buf, size_t len);
void rs_read(struct rs_conn *c, void *buf, size_t len);
void rs_flush(struct rs_conn *c);
/* Bytes received and not yet consumed (a request may be waiting). */
size_t rs_buffered(const struct rs_conn *c);

void rs_write_byte(struct rs_conn *c, unsigned v);
void rs_write_short(struct rs_conn *c, unsigned v);
void rs_write_int(struct rs_conn *c, int32_t v);
void rs_write_varint(struct rs_conn *c, int32_t v);
void rs_write_varlong(struct rs_conn *c, int64_t v, int min_bytes);
void rs_write_vstring(struct rs_conn *c, const char *s, size_t len);
void rs_write_ndx(struct rs_conn *c, int32_t ndx);

unsigned rs_read_byte(struct rs_conn *c);
unsigned rs_read_short(struct rs_conn *c);
int32_t rs_read_int(struct rs_conn *c);
int32_t rs_read_varint(struct rs_conn *c);
int64_t rs_read_varlong(struct rs_conn *c, int min_bytes);
/* Reads a vstring into BUF (CAP bytes incl. NUL); -1 if too long. */
int rs_read_vstring(struct rs_conn *c, char *buf, size_t cap);
int32_t rs_read_ndx(struct rs_conn *c);

/* Out-of-band messages: text (MSG_INFO, MSG_ERROR...), ints. Only after
 * multiplexing started; before, text goes to io->err. */
void rs_msg(struct rs_conn *c, int tag, const void *buf, size_t len);
void rs_msg_int(struct rs_conn *c, int tag, int32_t v);
void rs_printf(struct rs_conn *c, int tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record a fatal stream error (first one wins). */
void rs_fail(struct rs_conn *c, int code);

/* ---- checksums (checksum.c) ---------------------------------------- */

struct rs_sum_ctx {
	EVP_MD_CTX *md;
	int32_t seed;
	int seed_first;         /* proper seed order (CF_CHKSUM_SEED_FIX) */
};

uint32_t rs_checksum1(const unsigned char *buf, size_t len);
/* Block strong checksum (MD5 with the seed), 16 bytes into OUT. */
void rs_checksum2(struct rs_sum_ctx *s, const unsigned char *buf,
		  size_t len, unsigned char *out);
int rs_sum_ctx_init(struct rs_sum_ctx *s, int32_t seed, int seed_first);
void rs_sum_ctx_free(struct rs_sum_ctx *s);

/* Whole-file checksum (plain MD5). */
struct rs_filesum {
	EVP_MD_CTX *md;
};
int rs_filesum_begin(struct rs_filesum *f);
void rs_filesum_update(struct rs_filesum *f, const void *buf, size_t len);
void rs_filesum_end(struct rs_filesum *f, unsigned char out[16]);
void rs_filesum_free(struct rs_filesum *f);

/* MD5 of a stored object; 0 or a store_error. */
int rs_object_md5(struct store *st, const char *name, unsigned char out[16]);

/* Block size and strong-sum length rsync would choose for LEN bytes. */
void rs_sum_sizes(int64_t len, int block_size, int32_t *blength,
		  int32_t *s2length);

/* ---- filters (filter.c) -------------------------------------------- */

struct rs_rule;
struct rs_filters {
	struct rs_rule *head, *tail;
	int count;
};

/* Parse one rule as the client sends it ("- *.tmp", "+ dir/", "!").
 * Returns 0, or -1 with a message in ERR for a rule we do not support. */
int rs_filter_add(struct rs_filters *f, const char *rule, char *err,
		  size_t errlen);
/* 1 excluded, 0 not. PATH is relative to the transfer root. FOR_DELETE
 * selects receiver-side rules (protection) instead of sender-side ones. */
int rs_filter_excluded(const struct rs_filters *f, const char *path,
		       int is_dir, int for_delete);
void rs_filter_free(struct rs_filters *f);
/* Wildcard match of rsync's patterns (* ** ? [..] and \). Exposed for
 * the unit tests. */
int rs_wildmatch(const char *pattern, const char *text);

/* ---- the file list (flist.c) --------------------------------------- */

#define RS_FT_REG 1
#define RS_FT_DIR 2
#define RS_FT_OTHER 3  /* symlink, device, special: listed, not stored */

struct rs_file {
	char *name;             /* path relative to the transfer root ("."
				   for the root itself); owned */
	int64_t size;
	int64_t mtime;
	uint32_t mode;          /* wire mode (S_IF* | perms) */
	uint8_t type;           /* RS_FT_* */
	uint8_t top_dir;        /* XMIT_TOP_DIR */
	uint8_t no_content;     /* XMIT_NO_CONTENT_DIR */
	uint8_t done;           /* receiver: committed or skipped */
	uint8_t sent;           /* receiver: already tried once (redo) */
	unsigned char sum[RS_SUM_LENGTH]; /* --checksum file sum */
	struct store *st;       /* virtual-directory entries: their store */
	char *obj;              /* ... and object name (owned); else NULL */
};

struct rs_flist {
	struct rs_file **files; /* sorted as rsync sorts */
	size_t used, cap;
};

int rs_flist_add(struct rs_flist *fl, const char *name, int type,
		 int64_t size, int64_t mtime, uint32_t mode);
void rs_flist_sort(struct rs_flist *fl);
/* 1 if two adjacent names are equal after sorting (a protocol error). */
int rs_flist_has_dups(const struct rs_flist *fl);
void rs_flist_free(struct rs_flist *fl);
/* rsync's file-list order (files before subdirectories). */
int rs_file_cmp(const struct rs_file *a, const struct rs_file *b);

/* Room for one more element in a growable array: ARRP points to the array
 * pointer, which holds *CAP elements of SIZE bytes, N of them used; a full
 * array doubles (to FIRST when empty). 0, or -1 out of memory, the array
 * then left as it was. */
int rs_grow(void *arrp, size_t *cap, size_t n, size_t size, size_t first);

/* ---- the token stream (token.c) ------------------------------------ */

/* Compression algorithms (rsync's numbering is not on the wire: the
 * names are). */
#define RS_CPRES_NONE 0
#define RS_CPRES_ZLIB 1
#define RS_CPRES_ZLIBX 2
#define RS_CPRES_ZSTD 3
/* What we offer, best first (as rsync orders them). */
#define RS_COMPRESS_LIST "zstd zlibx zlib"

const char *rs_compress_name(int algo);
/* RS_CPRES_* of NAME, -1 if we do not implement it. */
int rs_compress_by_name(const char *name);

/* One direction of one session's file data: the sender's encoder or the
 * receiver's decoder, plain or compressed. */
struct rs_tok {
	int algo;               /* RS_CPRES_* */
	int protocol;           /* negotiated version (zlib history quirk) */
	int sending;            /* 1 encoder, 0 decoder */
	z_stream z;             /* zlib/zlibx (de)compressor */
	int z_ready;            /* z initialised */
	ZSTD_CCtx *zc;          /* zstd encoder (whole session) */
	ZSTD_DCtx *zd;          /* zstd decoder (whole session) */
	/* encoder */
	int32_t last_token;     /* -1 at a file's start, -2 after data */
	int32_t run_start, last_run_end; /* block run being collected */
	int flush_pending;      /* data went in without a flush */
	unsigned char *obuf;    /* compressed bytes not yet framed */
	size_t olen;
	/* decoder */
	int rstate;             /* where the decoder is in the stream */
	int32_t rx_token, rx_run; /* last block number, blocks left in run */
	int32_t saved_flag;     /* flag byte read ahead (+ 0x10000) */
	int32_t residue;        /* plain: literal bytes left in the run */
	unsigned char *cbuf;    /* one compressed frame */
	size_t in_len, in_pos;  /* its length and what was consumed */
	unsigned char *dbuf;    /* decompressed data handed out */
};

/* LEVEL < 0 picks the algorithm's default. 0, or -1 out of memory. */
int rs_tok_init(struct rs_tok *t, int algo, int level, int protocol,
		int sending);
void rs_tok_free(struct rs_tok *t);
/* Send N literal bytes of DATA, then TOKEN: a block number (whose BLKLEN
 * bytes BLK the receiver already has: zlib puts them in its history),
 * -1 to end the file, or -2 for no token (data only). */
void rs_tok_send(struct rs_tok *t, struct rs_conn *c, int32_t token,
		 const unsigned char *data, int32_t n,
		 const unsigned char *blk, int32_t blklen);
/* Next item of the stream: > 0 literal bytes at *DATA (valid until the
 * next call), -(i + 1) for block i, 0 at the end of the file or on an
 * error (c->err is then set; a malformed stream is a stream error). */
int32_t rs_tok_recv(struct rs_tok *t, struct rs_conn *c,
		    const unsigned char **data);
/* Decoder: the LEN bytes of a block just referenced (zlib history). */
void rs_tok_see(struct rs_tok *t, struct rs_conn *c,
		const unsigned char *blk, int32_t len);

/* ---- the session --------------------------------------------------- */

struct rs_sess {
	struct rs_conn conn;
	struct rs_opts opts;
	struct rs_sum_ctx sums;
	int32_t seed;
	int compat;             /* compat flags we sent */
	int varint_flags;       /* CF_VARINT_FLIST_FLAGS in force */
	int id0_names;          /* CF_ID0_NAMES in force */
	int compress;           /* RS_CPRES_* in force */
	struct rs_tok tok;      /* file data: encoder (pull) or decoder */
	struct rs_filters filters;
	struct rs_flist flist;
	struct rsync_target target;
	rsync_resolve_fn resolve;
	void *resolve_arg;
	struct rsync_stats *stats;
	int exit_code;          /* non-fatal errors: RSYNC_EPARTIAL etc */
	char lastname[RS_MAX_PATH]; /* previous entry sent/received */
	uint32_t last_mode;
	int64_t last_mtime;
	int64_t total_size;     /* bytes of regular files in the list */
	int64_t flist_buildtime_ms;
	int64_t flist_xfertime_ms;
};

/* Wire encoding of one file-list entry / the end of the list. */
void rs_flist_send_entry(struct rs_sess *s, const struct rs_file *f);
void rs_flist_send_end(struct rs_sess *s, int io_error);
/* Receive the whole list (and the id lists after it) into s->flist,
 * sorted. 0, or an rsync_exit code after telling the client. */
int rs_flist_recv(struct rs_sess *s);
/* 1 if NAME is a safe relative name ("." or a/b/c without "..", empty
 * or absolute parts). */
int rs_name_safe(const char *name);

/* Block checksums the client sent for its basis file. */
struct rs_blocksum {
	uint32_t sum1;
	int32_t next;           /* hash chain, -1 ends */
	unsigned char sum2[RS_SUM_LENGTH];
};
struct rs_sums {
	int32_t count, blength, s2length, remainder;
	struct rs_blocksum *blocks;
	int32_t *table;         /* hash heads, -1 empty */
	uint32_t table_mask;
};

/* Send the delta of the object read from R (SIZE bytes; or, with R NULL,
 * held in MEM) against SUMS: literal runs, block references, the end token
 * and the file's MD5. (delta.c). 0, or a store_error if reading failed
 * (the stream is then still completed, with a checksum that cannot
 * verify). */
int rs_send_delta(struct rs_sess *s, struct store_reader *r,
		  const unsigned char *mem, int64_t size,
		  struct rs_sums *sums);
void rs_sums_free(struct rs_sums *sums);

/* Background commits of verified files (commit.c). */
struct rs_commits;
struct rs_commits *rs_commits_start(void);
/* Hand over W (blocks while the pool is full). -1 if out of memory or no
 * worker thread could be started (W is then still the caller's). */
int rs_commits_submit(struct rs_commits *c, struct store_writer *w,
		      uint64_t size, int32_t ndx, struct store *st,
		      const char *obj, const char *etag, int64_t mtime);
/* Report finished commits (REPORT once per file, with its store result,
 * object name and size); with WAIT_ALL first wait for every one handed
 * over. Returns the failures. */
int rs_commits_collect(struct rs_commits *c, int wait_all,
		       void (*report)(void *arg, int32_t ndx, int rc,
				      const char *obj, uint64_t size),
		       void *arg);

/* Tell the caller (rsync_target.event) what was done to OBJ, if it asked. */
void rs_event(struct rs_sess *s, const char *op, const char *obj, int rc,
	      uint64_t bytes);
/* Commit and wait for everything handed over, then end the threads. */
void rs_commits_stop(struct rs_commits *c);

/* Small objects of a pull read ahead in parallel (prefetch.c). */
struct rs_prefetch;
struct rs_prefetch *rs_prefetch_start(void);
/* Queue object OBJ (SIZE bytes) of file NDX; -1 if it does not fit the
 * memory budget (the sender then reads it itself). */
int rs_prefetch_add(struct rs_prefetch *p, int32_t ndx, struct store *st,
		    const char *obj, uint64_t size);
/* Wait for file NDX: 0 with its bytes in *BUF (the caller frees them),
 * 1 if it was not queued, or the store_error reading it met. */
int rs_prefetch_take(struct rs_prefetch *p, int32_t ndx, unsigned char **buf,
		     uint64_t *size);
void rs_prefetch_stop(struct rs_prefetch *p);

/* A push's listings of the destination (dirlist.c). */
struct rs_dent {
	char *name;             /* basename (owned) */
	uint64_t size;
	int64_t mtime;
	int mtime_is_client;    /* mtime is the client's, not the upload's */
	int is_dir;
	char etag[STORE_ETAG_MAX];
};
struct rs_listing {
	struct rs_dent *v;      /* sorted by name */
	size_t n, cap;
};
void rs_listing_clear(struct rs_listing *l); /* empties it, keeps v */
void rs_listing_free(struct rs_listing *l);
struct rs_dent *rs_listing_find(const struct rs_listing *l, const char *base);

/* Listings of the directories a push's generator comes to, taken ahead
 * of it in parallel (and, where a level's listing reads the whole
 * subtree, cut from one such read). */
struct rs_dirlist;
/* Run on each listing once made, before it is handed over: NAME is what
 * the caller called the directory, PREFIX its object prefix. Called from
 * worker threads. */
typedef void (*rs_dirlist_fn)(void *arg, const char *name,
			      const char *prefix, struct rs_listing *l);
struct rs_dirlist *rs_dirlist_new(struct store *st, rs_dirlist_fn finish,
				   void *arg);
/* Start listing directory PREFIX ("dir/", "" for the root), which the
 * caller will ask for with ID (ids rise in the order it asks) and calls
 * NAME. 0 queued, 1 nothing to do (a subtree already read holds it), -1
 * not queued (the window is full, or no thread could start). */
int rs_dirlist_ahead(struct rs_dirlist *d, size_t id, const char *prefix,
		     const char *name);
/* Listings asked for and not yet taken. */
size_t rs_dirlist_waiting(const struct rs_dirlist *d);
/* The listing of PREFIX into OUT: from the subtree read, the one queued
 * with ID (waiting for it), or listed now. Listings queued with lower ids
 * are dropped. 0 (a missing directory lists empty) or a store_error. */
int rs_dirlist_get(struct rs_dirlist *d, size_t id, const char *prefix,
		   const char *name, struct rs_listing *out);
void rs_dirlist_free(struct rs_dirlist *d);

int rs_run_sender(struct rs_sess *s);   /* sender.c: pull */
int rs_run_receiver(struct rs_sess *s); /* receiver.c: push */

/* The client's mtime of an object where the listing does not carry it
 * (S3): a process-wide cache keyed by store, name, size and ETag, else a
 * HEAD. Returns 0 and *MTIME, or a store_error. (mtimes.c) */
int rs_mtime_lookup(struct store *st, const char *name, uint64_t size,
		    const char *etag, int64_t *mtime);
void rs_mtime_remember(struct store *st, const char *name, uint64_t size,
		       const char *etag, int64_t mtime);

/* Many lookups at once: cache hits answered at once, misses HEADed by a
 * few threads in parallel. Each request's RC is 0 (MTIME set) or a
 * store_error. */
struct rs_mtime_req {
	const char *name;
	uint64_t size;
	const char *etag;
	int64_t mtime;
	int rc;
};
void rs_mtime_lookup_many(struct store *st, struct rs_mtime_req *reqs,
			  size_t n);

#endif
