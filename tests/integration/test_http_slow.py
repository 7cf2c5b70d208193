"""Slow and greedy HTTP clients cannot exhaust the daemon: connections per
address and in all are bounded, a client trickling its headers is cut off
after HTTPHeaderTimeout while others are served, and an oversized request
head is refused. Each bound is tested at the bound."""
import socket
import time

from conftest import metric, read_to_eof, wait_port


def start(make_daemon, extra):
    d = make_daemon("fs", extra)
    d.start(wait=False)
    # The admin listener opens after HTTP: waiting on it leaves no probe
    # connection on the HTTP port to count against the limits below.
    wait_port(d.admin_port, 20, d.proc)
    return d


def http_sessions(d):
    """Connections the HTTP server holds now, from /metrics."""
    return int(metric(d, "assetd_sessions_active", protocol="http"))


def wait_sessions(d, n, timeout=20.0):
    """Wait until the server holds N connections (a busy machine may take
    a while to accept what the kernel already has)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if http_sessions(d) == n:
            return
        time.sleep(0.05)
    raise AssertionError("server holds %d connections, not %d" %
                         (http_sessions(d), n))


def connect(d, src="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("127.0.0.1", d.http_port))
    return s


def closed_by_server(s, wait=10.0):
    """True if the server closes S (EOF or reset) within WAIT seconds (a
    refusal comes at once; the wait only bounds a busy machine's delay)."""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def get(d, src="127.0.0.1", extra=b""):
    s = connect(d, src)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + extra +
              b"Connection: close\r\n\r\n")
    resp = read_to_eof(s)
    s.close()
    return int(resp.split(b" ", 2)[1]) if resp else 0


def served_on(s):
    """A keep-alive request on open socket S answers 200 and S stays open."""
    s.settimeout(20)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(65536)
        assert b, "closed instead of answering"
        head += b
    status = int(head.split(b" ", 2)[1])
    hdr, body = head.split(b"\r\n\r\n", 1)
    length = 0
    for line in hdr.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        b = s.recv(65536)
        assert b, "closed in the middle of a body"
        body += b
    return status


def eventually_served(d, src, timeout=20.0):
    """A new connection from SRC is answered 200 once the slots freed by
    closed connections are released (the server frees them a moment after
    the close)."""
    deadline = time.time() + timeout
    while True:
        st = get(d, src)
        if st == 200 or time.time() > deadline:
            return st
        time.sleep(0.1)


def test_connection_limits(make_daemon):
    d = start(make_daemon, "HTTPMaxConnections 8\n"
              "HTTPMaxConnectionsPerSource 4\n")
    held = [connect(d) for _ in range(4)]
    wait_sessions(d, 4)
    # the fifth from one address is closed at once...
    assert closed_by_server(connect(d))
    # ...while another address is still accepted and served
    held += [connect(d, "127.0.0.2") for _ in range(4)]
    wait_sessions(d, 8)
    assert served_on(held[4]) == 200
    # eight in all: the ninth, from a third address, is closed too
    assert closed_by_server(connect(d, "127.0.0.3"))
    # the idle ones are still open (not closed by the limits)
    assert not closed_by_server(held[0], 0.5)
    assert served_on(held[0]) == 200
    wait_sessions(d, 8)
    for s in held:
        s.close()
    wait_sessions(d, 0)
    assert eventually_served(d, "127.0.0.1") == 200
    assert eventually_served(d, "127.0.0.3") == 200


def test_header_trickle_cut_off_others_served(make_daemon):
    d = start(make_daemon, "HTTPHeaderTimeout 2\nHTTPTimeout 30\n")
    slow = connect(d)
    start_t = time.time()
    cut = None
    line = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    for i, byte in enumerate(line):
        try:
            slow.sendall(bytes([byte]))
        except OSError:
            cut = time.time() - start_t
            break
        if i % 4 == 0:
            # another client, meanwhile, is served at once
            assert get(d) == 200
        slow.settimeout(0.5)
        try:
            if slow.recv(1) == b"":
                cut = time.time() - start_t
                break
        except socket.timeout:
            pass
        except ConnectionResetError:
            cut = time.time() - start_t
            break
    assert cut is not None, "a trickling client was never cut off"
    # 2 s, and a busy machine's slack (the trickle alone would take 20 s)
    assert 1.5 <= cut <= 10, cut
    with open(d.log_path) as f:
        assert "reason=header_timeout" in f.read()


def test_header_size_bound(make_daemon):
    d = start(make_daemon, "HTTPMaxHeaderSize 8K\n")
    assert get(d, extra=b"X-Pad: " + b"a" * 7000 + b"\r\n") == 200
    assert get(d, extra=b"X-Pad: " + b"a" * 9000 + b"\r\n") == 431
    assert get(d) == 200


def test_header_size_bound_default(make_daemon):
    """The default 64K bound is exact too: libmicrohttpd's per-connection
    pool is sized from it, so a head of exactly 64K reaches the server's own
    check. Counted: request line, each header as "name: value\r\n", and the
    blank line; the three fixed headers below take 54 bytes."""
    d = start(make_daemon, "")
    assert get(d, extra=b"X-Pad: " + b"a" * (65536 - 54) + b"\r\n") == 200
    assert get(d, extra=b"X-Pad: " + b"a" * (65536 - 53) + b"\r\n") == 431
    # A head of thousands of small fields is refused whole, not served.
    many = b"".join(b"X-H%05d: v\r\n" % i for i in range(5000))
    assert get(d, extra=many) == 431
    assert get(d) == 200
