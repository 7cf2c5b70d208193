/*
 * multipart.c - streaming multipart/form-data parsing.
 *
 * Specify 7 sends the file part first and the token after it, so an upload
 * body can never be held whole: it must flow to its destination as it
 * arrives. This parser is a byte-level state machine over the delimiter
 * "\r\n--<boundary>". The body of the first part is preceded by "--boundary"
 * with no CRLF, so parsing starts as if a CRLF had just been seen.
 *
 * Matching the delimiter needs no look-back buffer: the boundary may not
 * contain CR (RFC 2046 bcharsnospace), so CR occurs only at position 0 of
 * the delimiter, and after a mismatch the bytes matched so far are exactly
 * the delimiter's prefix and can be re-emitted from it. Runs of body bytes
 * with no delimiter (no CR, or CRs not followed by the rest of it) are
 * found with memchr and memcmp and passed through in one callback.
 */
#include "http_multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static int bchar_ok(unsigned char c)
{
	return isalnum(c) || strchr("'()+_,-./:=? ", c) != NULL;
}

int http_mp_header_param(const char *value, const char *param, char *out,
			 size_t outlen)
{
	size_t plen = strlen(param);
	const char *p = value;

	/* Skip the first item (the disposition type), then walk ;-params. */
	while (*p) {
		const char *semi = NULL;
		int inq = 0;
		for (const char *q = p; *q; q++) {
			if (inq && *q == '\\' && q[1]) {
				q++;
				continue;
			}
			if (*q == '"')
				inq = !inq;
			else if (!inq && *q == ';') {
				semi = q;
				break;
			}
		}
		if (semi == NULL)
			return 0;
		p = semi + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, param, plen) != 0)
			continue;
		const char *v = p + plen;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t o = 0;
		if (*v == '"') {
			for (v++; *v && *v != '"'; v++) {
				if (*v == '\\' && v[1])
					v++;
				if (o + 1 >= outlen)
					return -1;
				out[o++] = *v;
			}
		} else {
			for (; *v && *v != ';' && *v != ' ' && *v != '\t'; v++) {
				if (o + 1 >= outlen)
					return -1;
				out[o++] = *v;
			}
		}
		out[o] = '\0';
		return 1;
	}
	return 0;
}

int http_mp_boundary(const char *content_type, char *out, size_t outlen)
{
	if (content_type == NULL)
		return -1;
	const char *p = content_type;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "multipart/", 10) != 0)
		return -1;
	int r = http_mp_header_param(content_type, "boundary", out, outlen);
	if (r != 1)
		return -1;
	size_t n = strlen(out);
	if (n == 0 || n > HTTP_MP_BOUNDARY_MAX || out[n - 1] == ' ')
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!bchar_ok((unsigned char)out[i]))
			return -1;
	return 0;
}

int http_mp_init(struct http_multipart *mp, const char *content_type,
		 const struct http_mp_callbacks *cb, void *arg)
{
	char b[HTTP_MP_BOUNDARY_MAX + 2];

	memset(mp, 0, sizeof *mp);
	mp->state = HTTP_MP_FAILED;
	if (http_mp_boundary(content_type, b, sizeof b) != 0)
		return HTTP_MP_EBOUNDARY;
	mp->cb = *cb;
	mp->arg = arg;
	memcpy(mp->delim, "\r\n--", 4);
	memcpy(mp->delim + 4, b, strlen(b));
	mp->delim_len = 4 + strlen(b);
	mp->state = HTTP_MP_PREAMBLE;
	mp->match = 2; /* as if the body began with CRLF */
	return 0;
}

static int fail(struct http_multipart *mp, int err)
{
	mp->state = HTTP_MP_FAILED;
	return err;
}

/* Parse the accumulated header block of a part. */
static int parse_part_headers(struct http_multipart *mp)
{
	struct http_mp_part *pt = &mp->part;
	memset(pt, 0, sizeof *pt);
	int have_disp = 0;
	char *line = mp->hdr;
	char *end = mp->hdr + mp->hdr_len;

	while (line < end) {
		char *eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			eol = end;
		size_t ll = (size_t)(eol - line);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		line[ll] = '\0';
		if (memchr(line, '\0', ll) != NULL && strlen(line) != ll)
			return -1;
		char *colon = strchr(line, ':');
		if (ll > 0 && colon == NULL)
			return -1;
		if (colon) {
			*colon = '\0';
			char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			if (strcasecmp(line, "Content-Disposition") == 0) {
				have_disp = 1;
				if (strncasecmp(v, "form-data", 9) != 0)
					return -1;
				if (http_mp_header_param(v, "name", pt->name,
							 sizeof pt->name) < 0)
					return -1;
				int r = http_mp_header_param(v, "filename",
							     pt->filename,
							     sizeof pt->filename);
				if (r < 0)
					return -1;
				pt->has_filename = r == 1;
			} else if (strcasecmp(line, "Content-Type") == 0) {
				size_t vl = strlen(v);
				if (vl >= sizeof pt->content_type)
					return -1;
				memcpy(pt->content_type, v, vl + 1);
			}
		}
		line = eol + 1;
	}
	return have_disp ? 0 : -1;
}

static int emit(struct http_multipart *mp, const char *d, size_t n)
{
	if (n == 0 || mp->state != HTTP_MP_BODY || mp->cb.part_data == NULL)
		return 0;
	int rc = mp->cb.part_data(mp->arg, d, n);
	if (rc != 0) {
		mp->cb_rc = rc;
		return fail(mp, HTTP_MP_EABORTED);
	}
	return 0;
}

/* A full delimiter was matched in PREAMBLE or BODY. */
static int on_delimiter(struct http_multipart *mp)
{
	if (mp->state == HTTP_MP_BODY && mp->cb.part_end) {
		int rc = mp->cb.part_end(mp->arg);
		if (rc != 0) {
			mp->cb_rc = rc;
			return fail(mp, HTTP_MP_EABORTED);
		}
	}
	mp->state = HTTP_MP_AFTER_DELIM;
	mp->after_dashes = 0;
	mp->after_cr = 0;
	mp->match = 0;
	return 0;
}

int http_mp_feed(struct http_multipart *mp, const char *data, size_t len)
{
	size_t i = 0;

	while (i < len) {
		switch (mp->state) {
		case HTTP_MP_FAILED:
			return HTTP_MP_ESYNTAX;
		case HTTP_MP_EPILOGUE:
			return 0;
		case HTTP_MP_PREAMBLE:
		case HTTP_MP_BODY: {
			if (mp->match == 0) {
				/* Fast path: pass everything before the next
				 * CR that may start a delimiter straight
				 * through. A CR followed (within this chunk)
				 * by anything but the rest of the delimiter
				 * is data and stays in the run, so binary
				 * bodies (a CR every 256 bytes) reach the
				 * callback in whole chunks, not in pieces. */
				const char *end = data + len;
				const char *cr = memchr(data + i, '\r', len - i);
				while (cr && (size_t)(end - cr) >= mp->delim_len &&
				       memcmp(cr, mp->delim, mp->delim_len) != 0)
					cr = memchr(cr + 1, '\r',
						    (size_t)(end - cr - 1));
				size_t run = cr ? (size_t)(cr - (data + i))
						: len - i;
				int rc = emit(mp, data + i, run);
				if (rc)
					return rc;
				i += run;
				if (i >= len)
					break;
			}
			char c = data[i];
			if (c == mp->delim[mp->match]) {
				mp->match++;
				i++;
				if (mp->match == mp->delim_len) {
					int rc = on_delimiter(mp);
					if (rc)
						return rc;
				}
			} else {
				/* False start: the matched bytes were data.
				 * Do not consume C; it is re-tested against
				 * delim[0] (only CR can start a match). */
				int rc = emit(mp, mp->delim, mp->match);
				if (rc)
					return rc;
				if (mp->match == 0) {
					/* C is not CR and match was 0 only
					 * in PREAMBLE via the fast path. */
					i++;
				}
				mp->match = 0;
			}
			break;
		}
		case HTTP_MP_AFTER_DELIM: {
			char c = data[i++];
			if (mp->after_dashes == 1) {
				if (c != '-')
					return fail(mp, HTTP_MP_ESYNTAX);
				mp->state = HTTP_MP_EPILOGUE;
				return 0;
			}
			if (mp->after_cr) {
				if (c != '\n')
					return fail(mp, HTTP_MP_ESYNTAX);
				if (++mp->parts > HTTP_MP_PARTS_MAX)
					return fail(mp, HTTP_MP_ETOOMANY);
				mp->state = HTTP_MP_HEADERS;
				mp->hdr_len = 0;
			} else if (c == '-') {
				mp->after_dashes = 1;
			} else if (c == '\r') {
				mp->after_cr = 1;
			} else if (c != ' ' && c != '\t') {
				/* transport padding is allowed, else junk */
				return fail(mp, HTTP_MP_ESYNTAX);
			}
			break;
		}
		case HTTP_MP_HEADERS: {
			char c = data[i++];
			if (mp->hdr_len + 1 >= sizeof mp->hdr)
				return fail(mp, HTTP_MP_EHEADERS);
			mp->hdr[mp->hdr_len++] = c;
			/* The block ends at an empty line. */
			size_t n = mp->hdr_len;
			int end = 0;
			if (n == 2 && memcmp(mp->hdr, "\r\n", 2) == 0)
				end = 2;
			else if (n >= 4 && memcmp(mp->hdr + n - 4, "\r\n\r\n", 4) == 0)
				end = 4;
			if (!end)
				break;
			mp->hdr_len = n - (size_t)end;
			mp->hdr[mp->hdr_len] = '\0';
			if (parse_part_headers(mp) != 0)
				return fail(mp, HTTP_MP_EHEADERS);
			mp->state = HTTP_MP_BODY;
			mp->match = 0;
			if (mp->cb.part_begin) {
				int rc = mp->cb.part_begin(mp->arg, &mp->part);
				if (rc != 0) {
					mp->cb_rc = rc;
					return fail(mp, HTTP_MP_EABORTED);
				}
			}
			break;
		}
		}
	}
	return mp->state == HTTP_MP_FAILED ? HTTP_MP_ESYNTAX : 0;
}

int http_mp_finish(struct http_multipart *mp)
{
	if (mp->state == HTTP_MP_EPILOGUE)
		return 0;
	return HTTP_MP_ETRUNCATED;
}
