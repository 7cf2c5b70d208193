/*
 * net.c - listening sockets for every front end (include/net.h).
 *
 * The HTTP, SSH and admin listeners all want the same socket: resolved
 * with getaddrinfo() so a host name, an IPv4 or an IPv6 address works;
 * SO_REUSEADDR so a restart does not wait out TIME_WAIT; SO_REUSEPORT only
 * when asked (ReusePort), because with it a second instance shares the
 * port instead of failing to start; and for the wildcard an IPv6 socket
 * with IPV6_V6ONLY off, which takes IPv4 too, falling back to IPv4 alone
 * on a host without IPv6. The first address that binds and listens wins.
 * Errors are returned, not logged: each front end logs its own event.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A socket for AI with the options every listener wants, bound and
 * listening; or -errno. */
static int listen_one(const struct addrinfo *ai, int wildcard, int backlog,
		      int flags)
{
	int type = ai->ai_socktype | SOCK_CLOEXEC;
	if (flags & NET_NONBLOCK)
		type |= SOCK_NONBLOCK;
	int fd = socket(ai->ai_family, type, 0);
	if (fd < 0)
		return -errno;
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (flags & NET_REUSEPORT)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	/* The wildcard serves IPv4 as well, whatever the sysctl default. */
	if (ai->ai_family == AF_INET6 && wildcard)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, backlog) != 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

static int bound_port_of(int fd, int fallback)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return fallback;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return fallback;
}

/* Resolve and listen with one address FAMILY (AF_UNSPEC for a named
 * host). The first address that binds and listens wins. */
static int listen_family(const char *host, int family, const char *service,
			 int backlog, int flags)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	/* With a NULL host, AF_INET6 and AI_PASSIVE give "::", the
	 * dual-stack any. */
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0)
		return NET_ERESOLVE + rc;
	int fd = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = listen_one(ai, host == NULL, backlog, flags);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

int net_listen(const char *host, int port, int backlog, int flags,
	       int *bound_port)
{
	char service[16];
	int wildcard = !host || !host[0] || strcmp(host, "*") == 0;

	if (port < 0 || port > 65535)
		return -EINVAL;
	snprintf(service, sizeof service, "%d", port);
	int fd;
	if (wildcard) {
		fd = listen_family(NULL, AF_INET6, service, backlog, flags);
		/* A host without IPv6: every IPv4 address alone. A port in
		 * use is not retried: it would be in use for IPv4 too. */
		if (fd <= NET_ERESOLVE || fd == -EAFNOSUPPORT ||
		    fd == -EADDRNOTAVAIL)
			fd = listen_family(NULL, AF_INET, service, backlog,
					   flags);
	} else {
		fd = listen_family(host, AF_UNSPEC, service, backlog, flags);
	}
	if (fd >= 0 && bound_port)
		*bound_port = bound_port_of(fd, port);
	return fd;
}

const char *net_strerror(int err)
{
	if (err >= 0)
		return "no error";
	/* getaddrinfo's codes are small negative numbers. */
	if (err <= NET_ERESOLVE && err > NET_ERESOLVE - 1000)
		return gai_strerror(err - NET_ERESOLVE);
	return strerror(-err);
}

void net_addr_text(const struct sockaddr *sa, char *out, size_t len)
{
	if (len == 0)
		return;
	out[0] = '\0';
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  out, (socklen_t)len);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out,
				  (socklen_t)len);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out,
				  (socklen_t)len);
	}
}
