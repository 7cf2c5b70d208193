/*
 * sftp.h - the SFTP version 3 wire format: decoding client requests and
 * encoding server replies (draft-ietf-secsh-filexfer-02 plus the OpenSSH
 * extensions we serve).
 *
 * These functions are pure: bytes in, a struct out (or a struct in, bytes
 * out). They touch no channel and no store, so that they can be unit tested
 * and fuzzed alone. The server that uses them is sshd/sftp.c.
 *
 * Every length read off the wire is checked against what remains of the
 * packet before use; a request that does not parse is reported as
 * SFTP_DECODE_BAD and answered with SSH_FX_BAD_MESSAGE (or ends the session
 * when not even its id can be read).
 */
#ifndef ASSETD_SFTP_H
#define ASSETD_SFTP_H

#include <stddef.h>
#include <stdint.h>

/* Packet types. */
enum {
	SFTP_INIT = 1,
	SFTP_VERSION = 2,
	SFTP_OPEN = 3,
	SFTP_CLOSE = 4,
	SFTP_READ = 5,
	SFTP_WRITE = 6,
	SFTP_LSTAT = 7,
	SFTP_FSTAT = 8,
	SFTP_SETSTAT = 9,
	SFTP_FSETSTAT = 10,
	SFTP_OPENDIR = 11,
	SFTP_READDIR = 12,
	SFTP_REMOVE = 13,
	SFTP_MKDIR = 14,
	SFTP_RMDIR = 15,
	SFTP_REALPATH = 16,
	SFTP_STAT = 17,
	SFTP_RENAME = 18,
	SFTP_READLINK = 19,
	SFTP_SYMLINK = 20,
	SFTP_STATUS = 101,
	SFTP_HANDLE = 102,
	SFTP_DATA = 103,
	SFTP_NAME = 104,
	SFTP_ATTRS = 105,
	SFTP_EXTENDED = 200,
	SFTP_EXTENDED_REPLY = 201,
};

/* Status codes (SSH_FX_*). */
enum {
	SFTP_FX_OK = 0,
	SFTP_FX_EOF = 1,
	SFTP_FX_NO_SUCH_FILE = 2,
	SFTP_FX_PERMISSION_DENIED = 3,
	SFTP_FX_FAILURE = 4,
	SFTP_FX_BAD_MESSAGE = 5,
	SFTP_FX_NO_CONNECTION = 6,
	SFTP_FX_CONNECTION_LOST = 7,
	SFTP_FX_OP_UNSUPPORTED = 8,
};

/* Attribute flags. */
#define SFTP_ATTR_SIZE 0x00000001u
#define SFTP_ATTR_UIDGID 0x00000002u
#define SFTP_ATTR_PERMISSIONS 0x00000004u
#define SFTP_ATTR_ACMODTIME 0x00000008u
#define SFTP_ATTR_EXTENDED 0x80000000u

/* OPEN pflags. */
#define SFTP_FXF_READ 0x01u
#define SFTP_FXF_WRITE 0x02u
#define SFTP_FXF_APPEND 0x04u
#define SFTP_FXF_CREAT 0x08u
#define SFTP_FXF_TRUNC 0x10u
#define SFTP_FXF_EXCL 0x20u

/* Limits. A packet (after its 4-byte length) is at most SFTP_MAX_PACKET
 * bytes; we tell OpenSSH clients (limits@openssh.com) to read and write
 * SFTP_MAX_DATA bytes per request: 255 KiB, leaving room for the header. */
#define SFTP_MAX_PACKET (256u * 1024u)
#define SFTP_MAX_DATA (255u * 1024u)
#define SFTP_MAX_HANDLES 256
#define SFTP_PATH_MAX 4096      /* incl. NUL; longer paths are refused */
#define SFTP_HANDLE_MAX 256     /* the draft's bound on handle strings */
#define SFTP_EXT_NAME_MAX 64

/* Decoder results. */
#define SFTP_DECODE_OK 0
#define SFTP_DECODE_BAD (-1)    /* malformed, but ID was read */
#define SFTP_DECODE_FATAL (-2)  /* not even the type and id could be read */

struct sftp_attrs {
	uint32_t flags;         /* SFTP_ATTR_* present */
	uint64_t size;
	uint32_t uid, gid;
	uint32_t permissions;   /* st_mode bits, incl. the file type */
	uint32_t atime, mtime;  /* unix seconds */
};

/* One decoded request. Strings are copied NUL-terminated into the fixed
 * buffers; DATA points into the packet given to sftp_decode_request() and
 * is only valid as long as that packet. */
struct sftp_request {
	uint8_t type;           /* SFTP_* packet type */
	uint32_t id;            /* request id (INIT: the client's version) */
	char ext[SFTP_EXT_NAME_MAX]; /* EXTENDED: the extension name */
	char path[SFTP_PATH_MAX];    /* first path (or old path) */
	char path2[SFTP_PATH_MAX];   /* RENAME/SYMLINK/hardlink: second path */
	int path_invalid;       /* 1: a path held a NUL or was too long */
	uint8_t handle[SFTP_HANDLE_MAX];
	size_t handle_len;
	uint32_t pflags;        /* OPEN */
	uint64_t offset;        /* READ, WRITE */
	uint32_t len;           /* READ: bytes wanted */
	const uint8_t *data;    /* WRITE: payload inside the packet */
	size_t data_len;
	struct sftp_attrs attrs; /* OPEN, SETSTAT, FSETSTAT, MKDIR, lsetstat */
};

/* Decode one packet body (type byte first, without the 4-byte length).
 * Returns SFTP_DECODE_OK, SFTP_DECODE_BAD (RQ->type and RQ->id valid) or
 * SFTP_DECODE_FATAL. Unknown packet types decode as OK with only type and
 * id set (the caller answers OP_UNSUPPORTED). Known extensions
 * (posix-rename, statvfs, fstatvfs, fsync, hardlink, limits, expand-path,
 * lsetstat, all @openssh.com) have their arguments decoded; others only
 * their name. */
int sftp_decode_request(const uint8_t *pkt, size_t len,
			struct sftp_request *rq);

/* Decode ATTRS at P (LEN bytes); returns the bytes consumed or -1. */
int sftp_decode_attrs(const uint8_t *p, size_t len, struct sftp_attrs *out);

/* ---- encoding ------------------------------------------------------- */

/* A reply being built in a caller-owned buffer. Writes past CAP set
 * OVERFLOW instead of writing; sftp_out_end() then fails. */
struct sftp_out {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int overflow;
};

/* Start a packet of TYPE: reserves the length, writes type and ID
 * (VERSION: ID is the version). */
void sftp_out_begin(struct sftp_out *o, uint8_t type, uint32_t id);
void sftp_out_u8(struct sftp_out *o, uint8_t v);
void sftp_out_u32(struct sftp_out *o, uint32_t v);
void sftp_out_u64(struct sftp_out *o, uint64_t v);
void sftp_out_bytes(struct sftp_out *o, const void *p, size_t n);
/* A string: u32 length + bytes. */
void sftp_out_string(struct sftp_out *o, const void *p, size_t n);
void sftp_out_cstring(struct sftp_out *o, const char *s);
void sftp_out_attrs(struct sftp_out *o, const struct sftp_attrs *a);
/* Fill in the length. Returns the packet's total size, or -1 if it did not
 * fit. */
long sftp_out_end(struct sftp_out *o);

/* Encode a whole STATUS reply: code, message, language tag "". */
long sftp_encode_status(struct sftp_out *o, uint32_t id, uint32_t code,
			const char *msg);

/* The "ls -l" line for a NAME entry, as OpenSSH's sftp-server formats it:
 * "-rw-r--r--    1 OWNER    OWNER        1234 Nov 25 19:40 name". NOW is
 * used to pick "HH:MM" (within six months) or " YYYY". */
void sftp_longname(char *out, size_t outlen, const char *name,
		   const struct sftp_attrs *a, const char *owner,
		   int64_t now);

/* The text for a status code ("No such file"). */
const char *sftp_status_text(uint32_t code);

#endif
