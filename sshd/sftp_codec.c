/*
 * sftp_codec.c - SFTP v3 packets to structs and back (see include/sftp.h).
 *
 * Decoding walks the packet with a small cursor that refuses to read past
 * the end: every getter checks what remains first and latches an error, so
 * a handler further down never sees a length it has not checked. Strings
 * are copied into the request's fixed buffers; a string that holds a NUL
 * byte or does not fit marks the request's path invalid (answered with a
 * clear failure) rather than being truncated into another name.
 *
 * Encoding writes into a caller-owned buffer sized for the largest packet;
 * overflows are latched too, so a reply is either whole or not sent.
 */
#include "sftp.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct cursor {
	const uint8_t *p;
	size_t len;
	size_t off;
	int bad;
};

static int need(struct cursor *c, size_t n)
{
	if (c->bad || c->len - c->off < n) {
		c->bad = 1;
		return 0;
	}
	return 1;
}

static uint8_t get_u8(struct cursor *c)
{
	if (!need(c, 1))
		return 0;
	return c->p[c->off++];
}

static uint32_t get_u32(struct cursor *c)
{
	if (!need(c, 4))
		return 0;
	const uint8_t *p = c->p + c->off;
	c->off += 4;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(struct cursor *c)
{
	uint64_t hi = get_u32(c);
	uint64_t lo = get_u32(c);
	return hi << 32 | lo;
}

/* A string as a pointer into the packet. */
static const uint8_t *get_raw(struct cursor *c, size_t *n)
{
	uint32_t len = get_u32(c);
	if (!need(c, len)) {
		*n = 0;
		return NULL;
	}
	const uint8_t *p = c->p + c->off;
	c->off += len;
	*n = len;
	return p;
}

/* A string copied into OUT (CAP incl. NUL). Sets *INVALID if it holds a NUL
 * byte or does not fit; OUT is then "". */
static void get_cstr(struct cursor *c, char *out, size_t cap, int *invalid)
{
	size_t n;
	const uint8_t *p = get_raw(c, &n);
	out[0] = '\0';
	if (!p)
		return;
	if (n >= cap || memchr(p, '\0', n)) {
		*invalid = 1;
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

static void get_handle(struct cursor *c, struct sftp_request *rq)
{
	size_t n;
	const uint8_t *p = get_raw(c, &n);
	if (!p)
		return;
	if (n > SFTP_HANDLE_MAX) {
		c->bad = 1;
		return;
	}
	memcpy(rq->handle, p, n);
	rq->handle_len = n;
}

static void get_attrs(struct cursor *c, struct sftp_attrs *a)
{
	memset(a, 0, sizeof *a);
	a->flags = get_u32(c);
	if (a->flags & SFTP_ATTR_SIZE)
		a->size = get_u64(c);
	if (a->flags & SFTP_ATTR_UIDGID) {
		a->uid = get_u32(c);
		a->gid = get_u32(c);
	}
	if (a->flags & SFTP_ATTR_PERMISSIONS)
		a->permissions = get_u32(c);
	if (a->flags & SFTP_ATTR_ACMODTIME) {
		a->atime = get_u32(c);
		a->mtime = get_u32(c);
	}
	if (a->flags & SFTP_ATTR_EXTENDED) {
		/* Extended attributes carry nothing we keep: skip them, each
		 * pair checked against what remains (a huge count simply runs
		 * out of bytes). */
		uint32_t count = get_u32(c);
		for (uint32_t i = 0; i < count && !c->bad; i++) {
			size_t n;
			get_raw(c, &n);
			get_raw(c, &n);
		}
	}
}

int sftp_decode_attrs(const uint8_t *p, size_t len, struct sftp_attrs *out)
{
	struct cursor c = { p, len, 0, 0 };
	get_attrs(&c, out);
	return c.bad ? -1 : (int)c.off;
}

static void decode_extended(struct cursor *c, struct sftp_request *rq)
{
	get_cstr(c, rq->ext, sizeof rq->ext, &rq->path_invalid);
	if (c->bad)
		return;
	if (rq->path_invalid) {
		/* An extension name we cannot hold is one we do not know. */
		rq->path_invalid = 0;
		strcpy(rq->ext, "?");
		return;
	}
	const char *e = rq->ext;
	if (!strcmp(e, "posix-rename@openssh.com") ||
	    !strcmp(e, "hardlink@openssh.com")) {
		get_cstr(c, rq->path, sizeof rq->path, &rq->path_invalid);
		get_cstr(c, rq->path2, sizeof rq->path2, &rq->path_invalid);
	} else if (!strcmp(e, "statvfs@openssh.com") ||
		   !strcmp(e, "expand-path@openssh.com")) {
		get_cstr(c, rq->path, sizeof rq->path, &rq->path_invalid);
	} else if (!strcmp(e, "fstatvfs@openssh.com") ||
		   !strcmp(e, "fsync@openssh.com")) {
		get_handle(c, rq);
	} else if (!strcmp(e, "lsetstat@openssh.com")) {
		get_cstr(c, rq->path, sizeof rq->path, &rq->path_invalid);
		get_attrs(c, &rq->attrs);
	}
	/* limits@openssh.com has no arguments; unknown ones are not read. */
}

int sftp_decode_request(const uint8_t *pkt, size_t len,
			struct sftp_request *rq)
{
	struct cursor c = { pkt, len, 0, 0 };

	rq->type = 0;
	rq->id = 0;
	rq->ext[0] = rq->path[0] = rq->path2[0] = '\0';
	rq->path_invalid = 0;
	rq->handle_len = 0;
	rq->pflags = 0;
	rq->offset = 0;
	rq->len = 0;
	rq->data = NULL;
	rq->data_len = 0;
	memset(&rq->attrs, 0, sizeof rq->attrs);

	rq->type = get_u8(&c);
	rq->id = get_u32(&c);
	if (c.bad)
		return SFTP_DECODE_FATAL;

	switch (rq->type) {
	case SFTP_INIT:
		/* Version, then extension pairs we ignore. */
		return SFTP_DECODE_OK;
	case SFTP_OPEN:
		get_cstr(&c, rq->path, sizeof rq->path, &rq->path_invalid);
		rq->pflags = get_u32(&c);
		get_attrs(&c, &rq->attrs);
		break;
	case SFTP_CLOSE:
	case SFTP_FSTAT:
	case SFTP_READDIR:
		get_handle(&c, rq);
		break;
	case SFTP_READ:
		get_handle(&c, rq);
		rq->offset = get_u64(&c);
		rq->len = get_u32(&c);
		break;
	case SFTP_WRITE: {
		size_t n;
		get_handle(&c, rq);
		rq->offset = get_u64(&c);
		rq->data = get_raw(&c, &n);
		rq->data_len = n;
		break;
	}
	case SFTP_LSTAT:
	case SFTP_STAT:
	case SFTP_OPENDIR:
	case SFTP_REMOVE:
	case SFTP_RMDIR:
	case SFTP_REALPATH:
	case SFTP_READLINK:
		get_cstr(&c, rq->path, sizeof rq->path, &rq->path_invalid);
		/* STAT in later drafts has flags; v3 has none: ignore extra. */
		break;
	case SFTP_SETSTAT:
	case SFTP_MKDIR:
		get_cstr(&c, rq->path, sizeof rq->path, &rq->path_invalid);
		get_attrs(&c, &rq->attrs);
		break;
	case SFTP_FSETSTAT:
		get_handle(&c, rq);
		get_attrs(&c, &rq->attrs);
		break;
	case SFTP_RENAME:
	case SFTP_SYMLINK:
		get_cstr(&c, rq->path, sizeof rq->path, &rq->path_invalid);
		get_cstr(&c, rq->path2, sizeof rq->path2, &rq->path_invalid);
		break;
	case SFTP_EXTENDED:
		decode_extended(&c, rq);
		break;
	default:
		/* Unknown type: the caller answers OP_UNSUPPORTED. */
		return SFTP_DECODE_OK;
	}
	return c.bad ? SFTP_DECODE_BAD : SFTP_DECODE_OK;
}

/* ---- encoding ------------------------------------------------------- */

static int room(struct sftp_out *o, size_t n)
{
	if (o->overflow || o->cap - o->len < n) {
		o->overflow = 1;
		return 0;
	}
	return 1;
}

void sftp_out_u8(struct sftp_out *o, uint8_t v)
{
	if (room(o, 1))
		o->buf[o->len++] = v;
}

void sftp_out_u32(struct sftp_out *o, uint32_t v)
{
	if (!room(o, 4))
		return;
	uint8_t *p = o->buf + o->len;
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	o->len += 4;
}

void sftp_out_u64(struct sftp_out *o, uint64_t v)
{
	sftp_out_u32(o, (uint32_t)(v >> 32));
	sftp_out_u32(o, (uint32_t)v);
}

void sftp_out_bytes(struct sftp_out *o, const void *p, size_t n)
{
	if (n && room(o, n)) {
		memcpy(o->buf + o->len, p, n);
		o->len += n;
	}
}

void sftp_out_string(struct sftp_out *o, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		o->overflow = 1;
		return;
	}
	sftp_out_u32(o, (uint32_t)n);
	sftp_out_bytes(o, p, n);
}

void sftp_out_cstring(struct sftp_out *o, const char *s)
{
	sftp_out_string(o, s, strlen(s));
}

void sftp_out_attrs(struct sftp_out *o, const struct sftp_attrs *a)
{
	uint32_t f = a->flags & ~SFTP_ATTR_EXTENDED;
	sftp_out_u32(o, f);
	if (f & SFTP_ATTR_SIZE)
		sftp_out_u64(o, a->size);
	if (f & SFTP_ATTR_UIDGID) {
		sftp_out_u32(o, a->uid);
		sftp_out_u32(o, a->gid);
	}
	if (f & SFTP_ATTR_PERMISSIONS)
		sftp_out_u32(o, a->permissions);
	if (f & SFTP_ATTR_ACMODTIME) {
		sftp_out_u32(o, a->atime);
		sftp_out_u32(o, a->mtime);
	}
}

void sftp_out_begin(struct sftp_out *o, uint8_t type, uint32_t id)
{
	o->len = 0;
	o->overflow = 0;
	sftp_out_u32(o, 0); /* length, filled in by sftp_out_end */
	sftp_out_u8(o, type);
	sftp_out_u32(o, id);
}

long sftp_out_end(struct sftp_out *o)
{
	if (o->overflow || o->len < 5 || o->len - 4 > SFTP_MAX_PACKET)
		return -1;
	uint32_t n = (uint32_t)(o->len - 4);
	o->buf[0] = (uint8_t)(n >> 24);
	o->buf[1] = (uint8_t)(n >> 16);
	o->buf[2] = (uint8_t)(n >> 8);
	o->buf[3] = (uint8_t)n;
	return (long)o->len;
}

const char *sftp_status_text(uint32_t code)
{
	switch (code) {
	case SFTP_FX_OK: return "Success";
	case SFTP_FX_EOF: return "End of file";
	case SFTP_FX_NO_SUCH_FILE: return "No such file";
	case SFTP_FX_PERMISSION_DENIED: return "Permission denied";
	case SFTP_FX_FAILURE: return "Failure";
	case SFTP_FX_BAD_MESSAGE: return "Bad message";
	case SFTP_FX_NO_CONNECTION: return "No connection";
	case SFTP_FX_CONNECTION_LOST: return "Connection lost";
	case SFTP_FX_OP_UNSUPPORTED: return "Operation unsupported";
	default: return "Unknown error";
	}
}

long sftp_encode_status(struct sftp_out *o, uint32_t id, uint32_t code,
			const char *msg)
{
	sftp_out_begin(o, SFTP_STATUS, id);
	sftp_out_u32(o, code);
	sftp_out_cstring(o, msg ? msg : sftp_status_text(code));
	sftp_out_cstring(o, "");
	return sftp_out_end(o);
}

static void mode_string(uint32_t mode, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";
	switch (mode & 0170000) {
	case 0040000: out[0] = 'd'; break;
	case 0120000: out[0] = 'l'; break;
	default: out[0] = '-'; break;
	}
	for (int i = 0; i < 9; i++)
		out[1 + i] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
	out[10] = '\0';
}

void sftp_longname(char *out, size_t outlen, const char *name,
		   const struct sftp_attrs *a, const char *owner,
		   int64_t now)
{
	char mode[11], when[32];
	time_t t = (time_t)a->mtime;
	struct tm tm;

	mode_string(a->permissions, mode);
	gmtime_r(&t, &tm);
	/* Like ls: the time of day for recent files, the year otherwise. */
	if ((int64_t)a->mtime > now - 182 * 86400 &&
	    (int64_t)a->mtime <= now + 86400)
		strftime(when, sizeof when, "%b %e %H:%M", &tm);
	else
		strftime(when, sizeof when, "%b %e  %Y", &tm);
	snprintf(out, outlen, "%s %4u %-8s %-8s %8llu %s %s", mode,
		 (a->permissions & 0170000) == 0040000 ? 2u : 1u, owner, owner,
		 (unsigned long long)a->size, when, name);
}
