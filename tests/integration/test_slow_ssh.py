"""Slow SSH clients cannot starve the daemon: from one address (127.0.0.2,
a loopback alias) a client opens connections to the SSH port and sends
nothing, or trickles its identification string one byte a second, and
keeps opening more. The per-address limit on unauthenticated connections
(PerSourceMaxStartups) refuses the extra ones at once, so the daemon's
thread count stays bounded; LoginGraceTime closes the held ones, trickle
or not (the grace is a deadline, not an idle timer); and meanwhile a
client from another address logs in and works.
"""
import socket
import threading
import time

from sshtools import sftp_batch

GRACE = 3
PER_SOURCE = 4


def threads(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no thread count")


def attacker_conn():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.2", 0))
    return s


def closed_by_server(s, timeout):
    """True if the server closes S within TIMEOUT seconds (draining what
    it sends: its banner)."""
    s.settimeout(0.2)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if s.recv(4096) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def test_silent_and_trickling_clients(make_daemon):
    d = make_daemon("fs", conf_extra="LoginGraceTime %d\n"
                    "PerSourceMaxStartups %d\n" % (GRACE, PER_SOURCE))
    d.start()
    c = d.add_client("patient")
    sftp_batch(d, c, ["ls /attachments"])
    base = threads(d.proc.pid)

    held = []
    stop = threading.Event()

    def trickle(s):
        for b in b"SSH-2.0-slowloris\r\n" + b"\0" * 64:
            if stop.is_set():
                return
            try:
                s.send(bytes([b]))
            except OSError:
                return
            time.sleep(1)

    # two silent, two trickling: the address's whole allowance
    for i in range(PER_SOURCE):
        s = attacker_conn()
        s.connect(("127.0.0.1", d.ssh_port))
        held.append(s)
        if i % 2:
            threading.Thread(target=trickle, args=(s,), daemon=True).start()
    t_held = time.time()
    time.sleep(0.3)
    try:
        # more from the same address are dropped at once
        for _ in range(20):
            s = attacker_conn()
            s.connect(("127.0.0.1", d.ssh_port))
            assert closed_by_server(s, 2), "an extra connection was kept"
            s.close()
        # the threads the attack costs are bounded by the allowance
        under = threads(d.proc.pid)
        assert under <= base + PER_SOURCE + 2, (base, under)
        # another address logs in and works meanwhile
        r = sftp_batch(d, c, ["ls /attachments"])
        assert r.returncode == 0
        # the held ones are closed at the grace deadline, trickle or not
        for s in held:
            left = GRACE + 10 - (time.time() - t_held)
            assert closed_by_server(s, max(left, 0.5)), \
                "a slow client outlived LoginGraceTime"
    finally:
        stop.set()
        for s in held:
            s.close()
    assert time.time() - t_held < GRACE + 10
    # the allowance is free again
    s = attacker_conn()
    s.connect(("127.0.0.1", d.ssh_port))
    s.settimeout(5)
    assert s.recv(8).startswith(b"SSH-2.0")
    s.close()
    # the threads of closed connections end a moment after the close (a
    # busy machine may take seconds)
    deadline = time.time() + 20
    while threads(d.proc.pid) > base + 2 and time.time() < deadline:
        time.sleep(0.1)
    assert threads(d.proc.pid) <= base + 2
    assert d.proc.poll() is None
    print("\nthreads: %d at rest, %d under the attack" % (base, under))
