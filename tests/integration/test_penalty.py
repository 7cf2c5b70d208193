"""Per-source penalties (PerSourcePenalties) against the real daemon: SSH
logins and HTTP tokens that fail too often from one address get that
address refused for a while, then let in again; exempt addresses never
are. Short durations keep the waits to seconds."""
import socket
import subprocess
import time

from conftest import wait_for
from specify_client import SpecifyClient
from sshtools import sftp_batch, ssh


def banner(port):
    """The first bytes the daemon says on a fresh connection ("" if it
    closes at once)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(3)
    try:
        return s.recv(64)
    except (socket.timeout, ConnectionResetError):
        return b""
    finally:
        s.close()


def start(make_daemon, conf):
    """A started fs daemon that penalises loopback (the harness exempts it)
    with the settings CONF."""
    d = make_daemon("fs", "PerSourcePenaltyExemptList none\n" + conf)
    d.start()
    return d


def wrong_key(tmp_path):
    path = str(tmp_path / "wrong")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    path], check=True)
    return path


def test_ssh_failures_refuse_the_source_then_expire(make_daemon, tmp_path):
    d = start(make_daemon,
              "PerSourcePenalties authfail:4s noauth:0 min:5s max:6s\n")
    c = d.add_client("pen")
    wrong = wrong_key(tmp_path)
    sftp_batch(d, c, ["pwd"])
    # one failure (4 s) stays under min: the right key still gets in
    assert ssh(d, c, "true", key=wrong).returncode == 255
    time.sleep(0.8)
    sftp_batch(d, c, ["pwd"])
    # a second (some 7 s > 5 s): refused before the banner, even the right key
    assert ssh(d, c, "true", key=wrong).returncode == 255
    assert wait_for(lambda: banner(d.ssh_port) == b"", 3,
                    interval=0.2)
    r = sftp_batch(d, c, ["pwd"], check=False)
    assert r.returncode != 0
    log = d.log()
    assert "event=penalty_source_refused service=ssh addr=127.0.0.1" in log
    assert "reason=authfail" in log
    # the penalty runs out (max 6 s) and the source is let in again
    assert wait_for(lambda: banner(d.ssh_port).startswith(b"SSH-2.0-"), 10,
                    interval=0.2)
    sftp_batch(d, c, ["pwd"])


def test_ssh_grace_exceeded_is_penalised(make_daemon):
    d = start(make_daemon, "LoginGraceTime 1\n"
              "PerSourcePenalties grace-exceeded:10s noauth:0 min:5s\n")
    s = socket.create_connection(("127.0.0.1", d.ssh_port))
    assert s.recv(64).startswith(b"SSH-2.0-")
    # say nothing: LoginGraceTime ends the connection and costs 10 s
    s.settimeout(5)
    try:
        while s.recv(4096):
            pass
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    assert wait_for(lambda: banner(d.ssh_port) == b"", 3,
                    interval=0.2)
    assert "reason=grace-exceeded" in d.log()


def test_exempt_source_is_never_refused(make_daemon, tmp_path):
    d = make_daemon("fs", "PerSourcePenaltyExemptList 10.0.0.0/8, 127.0.0.1\n"
                    "PerSourcePenalties authfail:30s min:5s\n")
    d.start()
    c = d.add_client("exempt")
    wrong = wrong_key(tmp_path)
    for _ in range(3):
        assert ssh(d, c, "true", key=wrong).returncode == 255
    time.sleep(0.8)
    assert banner(d.ssh_port).startswith(b"SSH-2.0-")
    sftp_batch(d, c, ["pwd"])
    assert "penalty_source_refused" not in d.log()


def test_http_bad_tokens_answer_429_then_recover(make_daemon):
    d = start(make_daemon, "RequireKeyForGet yes\n"
              "PerSourcePenalties tokenfail:2s min:5s max:6s\n")
    c = d.add_client("webpen", ssh_key=False)
    sp = SpecifyClient(d.http + "/web_asset_store.xml", c.attachment_key,
                       "Demo")
    sp.start()
    good = sp.new_name(".jpg")
    assert sp.upload(b"first", good).status == 200
    # two bad tokens (4 s) are answered 403 and stay under min
    for _ in range(2):
        r = sp.upload(b"x", sp.new_name(".jpg"), token="0" * 32 + ":1")
        assert r.status == 403
    assert sp.fileget(good).status == 200
    # a third (6 s > 5 s) refuses the address: every request that needs a
    # token is answered 429, whatever its token, with the CORS header on
    # uploads; nothing is stored or deleted
    assert sp.delete(good, token="bad").status == 403
    blocked = sp.new_name(".jpg")
    r = sp.upload(b"second", blocked)
    assert r.status == 429, r
    assert r.headers.get("access-control-allow-origin") == "*"
    assert b"try again later" in r.body
    assert sp.fileget(good).status == 429
    assert sp.delete(good).status == 429
    assert sp.testkey().status == 429
    # requests without a token are not affected
    assert sp.request("GET", d.http + "/web_asset_store.xml").status == 200
    log = d.log()
    assert "event=penalty_source_refused service=http addr=127.0.0.1" in log
    assert "reason=tokenfail" in log
    names = c.list()
    assert any(n.endswith("originals/" + good) for n in names), names
    assert not any(blocked in n for n in names)
    # it runs out; the good token works again and the file is intact
    assert wait_for(lambda: sp.fileget(good).status == 200, 10,
                    interval=0.2)
    assert sp.fileget(good).body == b"first"
    assert sp.upload(b"third", sp.new_name(".jpg")).status == 200
