"""assetctl archive: per-client tar.xz / tar.zst archives, on both backends.

The archive is listed with the real tar (tar -tJvf, tar --zstd -tvf),
extracted and compared byte for byte (and mtime) with the client's files;
list/show/remove/prune; a run stopped midway leaves a failed row and no
visible archive; the runs table records each archive."""
import os
import re
import signal
import subprocess
import time

import pytest

from backuputil import Loc
from conftest import ASSETCTL, metrics_text

FILES = {
    "originals/a.jpg": (b"\xff\xd8\xff\xe0 a jpeg" + os.urandom(3000),
                        1600000000),
    "originals/b.pdf": (b"%PDF-1.4 " + os.urandom(70000), 1600000100),
    "thumbnails/a_200.jpg": (b"\xff\xd8\xff thumb", 1600000200),
    "Coll-2/originals/c.png": (b"\x89PNG\r\n\x1a\n" + os.urandom(500),
                               1600000300),
    "Coll-2/thumbnails/c_123.png": (b"\x89PNG\r\n\x1a\n", 1600000400),
    "with space/ünïcode.txt": (b"names are kept as they are", 1600000500),
}


def setup_client(make_daemon, backend, s3server, tmp_path, name="kufish"):
    d = make_daemon(backend)
    if backend == "s3":
        # archives go to _archives/ in the region's snapshot location
        d.ctl("region", "set", "test", "--snapshot",
              "s3://%s/snap/" % s3server.create_bucket())
    c = d.add_client(name, ssh_key=False)
    loc = Loc(c.location, s3server if backend == "s3" else None)
    for n, (data, mtime) in FILES.items():
        loc.put(n, data, mtime)
    return d, c, loc


def create(d, client, *args):
    out = d.ctl("archive", "create", client, *args, json_out=True)
    assert len(out) == 1
    return out[0]


def fetch(d, url, dest):
    with open(dest, "wb") as f:
        f.write(d.backend_read(url))
    return dest


def check_tar(path, listing_flags, extract_flags, dest):
    r = subprocess.run(["tar"] + listing_flags + [path], capture_output=True,
                       text=True, check=True)
    listed = r.stdout
    for n, (data, mtime) in FILES.items():
        # "-rw-r--r-- 0/0  3008 2020-09-13 12:26 originals/a.jpg"
        line = [l for l in listed.splitlines() if l.endswith(" " + n)]
        assert len(line) == 1, (n, listed)
        assert re.search(r"\s%d\s" % len(data), line[0])
    os.makedirs(dest)
    subprocess.run(["tar"] + extract_flags + [path, "-C", dest], check=True)
    got = {}
    for dirpath, _, files in os.walk(dest):
        for fn in files:
            p = os.path.join(dirpath, fn)
            got[os.path.relpath(p, dest)] = p
    assert sorted(got) == sorted(FILES)
    for n, (data, mtime) in FILES.items():
        with open(got[n], "rb") as f:
            assert f.read() == data, n
        assert int(os.stat(got[n]).st_mtime) == mtime, n


@pytest.mark.parametrize("fmt", ["tar.xz", "tar.zst"])
def test_create_and_read_back(make_daemon, backend, s3server, tmp_path, fmt):
    d, c, loc = setup_client(make_daemon, backend, s3server, tmp_path)
    a = create(d, "kufish", "--format", fmt)
    assert a["state"] == "done" and a["error"] == ""
    assert a["objects"] == len(FILES)
    assert a["format"] == fmt
    assert a["location"].endswith("." + fmt)
    assert "/kufish/kufish-assets-" in a["location"]
    if backend == "s3":
        assert a["location"].startswith("s3://") and "/snap/_archives/" \
            in a["location"]
    else:
        assert a["location"].startswith("file://" + d.var + "/archives/")
    path = fetch(d, a["location"], str(tmp_path / ("a." + fmt)))
    assert os.path.getsize(path) == a["size"]
    import hashlib
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == a["sha256"]
    if fmt == "tar.xz":
        check_tar(path, ["-tJvf"], ["-xJf"], str(tmp_path / "x"))
    else:
        check_tar(path, ["--zstd", "-tvf"], ["--zstd", "-xf"],
                  str(tmp_path / "x"))
    # recorded: archives and runs
    show = d.ctl("archive", "show", str(a["id"]), json_out=True)
    assert show == a
    run = d.ctl("runs", "--kind", "archive", json_out=True)[0]
    assert (run["what"], run["state"], run["listed"], run["bytes"]) == \
        ("kufish", "done", len(FILES), a["size"])


def test_list_remove_prune(make_daemon, backend, s3server, tmp_path):
    d, c, loc = setup_client(make_daemon, backend, s3server, tmp_path)
    d.add_client("other", ssh_key=False)
    made = [create(d, "kufish", "--format", "tar.zst") for _ in range(3)]
    other = create(d, "other")
    assert len({a["location"] for a in made}) == 3  # never overwritten
    lst = d.ctl("archive", "list", "kufish", json_out=True)
    assert [a["id"] for a in lst] == [a["id"] for a in reversed(made)]
    r = d.ctl("archive", "list")
    assert "kufish" in r.stdout and "other" in r.stdout

    r = d.ctl("archive", "prune", "kufish", "--keep", "2", "--dry-run")
    assert "would remove archive %d" % made[0]["id"] in r.stdout
    assert d.backend_read(made[0]["location"])   # still there
    r = d.ctl("archive", "prune", "kufish", "--keep", "2")
    assert "removed 1 archive" in r.stdout
    left = d.ctl("archive", "list", "kufish", json_out=True)
    assert [a["id"] for a in left] == [made[2]["id"], made[1]["id"]]
    with pytest.raises(Exception):
        d.backend_read(made[0]["location"])
    # the other client's archive is untouched
    assert d.backend_read(other["location"])

    d.ctl("archive", "remove", str(made[1]["id"]))
    with pytest.raises(Exception):
        d.backend_read(made[1]["location"])
    assert [a["id"] for a in d.ctl("archive", "list", "kufish",
                                   json_out=True)] == [made[2]["id"]]
    r = d.ctl("archive", "remove", "999", check=False)
    assert r.returncode == 1 and "no archive 999" in r.stderr
    r = d.ctl("archive", "create", "nosuch", check=False)
    assert r.returncode == 1
    r = d.ctl("archive", "create", "kufish", "--format", "zip", check=False)
    assert r.returncode == 2


def archive_names(d, backend, s3server):
    """Every archive object visible for kufish, straight from the backend."""
    if backend == "fs":
        p = os.path.join(d.var, "archives", "kufish")
        if not os.path.isdir(p):
            return []
        return sorted(n for n in os.listdir(p)
                      if not n.startswith(".assetd-tmp."))
    region = d.ctl("region", "show", "test", json_out=True)
    snap = Loc(region["snapshot"], s3server)
    return [n for n in snap.names() if n.startswith("_archives/kufish/")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stopped_midway_leaves_no_archive(make_daemon, backend, s3server,
                                          tmp_path, sig):
    d, c, loc = setup_client(make_daemon, backend, s3server, tmp_path)
    # enough incompressible bytes that xz is still busy when stopped
    for i in range(3):
        loc.put("originals/big%d.bin" % i, os.urandom(6 * 1024 * 1024))
    p = subprocess.Popen([ASSETCTL, "-f", d.conf_path, "archive", "create",
                          "kufish"], env=d.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = d.ctl("archive", "list", "kufish", json_out=True)
        if rows and rows[0]["state"] == "running":
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert p.poll() is None, "the archive finished before it was stopped"
    p.send_signal(sig)
    p.wait(30)
    assert p.returncode != 0
    rows = d.ctl("archive", "list", "kufish", json_out=True)
    assert len(rows) == 1
    assert rows[0]["state"] == "failed"
    assert "interrupted" in rows[0]["error"]
    assert archive_names(d, backend, s3server) == []
    # and a new run still works
    a = create(d, "kufish", "--format", "tar.zst")
    assert a["state"] == "done" and a["objects"] == len(FILES) + 3


def ssh_fetch(d, c, remote, dest, tool):
    """Fetch REMOTE (a path in C's virtual tree) to DEST with TOOL."""
    port = str(d.ssh_port)
    opts = c.ssh_opts()
    env = dict(d.env)
    if tool == "sftp":
        batch = dest + ".batch"
        with open(batch, "w") as f:
            f.write("get %s %s\n" % (remote, dest))
        argv = ["sftp", "-P", port] + opts + ["-b", batch,
                                              "%s@127.0.0.1" % c.name]
    elif tool in ("scp", "scp -O"):
        argv = ["scp"] + (["-O"] if tool == "scp -O" else []) + \
            ["-P", port] + opts + ["%s@127.0.0.1:%s" % (c.name, remote), dest]
    else:
        argv = ["rsync", "-e", " ".join(["ssh", "-p", port] + opts),
                "%s@127.0.0.1:%s" % (c.name, remote), dest]
    return subprocess.run(argv, capture_output=True, env=env, timeout=120)


def test_fetch_over_ssh(make_daemon, backend, s3server, tmp_path):
    d = make_daemon(backend)
    if backend == "s3":
        d.ctl("region", "set", "test", "--snapshot",
              "s3://%s/snap/" % s3server.create_bucket())
    c = d.add_client("kufish")
    other = d.add_client("other")
    loc = Loc(c.location, s3server if backend == "s3" else None)
    for n, (data, mtime) in FILES.items():
        loc.put(n, data, mtime)
    a = create(d, "kufish")
    want = d.backend_read(a["location"])
    name = a["location"].rsplit("/", 1)[1]
    d.start()
    for tool in ("sftp", "scp", "scp -O", "rsync"):
        dest = str(tmp_path / ("got-" + tool.replace(" ", "")))
        r = ssh_fetch(d, c, "/backups/" + name, dest, tool)
        assert r.returncode == 0, (tool, r.stderr)
        with open(dest, "rb") as f:
            assert f.read() == want, tool
    # the old name of the weekly tarball
    dest = str(tmp_path / "old-name.tar.xz")
    r = ssh_fetch(d, c, "/kufish-assets.tar.xz", dest, "scp")
    assert r.returncode == 0, r.stderr
    with open(dest, "rb") as f:
        assert f.read() == want
    # another client sees none of it
    r = ssh_fetch(d, other, "/backups/" + name, str(tmp_path / "x"), "scp")
    assert r.returncode != 0
    assert not os.path.exists(str(tmp_path / "x"))


def test_daemon_runs_scheduled_jobs(make_daemon, tmp_path):
    """Both schedules due every minute: within about a minute the daemon
    has synced the region and archived the client, logged and recorded."""
    d = make_daemon("fs", conf_extra="SyncSchedule * * * * *\n"
                    "ArchiveSchedule * * * * *\nArchiveKeep 1\n")
    snap = Loc.new("fs", tmp_path, None, "snap")
    d.ctl("region", "set", "test", "--snapshot", snap.url)
    c = d.add_client("kufish", ssh_key=False)
    loc = Loc(c.location)
    for n, (data, mtime) in FILES.items():
        loc.put(n, data, mtime)
    d.start()
    deadline = time.time() + 90
    kinds = set()
    base_extra = d.conf_extra
    reloads = 0
    while time.time() < deadline and kinds != {"sync", "archive"}:
        # Reload all along, jobs running or not: the scheduler works on
        # its own copy of the configuration (the daemon replaces its own
        # on SIGHUP), so the jobs finish and the daemon lives.
        for _ in range(5):
            d.conf_extra = base_extra + "SyncConcurrency %d\n" % (
                4 + reloads % 8)
            d.write_conf()
            d.proc.send_signal(signal.SIGHUP)
            reloads += 1
            time.sleep(0.2)
        kinds = {r["kind"] for r in d.ctl("runs", json_out=True)
                 if r["state"] == "done"}
    assert kinds == {"sync", "archive"}, d.ctl("runs").stdout
    assert d.proc.poll() is None
    assert d.log().count("event=reloaded") >= reloads // 2
    arch = d.ctl("archive", "list", "kufish", json_out=True)
    assert arch[0]["state"] == "done"
    assert arch[0]["objects"] == len(FILES)
    assert snap.get("kufish/originals/a.jpg") == FILES["originals/a.jpg"][0]
    log = d.log()
    assert "event=sync_done region=test" in log
    assert "event=archive_done client=kufish" in log
    assert "event=schedule_start kind=sync" in log
    # the scheduler's runs are counted in /metrics too
    metrics = metrics_text(d)
    for kind in ("sync", "archive"):
        line = [l for l in metrics.splitlines() if l.startswith(
            'assetd_job_runs_total{kind="%s",state="ok"} ' % kind)]
        assert line and float(line[0].split()[-1]) >= 1, metrics
        assert 'assetd_job_last_success{kind="%s"} 1\n' % kind in metrics
    # a reload turns a schedule off (and the change is logged)
    d.conf_extra = "SyncSchedule off\nArchiveSchedule 0 3 * * 0\n"
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    wait_log = time.time() + 10
    while time.time() < wait_log and \
            "event=schedule_changed kind=sync schedule=off" not in d.log():
        time.sleep(0.1)
    assert "event=schedule_changed kind=sync schedule=off" in d.log()
    assert "event=schedule_changed kind=archive schedule=\"0 3 * * 0\"" \
        in d.log()
    # a bad schedule is refused with the keyword and the field named
    d.stop()
    with pytest.raises(AssertionError) as e:
        make_daemon("fs", conf_extra="SyncSchedule 61 * * * *\n")
    assert "SyncSchedule" in str(e.value) and "minute" in str(e.value)
