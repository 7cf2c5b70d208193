"""Slow and greedy HTTP clients cannot exhaust the daemon: connections per
address and in all are bounded, a client trickling its headers is cut off
after HTTPHeaderTimeout while others are served, and an oversized request
head is refused. Each bound is tested at the bound."""
import socket
import time

from conftest import wait_port


def start(make_daemon, extra):
    d = make_daemon("fs", extra)
    d.start(wait=False)
    wait_port(d.http_port, 20, d.proc)
    return d


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
    resp = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        resp += b
    s.close()
    return int(resp.split(b" ", 2)[1]) if resp else 0


def test_connection_limits(make_daemon):
    d = start(make_daemon, "HTTPMaxConnections 8\n"
              "HTTPMaxConnectionsPerSource 4\n")
    held = [connect(d) for _ in range(4)]
    time.sleep(0.3)
    # the fifth from one address is closed at once; another address is
    # still served
    assert closed_by_server(connect(d))
    assert get(d, "127.0.0.2") == 200
    held += [connect(d, "127.0.0.2") for _ in range(4)]
    time.sleep(0.3)
    # eight in all: the ninth, from a third address, is closed too
    assert closed_by_server(connect(d, "127.0.0.3"))
    # the idle ones are still open (not closed by the limits)
    assert not closed_by_server(held[0], 0.5)
    for s in held:
        s.close()
    time.sleep(0.5)
    assert get(d) == 200 and get(d, "127.0.0.3") == 200


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
    assert 1.5 <= cut <= 5, cut
    with open(d.log_path) as f:
        assert "reason=header_timeout" in f.read()


def test_header_size_bound(make_daemon):
    d = start(make_daemon, "HTTPMaxHeaderSize 8K\n")
    assert get(d, extra=b"X-Pad: " + b"a" * 7000 + b"\r\n") == 200
    assert get(d, extra=b"X-Pad: " + b"a" * 9000 + b"\r\n") == 431
    assert get(d) == 200
