"""MaxStartups: a cap on the SSH connections not logged in yet, from every
address together (OpenSSH's start:rate:full). With `MaxStartups 3` (=
3:100:3) three connections that read the banner and stay silent fill it;
a fourth is closed before the banner, logged and counted in /metrics;
logged-in sessions never count and keep working; a reload changes the
cap; once the silent ones leave, a new login works again. Every wait is on the daemon's own gauge
(assetd_unauthenticated_connections), never on a fixed sleep. And a bad
value is refused with its file and line.
"""
import re
import signal
import socket
import subprocess
import time

from conftest import ASSETD, metric
from sshtools import paramiko_sftp, sftp_batch

def wait_for(what, cond, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def unauth(d):
    return metric(d, "assetd_unauthenticated_connections", protocol="ssh")


def holder(d):
    """A raw TCP connection that reads the server's banner and then stays
    silent: it stays unauthenticated until LoginGraceTime."""
    s = socket.create_connection(("127.0.0.1", d.ssh_port), timeout=20)
    got = b""
    while b"\n" not in got:
        chunk = s.recv(256)
        assert chunk, "closed before the banner: %r" % got
        got += chunk
    assert got.startswith(b"SSH-2.0-"), got
    return s


def closed_without_banner(d):
    """Connect; True if the server closes it having sent nothing."""
    s = socket.create_connection(("127.0.0.1", d.ssh_port), timeout=20)
    s.settimeout(20)
    try:
        data = s.recv(256)
    except ConnectionResetError:
        data = b""
    finally:
        s.close()
    assert data == b"", "the server sent %r" % data
    return True


def test_max_startups_caps_unauthenticated_connections(make_daemon):
    d = make_daemon("fs", conf_extra="MaxStartups 3\n"
                    "PerSourcePenalties no\n")
    d.start()
    c = d.add_client("capped")
    # start()'s probe connection to the port must be gone first
    wait_for("no unauthenticated connection", lambda: unauth(d) == 0)

    # three logged-in sessions: they do not count against the cap
    sessions = [paramiko_sftp(d, c) for _ in range(3)]
    held = []
    try:
        wait_for("the logins to leave the count", lambda: unauth(d) == 0)
        # so three silent connections still get the banner ...
        for _ in range(3):
            held.append(holder(d))
        wait_for("three unauthenticated", lambda: unauth(d) == 3)
        # ... and the fourth is closed before it
        refused = metric(d, "assetd_connections_refused_total",
                         protocol="ssh", reason="max_startups")
        assert refused == 0
        assert closed_without_banner(d)
        wait_for("the drop to be counted", lambda: metric(
            d, "assetd_connections_refused_total", protocol="ssh",
            reason="max_startups") == 1)
        assert unauth(d) == 3
        wait_for("the drop's log line", lambda: re.search(
            r"event=ssh_refused addr=127\.0\.0\.1 reason=max_startups "
            r"max_startups=3:100:3 unauthenticated=3 ", d.log()))
        # a burst of drops: each counted, the log at most a line a second
        t0 = time.time()
        for _ in range(10):
            assert closed_without_banner(d)
        spanned = int(time.time() - t0) + 2
        wait_for("the burst to be counted", lambda: metric(
            d, "assetd_connections_refused_total", protocol="ssh",
            reason="max_startups") == 11)
        lines = re.findall(r"event=ssh_refused .*reason=max_startups .*"
                           r"dropped=(\d+)", d.log())
        assert 1 <= len(lines) <= spanned, lines
        assert sum(int(n) for n in lines) <= 11
        # the logged-in sessions still work meanwhile
        sftp, _t = sessions[0]
        with sftp.open("/attachments/during.txt", "wb") as f:
            f.write(b"written while the cap was full\n")
        assert c.read("during.txt") == b"written while the cap was full\n"
        for sftp, _t in sessions:
            assert "during.txt" in sftp.listdir("/attachments")
        # a reload raises the cap: one more is let in, the next dropped
        d.conf_extra = d.conf_extra.replace("MaxStartups 3", "MaxStartups 4")
        d.write_conf()
        d.proc.send_signal(signal.SIGHUP)
        wait_for("the reload", lambda: "max_startups=4:100:4" in d.log())
        held.append(holder(d))
        wait_for("four unauthenticated", lambda: unauth(d) == 4)
        assert closed_without_banner(d)
    finally:
        for s in held:
            s.close()
        for sftp, t in sessions:
            sftp.close()
            t.close()
    # the silent ones leave: the cap frees, and a new login works
    wait_for("the holders to leave the count", lambda: unauth(d) == 0)
    r = sftp_batch(d, c, ["ls /attachments"])
    assert "during.txt" in r.stdout
    assert d.proc.poll() is None


def test_bad_max_startups_names_file_and_line(tmp_path):
    for value, why in (("10:150:100", "rate"), ("20:30:10", "start is above"),
                       ("10:30", "start:rate:full")):
        conf = tmp_path / "bad.conf"
        conf.write_text("DataDir %s\n# limits\nMaxStartups %s\n"
                        % (tmp_path / "var", value))
        for args in (["-t", "-f", str(conf)], ["-f", str(conf)]):
            r = subprocess.run([ASSETD] + args, capture_output=True,
                               text=True, timeout=30)
            assert r.returncode == 1, r.stderr
            assert "%s:3: MaxStartups: '%s'" % (conf, value) in r.stderr, \
                r.stderr
            assert why in r.stderr, r.stderr
        assert not (tmp_path / "var").exists()
