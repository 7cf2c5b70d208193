/*
 * filter.c - the client's --exclude/--include/--filter rules.
 *
 * The client sends its rules in their compact wire form, one per string:
 * "- *.tmp", "+ dir/", "-! keep", "- /top/x", with modifiers between the
 * sign and the space ('/' absolute, '!' negate, 's' sender-side only,
 * 'r' receiver-side only, 'p' perishable, 'x' xattr). The first rule that
 * matches a name decides: '-' excludes, '+' includes; no match includes.
 * A pattern without '/' (other than a trailing one) or "**" matches the
 * last component of a name; otherwise it matches the whole name, anchored
 * at the transfer root when it starts with '/', else at any directory
 * boundary. A trailing '/' matches directories only, a pattern ending in slash-three-stars matches the
 * directory and everything under it. The sender applies the sender-side
 * rules to the file list; the receiver uses the receiver-side ones to keep
 * excluded files out of --delete. Per-directory merge files (-F, ':' rules)
 * would need reading filter files out of the store and are refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsync_int.h"

struct rs_rule {
	struct rs_rule *next;
	char *pattern;          /* without leading '/' and trailing '/' */
	int include;            /* '+' rule */
	int negate;             /* '!' modifier */
	int anchored;           /* leading '/' or '/' modifier */
	int dir_only;           /* trailing '/' */
	int whole_path;         /* pattern has an inner '/' or "**" */
	int triple_star;        /* pattern ended in a slash and three stars (stripped) */
	int sender_side;        /* applies when building the file list */
	int receiver_side;      /* applies when protecting from --delete */
};

/* Match one character class at P (after '['); sets *END past ']'. */
static int class_match(const char *p, char c, const char **end)
{
	int neg = 0, ok = 0;
	const char *q = p;

	if (*q == '!' || *q == '^') {
		neg = 1;
		q++;
	}
	if (*q == ']') {
		ok = c == ']';
		q++;
	}
	while (*q && *q != ']') {
		char lo = *q, hi;
		if (lo == '\\' && q[1])
			lo = *++q;
		hi = lo;
		if (q[1] == '-' && q[2] && q[2] != ']') {
			hi = q[2];
			q += 2;
		}
		if ((unsigned char)c >= (unsigned char)lo &&
		    (unsigned char)c <= (unsigned char)hi)
			ok = 1;
		q++;
	}
	if (*q != ']')
		return -1; /* not a class: caller treats '[' literally */
	*end = q + 1;
	return ok != neg;
}

static int wild(const char *p, const char *t)
{
	for (; *p; p++) {
		switch (*p) {
		case '?':
			if (!*t || *t == '/')
				return 0;
			t++;
			break;
		case '*': {
			int dbl = p[1] == '*';
			while (*p == '*')
				p++;
			if (!*p) {
				if (dbl)
					return 1;
				return strchr(t, '/') == NULL;
			}
			for (;; t++) {
				if (wild(p, t))
					return 1;
				if (!*t || (!dbl && *t == '/'))
					return 0;
			}
		}
		case '[': {
			const char *end;
			int m;
			if (!*t || *t == '/')
				return 0;
			m = class_match(p + 1, *t, &end);
			if (m < 0) {
				if (*t != '[')
					return 0;
				t++;
				break;
			}
			if (!m)
				return 0;
			t++;
			p = end - 1;
			break;
		}
		case '\\':
			if (p[1])
				p++;
			/* fall through */
		default:
			if (*t != *p)
				return 0;
			t++;
			break;
		}
	}
	return *t == '\0';
}

int rs_wildmatch(const char *pattern, const char *text)
{
	return wild(pattern, text);
}

int rs_filter_add(struct rs_filters *f, const char *rule, char *err,
		  size_t errlen)
{
	struct rs_rule *r;
	const char *p = rule;
	char sign;
	size_t n;
	int xattr = 0;

	if (strcmp(rule, "!") == 0 || strncmp(rule, "! ", 2) == 0) {
		rs_filter_free(f);
		return 0;
	}
	sign = *p++;
	if (sign == ':' || sign == '.') {
		snprintf(err, errlen,
			 "rsync: on remote machine: filter rule \"%s\": merge "
			 "files are not supported by this server (assetd)\n",
			 rule);
		return -1;
	}
	if (sign != '+' && sign != '-') {
		snprintf(err, errlen,
			 "rsync: on remote machine: unknown filter rule: "
			 "\"%s\"\n", rule);
		return -1;
	}
	r = calloc(1, sizeof *r);
	if (!r)
		return -1;
	r->include = sign == '+';
	r->sender_side = r->receiver_side = 1;
	for (; *p && *p != ' ' && *p != '_'; p++) {
		switch (*p) {
		case '/': r->anchored = 1; break;
		case '!': r->negate = 1; break;
		case 's': r->receiver_side = 0; break;
		case 'r': r->sender_side = 0; break;
		case 'x': xattr = 1; break;
		case 'p': case 'n': case 'w': case 'e': case '+': case '-':
		case 'C':
			break;
		default:
			free(r);
			snprintf(err, errlen,
				 "rsync: on remote machine: unknown filter "
				 "modifier in \"%s\"\n", rule);
			return -1;
		}
	}
	if (*p)
		p++;
	if (xattr) {
		free(r); /* xattr rules: nothing to filter here */
		return 0;
	}
	if (*p == '/') {
		r->anchored = 1;
		p++;
	}
	r->pattern = strdup(p);
	if (!r->pattern) {
		free(r);
		return -1;
	}
	n = strlen(r->pattern);
	if (n >= 4 && strcmp(r->pattern + n - 4, "/***") == 0) {
		r->pattern[n - 4] = '\0';
		r->triple_star = 1;
		n -= 4;
	}
	while (n > 0 && r->pattern[n - 1] == '/') {
		r->pattern[--n] = '\0';
		r->dir_only = 1;
	}
	r->whole_path = strchr(r->pattern, '/') != NULL ||
			strstr(r->pattern, "**") != NULL || r->triple_star ||
			r->anchored;
	if (f->tail)
		f->tail->next = r;
	else
		f->head = r;
	f->tail = r;
	f->count++;
	return 0;
}

/* Does PAT (whole-path form) match NAME at the root or at any '/'? */
static int match_at_boundaries(const struct rs_rule *r, const char *pat,
			       const char *name)
{
	const char *t = name;

	if (wild(pat, t))
		return 1;
	if (r->anchored)
		return 0;
	while ((t = strchr(t, '/')) != NULL) {
		t++;
		if (wild(pat, t))
			return 1;
	}
	return 0;
}

static int rule_matches(const struct rs_rule *r, const char *path, int is_dir)
{
	const char *base;
	int m;

	if (r->triple_star) {
		/* dir + three stars: the directory itself, or anything below it. */
		char buf[RS_MAX_PATH + 8];
		m = match_at_boundaries(r, r->pattern, path) && is_dir;
		if (!m && strlen(r->pattern) + 4 < sizeof buf) {
			snprintf(buf, sizeof buf, "%s/**", r->pattern);
			m = match_at_boundaries(r, buf, path);
		}
		return m != r->negate;
	}
	if (r->dir_only && !is_dir)
		return r->negate ? 1 : 0;
	if (r->whole_path) {
		m = match_at_boundaries(r, r->pattern, path);
	} else {
		base = strrchr(path, '/');
		base = base ? base + 1 : path;
		m = wild(r->pattern, base);
	}
	return m != r->negate;
}

int rs_filter_excluded(const struct rs_filters *f, const char *path,
		       int is_dir, int for_delete)
{
	const struct rs_rule *r;

	if (strcmp(path, ".") == 0)
		return 0;
	for (r = f->head; r; r = r->next) {
		if (for_delete ? !r->receiver_side : !r->sender_side)
			continue;
		if (rule_matches(r, path, is_dir))
			return !r->include;
	}
	return 0;
}

void rs_filter_free(struct rs_filters *f)
{
	struct rs_rule *r = f->head, *next;

	for (; r; r = next) {
		next = r->next;
		free(r->pattern);
		free(r);
	}
	f->head = f->tail = NULL;
	f->count = 0;
}
