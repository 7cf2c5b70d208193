"""What the front ends record: /metrics counts and the audit log, after
scripted traffic on every protocol (curl, Specify's HTTP calls, OpenSSH's
sftp and scp, Debian's rsync), on both backends.

Each test scrapes /metrics before and after its traffic and checks the
exact deltas of the series the traffic must move, then reads the audit log
back with `assetctl audit --json`."""
import os
import subprocess

import pytest

import media
import sshtools
from conftest import scrape
from specify_client import for_client

RSYNC = "/usr/bin/rsync"
def settled(d, timeout=10):
    """A scrape once the counts stop moving: a request is counted when the
    server has finished it, which may be a moment after the client has
    its answer."""
    import time
    last = scrape(d)
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.2)
        now = scrape(d)
        if now == last:
            return now
        last = now
    return last


def key(family, **labels):
    return (family, frozenset(labels.items()))


class Delta:
    def __init__(self, before, after):
        self.before, self.after = before, after

    def __call__(self, family, **labels):
        k = key(family, **labels)
        return self.after.get(k, 0) - self.before.get(k, 0)

    def total(self, family, **match):
        """Sum of the deltas of every series of FAMILY whose labels include
        MATCH."""
        want = set(match.items())
        keys = set(self.after) | set(self.before)
        return sum(self.after.get(k, 0) - self.before.get(k, 0)
                   for k in keys if k[0] == family and want <= set(k[1]))


def rsync(d, c, *args):
    ssh = ["ssh", "-p", str(d.ssh_port)] + c.ssh_opts()
    argv = [RSYNC, "-e", " ".join(ssh)]
    for a in args:
        argv.append("%s@127.0.0.1:%s" % (c.name, a[2:])
                    if a.startswith("R:") else a)
    p = subprocess.run(argv, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def audit(d, *args):
    return d.ctl("audit", *args, json_out=True)


def test_every_protocol_counted_and_audited(daemon, tmp_path):
    d = daemon
    c = d.add_client("mx")
    fp = d.ctl("key", "list", "mx", json_out=True)[0]["fingerprint"]
    data = os.urandom(5000)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    before = settled(d)

    # HTTP: one upload and one get with curl, one delete as Specify does
    sp = for_client(d, c)
    r = subprocess.run(
        ["curl", "-sS", "--max-time", "60", "-o", "/dev/null", "-w",
         "%{http_code}", "-F", "file=@%s" % src, "-F",
         "token=" + sp.token("h.bin"), "-F", "store=h.bin", "-F", "type=O",
         "-F", "coll=Demo", "%s/c/%s/fileupload" % (d.http, c.name)],
        capture_output=True, text=True, timeout=90)
    assert r.stdout == "200", r
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "-o",
                        str(tmp_path / "h.got"), "-w", "%{http_code}",
                        sp.fileget_url("h.bin")],
                       capture_output=True, text=True, timeout=90)
    assert r.stdout == "200" and (tmp_path / "h.got").read_bytes() == data
    assert sp.delete("h.bin").status == 200
    # a refused upload (bad token): counted with its status, audited
    assert sp.upload(b"no", "bad.bin", token="0" * 32 + ":1").status == 403

    # sftp: put, get, rename, mkdir, rmdir, rm
    sshtools.sftp_batch(d, c, [
        "put %s attachments/originals/s.bin" % src,
        "get attachments/originals/s.bin %s" % (tmp_path / "back"),
        "rename attachments/originals/s.bin attachments/originals/t.bin",
        "mkdir attachments/newdir",
        "rmdir attachments/newdir",
        "rm attachments/originals/t.bin",
    ])
    assert (tmp_path / "back").read_bytes() == data
    # scp -O (the legacy protocol): one upload, one download
    sshtools.scp(d, c, [str(src), "R:attachments/originals/o.bin"],
                 legacy=True)
    sshtools.scp(d, c, ["R:attachments/originals/o.bin",
                        str(tmp_path / "o.back")], legacy=True)
    assert (tmp_path / "o.back").read_bytes() == data
    # rsync: push two files, then push again with --delete removing one
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "r1.bin").write_bytes(data)
    (tree / "r2.bin").write_bytes(data[:1234])
    rsync(d, c, "-a", str(tree) + "/", "R:attachments/rs/")
    (tree / "r2.bin").unlink()
    rsync(d, c, "-a", "--delete", str(tree) + "/", "R:attachments/rs/")
    # a refused SSH login: a key nobody registered
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(stranger)], check=True)
    r = sshtools.ssh(d, c, "true", key=str(stranger))
    assert r.returncode == 255

    m = Delta(before, settled(d))
    R = "assetd_requests_total"
    B = "assetd_bytes_total"
    assert m(R, protocol="http", operation="fileupload", status="200") == 1
    assert m(R, protocol="http", operation="fileupload", status="403") == 1
    assert m(R, protocol="http", operation="fileget", status="200") == 1
    assert m(R, protocol="http", operation="filedelete", status="200") == 1
    assert m(B, protocol="http", operation="fileget", direction="out") == 5000
    up = m(B, protocol="http", operation="fileupload", direction="in")
    assert 5000 + 2 < up < 5000 + 2000  # the body: file plus form fields
    for op in ("write", "read", "rename", "mkdir", "rmdir", "delete"):
        assert m(R, protocol="sftp", operation=op, status="ok") == 1, op
    assert m(B, protocol="sftp", operation="write", direction="in") == 5000
    assert m(B, protocol="sftp", operation="read", direction="out") == 5000
    assert m(R, protocol="scp", operation="write", status="ok") == 1
    assert m(R, protocol="scp", operation="read", status="ok") == 1
    assert m(B, protocol="scp", operation="write", direction="in") == 5000
    assert m(B, protocol="scp", operation="read", direction="out") == 5000
    assert m(R, protocol="rsync", operation="write", status="ok") == 2
    assert m(R, protocol="rsync", operation="delete", status="ok") == 1
    assert m(R, protocol="rsync", operation="push", status="ok") == 2
    assert m(B, protocol="rsync", operation="push", direction="in") > 6234
    # logins: sftp, two scp, two rsync; one refused
    assert m("assetd_auth_total", protocol="ssh", result="ok") == 5
    assert m("assetd_auth_total", protocol="ssh", result="denied") == 1
    assert m("assetd_auth_total", protocol="http", result="denied") == 1
    # nothing is left open
    after = m.after
    for fam in ("assetd_sessions_active", "assetd_transfers_active"):
        for proto in ("http", "sftp", "scp", "rsync"):
            assert after.get(key(fam, protocol=proto), 0) == 0, (fam, proto)
    # S3 requests are counted where they are made, and only on S3; the
    # latency histogram saw every one of them
    s3n = m.total("assetd_s3_requests_total")
    if d.backend == "s3":
        assert m.total("assetd_s3_requests_total", operation="PutObject",
                       status="200") >= 7
        assert m.total("assetd_s3_requests_total",
                       operation="GetObject") >= 3
        assert m.total("assetd_s3_requests_total",
                       operation="DeleteObject") >= 3
        hist = sum(v for (f, _), v in after.items()
                   if f == "assetd_s3_request_seconds_count")
        reqs = sum(v for (f, _), v in after.items()
                   if f == "assetd_s3_requests_total")
        assert hist == reqs and s3n > 0
    else:
        assert s3n == 0

    # the audit log: one line per change and login, none per read
    rows = audit(d, "--client", "mx")
    seen = [(r["protocol"], r["op"], r["path"], r["result"]) for r in rows]
    A = "/attachments/"
    for want in [
        ("http", "write", A + "originals/h.bin", "ok"),
        ("http", "delete", A + "originals/h.bin", "ok"),
        ("http", "write", A + "originals/bad.bin", "http 403"),
        ("sftp", "write", A + "originals/s.bin", "ok"),
        ("sftp", "rename", A + "originals/s.bin", "ok"),
        ("sftp", "mkdir", A + "newdir", "ok"),
        ("sftp", "rmdir", A + "newdir", "ok"),
        ("sftp", "delete", A + "originals/t.bin", "ok"),
        ("scp", "write", A + "originals/o.bin", "ok"),
        ("rsync", "write", A + "rs/r1.bin", "ok"),
        ("rsync", "write", A + "rs/r2.bin", "ok"),
        ("rsync", "delete", A + "rs/r2.bin", "ok"),
        ("ssh", "login", "", "ok"),
    ]:
        assert want in seen, (want, seen)
    assert not [s for s in seen if s[1] == "read"]
    ren = [r for r in rows if r["op"] == "rename"][0]
    assert ren["to"] == A + "originals/t.bin"
    w = [r for r in rows if r["protocol"] == "sftp" and r["op"] == "write"][0]
    assert w["bytes"] == 5000 and w["identity"] == fp
    assert w["addr"] == "127.0.0.1" and w["client"] == "mx"
    h = [r for r in rows if r["protocol"] == "http" and r["op"] == "write"][0]
    assert h["identity"] == "key:client" and h["bytes"] == 5000
    logins = [r for r in rows if r["op"] == "login"]
    assert len([r for r in logins if r["result"] == "ok"]) == 5
    denied = [r for r in logins if r["result"].startswith("denied")]
    assert len(denied) == 1 and denied[0]["identity"] != fp
    assert "not registered" in denied[0]["result"]
    # no secret in any line
    raw = "".join(open(os.path.join(d.var, "audit", n)).read()
                  for n in os.listdir(os.path.join(d.var, "audit")))
    assert c.attachment_key not in raw
    assert d.attachment_key not in raw
    assert "PRIVATE KEY" not in raw


def test_thumbnail_generated_once_then_cached(daemon):
    d = daemon
    c = d.add_client("tx")
    sp = for_client(d, c)
    assert sp.upload(media.png_bytes(300, 200), "p.png").status == 200
    before = settled(d)
    one = sp.thumbnail("p.png", 64)
    two = sp.thumbnail("p.png", 64)
    assert one.status == two.status == 200 and one.body == two.body
    m = Delta(before, settled(d))
    assert m("assetd_thumbnails_total", result="generated") == 1
    assert m("assetd_thumbnails_total", result="cached") == 1
    assert m("assetd_bytes_total", protocol="http", operation="fileget",
             direction="out") == 2 * len(one.body)


@pytest.mark.parametrize("backend", ["fs"])
def test_audit_query_by_client_and_time(daemon, tmp_path):
    d = daemon
    a = d.add_client("qa")
    b = d.add_client("qb")
    for cl in (a, b):
        assert for_client(d, cl).upload(b"z" * 10, "q.bin").status == 200
    settled(d)  # audited when the request has ended
    assert {r["client"] for r in audit(d)} >= {"qa", "qb"}
    assert {r["client"] for r in audit(d, "--client", "qa")} == {"qa"}
    assert len(audit(d, "--since", "1h")) >= 2
    assert audit(d, "--since", "2999-01-01") == []
    assert len(audit(d, "--since", "2000-01-01T00:00:00Z")) >= 2
    r = d.ctl("audit", "--since", "soon", check=False)
    assert r.returncode == 2 and "--since" in r.stderr
    # the table for people names the columns and the events
    out = d.ctl("audit", "--client", "qb").stdout
    assert out.splitlines()[0].split()[:4] == ["TIME", "CLIENT", "PROTOCOL",
                                               "OP"]
    assert "/attachments/originals/q.bin" in out and "qa" not in out


def test_audit_dir_and_retention_from_the_configuration(make_daemon,
                                                        tmp_path):
    adir = tmp_path / "elsewhere"
    d = make_daemon("fs", "AuditDir %s\nAuditRetentionDays 2\n" % adir)
    adir.mkdir()
    old = adir / "audit-20000101.jsonl"
    old.write_text('{"ts":"2000-01-01T00:00:00Z","t":946684800,'
                   '"client":"qz","op":"write"}\n')
    d.start()
    c = d.add_client("qz")
    assert for_client(d, c).upload(b"z", "r.bin").status == 200
    settled(d)
    assert not old.exists()  # older than the retention: removed at start
    rows = audit(d)
    assert [r["op"] for r in rows if r["client"] == "qz"] == ["write"]
    assert not os.path.exists(os.path.join(d.var, "audit"))


def test_audit_off(make_daemon):
    d = make_daemon("fs", "AuditDir off\n")
    d.start()
    c = d.add_client("qo")
    assert for_client(d, c).upload(b"z", "r.bin").status == 200
    assert not os.path.exists(os.path.join(d.var, "audit"))
    r = d.ctl("audit", check=False)
    assert r.returncode == 1 and "off" in r.stderr


def test_s3_requests_and_retries_counted_as_the_server_saw_them(
        tmp_path, s3server):
    """Behind a proxy that logs every request and answers the first PUT
    with 503 SlowDown: /metrics counts exactly the requests the S3 server
    side saw, by operation and status, and the one retry."""
    from conftest import Daemon
    from faultproxy import FaultProxy, ProxiedS3
    proxy = FaultProxy(s3server.port)
    d = Daemon(tmp_path / "d", "s3", ProxiedS3(s3server, proxy))
    d.env.update(ASSETD_S3_RETRY_BASE_MS="10")
    try:
        d.start()
        c = d.add_client("sx")
        sp = for_client(d, c)
        before = settled(d)
        proxy.clear()
        proxy.add("503", method="PUT", times=1)
        data = os.urandom(100000)
        assert sp.upload(data, "r.bin").status == 200
        got = sp.fileget("r.bin")
        assert got.status == 200 and got.body == data
        m = Delta(before, settled(d))
        seen = proxy.requests()
        assert m.total("assetd_s3_requests_total") == len(seen)
        puts = [e for e in seen if e[0] == "PUT"]
        assert [e[3] for e in puts] == ["503", "pass"]
        S = "assetd_s3_requests_total"
        assert m(S, operation="PutObject", status="503") == 1
        assert m(S, operation="PutObject", status="200") == 1
        assert m("assetd_s3_retries_total", operation="PutObject") == 1
        assert m.total(S, operation="GetObject") == \
            len([e for e in seen if e[0] == "GET" and e[1].endswith(
                "/r.bin")])
        assert m.total(S, operation="GetObject") >= 1
        assert m("assetd_s3_request_seconds_count", operation="PutObject") \
            == 2
    finally:
        d.stop()
        proxy.close()


@pytest.mark.parametrize("backend", ["fs"])
def test_last_job_runs_come_from_the_catalog(daemon):
    """A run made with assetctl, in another process, shows in the daemon's
    "last run" gauges: they are read from the catalog's runs."""
    import time
    d = daemon
    c = d.add_client("jx")
    assert for_client(d, c).upload(b"j" * 100, "j.bin").status == 200
    m = scrape(d)
    assert not [k for k in m if k[0] == "assetd_job_last_success"]
    t0 = time.time()
    d.ctl("archive", "create", "jx")
    runs = d.ctl("runs", json_out=True)
    assert runs and runs[0]["kind"] == "archive"
    m = scrape(d)
    assert m[key("assetd_job_last_success", kind="archive")] == 1
    ts = m[key("assetd_job_last_run_timestamp_seconds", kind="archive")]
    assert t0 - 2 <= ts <= time.time() + 2
