/*
 * server.c - one rsync server connection from start to finish.
 *
 * The order of things is the protocol's: parse the command line (refusals
 * go to stderr and the client prints them), exchange versions (we offer 32
 * and speak down to 30), send the compatibility flags derived from the
 * client's -e capability letters, negotiate the checksum (md5 only) and,
 * with -z, the compression, send the checksum seed,
 * then switch both directions to multiplexed frames, read the client's
 * filter rules, resolve the path through the caller's resolver, and hand
 * over to the sender (pull) or the receiver (push). A fatal error is sent
 * as an in-band error message followed by MSG_ERROR_EXIT with the exit
 * code, so the client reports it and exits with that code.
 *
 * Compression: a current client with -z negotiates the algorithm by name
 * (we offer zstd, zlibx and zlib; see token.c), or names it with
 * --new-compress, --old-compress or --compress-choice; an older client
 * without negotiation means zlib.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rsync_int.h"

static void say(const struct rsync_io *io, const char *text)
{
	if (io->err)
		io->err(io->arg, text, strlen(text));
}

/* After multiplexing started: tell the client, end the protocol with
 * MSG_ERROR_EXIT, and wait (bounded) for it to hang up. */
static int fatal(struct rs_sess *s, int code, const char *msg)
{
	struct rs_conn *c = &s->conn;

	if (msg)
		rs_msg(c, RS_MSG_ERROR, msg, strlen(msg));
	if (c->protocol >= 31 && !c->err)
		rs_msg_int(c, RS_MSG_ERROR_EXIT, code);
	rs_flush(c);
	if (!c->err) {
		/* The client answers MSG_ERROR_EXIT and closes; draining its
		 * input keeps it from dying on a broken pipe first. */
		unsigned char tmp[4096];
		int rounds = 0;
		while (rounds++ < 4096 &&
		       s->conn.io->read(s->conn.io->arg, tmp, sizeof tmp) > 0) {
		}
	}
	return code;
}

/* Read the client's filter rules: 4-byte lengths, then the text. */
static int recv_filters(struct rs_sess *s)
{
	struct rs_conn *c = &s->conn;
	char rule[RS_MAX_PATH + 16];
	char err[RS_MAX_PATH + 256];

	for (;;) {
		int32_t len = rs_read_int(c);
		if (c->err)
			return c->err;
		if (len == 0)
			return 0;
		if (len < 0 || (size_t)len >= sizeof rule)
			return fatal(s, RSYNC_EPROTOCOL,
				     "rsync: filter rule too long\n");
		rs_read(c, rule, (size_t)len);
		rule[len] = '\0';
		if (c->err)
			return c->err;
		if (rs_filter_add(&s->filters, rule, err, sizeof err) < 0)
			return fatal(s, RSYNC_ESYNTAX, err);
	}
}

/* The first name of the client's LIST that we implement (the client picks
 * its own most preferred name the server offers: the same one), or -1. */
static int pick_compression(char *list)
{
	char *tok, *save = NULL;

	for (tok = strtok_r(list, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		int algo = rs_compress_by_name(tok);
		if (algo > RS_CPRES_NONE)
			return algo;
	}
	return -1;
}

/* Checksum and compression name lists (protocol 30+ with 'v'): both sides
 * send theirs before reading the other's. A list is exchanged only when
 * the client did not name its choice on the command line. */
static int negotiate(struct rs_sess *s)
{
	struct rs_conn *c = &s->conn;
	int want_csum = !s->opts.checksum_named;
	int want_zip = s->opts.compress && s->opts.compress_choice < 0;
	char list[256];

	if (want_csum)
		rs_write_vstring(c, "md5", 3);
	if (want_zip)
		rs_write_vstring(c, RS_COMPRESS_LIST,
				 strlen(RS_COMPRESS_LIST));
	rs_flush(c);
	if (want_csum) {
		char *tok, *save = NULL;
		int found = 0;
		if (rs_read_vstring(c, list, sizeof list) < 0 || c->err)
			return c->err ? c->err : RSYNC_EPROTOCOL;
		for (tok = strtok_r(list, " ", &save); tok;
		     tok = strtok_r(NULL, " ", &save))
			if (strcmp(tok, "md5") == 0)
				found = 1;
		if (!found) {
			say(c->io, "rsync: on remote machine: Failed to "
				   "negotiate a checksum choice (this server "
				   "offers: md5)\n");
			return RSYNC_EUNSUPPORTED;
		}
	}
	if (want_zip) {
		if (rs_read_vstring(c, list, sizeof list) < 0 || c->err)
			return c->err ? c->err : RSYNC_EPROTOCOL;
		s->compress = pick_compression(list);
		if (s->compress < 0) {
			say(c->io, "rsync: on remote machine: Failed to "
				   "negotiate a compress choice (this server "
				   "offers: " RS_COMPRESS_LIST ")\n");
			return RSYNC_EUNSUPPORTED;
		}
	}
	return 0;
}

static int setup_protocol(struct rs_sess *s)
{
	struct rs_conn *c = &s->conn;
	const char *caps = s->opts.caps;
	int32_t remote;
	char msg[200];

	rs_write_int(c, RS_PROTO_MAX);
	rs_flush(c);
	remote = rs_read_int(c);
	if (c->err)
		return c->err;
	if (remote < RS_PROTO_MIN) {
		snprintf(msg, sizeof msg,
			 "rsync: on remote machine: protocol version %d is too "
			 "old: this server needs %d or later (rsync 3.0+)\n",
			 (int)remote, RS_PROTO_MIN);
		say(c->io, msg);
		return RSYNC_EPROTOCOL;
	}
	c->protocol = remote < RS_PROTO_MAX ? remote : RS_PROTO_MAX;
	if (s->stats)
		s->stats->protocol = c->protocol;

	if (strchr(caps, 'f'))
		s->compat |= RS_CF_SAFE_FLIST;
	if (strchr(caps, 'x'))
		s->compat |= RS_CF_AVOID_XATTR_OPTIM;
	if (strchr(caps, 'C'))
		s->compat |= RS_CF_CHKSUM_SEED_FIX;
	if (strchr(caps, 'I'))
		s->compat |= RS_CF_INPLACE_PARTIAL_DIR;
	if (strchr(caps, 'u'))
		s->compat |= RS_CF_ID0_NAMES;
	if (strchr(caps, 'v'))
		s->compat |= RS_CF_VARINT_FLIST_FLAGS;
	rs_write_varint(c, s->compat);
	s->varint_flags = (s->compat & RS_CF_VARINT_FLIST_FLAGS) != 0;
	s->id0_names = (s->compat & RS_CF_ID0_NAMES) != 0;

	/* Without negotiation a compressing client means zlib. */
	s->compress = !s->opts.compress ? RS_CPRES_NONE
		      : s->opts.compress_choice >= 0 ? s->opts.compress_choice
						      : RS_CPRES_ZLIB;
	if (s->varint_flags) {
		int rc = negotiate(s);
		if (rc)
			return rc;
	}
	s->seed = s->opts.checksum_seed
			  ? s->opts.checksum_seed
			  : (int32_t)((uint32_t)time(NULL) ^ ((uint32_t)getpid() << 6));
	rs_write_int(c, s->seed);
	rs_flush(c);
	if (rs_sum_ctx_init(&s->sums, s->seed,
			    (s->compat & RS_CF_CHKSUM_SEED_FIX) != 0) < 0)
		return RSYNC_EMALLOC;
	if (rs_tok_init(&s->tok, s->compress, s->opts.compress_level,
			c->protocol, s->opts.sender) < 0)
		return RSYNC_EMALLOC;
	return c->err;
}

static int run(struct rs_sess *s, int argc, char **argv)
{
	struct rs_conn *c = &s->conn;
	char err[1024];
	int rc;

	rc = rs_parse_options(argc, argv, &s->opts, err, sizeof err);
	if (rc) {
		say(c->io, err);
		return rc;
	}
	if (s->stats)
		s->stats->sender = s->opts.sender;
	rc = setup_protocol(s);
	if (rc)
		return rc;
	c->mplex_out = 1;
	c->mplex_in = 1;

	if (s->opts.sender || s->opts.delete_mode || s->opts.prune_empty_dirs) {
		rc = recv_filters(s);
		if (rc)
			return rc;
	}
	if (!s->opts.sender && s->opts.nargs != 1)
		return fatal(s, RSYNC_ESYNTAX,
			     "rsync: on remote machine: a push names one "
			     "destination\n");
	if (s->opts.sender && s->opts.nargs != 1)
		return fatal(s, RSYNC_ESYNTAX,
			     "rsync: on remote machine: fetch one path at a "
			     "time from this server\n");
	memset(&s->target, 0, sizeof s->target);
	err[0] = '\0';
	if (s->resolve(s->resolve_arg, s->opts.args[0], &s->target, err,
		       sizeof err - 64) < 0) {
		char line[1200];
		snprintf(line, sizeof line, "rsync: [%s] change_dir \"%s\" "
			 "failed: %s (assetd)\n",
			 s->opts.sender ? "sender" : "receiver",
			 s->opts.args[0], err[0] ? err : "no such directory");
		return fatal(s, RSYNC_EFILESELECT, line);
	}
	if (!s->target.list && !s->target.store)
		return fatal(s, RSYNC_EFILESELECT,
			     "rsync: on remote machine: no location for this "
			     "path\n");
	if (!s->opts.sender && (s->target.read_only || s->target.list)) {
		char line[1200];
		snprintf(line, sizeof line, "rsync: [receiver] \"%s\" is "
			 "read-only on this server: Permission denied (13)\n",
			 s->opts.args[0]);
		return fatal(s, RSYNC_EFILESELECT, line);
	}
	rc = s->opts.sender ? rs_run_sender(s) : rs_run_receiver(s);
	if (rc && rc != RSYNC_EPARTIAL && rc != RSYNC_EVANISHED)
		return fatal(s, rc, NULL);
	return rc;
}

int rsync_serve_argv(int argc, char **argv, const struct rsync_io *io,
		     rsync_resolve_fn resolve, void *resolve_arg,
		     struct rsync_stats *stats)
{
	struct rs_sess *s;
	int rc;

	if (stats)
		memset(stats, 0, sizeof *stats);
	s = calloc(1, sizeof *s);
	if (!s) {
		say(io, "rsync: on remote machine: out of memory\n");
		return RSYNC_EMALLOC;
	}
	rs_conn_init(&s->conn, io);
	s->resolve = resolve;
	s->resolve_arg = resolve_arg;
	s->stats = stats;
	rc = run(s, argc, argv);
	rs_flush(&s->conn);
	if (stats) {
		stats->bytes_read = s->conn.total_read;
		stats->bytes_written = s->conn.total_written;
		stats->files = s->flist.used;
	}
	rs_sum_ctx_free(&s->sums);
	rs_tok_free(&s->tok);
	rs_filter_free(&s->filters);
	rs_flist_free(&s->flist);
	free(s);
	return rc;
}

int rsync_serve(const char *cmd, const struct rsync_io *io,
		rsync_resolve_fn resolve, void *resolve_arg,
		struct rsync_stats *stats)
{
	char *buf;
	char *argv[256];
	size_t len = strlen(cmd) + 1;
	int argc, rc;

	buf = malloc(len + 1);
	if (!buf) {
		say(io, "rsync: on remote machine: out of memory\n");
		return RSYNC_EMALLOC;
	}
	argc = rsync_split_command(cmd, buf, len + 1, argv, 255);
	if (argc < 0) {
		free(buf);
		say(io, "rsync: on remote machine: cannot parse the command "
			"line (unbalanced quotes?)\n");
		if (stats)
			memset(stats, 0, sizeof *stats);
		return RSYNC_ESYNTAX;
	}
	argv[argc] = NULL;
	rc = rsync_serve_argv(argc, argv, io, resolve, resolve_arg, stats);
	free(buf);
	return rc;
}
