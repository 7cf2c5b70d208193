"""A crash: assetd is killed with SIGKILL while 50 uploads (HTTP, SFTP,
scp in both modes, rsync; slowed by the clients' own rate limits so that
they are midway) and a client archive are in flight, then started again.

After the restart, on both backends:
  - every object is its complete old version or its complete new one (new
    names: absent or complete), by hash, read through the backend and
    through HTTP;
  - no temp debris is visible to any client (sftp ls, rsync's listing,
    HTTP), and none is left on the backend itself: no fs temp file, no S3
    object but the expected ones, no unfinished multipart upload on the
    test S3 server's disk;
  - no partial archive is visible under /backups/;
  - the catalog passes PRAGMA integrity_check;
  - the daemon serves HTTP and SSH again (the time from exec to the first
    answer of each is printed: run with -s to see it) and takes uploads.
"""
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import ASSETCTL, Daemon
from faultproxy import FaultProxy, ProxiedS3
from specify_client import make_token
from sshtools import make_file, sftp_batch

SIZE = 512 * 1024       # at 64 KiB/s: 8 s, so every upload is midway
RATE_KB = 64
PER_KIND = {"http": 13, "sftp": 13, "scp": 6, "scp_legacy": 6, "rsync": 12}
assert sum(PER_KIND.values()) == 50


def sha(b):
    return hashlib.sha256(b).hexdigest() if b is not None else None


def read_or_none(c, rel):
    try:
        return c.read(rel)
    except Exception:
        return None


def launch(d, c, kind, local, name, rate=RATE_KB):
    """Start one upload of LOCAL to originals/NAME, slowed to RATE KiB/s
    (None: full speed); the Popen."""
    ssh = c.ssh_opts()
    rate = rate or 1000000
    remote = "%s@127.0.0.1" % c.name
    dev = subprocess.DEVNULL
    if kind == "http":
        tok = make_token(c.attachment_key, name, int(time.time()))
        argv = ["curl", "-sS", "--limit-rate", "%dk" % rate, "-o",
                "/dev/null", "-F", "file=@%s" % local, "-F", "token=" + tok,
                "-F", "store=" + name, "-F", "type=O", "-F", "coll=Demo",
                "%s/c/%s/fileupload" % (d.http, c.name)]
        return subprocess.Popen(argv, stdout=dev, stderr=dev)
    if kind == "sftp":
        argv = ["sftp", "-l", str(rate * 8), "-b", "-", "-P",
                str(d.ssh_port)] + ssh + [remote]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=dev,
                             stderr=dev)
        p.stdin.write(("put %s /attachments/originals/%s\n" %
                       (local, name)).encode())
        p.stdin.close()
        return p
    if kind in ("scp", "scp_legacy"):
        argv = ["scp", "-q", "-l", str(rate * 8), "-P", str(d.ssh_port)] \
            + ssh + (["-O"] if kind == "scp_legacy" else []) + \
            [local, "%s:/attachments/originals/%s" % (remote, name)]
        return subprocess.Popen(argv, stdout=dev, stderr=dev)
    argv = ["rsync", "--bwlimit=%d" % rate, "-e",
            " ".join(["ssh", "-p", str(d.ssh_port)] + ssh), local,
            "%s:attachments/originals/%s" % (remote, name)]
    return subprocess.Popen(argv, stdout=dev, stderr=dev)


def http_ready(d):
    try:
        with urllib.request.urlopen(d.http + "/web_asset_store.xml",
                                    timeout=0.5) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def ssh_ready(d):
    try:
        with socket.create_connection(("127.0.0.1", d.ssh_port),
                                      timeout=0.5) as s:
            s.settimeout(0.5)
            return s.recv(8).startswith(b"SSH-2.0")
    except OSError:
        return False


def visible_sftp(d, c):
    out = sftp_batch(d, c, ["cd /attachments/originals", "ls -1a"]).stdout
    return [ln.strip() for ln in out.splitlines()
            if ln.strip() and not ln.startswith("sftp>")]


def visible_rsync(d, c):
    ssh = " ".join(["ssh", "-p", str(d.ssh_port)] + c.ssh_opts())
    r = subprocess.run(["rsync", "-e", ssh, "--list-only", "-r",
                        "%s@127.0.0.1:attachments/" % c.name],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [ln.split()[-1] for ln in r.stdout.splitlines() if ln.strip()]


@pytest.mark.parametrize("backend", ["fs", "s3"])
def test_kill_9_mid_uploads_and_archive(backend, tmp_path, s3server):
    # on S3, through a fault proxy that only watches (it records which
    # multipart uploads were begun, completed and aborted)
    proxy = FaultProxy(s3server.port) if backend == "s3" else None
    d = Daemon(tmp_path / "d", backend,
               ProxiedS3(s3server, proxy) if proxy else None,
               "PerSourceMaxStartups 100\nMaxStartups 100\n")
    try:
        crash_and_check(d, backend, tmp_path, proxy)
    finally:
        d.stop()
        if proxy:
            proxy.close()


def upload_ids(proxy, method, pred=lambda q: True):
    out = set()
    for e in proxy.requests(method):
        for kv in e[2].split("&"):
            if kv.startswith("uploadId=") and pred(e[2]):
                out.add(kv[len("uploadId="):])
    return out


def crash_and_check(d, backend, tmp_path, proxy):
    # small parts, so that S3 uploads in flight are multipart uploads with
    # parts already stored when the daemon dies
    d.env["ASSETD_S3_PART_SIZE"] = str(128 * 1024)
    d.start()
    c = d.add_client("crash")

    # the old versions: half the names exist before, half are new
    old, new, kinds = {}, {}, {}
    i = 0
    for kind, n in PER_KIND.items():
        for j in range(n):
            name = "%s-%02d.bin" % (kind, j)
            kinds[name] = kind
            if j % 2 == 0:
                old[name] = make_file(str(tmp_path / ("old-" + name)),
                                      40000 + i, seed=1000 + i)
                r = sftp_batch(d, c, ["put %s /attachments/originals/%s" %
                                      (tmp_path / ("old-" + name), name)])
            new[name] = make_file(str(tmp_path / name), SIZE, seed=i)
            i += 1
    # something for the archive to chew on while it is killed
    for k in range(3):
        big = tmp_path / ("big%d.bin" % k)
        with open(big, "wb") as f:
            f.write(os.urandom(4 * 1024 * 1024))
        sftp_batch(d, c, ["put %s /attachments/big%d.bin" % (big, k)])
    for name in old:
        assert sha(c.read("originals/" + name)) == sha(old[name])

    # the last of each kind at full speed: those usually finish before the
    # kill, so complete new versions are checked too
    procs = [launch(d, c, kinds[n], str(tmp_path / n), n,
                    None if n.endswith("-%02d.bin" % (PER_KIND[kinds[n]] - 1))
                    else RATE_KB) for n in new]
    # wait until uploads are midway in the store: S3 multipart uploads
    # with parts stored, or fs temp files being written
    def midway():
        if proxy:
            return len(upload_ids(proxy, "PUT",
                                  lambda q: "partNumber=" in q))
        return sum(".assetd-tmp." in n for n in d.backend_list(d.assets))
    deadline = time.time() + 20
    while time.time() < deadline and midway() < 5:
        time.sleep(0.1)
    # the archive starts last, so it is surely midway when the kill comes
    arch = subprocess.Popen([ASSETCTL, "-f", d.conf_path, "archive",
                             "create", c.name], env=d.env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = d.ctl("archive", "list", c.name, json_out=True)
        if rows and rows[0]["state"] == "running":
            break
        time.sleep(0.05)
    time.sleep(0.3)
    assert arch.poll() is None, "the archive finished before the crash"
    running = sum(p.poll() is None for p in procs)
    assert running >= 40, "uploads were not in flight: %d" % running
    print("\n%d uploads in flight at the kill" % running)
    d.proc.send_signal(signal.SIGKILL)
    arch.send_signal(signal.SIGKILL)
    d.proc.wait()
    arch.wait()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    d.logf.close()
    d.logf = None
    if proxy:
        begun = upload_ids(proxy, "PUT", lambda q: "partNumber=" in q)
        done = upload_ids(proxy, "POST")
        unfinished = begun - done
        assert unfinished, "no multipart upload was midway"

    # restart: how long until each front end answers. HTTP uploads to S3
    # are staged in temp objects, which the start-up sweep leaves a day by
    # default (a live copy from one may still run on another node); here
    # nothing else runs, so it may take them at once.
    d.env["ASSETD_S3_TEMP_MIN_AGE"] = "0"
    t0 = time.monotonic()
    d.start(wait=False)
    t_http = t_ssh = None
    while (t_http is None or t_ssh is None) and time.monotonic() - t0 < 30:
        assert d.proc.poll() is None, d.log()[-2000:]
        if t_http is None and http_ready(d):
            t_http = time.monotonic() - t0
        if t_ssh is None and ssh_ready(d):
            t_ssh = time.monotonic() - t0
        time.sleep(0.005)
    assert t_http is not None and t_ssh is not None, "not serving again"
    t1 = time.monotonic()
    sftp_batch(d, c, ["ls /attachments"])
    t_login = time.monotonic() - t1
    print("\nrestart %s: HTTP answers %.3f s after exec, SSH banner %.3f s,"
          " then a full sftp login %.3f s" % (backend, t_http, t_ssh,
                                              t_login))

    # every object: complete old or complete new
    changed = 0
    for name in new:
        got = read_or_none(c, "originals/" + name)
        allowed = {sha(old.get(name)), sha(new[name])}
        assert sha(got) in allowed, "%s is neither old nor new" % name
        changed += sha(got) == sha(new[name])
        # the same through HTTP
        q = "coll=Demo&type=O&filename=%s" % name
        try:
            with urllib.request.urlopen(
                    "%s/c/%s/fileget?%s" % (d.http, c.name, q)) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            assert e.code == 404, e
            body = None
        assert sha(body) == sha(got), name
    print("%d of 50 uploads had completed, %d were cut" % (changed,
                                                            50 - changed))
    for k in range(3):
        assert len(c.read("big%d.bin" % k)) == 4 * 1024 * 1024

    # nothing but the expected names, to any client and on the backend
    expected = {n for n in new if read_or_none(c, "originals/" + n)}
    seen = visible_sftp(d, c)
    assert set(seen) - {".", ".."} == expected, seen
    listed = visible_rsync(d, c)
    assert {n[len("originals/"):] for n in listed
            if n.startswith("originals/") and n != "originals/"} == expected
    want_raw = {"originals/" + n for n in expected} | \
        {"big%d.bin" % k for k in range(3)}
    deadline = time.time() + 10
    while True:
        raw = {n for n in c.list() if not n.endswith("/")}
        if raw == want_raw or time.time() > deadline:
            break
        time.sleep(0.2)
    assert raw == want_raw, raw ^ want_raw
    if backend == "s3":
        # each multipart upload the crash left unfinished is aborted after
        # the restart (the test server answers AbortMultipartUpload with
        # 405 and keeps the parts, so the abort is checked where it is sent)
        deadline = time.time() + 15
        while time.time() < deadline:
            aborted = upload_ids(proxy, "DELETE")
            if unfinished <= aborted:
                break
            time.sleep(0.2)
        assert unfinished <= aborted, "never aborted: %s" % (
            unfinished - aborted)
    else:
        debris = [n for n in d.backend_list(d.assets) if ".assetd-tmp." in n]
        assert debris == []

    # no archive, partial or not, is offered
    r = sftp_batch(d, c, ["cd /backups", "ls -1a"])
    assert {ln.strip() for ln in r.stdout.splitlines()
            if ln.strip() and not ln.startswith("sftp>")} <= {".", ".."}

    # the killed archive is recorded as failed, and left nothing behind
    rows = d.ctl("archive", "list", c.name, json_out=True)
    assert [r["state"] for r in rows] == ["failed"], rows
    adir = os.path.join(d.var, "archives", c.name)
    assert not os.path.isdir(adir) or os.listdir(adir) == []
    # the catalog is sound
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.var,
                                                          "assetd.db"),
                         uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()

    # and uploads work again
    sftp_batch(d, c, ["put %s /attachments/originals/after.bin" %
                      (tmp_path / "sftp-00.bin")])
    assert sha(c.read("originals/after.bin")) == sha(new["sftp-00.bin"])
