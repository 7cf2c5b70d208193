/*
 * net.h - listening sockets, opened the same way for every listener (the
 * Specify HTTP endpoint, SSH, the admin endpoint).
 *
 * One function resolves the configured host, sets the socket options every
 * listener wants (SO_REUSEADDR; SO_REUSEPORT when ReusePort is on, so a new
 * instance can bind the same port while this one drains; a dual-stack
 * IPv6 wildcard that also takes IPv4, falling back to IPv4 alone where
 * there is no IPv6), binds, listens and reports the port it got (port 0 in
 * a test means "pick one"). The callers differ only in the backlog, the
 * flags below and the log event they write on failure.
 */
#ifndef ASSETD_NET_H
#define ASSETD_NET_H

#include <stddef.h>

/* Flags of net_listen(). */
#define NET_NONBLOCK 0x1        /* SOCK_NONBLOCK (libmicrohttpd wants it) */
#define NET_REUSEPORT 0x2       /* SO_REUSEPORT (ReusePort yes) */

/* Errors (negative). A failed socket(), bind() or listen() returns the
 * negative errno of the last address tried (-EADDRINUSE, -EACCES, ...);
 * a host that does not resolve returns NET_ERESOLVE plus getaddrinfo(3)'s
 * code (itself negative), so net_strerror() can still say why. */
#define NET_ERESOLVE (-100000)

/* Listen on HOST ("" or "*" = every address, IPv6 and IPv4; a name or a
 * numeric address otherwise) at PORT (0 = any free port) with BACKLOG and
 * FLAGS. The socket is close-on-exec. Returns the file descriptor and, in
 * *BOUND_PORT (may be NULL), the port actually bound; or a negative error
 * above. Logs nothing: the caller names its listener in its own event. */
int net_listen(const char *host, int port, int backlog, int flags,
	       int *bound_port);

/* A message for an error of net_listen() (a static string). */
const char *net_strerror(int err);

/* The numeric text of a peer's address SA into OUT (LEN bytes, at least
 * INET6_ADDRSTRLEN): an IPv4 peer of a dual-stack listener
 * (::ffff:a.b.c.d) is written as plain IPv4, so limits and penalties
 * count it once whichever socket it came in on. "" if SA is NULL or of
 * another family. */
struct sockaddr;
void net_addr_text(const struct sockaddr *sa, char *out, size_t len);

#endif
