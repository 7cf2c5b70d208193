/*
 * options.c - the command line an rsync client sends to its server.
 *
 * The client runs `rsync --server [--sender] -vlogDtpre.iLsfxCIvu [long
 * options] . PATH...` through the remote shell, so the exec string is first
 * split the way a POSIX shell splits it (the client backslash-escapes
 * spaces and other specials in paths), then parsed: bundled short options
 * (where 'e' swallows the rest of its word: the client's capability
 * letters), long options with "=value" or a separate value, then "." and
 * the paths. Options that change the wire format in ways we do not speak
 * (ACLs, xattrs, hard links on a push, --relative, --iconv...) or that ask
 * for things the store cannot do (backups, devices) are refused here with
 * the message rsync itself prints for an unknown option, before any
 * protocol byte is exchanged; harmless ones (--bwlimit, --info=...) are
 * accepted and ignored.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsync_int.h"

int rsync_is_server_command(const char *cmd)
{
	if (!cmd)
		return 0;
	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	return strncmp(cmd, "rsync ", 6) == 0 && strstr(cmd, " --server") != NULL;
}

int rsync_split_command(const char *cmd, char *buf, size_t buflen,
			char **argv, int max_args)
{
	size_t o = 0;
	int argc = 0;
	const char *p = cmd;

	for (;;) {
		int in_word = 0;
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		if (argc >= max_args)
			return -1;
		argv[argc] = buf + o;
		while (*p && !(*p == ' ' || *p == '\t' || *p == '\n')) {
			char ch = *p++;
			in_word = 1;
			if (ch == '\\') {
				if (!*p)
					break;
				ch = *p++;
				if (ch == '\n')
					continue;
			} else if (ch == '\'') {
				while (*p && *p != '\'') {
					if (o + 1 >= buflen)
						return -1;
					buf[o++] = *p++;
				}
				if (*p != '\'')
					return -1;
				p++;
				continue;
			} else if (ch == '"') {
				while (*p && *p != '"') {
					ch = *p++;
					if (ch == '\\' && (*p == '"' || *p == '\\' ||
							   *p == '$' || *p == '`'))
						ch = *p++;
					if (o + 1 >= buflen)
						return -1;
					buf[o++] = ch;
				}
				if (*p != '"')
					return -1;
				p++;
				continue;
			}
			if (o + 1 >= buflen)
				return -1;
			buf[o++] = ch;
		}
		(void)in_word;
		if (o + 1 > buflen)
			return -1;
		buf[o++] = '\0';
		argc++;
	}
	return argc;
}

static int refuse(char *err, size_t errlen, const char *opt, const char *why)
{
	snprintf(err, errlen, "rsync: on remote machine: %s: %s\n", opt, why);
	return RSYNC_ESYNTAX;
}

#define NOT_SUPPORTED "not supported by this server (assetd)"

/* Parse a size like "10M", "1.5G", "100k"; -1 on garbage. */
static int64_t parse_size(const char *s)
{
	char *end;
	double v;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case 'k': v *= 1024; end++; break;
	case 'm': v *= 1024.0 * 1024; end++; break;
	case 'g': v *= 1024.0 * 1024 * 1024; end++; break;
	case 't': v *= 1024.0 * 1024 * 1024 * 1024; end++; break;
	case 'b': case '\0': break;
	default: return -1;
	}
	/* the rest ("b", "iB", "+1", "-1") refines rounding; ignore it */
	if (!(v < 9.0e18)) /* beyond int64_t (or NaN): converting is UB */
		return -1;
	return (int64_t)v;
}

static int short_opts(const char *arg, int *takes_next, struct rs_opts *o,
		      char *err, size_t errlen)
{
	const char *p;
	char name[3] = "-?";

	*takes_next = 0;
	for (p = arg + 1; *p; p++) {
		name[1] = *p;
		switch (*p) {
		case 'v': o->verbose++; break;
		case 'q': break;
		case 'u': o->update_only = 1; break;
		case 'n': o->dry_run = 1; break;
		case 'l': o->preserve_links = 1; break;
		case 'd': o->xfer_dirs = 1; break;
		case 'K': case 'k': case 'L': case 'O': case 'J':
		case 'S': case 'x': case 'E':
			break; /* no meaning for a store */
		case 'm': o->prune_empty_dirs = 1; break;
		case 'y': break; /* fuzzy basis: a generator-side choice */
		case 'W': o->whole_file = 1; break;
		case 'H':
			if (!o->sender)
				return refuse(err, errlen, "--hard-links",
					      NOT_SUPPORTED);
			break;
		case 'o': o->preserve_uid = 1; break;
		case 'g': o->preserve_gid = 1; break;
		case 'D':
			o->preserve_devices = 1;
			o->preserve_specials = 1;
			break;
		case 't': o->preserve_times = 1; break;
		case 'p': o->preserve_perms = 1; break;
		case 'r': o->recurse = 1; break;
		case 'c': o->always_checksum = 1; break;
		case 'C':
			return refuse(err, errlen, "--cvs-exclude", NOT_SUPPORTED);
		case 'I': o->ignore_times = 1; break;
		case 'z': o->compress = 1; break;
		case 'b':
			return refuse(err, errlen, "--backup", NOT_SUPPORTED);
		case 'U':
			return refuse(err, errlen, "--atimes", NOT_SUPPORTED);
		case 'N':
			return refuse(err, errlen, "--crtimes", NOT_SUPPORTED);
		case 'A':
			return refuse(err, errlen, "--acls", NOT_SUPPORTED);
		case 'X':
			return refuse(err, errlen, "--xattrs", NOT_SUPPORTED);
		case 'R':
			return refuse(err, errlen, "--relative", NOT_SUPPORTED);
		case 's':
			return refuse(err, errlen, "--secluded-args",
				      NOT_SUPPORTED);
		case 'e':
			/* The rest of the word is the client's version and
			 * capability letters ("e.iLsfxCIvu" or "e31.9.iLs"). */
			snprintf(o->caps, sizeof o->caps, "%s", p + 1);
			return 0;
		case 'B':
			if (p[1]) {
				o->block_size = atoi(p + 1);
				return 0;
			}
			*takes_next = 'B';
			return 0;
		case '@':
			o->modify_window = atoi(p + 1);
			return 0;
		default:
			return refuse(err, errlen, name, "unknown option");
		}
	}
	return 0;
}

/* Long options. VAL is the "=value" part or NULL; NEXT the following word
 * (for options that take their value as a separate word) and *USED_NEXT is
 * set when it was consumed. */
static int long_opt(const char *arg, const char *next, int *used_next,
		    struct rs_opts *o, char *err, size_t errlen)
{
	char name[64];
	const char *eq = strchr(arg, '=');
	const char *val = eq ? eq + 1 : NULL;
	size_t n = eq ? (size_t)(eq - arg) : strlen(arg);

	*used_next = 0;
	if (n >= sizeof name)
		return refuse(err, errlen, arg, "unknown option");
	memcpy(name, arg, n);
	name[n] = '\0';

#define IS(s) (strcmp(name, s) == 0)
	if (IS("--server")) {
		o->server = 1;
	} else if (IS("--sender")) {
		o->sender = 1;
	} else if (IS("--delete") || IS("--delete-before") ||
		   IS("--delete-during") || IS("--delete-delay") ||
		   IS("--delete-after") || IS("--del")) {
		o->delete_mode = 1;
	} else if (IS("--delete-excluded")) {
		o->delete_mode = 1;
		o->delete_excluded = 1;
	} else if (IS("--force") || IS("--ignore-errors")) {
		if (IS("--ignore-errors"))
			o->ignore_errors = 1;
	} else if (IS("--partial") || IS("--delay-updates")) {
		o->partial = 1;
	} else if (IS("--partial-dir")) {
		o->partial = 1;
		if (!val) {
			if (!next)
				return refuse(err, errlen, name, "needs a value");
			*used_next = 1;
		}
	} else if (IS("--temp-dir")) {
		if (!val) {
			if (!next)
				return refuse(err, errlen, name, "needs a value");
			*used_next = 1;
		}
	} else if (IS("--size-only")) {
		o->size_only = 1;
	} else if (IS("--ignore-times")) {
		o->ignore_times = 1;
	} else if (IS("--ignore-existing")) {
		o->ignore_existing = 1;
	} else if (IS("--existing") || IS("--ignore-non-existing")) {
		o->existing_only = 1;
	} else if (IS("--max-size") || IS("--min-size")) {
		int64_t v = val ? parse_size(val) : -1;
		if (v < 0)
			return refuse(err, errlen, name, "invalid size");
		if (IS("--max-size"))
			o->max_size = v;
		else
			o->min_size = v;
	} else if (IS("--max-delete")) {
		o->max_delete = val ? atoi(val) : -1;
		if (o->max_delete < 0)
			o->max_delete = 0x7fffffff;
	} else if (IS("--numeric-ids")) {
		o->numeric_ids = 1;
	} else if (IS("--inplace") || IS("--no-W") || IS("--no-whole-file")) {
		if (IS("--inplace"))
			o->inplace = 1;
		else
			o->whole_file = 0;
	} else if (IS("--append") || IS("--append-verify")) {
		return refuse(err, errlen, name, NOT_SUPPORTED);
	} else if (IS("--block-size")) {
		o->block_size = val ? atoi(val) : 0;
	} else if (IS("--checksum-seed")) {
		o->checksum_seed = val ? atoi(val) : 0;
	} else if (IS("--modify-window")) {
		o->modify_window = val ? atoi(val) : 0;
	} else if (IS("--checksum-choice") || IS("--cc")) {
		if (!val || (strcmp(val, "md5") && strcmp(val, "auto") &&
			     strcmp(val, "md5,md5")))
			return refuse(err, errlen, name,
				      "only md5 is supported by this server");
		/* a named choice is not negotiated: no list is exchanged */
		o->checksum_named = strcmp(val, "auto") != 0;
	} else if (IS("--compress-choice") || IS("--zc")) {
		int algo;
		if (!val) {
			if (!next)
				return refuse(err, errlen, name, "needs a value");
			val = next;
			*used_next = 1;
		}
		if (strcmp(val, "auto") == 0) {
			o->compress_choice = -1;
			return 0;
		}
		algo = rs_compress_by_name(val);
		if (algo < 0) {
			/* rsync's own wording for a name it was built
			 * without, and its exit code (4) */
			snprintf(err, errlen, "rsync: on remote machine: "
				 "unknown compress name: %s (this server "
				 "offers: %s)\n", val, RS_COMPRESS_LIST);
			return RSYNC_EUNSUPPORTED;
		}
		o->compress_choice = algo;
		o->compress = algo != RS_CPRES_NONE;
	} else if (IS("--new-compress") || IS("--old-compress")) {
		o->compress = 1;
		o->compress_choice = IS("--new-compress") ? RS_CPRES_ZLIBX
							  : RS_CPRES_ZLIB;
	} else if (IS("--compress-level") || IS("--zl")) {
		if (!val) {
			if (!next)
				return refuse(err, errlen, name, "needs a value");
			val = next;
			*used_next = 1;
		}
		o->compress_level = atoi(val);
	} else if (IS("--skip-compress") || IS("--compress-threads") ||
		   IS("--zt")) {
		/* per-suffix levels and worker threads: the stream is the
		 * same without them */
		if (!val) {
			if (!next)
				return refuse(err, errlen, name, "needs a value");
			*used_next = 1;
		}
	} else if (IS("--timeout") || IS("--bwlimit") || IS("--log-format") ||
		   IS("--out-format") || IS("--info") || IS("--debug") ||
		   IS("--msgs2stderr") || IS("--no-msgs2stderr") ||
		   IS("--stats") || IS("--super") || IS("--fsync") ||
		   IS("--safe-links") || IS("--copy-unsafe-links") ||
		   IS("--usermap") || IS("--groupmap") || IS("--max-alloc") ||
		   IS("--no-r") || IS("--no-implied-dirs") || IS("--mkpath") ||
		   IS("--preallocate") || IS("--open-noatime") ||
		   IS("--specials") || IS("--no-specials") ||
		   IS("--ignore-missing-args") || IS("--use-qsort") ||
		   IS("--list-only") || IS("--protocol")) {
		if (IS("--specials"))
			o->preserve_specials = 1;
		if (IS("--no-specials"))
			o->preserve_specials = 0;
	} else if (IS("--remove-source-files") || IS("--remove-sent-files")) {
		if (o->sender)
			return refuse(err, errlen, name,
				      "the server's files are not removed");
	} else {
		/* --backup-dir, --suffix, --files-from, --iconv, --link-dest,
		 * --compare-dest, --copy-dest, --delete-missing-args,
		 * --write-devices, --copy-devices, --xattrs, --acls... */
		return refuse(err, errlen, name,
			      strncmp(name, "--", 2) == 0 ? NOT_SUPPORTED
							 : "unknown option");
	}
#undef IS
	return 0;
}

int rs_parse_options(int argc, char **argv, struct rs_opts *o, char *err,
		     size_t errlen)
{
	int i, rc;
	int saw_dot = 0;

	memset(o, 0, sizeof *o);
	o->max_size = -1;
	o->min_size = -1;
	o->max_delete = -1;
	o->compress_choice = -1;
	o->compress_level = -1;
	err[0] = '\0';
	if (argc < 2 || strcmp(argv[0], "rsync") != 0)
		return refuse(err, errlen, argc ? argv[0] : "(empty)",
			      "not an rsync server command");
	/* --sender changes what some options mean: find it first. */
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sender") == 0)
			o->sender = 1;
		if (strcmp(argv[i], ".") == 0)
			break;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (saw_dot) {
			if (o->nargs >= (int)(sizeof o->args / sizeof o->args[0]))
				return refuse(err, errlen, a, "too many paths");
			o->args[o->nargs++] = argv[i];
			continue;
		}
		if (a[0] == '-' && a[1] == '-') {
			int used = 0;
			rc = long_opt(a, i + 1 < argc ? argv[i + 1] : NULL,
				      &used, o, err, errlen);
			if (rc)
				return rc;
			i += used;
		} else if (a[0] == '-' && a[1]) {
			int next = 0;
			rc = short_opts(a, &next, o, err, errlen);
			if (rc)
				return rc;
			if (next == 'B') {
				if (i + 1 >= argc)
					return refuse(err, errlen, "-B",
						      "needs a value");
				o->block_size = atoi(argv[++i]);
			}
		} else {
			/* The first plain word is the server's "." */
			saw_dot = 1;
		}
	}
	if (!o->server)
		return refuse(err, errlen, "rsync", "only --server mode is served");
	if (!saw_dot)
		return refuse(err, errlen, "rsync", "no path given");
	if (o->nargs == 0) {
		/* "rsync file host:" names the home directory */
		static char home[] = ".";
		o->args[o->nargs++] = home;
	}
	if (o->block_size < 0 || o->block_size > RS_MAX_BLOCK_SIZE)
		return refuse(err, errlen, "--block-size", "invalid value");
	return 0;
}
