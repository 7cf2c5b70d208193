/*
 * scp.h - the legacy scp protocol (OpenSSH "scp -O"): parsing the exec
 * command and the protocol's control lines.
 *
 * Both parsers are pure functions over bytes (no channel, no store) so that
 * they can be unit tested and fuzzed; sshd/scp.c runs the protocol with
 * them.
 */
#ifndef ASSETD_SCP_H
#define ASSETD_SCP_H

#include <stddef.h>
#include <stdint.h>

#define SCP_MAX_ARGS 64
#define SCP_ARG_MAX 4096        /* bytes per argument, incl. NUL */
#define SCP_LINE_MAX 8192       /* a control line, incl. '\n' */

/* An exec command split into words the way a POSIX shell would (single
 * and double quotes, backslash escapes), without expansions. */
struct scp_words {
	int n;
	char *w[SCP_MAX_ARGS];          /* point into BUF */
	uint8_t glob[SCP_MAX_ARGS];     /* 1: word has an unquoted * ? [ */
	char buf[SCP_MAX_ARGS * 64 + SCP_ARG_MAX];
};

/* Split CMD. Returns 0, or -1 with a reason in ERR for unbalanced quotes,
 * shell operators (; | & < > ` $( ) ...), too many or too long words. */
int scp_split_words(const char *cmd, struct scp_words *out, char *err,
		    size_t errlen);

enum scp_mode { SCP_SINK = 1, SCP_SOURCE = 2 };

struct scp_command {
	enum scp_mode mode;             /* -t (sink: we receive) or -f */
	int recursive;                  /* -r */
	int preserve;                   /* -p */
	int target_dir;                 /* -d: the target must be a folder */
	int verbose;                    /* -v */
	int npaths;
	const char *paths[SCP_MAX_ARGS]; /* point into the scp_words */
	uint8_t glob[SCP_MAX_ARGS];
};

/* Parse "scp [-v] [-r] [-p] [-d] (-t|-f) [--] PATH..." from WORDS.
 * Returns 0 or -1 with ERR ("unknown option -x", ...). A sink takes
 * exactly one path. */
int scp_parse_command(const struct scp_words *words, struct scp_command *out,
		      char *err, size_t errlen);

enum scp_line_type {
	SCP_LINE_FILE = 'C',            /* C<mode> <size> <name> */
	SCP_LINE_DIR = 'D',             /* D<mode> 0 <name> */
	SCP_LINE_END = 'E',             /* E: leave the folder */
	SCP_LINE_TIME = 'T',            /* T<mtime> 0 <atime> 0 */
	SCP_LINE_WARN = 1,              /* \1message: the peer's error */
	SCP_LINE_FATAL = 2,             /* \2message */
};

struct scp_line {
	int type;                       /* enum scp_line_type */
	uint32_t mode;                  /* C, D: permission bits */
	uint64_t size;                  /* C: bytes that follow */
	int64_t mtime, atime;           /* T */
	char name[256];                 /* C, D: one path segment; \1 \2:
					   the message (truncated) */
};

/* Parse one control line (LINE, LEN bytes, without the trailing '\n').
 * Returns 0, or -1 with ERR for a malformed line, and for a C or D name
 * that is empty, ".", "..", holds a '/' or a control byte, or is over 255
 * bytes: a peer must never name something outside the target folder. */
int scp_parse_line(const char *line, size_t len, struct scp_line *out,
		   char *err, size_t errlen);

#endif
