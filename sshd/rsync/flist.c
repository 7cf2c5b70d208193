/*
 * flist.c - the file list: its order, and its encoding on the wire.
 *
 * Both ends refer to files by their index in the sorted list, so the sort
 * must be exactly the one rsync uses: names compared component by
 * component, where in each directory the non-directories come first (in
 * byte order), then the subdirectories (compared as "name/"), each
 * followed by its own contents; "." (the transfer root) comes first.
 *
 * On the wire each entry is a flags word (a varint when the client offered
 * the 'v' capability, else one or two bytes) saying which fields repeat
 * the previous entry's (mode, mtime, uid, gid) and how many leading bytes
 * of the name are shared with the previous name; then the rest of the
 * name, the size, the mtime, the mode, ids, and the MD5 under --checksum.
 * A zero flags word ends the list, followed by an I/O-error word.
 * Entries we cannot store (symlinks, devices) are read and kept as
 * RS_FT_OTHER so the indexes stay aligned.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rsync_int.h"

int rs_grow(void *arrp, size_t *cap, size_t n, size_t size, size_t first)
{
	void *arr, *p;
	size_t nc;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : first;
	if (nc > SIZE_MAX / size)
		return -1;
	memcpy(&arr, arrp, sizeof arr); /* any T **, without type punning */
	p = realloc(arr, nc * size);
	if (!p)
		return -1;
	memcpy(arrp, &p, sizeof p);
	*cap = nc;
	return 0;
}

int rs_flist_add(struct rs_flist *fl, const char *name, int type,
		 int64_t size, int64_t mtime, uint32_t mode)
{
	struct rs_file *f;

	if (rs_grow(&fl->files, &fl->cap, fl->used, sizeof *fl->files, 256) < 0)
		return -1;
	f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->name = strdup(name);
	if (!f->name) {
		free(f);
		return -1;
	}
	f->type = (uint8_t)type;
	f->size = size;
	f->mtime = mtime;
	f->mode = mode;
	fl->files[fl->used++] = f;
	return 0;
}

void rs_flist_free(struct rs_flist *fl)
{
	size_t i;
	for (i = 0; i < fl->used; i++) {
		free(fl->files[i]->name);
		free(fl->files[i]->obj);
		free(fl->files[i]);
	}
	free(fl->files);
	memset(fl, 0, sizeof *fl);
}

/* One path component: its bytes, length, and whether it is a directory
 * part (compared with a '/' after it) or a final non-directory item. */
struct comp {
	const char *p;
	size_t len;
	int is_path;
};

/* Next component of NAME at *POS; 0 when exhausted. */
static int next_comp(const char *name, int is_dir, size_t *pos,
		     struct comp *c)
{
	const char *s, *slash;

	/* (*pos is -1 once the name is used up: no pointer is formed from
	 * it, name + -1 would overflow) */
	if (*pos == (size_t)-1)
		return 0;
	s = name + *pos;
	if (*pos == 0 && strcmp(name, ".") == 0) {
		/* the root sorts as an empty item */
		c->p = "";
		c->len = 0;
		c->is_path = 0;
		*pos = (size_t)-1;
		return 1;
	}
	slash = strchr(s, '/');
	c->p = s;
	if (slash) {
		c->len = (size_t)(slash - s);
		c->is_path = 1;
		*pos += c->len + 1;
	} else {
		c->len = strlen(s);
		c->is_path = is_dir;
		*pos = (size_t)-1;
	}
	return 1;
}

int rs_file_cmp(const struct rs_file *a, const struct rs_file *b)
{
	size_t pa = 0, pb = 0;
	struct comp ca, cb;

	for (;;) {
		int ha = next_comp(a->name, a->type == RS_FT_DIR, &pa, &ca);
		int hb = next_comp(b->name, b->type == RS_FT_DIR, &pb, &cb);
		size_t i, n;

		if (!ha || !hb)
			return ha - hb;
		if (ca.is_path != cb.is_path)
			return ca.is_path ? 1 : -1;
		n = (ca.len > cb.len ? ca.len : cb.len) + 1;
		for (i = 0; i < n; i++) {
			int x, y;
			if (ca.is_path) {
				x = i < ca.len ? (unsigned char)ca.p[i] : '/';
				y = i < cb.len ? (unsigned char)cb.p[i] : '/';
			} else {
				x = i < ca.len ? (unsigned char)ca.p[i] : 0;
				y = i < cb.len ? (unsigned char)cb.p[i] : 0;
			}
			if (x != y)
				return x - y;
			if (!ca.is_path && x == 0)
				break;
			if (ca.is_path && i >= ca.len && i >= cb.len)
				break;
		}
	}
}

static int cmp_ptr(const void *x, const void *y)
{
	return rs_file_cmp(*(struct rs_file *const *)x,
			   *(struct rs_file *const *)y);
}

void rs_flist_sort(struct rs_flist *fl)
{
	if (fl->used > 1)
		qsort(fl->files, fl->used, sizeof fl->files[0], cmp_ptr);
}

int rs_flist_has_dups(const struct rs_flist *fl)
{
	size_t i;
	for (i = 1; i < fl->used; i++)
		if (strcmp(fl->files[i - 1]->name, fl->files[i]->name) == 0)
			return 1;
	return 0;
}

int rs_name_safe(const char *name)
{
	const char *p = name;

	if (strcmp(name, ".") == 0)
		return 1;
	if (!*name || *name == '/')
		return 0;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (!slash)
			break;
		p = slash + 1;
		if (!*p)
			return 0;
	}
	return 1;
}

/* ---- sending ------------------------------------------------------------ */

void rs_flist_send_entry(struct rs_sess *s, const struct rs_file *f)
{
	struct rs_conn *c = &s->conn;
	int xflags = 0;
	size_t l1 = 0, l2;
	int first = s->lastname[0] == '\0';

	if (f->type == RS_FT_DIR)
		xflags = f->top_dir ? RS_XMIT_TOP_DIR
				    : (f->no_content ? RS_XMIT_NO_CONTENT_DIR : 0);
	if (!first && f->mode == s->last_mode)
		xflags |= RS_XMIT_SAME_MODE;
	if (!first)
		xflags |= RS_XMIT_SAME_UID | RS_XMIT_SAME_GID; /* all ours */
	if (!first && f->mtime == s->last_mtime)
		xflags |= RS_XMIT_SAME_TIME;
	while (l1 < 255 && s->lastname[l1] && f->name[l1] == s->lastname[l1])
		l1++;
	l2 = strlen(f->name + l1);
	if (l1 > 0)
		xflags |= RS_XMIT_SAME_NAME;
	if (l2 > 255)
		xflags |= RS_XMIT_LONG_NAME;

	if (s->varint_flags) {
		rs_write_varint(c, xflags ? xflags : RS_XMIT_EXTENDED_FLAGS);
	} else {
		if (!xflags && f->type != RS_FT_DIR)
			xflags |= RS_XMIT_TOP_DIR;
		if ((xflags & 0xff00) || !xflags) {
			xflags |= RS_XMIT_EXTENDED_FLAGS;
			rs_write_short(c, (unsigned)xflags);
		} else {
			rs_write_byte(c, (unsigned)xflags);
		}
	}
	if (xflags & RS_XMIT_SAME_NAME)
		rs_write_byte(c, (unsigned)l1);
	if (xflags & RS_XMIT_LONG_NAME)
		rs_write_varint(c, (int32_t)l2);
	else
		rs_write_byte(c, (unsigned)l2);
	rs_write(c, f->name + l1, l2);
	rs_write_varlong(c, f->size, 3);
	if (!(xflags & RS_XMIT_SAME_TIME))
		rs_write_varlong(c, f->mtime, 4);
	if (!(xflags & RS_XMIT_SAME_MODE))
		rs_write_int(c, (int32_t)f->mode);
	if (s->opts.preserve_uid && !(xflags & RS_XMIT_SAME_UID))
		rs_write_varint(c, 0);
	if (s->opts.preserve_gid && !(xflags & RS_XMIT_SAME_GID))
		rs_write_varint(c, 0);
	if (s->opts.always_checksum && f->type == RS_FT_REG)
		rs_write(c, f->sum, RS_SUM_LENGTH);

	snprintf(s->lastname, sizeof s->lastname, "%s", f->name);
	s->last_mode = f->mode;
	s->last_mtime = f->mtime;
	if (f->type == RS_FT_REG)
		s->total_size += f->size;
}

void rs_flist_send_end(struct rs_sess *s, int io_error)
{
	struct rs_conn *c = &s->conn;

	if (s->varint_flags) {
		rs_write_varint(c, 0);
		rs_write_varint(c, io_error);
	} else if (io_error) {
		rs_write_short(c, RS_XMIT_EXTENDED_FLAGS | RS_XMIT_IO_ERROR_ENDLIST);
		rs_write_varint(c, io_error);
	} else {
		rs_write_byte(c, 0);
	}
	/* The uid and gid lists: empty (every entry says id 0, no name). */
	if (!s->opts.numeric_ids) {
		int lists = (s->opts.preserve_uid != 0) + (s->opts.preserve_gid != 0);
		while (lists-- > 0) {
			rs_write_varint(c, 0);
			if (s->id0_names)
				rs_write_byte(c, 0);
		}
	}
}

/* ---- receiving ---------------------------------------------------------- */

static int proto_error(struct rs_sess *s, const char *what, const char *name)
{
	rs_printf(&s->conn, RS_MSG_ERROR,
		  "rsync: [receiver] %s%s%s (assetd)\n", what,
		  name ? ": " : "", name ? name : "");
	rs_fail(&s->conn, RSYNC_EPROTOCOL);
	return RSYNC_EPROTOCOL;
}

static void skip_id_list(struct rs_sess *s)
{
	struct rs_conn *c = &s->conn;
	char name[256];

	for (;;) {
		int32_t id = rs_read_varint(c);
		unsigned len;
		if (c->err || id == 0)
			break;
		len = rs_read_byte(c);
		rs_read(c, name, len);
	}
	if (s->id0_names && !c->err) {
		unsigned len = rs_read_byte(c);
		rs_read(c, name, len);
	}
}

int rs_flist_recv(struct rs_sess *s)
{
	struct rs_conn *c = &s->conn;
	char name[RS_MAX_PATH];
	uint32_t mode = 0;
	int64_t mtime = 0;

	s->lastname[0] = '\0';
	for (;;) {
		int xflags;
		size_t l1 = 0, l2, have = strlen(s->lastname);
		int64_t size;
		int type;
		struct rs_file *f;

		if (s->varint_flags) {
			xflags = rs_read_varint(c);
			if (xflags == 0) {
				c->io_error |= rs_read_varint(c) & 7;
				break;
			}
		} else {
			xflags = (int)rs_read_byte(c);
			if (xflags == 0)
				break;
			if (xflags & RS_XMIT_EXTENDED_FLAGS)
				xflags |= (int)rs_read_byte(c) << 8;
			if (xflags == (RS_XMIT_EXTENDED_FLAGS |
				       RS_XMIT_IO_ERROR_ENDLIST)) {
				c->io_error |= rs_read_varint(c) & 7;
				break;
			}
		}
		if (c->err)
			return c->err;
		if (xflags & RS_XMIT_SAME_NAME)
			l1 = rs_read_byte(c);
		if (xflags & RS_XMIT_LONG_NAME) {
			int32_t v = rs_read_varint(c);
			l2 = v < 0 ? (size_t)RS_MAX_PATH : (size_t)v;
		} else {
			l2 = rs_read_byte(c);
		}
		if (l1 > have || l1 + l2 >= sizeof name)
			return proto_error(s, "overlong name in file list", NULL);
		memcpy(name, s->lastname, l1);
		rs_read(c, name + l1, l2);
		name[l1 + l2] = '\0';
		if (c->err)
			return c->err;
		memcpy(s->lastname, name, l1 + l2 + 1);
		if (strlen(name) != l1 + l2 || !rs_name_safe(name))
			return proto_error(s, "unsafe name in file list", name);
		if ((xflags & RS_XMIT_HLINKED) && !(xflags & RS_XMIT_HLINK_FIRST))
			return proto_error(s, "hard links are not supported",
					   name);
		size = rs_read_varlong(c, 3);
		if (!(xflags & RS_XMIT_SAME_TIME))
			mtime = rs_read_varlong(c, 4);
		if (xflags & RS_XMIT_MOD_NSEC)
			(void)rs_read_varint(c);
		if (!(xflags & RS_XMIT_SAME_MODE))
			mode = (uint32_t)rs_read_int(c);
		if (s->opts.preserve_uid && !(xflags & RS_XMIT_SAME_UID)) {
			(void)rs_read_varint(c);
			if (xflags & RS_XMIT_USER_NAME_FOLLOWS) {
				char tmp[256];
				unsigned len = rs_read_byte(c);
				rs_read(c, tmp, len);
			}
		}
		if (s->opts.preserve_gid && !(xflags & RS_XMIT_SAME_GID)) {
			(void)rs_read_varint(c);
			if (xflags & RS_XMIT_GROUP_NAME_FOLLOWS) {
				char tmp[256];
				unsigned len = rs_read_byte(c);
				rs_read(c, tmp, len);
			}
		}
		if ((s->opts.preserve_devices && (S_ISCHR(mode) || S_ISBLK(mode))) ||
		    (s->opts.preserve_specials &&
		     (S_ISFIFO(mode) || S_ISSOCK(mode)) && c->protocol < 31)) {
			if (!(xflags & RS_XMIT_SAME_RDEV_MAJOR))
				(void)rs_read_varint(c);
			(void)rs_read_varint(c);
			size = 0;
		}
		if (s->opts.preserve_links && S_ISLNK(mode)) {
			int32_t len = rs_read_varint(c);
			char tmp[512];
			if (len < 0 || len >= RS_MAX_PATH)
				return proto_error(s, "overlong symlink", name);
			while (len > 0 && !c->err) {
				int32_t n = len < (int32_t)sizeof tmp ? len : (int32_t)sizeof tmp;
				rs_read(c, tmp, (size_t)n);
				len -= n;
			}
		}
		if (S_ISREG(mode))
			type = RS_FT_REG;
		else if (S_ISDIR(mode))
			type = RS_FT_DIR;
		else
			type = RS_FT_OTHER;
		if (size < 0)
			return proto_error(s, "negative size", name);
		if (strcmp(name, ".") == 0 && type != RS_FT_DIR)
			return proto_error(s, "the root is not a directory", name);
		if (rs_flist_add(&s->flist, name, type, type == RS_FT_REG ? size : 0,
				 mtime, mode) < 0) {
			rs_fail(c, RSYNC_EMALLOC);
			return RSYNC_EMALLOC;
		}
		f = s->flist.files[s->flist.used - 1];
		f->top_dir = (type == RS_FT_DIR && (xflags & RS_XMIT_TOP_DIR)) ? 1 : 0;
		f->no_content = (type == RS_FT_DIR &&
				 (xflags & RS_XMIT_NO_CONTENT_DIR)) ? 1 : 0;
		if (s->opts.always_checksum && type == RS_FT_REG)
			rs_read(c, f->sum, RS_SUM_LENGTH);
		if (c->err)
			return c->err;
	}
	if (!s->opts.numeric_ids) {
		if (s->opts.preserve_uid)
			skip_id_list(s);
		if (s->opts.preserve_gid)
			skip_id_list(s);
	}
	if (c->err)
		return c->err;
	rs_flist_sort(&s->flist);
	if (rs_flist_has_dups(&s->flist))
		return proto_error(s, "duplicate names in file list", NULL);
	return 0;
}
