/*
 * io.c - the rsync byte stream: buffering, multiplexing and the integer
 * encodings of the wire protocol.
 *
 * After the version exchange both directions are multiplexed: every chunk
 * is preceded by a 4-byte little-endian header whose top byte is
 * MPLEX_BASE + message tag and whose low 24 bits are the length. Tag 0
 * carries the data stream; the others carry text for the client's
 * terminal (INFO, ERROR...) or small control messages (IO_ERROR, NO_SEND,
 * ERROR_EXIT...). Output data is gathered in one buffer and framed when it
 * is flushed, so a message never splits a data frame. Input frames are
 * unpacked as the data stream is read, control messages are acted on in
 * passing.
 *
 * Errors are sticky: the first failed read or write (or a malformed frame)
 * sets conn->err to an rsync exit code; from then on reads yield zeros and
 * writes are dropped, and the protocol loops check conn->err at each step.
 * No value read off the wire is used as a length before being checked by
 * its caller.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "rsync_int.h"

void rs_conn_init(struct rs_conn *c, const struct rsync_io *io)
{
	memset(c, 0, offsetof(struct rs_conn, obuf));
	c->io = io;
	c->wndx_pos = -1;
	c->wndx_neg = 1;
	c->rndx_pos = -1;
	c->rndx_neg = 1;
}

size_t rs_buffered(const struct rs_conn *c)
{
	return c->ilen - c->ipos;
}

void rs_fail(struct rs_conn *c, int code)
{
	if (!c->err)
		c->err = code ? code : RSYNC_ESTREAMIO;
}

static void raw_write(struct rs_conn *c, const void *buf, size_t len)
{
	if (c->err || len == 0)
		return;
	if (c->io->write(c->io->arg, buf, len) < 0) {
		rs_fail(c, RSYNC_ESOCKETIO);
		return;
	}
	c->total_written += len;
}

static void put_le32(unsigned char *b, uint32_t v)
{
	b[0] = v & 0xff;
	b[1] = (v >> 8) & 0xff;
	b[2] = (v >> 16) & 0xff;
	b[3] = (v >> 24) & 0xff;
}

static uint32_t get_le32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

/* Send the buffered data as one frame (or raw before multiplexing). The
 * header goes into the room kept in front of the payload, so header and
 * payload go out in one write and the transport sees one chunk. */
static void flush_data(struct rs_conn *c)
{
	if (c->olen == 0)
		return;
	if (!c->mplex_out) {
		raw_write(c, c->obuf + RS_OHDR, c->olen);
	} else {
		put_le32(c->obuf, ((uint32_t)(RS_MPLEX_BASE + RS_MSG_DATA)
				   << 24) | (uint32_t)c->olen);
		raw_write(c, c->obuf, RS_OHDR + c->olen);
	}
	c->olen = 0;
}

void rs_flush(struct rs_conn *c)
{
	flush_data(c);
}

void rs_write(struct rs_conn *c, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0 && !c->err) {
		size_t room = RS_OBUF_SIZE - c->olen;
		size_t n = len < room ? len : room;
		memcpy(c->obuf + RS_OHDR + c->olen, p, n);
		c->olen += n;
		p += n;
		len -= n;
		if (c->olen == RS_OBUF_SIZE)
			flush_data(c);
	}
}

void rs_msg(struct rs_conn *c, int tag, const void *buf, size_t len)
{
	unsigned char hdr[4];

	if (!c->mplex_out) {
		/* Before multiplexing only text can go, and to stderr. */
		if (c->io->err && tag != RS_MSG_DATA)
			c->io->err(c->io->arg, buf, len);
		return;
	}
	if (len > 0xffffff)
		len = 0xffffff;
	flush_data(c);
	put_le32(hdr, ((uint32_t)(RS_MPLEX_BASE + tag) << 24) | (uint32_t)len);
	raw_write(c, hdr, 4);
	raw_write(c, buf, len);
}

void rs_msg_int(struct rs_conn *c, int tag, int32_t v)
{
	unsigned char b[4];
	put_le32(b, (uint32_t)v);
	rs_msg(c, tag, b, 4);
}

void rs_printf(struct rs_conn *c, int tag, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	rs_msg(c, tag, buf, (size_t)n);
}

/* ---- input ------------------------------------------------------------ */

static int refill(struct rs_conn *c)
{
	ssize_t n;

	if (c->err)
		return -1;
	/* About to block on the client: whatever we owe it goes out first,
	 * or both ends could wait for each other. */
	flush_data(c);
	if (c->ipos == c->ilen)
		c->ipos = c->ilen = 0;
	if (c->ilen == sizeof c->ibuf) {
		memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
		c->ilen -= c->ipos;
		c->ipos = 0;
	}
	n = c->io->read(c->io->arg, c->ibuf + c->ilen,
			sizeof c->ibuf - c->ilen);
	if (n <= 0) {
		rs_fail(c, n == 0 ? RSYNC_ESTREAMIO : RSYNC_ESOCKETIO);
		return -1;
	}
	c->ilen += (size_t)n;
	c->total_read += (uint64_t)n;
	return 0;
}

static void raw_read(struct rs_conn *c, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		size_t have, n;
		if (c->err) {
			memset(p, 0, len);
			return;
		}
		have = c->ilen - c->ipos;
		if (have == 0) {
			if (refill(c) < 0)
				continue;
			have = c->ilen - c->ipos;
		}
		n = len < have ? len : have;
		memcpy(p, c->ibuf + c->ipos, n);
		c->ipos += n;
		p += n;
		len -= n;
	}
}

/* Skip LEN raw bytes (an oversized message we do not keep). */
static void raw_skip(struct rs_conn *c, size_t len)
{
	unsigned char tmp[1024];
	while (len > 0 && !c->err) {
		size_t n = len < sizeof tmp ? len : sizeof tmp;
		raw_read(c, tmp, n);
		len -= n;
	}
}

/* Act on one non-data message from the client. */
static void handle_msg(struct rs_conn *c, int tag, size_t len)
{
	unsigned char b[4];
	int32_t v;

	switch (tag) {
	case RS_MSG_IO_ERROR:
	case RS_MSG_NO_SEND:
	case RS_MSG_SUCCESS:
	case RS_MSG_REDO:
		if (len != 4) {
			rs_fail(c, RSYNC_ESTREAMIO);
			return;
		}
		raw_read(c, b, 4);
		v = (int32_t)get_le32(b);
		if (tag == RS_MSG_IO_ERROR)
			c->io_error |= v & 7;
		else if (c->on_index_msg)
			c->on_index_msg(c->on_index_arg, tag, v);
		return;
	case RS_MSG_ERROR_EXIT:
		if (len != 0 && len != 4) {
			rs_fail(c, RSYNC_ESTREAMIO);
			return;
		}
		raw_skip(c, len);
		c->got_error_exit = 1;
		rs_fail(c, RSYNC_EPARTIAL);
		return;
	case RS_MSG_NOOP:
		raw_skip(c, len);
		return;
	case RS_MSG_INFO:
	case RS_MSG_ERROR:
	case RS_MSG_ERROR_XFER:
	case RS_MSG_WARNING:
	case RS_MSG_DELETED:
	case RS_MSG_LOG:
	case RS_MSG_CLIENT:
	case RS_MSG_ERROR_UTF8:
	case RS_MSG_ERROR_SOCKET:
	case RS_MSG_STATS:
		/* Text meant for a terminal on this side: there is none. */
		raw_skip(c, len);
		return;
	default:
		rs_fail(c, RSYNC_ESTREAMIO);
		return;
	}
}

void rs_read(struct rs_conn *c, void *buf, size_t len)
{
	unsigned char *p = buf;

	if (!c->mplex_in) {
		raw_read(c, buf, len);
		return;
	}
	while (len > 0) {
		size_t have, n;
		if (c->err) {
			memset(p, 0, len);
			return;
		}
		if (c->in_frame_left == 0) {
			unsigned char h[4];
			uint32_t hdr;
			int tag;
			raw_read(c, h, 4);
			if (c->err)
				continue;
			hdr = get_le32(h);
			tag = (int)(hdr >> 24) - RS_MPLEX_BASE;
			if (tag == RS_MSG_DATA)
				c->in_frame_left = hdr & 0xffffff;
			else
				handle_msg(c, tag, hdr & 0xffffff);
			continue;
		}
		have = c->ilen - c->ipos;
		if (have == 0) {
			if (refill(c) < 0)
				continue;
			have = c->ilen - c->ipos;
		}
		n = len;
		if (n > have)
			n = have;
		if (n > c->in_frame_left)
			n = c->in_frame_left;
		memcpy(p, c->ibuf + c->ipos, n);
		c->ipos += n;
		c->in_frame_left -= n;
		p += n;
		len -= n;
	}
}

/* ---- integers ----------------------------------------------------------- */

void rs_write_byte(struct rs_conn *c, unsigned v)
{
	unsigned char b = v & 0xff;
	rs_write(c, &b, 1);
}

void rs_write_short(struct rs_conn *c, unsigned v)
{
	unsigned char b[2] = {v & 0xff, (v >> 8) & 0xff};
	rs_write(c, b, 2);
}

void rs_write_int(struct rs_conn *c, int32_t v)
{
	unsigned char b[4];
	put_le32(b, (uint32_t)v);
	rs_write(c, b, 4);
}

/* The variable-length encodings: the count of leading 1 bits in the first
 * byte says how many more little-endian bytes follow; the first byte's
 * remaining bits hold the value's highest bits. */
void rs_write_varint(struct rs_conn *c, int32_t v)
{
	rs_write_varlong(c, (int64_t)(uint32_t)v, 1);
}

void rs_write_varlong(struct rs_conn *c, int64_t v, int min_bytes)
{
	unsigned char b[9];
	uint64_t u = (uint64_t)v;
	int cnt = 8, i;
	unsigned bit;

	memset(b, 0, sizeof b);
	for (i = 0; i < 8; i++)
		b[1 + i] = (u >> (8 * i)) & 0xff;
	while (cnt > min_bytes && b[cnt] == 0)
		cnt--;
	bit = 1u << (7 - cnt + min_bytes);
	if (b[cnt] >= bit) {
		cnt++;
		b[0] = (unsigned char)~(bit - 1);
	} else if (cnt > min_bytes) {
		b[0] = (unsigned char)(b[cnt] | ~(bit * 2 - 1));
	} else {
		b[0] = b[cnt];
	}
	rs_write(c, b, (size_t)cnt);
}

void rs_write_vstring(struct rs_conn *c, const char *s, size_t len)
{
	if (len > 0x7fff)
		len = 0x7fff;
	if (len > 0x7f)
		rs_write_byte(c, (unsigned)(len / 0x100 + 0x80));
	rs_write_byte(c, (unsigned)(len & 0xff));
	rs_write(c, s, len);
}

void rs_write_ndx(struct rs_conn *c, int32_t ndx)
{
	unsigned char b[6];
	int n = 0;
	int32_t diff;

	if (ndx == RS_NDX_DONE) {
		rs_write_byte(c, 0);
		return;
	}
	if (ndx >= 0) {
		diff = ndx - c->wndx_pos;
		c->wndx_pos = ndx;
	} else {
		b[n++] = 0xff;
		ndx = -ndx;
		diff = ndx - c->wndx_neg;
		c->wndx_neg = ndx;
	}
	if (diff > 0 && diff < 0xfe) {
		b[n++] = (unsigned char)diff;
	} else if (diff < 0 || diff > 0x7fff) {
		b[n++] = 0xfe;
		b[n++] = (unsigned char)(((uint32_t)ndx >> 24) | 0x80);
		b[n++] = (unsigned char)ndx;
		b[n++] = (unsigned char)(ndx >> 8);
		b[n++] = (unsigned char)(ndx >> 16);
	} else {
		b[n++] = 0xfe;
		b[n++] = (unsigned char)(diff >> 8);
		b[n++] = (unsigned char)diff;
	}
	rs_write(c, b, (size_t)n);
}

unsigned rs_read_byte(struct rs_conn *c)
{
	unsigned char b = 0;
	rs_read(c, &b, 1);
	return b;
}

unsigned rs_read_short(struct rs_conn *c)
{
	unsigned char b[2];
	rs_read(c, b, 2);
	return (unsigned)b[0] | (unsigned)b[1] << 8;
}

int32_t rs_read_int(struct rs_conn *c)
{
	unsigned char b[4];
	rs_read(c, b, 4);
	return (int32_t)get_le32(b);
}

/* How many extra bytes follow a varint's first byte, by its top 6 bits. */
static int varint_extra(unsigned first)
{
	if (first < 0x80)
		return 0;
	if (first < 0xc0)
		return 1;
	if (first < 0xe0)
		return 2;
	if (first < 0xf0)
		return 3;
	if (first < 0xf8)
		return 4;
	if (first < 0xfc)
		return 5;
	return 6;
}

int32_t rs_read_varint(struct rs_conn *c)
{
	unsigned char b[8];
	unsigned first = rs_read_byte(c);
	int extra = varint_extra(first);
	uint32_t v = 0;
	int i;

	if (extra > 4) {
		rs_fail(c, RSYNC_ESTREAMIO);
		return 0;
	}
	memset(b, 0, sizeof b);
	if (extra) {
		rs_read(c, b, (size_t)extra);
		b[extra] = first & ((1u << (8 - extra)) - 1);
	} else {
		b[0] = (unsigned char)first;
	}
	for (i = 0; i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return (int32_t)v;
}

int64_t rs_read_varlong(struct rs_conn *c, int min_bytes)
{
	unsigned char b[10], lead[8];
	uint64_t v = 0;
	int extra, i;

	memset(b, 0, sizeof b);
	rs_read(c, lead, (size_t)min_bytes);
	memcpy(b, lead + 1, (size_t)(min_bytes - 1));
	extra = varint_extra(lead[0]);
	if (min_bytes + extra > 9) {
		rs_fail(c, RSYNC_ESTREAMIO);
		return 0;
	}
	if (extra) {
		rs_read(c, b + min_bytes - 1, (size_t)extra);
		b[min_bytes + extra - 1] =
			lead[0] & ((1u << (8 - extra)) - 1);
	} else {
		b[min_bytes - 1] = lead[0];
	}
	for (i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return (int64_t)v;
}

int rs_read_vstring(struct rs_conn *c, char *buf, size_t cap)
{
	size_t len = rs_read_byte(c);

	if (len & 0x80)
		len = (len & 0x7f) * 0x100 + rs_read_byte(c);
	if (len >= cap) {
		rs_fail(c, RSYNC_ESTREAMIO);
		buf[0] = '\0';
		return -1;
	}
	rs_read(c, buf, len);
	buf[len] = '\0';
	return (int)len;
}

int32_t rs_read_ndx(struct rs_conn *c)
{
	unsigned char b[4];
	int32_t *prev;
	uint32_t u;
	int neg = 0;

	b[0] = (unsigned char)rs_read_byte(c);
	if (c->err)
		return RS_NDX_DONE;
	if (b[0] == 0)
		return RS_NDX_DONE;
	if (b[0] == 0xff) {
		b[0] = (unsigned char)rs_read_byte(c);
		prev = &c->rndx_neg;
		neg = 1;
	} else {
		prev = &c->rndx_pos;
	}
	if (b[0] == 0xfe) {
		rs_read(c, b, 2);
		if (b[0] & 0x80) {
			b[3] = b[0] & 0x7f;
			b[0] = b[1];
			rs_read(c, b + 1, 2);
			u = get_le32(b);
		} else {
			u = ((uint32_t)b[0] << 8) + b[1] + (uint32_t)*prev;
		}
	} else {
		u = b[0] + (uint32_t)*prev;
	}
	if (u > 0x7fffffffu) {
		rs_fail(c, RSYNC_ESTREAMIO);
		return RS_NDX_DONE;
	}
	*prev = (int32_t)u;
	return neg ? -(int32_t)u : (int32_t)u;
}
