/* test_net.c - the shared listening socket (net.h) on loopback: the port
 * bound for port 0, the dual-stack wildcard taking IPv4, ReusePort letting
 * a second socket share a port (and its absence refusing it), a host that
 * does not resolve, and the peer-address text of IPv4-mapped peers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

/* Connect to 127.0.0.1:PORT; 0 if it was accepted by the kernel. */
static int connect_v4(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = { 0 };
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	return rc;
}

static void test_port_zero_reports_bound_port(void **state)
{
	(void)state;
	int port = -1;
	int fd = net_listen("127.0.0.1", 0, 16, 0, &port);
	assert_true(fd >= 0);
	assert_true(port > 0 && port <= 65535);
	assert_int_equal(connect_v4(port), 0);
	/* close-on-exec, blocking unless asked */
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);

	fd = net_listen("127.0.0.1", 0, 16, NET_NONBLOCK, NULL);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	close(fd);
}

static void test_wildcard_takes_ipv4(void **state)
{
	(void)state;
	int port = -1;
	int fd = net_listen("*", 0, 16, 0, &port);
	assert_true(fd >= 0);
	assert_int_equal(connect_v4(port), 0);
	close(fd);
	fd = net_listen("", 0, 16, 0, &port);
	assert_true(fd >= 0);
	assert_int_equal(connect_v4(port), 0);
	close(fd);
}

static void test_reuse_port(void **state)
{
	(void)state;
	int port = -1;
	int a = net_listen("127.0.0.1", 0, 16, NET_REUSEPORT, &port);
	assert_true(a >= 0);
	int b = net_listen("127.0.0.1", port, 16, NET_REUSEPORT, NULL);
	assert_true(b >= 0);
	close(b);
	close(a);

	a = net_listen("127.0.0.1", 0, 16, 0, &port);
	assert_true(a >= 0);
	b = net_listen("127.0.0.1", port, 16, 0, NULL);
	assert_int_equal(b, -EADDRINUSE);
	assert_string_equal(net_strerror(b), strerror(EADDRINUSE));
	close(a);
}

static void test_bad_host_and_port(void **state)
{
	(void)state;
	int rc = net_listen("no-such-host.invalid", 0, 16, 0, NULL);
	assert_true(rc <= NET_ERESOLVE);
	assert_true(strlen(net_strerror(rc)) > 0);
	assert_string_not_equal(net_strerror(rc), strerror(EINVAL));
	assert_int_equal(net_listen("127.0.0.1", 70000, 16, 0, NULL), -EINVAL);
	assert_int_equal(net_listen("127.0.0.1", -1, 16, 0, NULL), -EINVAL);
}

static void test_addr_text(void **state)
{
	(void)state;
	char out[64];
	struct sockaddr_in v4 = { 0 };
	v4.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.9", &v4.sin_addr);
	net_addr_text((struct sockaddr *)&v4, out, sizeof out);
	assert_string_equal(out, "192.0.2.9");

	struct sockaddr_in6 v6 = { 0 };
	v6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.0.2.10", &v6.sin6_addr);
	net_addr_text((struct sockaddr *)&v6, out, sizeof out);
	assert_string_equal(out, "192.0.2.10");
	inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
	net_addr_text((struct sockaddr *)&v6, out, sizeof out);
	assert_string_equal(out, "2001:db8::1");

	net_addr_text(NULL, out, sizeof out);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_zero_reports_bound_port),
		cmocka_unit_test(test_wildcard_takes_ipv4),
		cmocka_unit_test(test_reuse_port),
		cmocka_unit_test(test_bad_host_and_port),
		cmocka_unit_test(test_addr_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
