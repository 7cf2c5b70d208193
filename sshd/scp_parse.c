/*
 * scp_parse.c - pure parsers for the legacy scp protocol (include/scp.h).
 *
 * There is no shell on this server, yet an scp client's remote path went
 * through one on every other server: users quote names with spaces
 * ('my file.jpg', my\ file.jpg) and expect "*.jpg" to expand. So the exec
 * command is split into words with the shell's quoting rules, operators
 * that would need a real shell are refused rather than taken as names, and
 * unquoted glob characters are remembered for the source side to expand.
 *
 * Control lines are checked strictly: numbers in range, one space between
 * fields, and names that are a single safe segment (the check OpenSSH's
 * scp added for CVE-2018-20685 and CVE-2019-6111, here on the server side).
 */
#include "scp.h"

#include <stdio.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

int scp_split_words(const char *cmd, struct scp_words *out, char *err,
		    size_t errlen)
{
	size_t used = 0, cap = sizeof out->buf;
	const char *p = cmd;

	out->n = 0;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '\n')
			break;
		if (out->n >= SCP_MAX_ARGS) {
			set_err(err, errlen, "too many arguments");
			return -1;
		}
		char *w = out->buf + used;
		size_t wl = 0;
		int glob = 0;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
			char c = *p;
			if (strchr(";|&<>`()", c) || (c == '$' && p[1] == '(')) {
				set_err(err, errlen,
					"shell syntax is not supported here");
				return -1;
			}
			if (c == '\'') {
				const char *q = strchr(p + 1, '\'');
				if (!q) {
					set_err(err, errlen, "unbalanced quote");
					return -1;
				}
				size_t n = (size_t)(q - p - 1);
				if (used + wl + n + 1 >= cap ||
				    wl + n + 1 >= SCP_ARG_MAX)
					goto toolong;
				memcpy(w + wl, p + 1, n);
				wl += n;
				p = q + 1;
				continue;
			}
			if (c == '"') {
				p++;
				while (*p && *p != '"') {
					char d = *p;
					if (d == '\\' && p[1] &&
					    strchr("\"\\$`\n", p[1]))
						d = *++p;
					else if (d == '$' || d == '`') {
						set_err(err, errlen,
							"shell expansions are "
							"not supported here");
						return -1;
					}
					if (used + wl + 2 >= cap ||
					    wl + 2 >= SCP_ARG_MAX)
						goto toolong;
					w[wl++] = d;
					p++;
				}
				if (*p != '"') {
					set_err(err, errlen, "unbalanced quote");
					return -1;
				}
				p++;
				continue;
			}
			if (c == '\\') {
				if (!p[1]) {
					set_err(err, errlen,
						"trailing backslash");
					return -1;
				}
				c = *++p;
			} else if (c == '*' || c == '?' || c == '[') {
				glob = 1;
			} else if (c == '$') {
				set_err(err, errlen,
					"shell expansions are not supported here");
				return -1;
			}
			if (used + wl + 2 >= cap || wl + 2 >= SCP_ARG_MAX)
				goto toolong;
			w[wl++] = c;
			p++;
		}
		w[wl] = '\0';
		out->w[out->n] = w;
		out->glob[out->n] = (uint8_t)glob;
		out->n++;
		used += wl + 1;
	}
	return 0;
toolong:
	set_err(err, errlen, "argument too long");
	return -1;
}

int scp_parse_command(const struct scp_words *words, struct scp_command *out,
		      char *err, size_t errlen)
{
	int i = 1, opts_done = 0;

	memset(out, 0, sizeof *out);
	if (words->n < 1 || strcmp(words->w[0], "scp") != 0) {
		set_err(err, errlen, "not an scp command");
		return -1;
	}
	for (; i < words->n; i++) {
		const char *a = words->w[i];
		if (!opts_done && !strcmp(a, "--")) {
			opts_done = 1;
			continue;
		}
		if (opts_done || a[0] != '-' || a[1] == '\0') {
			if (out->npaths >= SCP_MAX_ARGS)
				break;
			out->paths[out->npaths] = a;
			out->glob[out->npaths] = words->glob[i];
			out->npaths++;
			continue;
		}
		for (const char *c = a + 1; *c; c++) {
			switch (*c) {
			case 't': out->mode = out->mode ? -1 : SCP_SINK; break;
			case 'f': out->mode = out->mode ? -1 : SCP_SOURCE; break;
			case 'r': out->recursive = 1; break;
			case 'p': out->preserve = 1; break;
			case 'd': out->target_dir = 1; break;
			case 'v': out->verbose = 1; break;
			case 'q': break; /* quiet: nothing to silence */
			default: {
				char m[64];
				snprintf(m, sizeof m, "unknown option -%c", *c);
				set_err(err, errlen, m);
				return -1;
			}
			}
		}
	}
	if (out->mode != SCP_SINK && out->mode != SCP_SOURCE) {
		set_err(err, errlen, "one of -t or -f is needed");
		return -1;
	}
	if (out->npaths == 0) {
		set_err(err, errlen, "no path given");
		return -1;
	}
	if (out->mode == SCP_SINK && out->npaths != 1) {
		set_err(err, errlen, "ambiguous target");
		return -1;
	}
	return 0;
}

/* A decimal number of at most 20 digits into *OUT, advancing *P. */
static int parse_u64(const char **p, const char *end, uint64_t *out)
{
	uint64_t v = 0;
	const char *s = *p;
	if (s >= end || *s < '0' || *s > '9')
		return -1;
	while (s < end && *s >= '0' && *s <= '9') {
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*out = v;
	return 0;
}

static int expect_space(const char **p, const char *end)
{
	if (*p >= end || **p != ' ')
		return -1;
	(*p)++;
	return 0;
}

int scp_parse_line(const char *line, size_t len, struct scp_line *out,
		   char *err, size_t errlen)
{
	const char *p = line, *end = line + len;
	uint64_t a, b, c;

	memset(out, 0, sizeof *out);
	if (len == 0) {
		set_err(err, errlen, "empty protocol line");
		return -1;
	}
	out->type = (unsigned char)*p++;
	switch (out->type) {
	case SCP_LINE_WARN:
	case SCP_LINE_FATAL: {
		size_t n = len - 1;
		if (n >= sizeof out->name)
			n = sizeof out->name - 1;
		memcpy(out->name, p, n);
		out->name[n] = '\0';
		return 0;
	}
	case SCP_LINE_END:
		if (len != 1)
			goto bad;
		return 0;
	case SCP_LINE_TIME:
		if (parse_u64(&p, end, &a) || expect_space(&p, end) ||
		    parse_u64(&p, end, &b) || expect_space(&p, end) ||
		    parse_u64(&p, end, &c) || expect_space(&p, end) ||
		    parse_u64(&p, end, &b) || p != end)
			goto bad;
		if (a > INT64_MAX || c > INT64_MAX)
			goto bad;
		out->mtime = (int64_t)a;
		out->atime = (int64_t)c;
		return 0;
	case SCP_LINE_FILE:
	case SCP_LINE_DIR: {
		uint32_t mode = 0;
		int digits = 0;
		while (p < end && *p >= '0' && *p <= '7' && digits < 5) {
			mode = mode * 8 + (uint32_t)(*p - '0');
			p++;
			digits++;
		}
		if (digits < 3 || digits > 4 || expect_space(&p, end) ||
		    parse_u64(&p, end, &a) || expect_space(&p, end))
			goto bad;
		size_t n = (size_t)(end - p);
		if (n == 0 || n >= sizeof out->name) {
			set_err(err, errlen, "bad file name in protocol line");
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)p[i];
			if (ch == '/' || ch < 0x20 || ch == 0x7f) {
				set_err(err, errlen,
					"unexpected file name in protocol line");
				return -1;
			}
		}
		memcpy(out->name, p, n);
		out->name[n] = '\0';
		if (!strcmp(out->name, ".") || !strcmp(out->name, "..")) {
			set_err(err, errlen,
				"unexpected file name in protocol line");
			return -1;
		}
		out->mode = mode & 07777;
		out->size = a;
		return 0;
	}
	default:
		break;
	}
bad:
	set_err(err, errlen, "malformed protocol line");
	return -1;
}
