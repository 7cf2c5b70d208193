"""Stopping and upgrading without dropping uploads.

SIGTERM: the daemon stops accepting at once (a new connection is refused,
on both ports), lets the HTTP and SFTP uploads in flight finish within
ShutdownGrace, and aborts what is still running after it, leaving nothing
partial on either backend.

ReusePort: a second instance starts on the same ports while the first still
runs; the first is then sent SIGTERM. A client connecting in a loop all the
while is never refused, and an upload in flight on the first completes."""
import os
import signal
import socket
import threading
import time

import pytest

import sshtools
from conftest import read_to_eof
from specify_client import for_client

MiB = 1024 * 1024


def slow_chunks(data, pieces):
    step = (len(data) + pieces - 1) // pieces
    return [data[i:i + step] for i in range(0, len(data), step)]


class Background(threading.Thread):
    """Run FN in a thread; .result or .error afterwards."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except Exception as e:  # the test looks at it
            self.error = e


def http_upload(sp, name, data, seconds):
    """An upload whose body takes about SECONDS to send."""
    ctype, chunks = sp.multipart(
        [("token", sp.token(name)), ("store", name), ("type", "O"),
         ("coll", "Demo")], ("file", "x.bin", data), file_first=False)
    body = b"".join(chunks)
    parts = slow_chunks(body, 40)
    return sp.request("POST", sp.urls["write"], headers={
        "Content-Type": ctype, "Content-Length": str(len(body))},
        chunks=parts, chunk_delay=seconds / len(parts))


def sftp_upload(d, c, path, data, seconds, started, pieces=4):
    """Write DATA to PATH over paramiko, pausing between writes (longer
    pauses than the server's read slice, so a stop must not take the open
    file for an idle session). Returns after CLOSE answered."""
    sftp, t = sshtools.paramiko_sftp(d, c)
    try:
        f = sftp.open(path, "wb")
        parts = slow_chunks(data, pieces)
        for i, p in enumerate(parts):
            f.write(p)
            f.flush()
            if i == 0:
                started.set()
            time.sleep(seconds / len(parts))
        f.close()
        return True
    finally:
        t.close()


def refused(port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


def test_sigterm_lets_uploads_finish_and_refuses_newcomers(make_daemon,
                                                           backend):
    d = make_daemon(backend, "ShutdownGrace 20\n")
    d.start()
    c = d.add_client("drain")
    sp = for_client(d, c)
    a = os.urandom(2 * MiB)
    b = os.urandom(2 * MiB)
    started = threading.Event()
    up = Background(lambda: http_upload(sp, "h.bin", a, 3))
    put = Background(lambda: sftp_upload(
        d, c, "attachments/originals/s.bin", b, 3, started))
    assert started.wait(20)
    time.sleep(0.5)
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    # new connections are refused at once, on both ports
    deadline = time.time() + 5
    while time.time() < deadline and not (refused(d.http_port) and
                                          refused(d.ssh_port)):
        time.sleep(0.05)
    assert refused(d.http_port) and refused(d.ssh_port)
    assert d.proc.poll() is None  # still draining
    up.join(30)
    put.join(30)
    assert up.error is None and up.result.status == 200, (up.error,
                                                         up.result)
    assert put.error is None and put.result is True, put.error
    assert d.proc.wait(30) == 0
    assert time.time() - t0 < 20
    assert c.read("originals/h.bin") == a
    assert c.read("originals/s.bin") == b
    log = d.log()
    assert "event=stopped clean=yes" in log


def test_after_the_grace_the_rest_is_aborted_and_nothing_is_partial(
        make_daemon, backend):
    d = make_daemon(backend, "ShutdownGrace 2\n")
    d.start()
    c = d.add_client("cut")
    sp = for_client(d, c)
    before = sorted(c.list())
    started = threading.Event()
    up = Background(lambda: http_upload(sp, "h.bin", os.urandom(MiB), 30))
    put = Background(lambda: sftp_upload(
        d, c, "attachments/originals/s.bin", os.urandom(MiB), 30, started,
        pieces=24))
    assert started.wait(20)
    time.sleep(1)
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(30)
    assert time.time() - t0 < 2 + 12  # the grace, and the slack at most
    up.join(30)
    put.join(30)
    # both clients saw their upload fail...
    assert up.error is not None or up.result.status != 200
    assert put.error is not None
    # ...and nothing of either is stored, not even a temp file
    assert sorted(c.list()) == before
    if backend == "fs":
        root = c.location[len("file://"):]
        leftovers = [f for _, _, fs in os.walk(root) for f in fs]
        assert leftovers == []
    log = d.log()
    assert "sftp_put_aborted" in log


def ssh_banner(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        return s.recv(64).startswith(b"SSH-2.0-")


def http_ok(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_to_eof(s, 4096).startswith(b"HTTP/1.1 200")


MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req"


@pytest.fixture
def migrate_req():
    """Linux hands connections waiting in a closing listener's queue to
    another listener of the same SO_REUSEPORT group only with
    net.ipv4.tcp_migrate_req=1 (the README says to set it)."""
    try:
        with open(MIGRATE) as f:
            old = f.read().strip()
        with open(MIGRATE, "w") as f:
            f.write("1")
    except OSError as e:
        pytest.skip("cannot set net.ipv4.tcp_migrate_req: %s" % e)
    yield
    with open(MIGRATE, "w") as f:
        f.write(old)


@pytest.mark.parametrize("backend", ["fs"])
def test_reuseport_upgrade_refuses_nobody(make_daemon, backend, migrate_req):
    a = make_daemon("fs")
    a.conf_extra = "ShutdownGrace 20\nReusePort yes\n"
    a.write_conf()
    a.start()
    c = a.add_client("up")
    sp = for_client(a, c)
    # a client that connects in a loop, to both ports, all along
    stop = threading.Event()
    tally = {"http": 0, "ssh": 0, "failed": []}

    def loop():
        while not stop.is_set():
            for kind, fn, port in (("http", http_ok, a.http_port),
                                   ("ssh", ssh_banner, a.ssh_port)):
                try:
                    if fn(port):
                        tally[kind] += 1
                    else:
                        tally["failed"].append((kind, "bad answer"))
                except OSError as e:
                    tally["failed"].append((kind, repr(e)))
            time.sleep(0.01)

    looper = threading.Thread(target=loop, daemon=True)
    looper.start()
    data = os.urandom(2 * MiB)
    up = Background(lambda: http_upload(sp, "u.bin", data, 5))
    time.sleep(1)
    # B: the same configuration, started while A runs and uploads
    from conftest import Daemon
    b = Daemon.__new__(Daemon)
    b.__dict__.update(a.__dict__)
    b.log_path = os.path.join(a.workdir, "b.log")
    b.proc = None
    b.start(wait=False)
    deadline = time.time() + 20
    while time.time() < deadline and "event=started" not in b.log():
        assert b.proc.poll() is None, b.log()
        time.sleep(0.05)
    assert "event=started" in b.log()
    served_before = dict(tally)
    a.proc.send_signal(signal.SIGTERM)
    up.join(30)
    assert a.proc.wait(30) == 0
    time.sleep(1)  # B alone now
    stop.set()
    looper.join(30)
    try:
        assert up.error is None and up.result.status == 200, up.error
        assert c.read("originals/u.bin") == data
        assert tally["failed"] == []
        assert tally["http"] > served_before["http"] + 5
        assert tally["ssh"] > served_before["ssh"] + 5
        # B serves what A stored
        got = for_client(b, c).fileget("u.bin")
        assert got.status == 200 and got.body == data
    finally:
        b.stop()
