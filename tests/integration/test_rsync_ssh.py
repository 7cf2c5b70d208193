"""rsync over SSH against the real daemon: the commands of the rsync issue,
run by Debian's rsync through OpenSSH's ssh, on both backends.

The protocol's details (deltas, filters, --checksum, cuts, many files) are
covered through the stdio tool in test_rsync_engine.py; this checks the
whole path a client takes: key login, the exec request, the virtual tree
(attachments read-write, backups read-only) and the exit codes.
"""
import os
import re
import shutil
import tempfile

import pytest

from conftest import metrics_text
from rsynctree import MiB, read_tree, stat_of, write_tree
from sshtools import rsync, shared_daemon

_n = iter(range(1, 1000000))


@pytest.fixture(scope="module", params=["fs", "s3"])
def daemon(request, tmp_path_factory, s3server):
    d = shared_daemon(request, tmp_path_factory, s3server)
    yield d
    d.stop()


def s3_requests(d):
    """{S3 operation: requests answered 2xx} from the daemon's /metrics."""
    text = metrics_text(d)
    out = {}
    for m in re.finditer(r'^assetd_s3_requests_total\{operation="(\w+)",'
                         r'status="2\d\d"\} (\d+)', text, re.M):
        out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def delta(after, before):
    return {k: v - before.get(k, 0) for k, v in after.items()
            if v != before.get(k, 0)}


def tree(root):
    files = {
        "a.jpg": os.urandom(5000),
        "sub dir/\u00fc \u65e5\u672c.tif": os.urandom(MiB + 7),
        "sub dir/deeper/empty.txt": b"",
    }
    return write_tree(root, files)


def test_push_pull_delete_over_ssh(daemon, tmp_path):
    c = daemon.add_client("rs%d" % next(_n))
    src = tmp_path / "photos"
    files = tree(src)
    _, out, _ = rsync(daemon, c, "-av", "--stats", str(src) + "/",
                      "R:attachments/originals/")
    assert stat_of(out, "Number of regular files transferred") == len(files)
    for rel, data in files.items():
        assert c.read("originals/" + rel) == data

    _, out, _ = rsync(daemon, c, "-av", "--stats", str(src) + "/",
                      "R:attachments/originals/")
    assert stat_of(out, "Number of regular files transferred") == 0

    dst = tmp_path / "back"
    rsync(daemon, c, "-av", "R:attachments/originals/", str(dst) + "/")
    assert read_tree(dst) == files

    os.remove(str(src / "a.jpg"))
    _, out, _ = rsync(daemon, c, "-av", "--delete", str(src) + "/",
                      "R:attachments/originals/")
    assert "deleting a.jpg" in out
    with pytest.raises(Exception):
        c.read("originals/a.jpg")


def test_refusals_over_ssh(daemon, tmp_path):
    c = daemon.add_client("rs%d" % next(_n))
    src = tmp_path / "s"
    tree(src)
    rc, _, err = rsync(daemon, c, "-av", str(src) + "/", "R:backups/",
                       check=False)
    assert rc != 0
    assert "backups" in err


def test_compressed_push_and_pull_over_ssh(daemon, tmp_path):
    c = daemon.add_client("rs%d" % next(_n))
    src = tmp_path / "s"
    files = tree(src)
    files["notes.csv"] = b"".join(b"%06d,specimen,notes\n" % i
                                  for i in range(50000))
    (src / "notes.csv").write_bytes(files["notes.csv"])
    _, out, _ = rsync(daemon, c, "-avz", "--stats", str(src) + "/",
                      "R:attachments/z/")
    assert stat_of(out, "Number of regular files transferred") == len(files)
    assert stat_of(out, "Total bytes sent") < MiB + 5000 + 300000
    dst = tmp_path / "back"
    rsync(daemon, c, "-avz", "R:attachments/z/", str(dst) + "/")
    assert read_tree(dst) == files


def test_fetch_backups_over_ssh(daemon, tmp_path):
    import tarfile
    c = daemon.add_client("rs%d" % next(_n))
    src = tmp_path / "photos"
    files = tree(src)
    rsync(daemon, c, "-a", str(src) + "/", "R:attachments/originals/")
    daemon.ctl("archive", "create", c.name)

    dst = tmp_path / "backups"
    _, out, _ = rsync(daemon, c, "-av", "R:backups/", str(dst) + "/")
    got = os.listdir(str(dst))
    assert len(got) == 1 and got[0].endswith(".tar.xz"), (got, out)
    with tarfile.open(str(dst / got[0])) as t:
        names = {m.name for m in t.getmembers() if m.isfile()}
    assert any(n.endswith("sub dir/deeper/empty.txt") for n in names), names
    assert any(n.endswith("a.jpg") for n in names), names

    # the same archive by name, and under the newest-archive alias
    rsync(daemon, c, "-a", "R:backups/" + got[0], str(tmp_path / "one"))
    assert (tmp_path / "one").read_bytes() == (dst / got[0]).read_bytes()
    rsync(daemon, c, "-a", "R:%s-assets.tar.xz" % c.name,
          str(tmp_path / "latest"))
    assert (tmp_path / "latest").read_bytes() == (dst / got[0]).read_bytes()
    # a second fetch moves nothing
    _, out, _ = rsync(daemon, c, "-a", "--stats", "R:backups/",
                      str(dst) + "/")
    assert stat_of(out, "Number of regular files transferred") == 0


def test_ten_thousand_small_files_on_s3_over_ssh(tmp_path_factory, s3server):
    """10,000 small files through the daemon onto S3: push, a no-change
    re-sync (the daemon remembers the mtimes it stored: no HEAD per
    object) and a pull (small objects fetched ahead in parallel). The
    filesystem backend's 10,000-file run is in test_rsync_engine.py."""
    from conftest import Daemon
    d = Daemon(tmp_path_factory.mktemp("rsync-10k"), "s3", s3server)
    d.start()
    base = tempfile.mkdtemp(prefix="assetd-rsync-",
                            dir="/dev/shm" if os.access("/dev/shm", os.W_OK)
                            else None)
    try:
        c = d.add_client("many")
        src = os.path.join(base, "src")
        for i in range(100):
            dd = os.path.join(src, "d%02d" % i)
            os.makedirs(dd)
            for j in range(100):
                with open(os.path.join(dd, "f%03d.txt" % j), "wb") as f:
                    f.write(b"%d/%d\n" % (i, j))
        before = s3_requests(d)
        _, out, _ = rsync(d, c, "-a", "--stats", src + "/",
                          "R:attachments/many/", timeout=600)
        assert stat_of(out, "Number of regular files transferred") == 10000
        push = delta(s3_requests(d), before)
        # One PUT per file and per directory marker. The quota meter
        # learns what each file replaces from the receiver's listing of
        # its folder, and a new folder's parent listing says it is
        # absent: no HEAD per file, no probes per folder.
        assert push.get("PutObject", 0) == 10000 + 101, push
        assert push.get("HeadObject", 0) <= 5, push
        assert push.get("ListObjectsV2", 0) <= 5, push

        before = s3_requests(d)
        _, out, _ = rsync(d, c, "-a", "--stats", src + "/",
                          "R:attachments/many/", timeout=600)
        assert stat_of(out, "Number of regular files transferred") == 0
        same = delta(s3_requests(d), before)
        # A no-change pass: the listings only, no HEAD per object or per
        # folder. The test server's delimiter listings are rolled up here
        # (a page per 1,000 keys below the root: 10,101 with the folder
        # markers), and the 100 folders' listings are cut from that one
        # read of the tree, not listed again.
        assert same.get("HeadObject", 0) <= 5, same
        assert same.get("ListObjectsV2", 0) <= 11 + 3, same
        assert set(same) <= {"HeadObject", "ListObjectsV2"}, same
        back = os.path.join(base, "back")
        _, out, _ = rsync(d, c, "-a", "--stats", "R:attachments/many/",
                          back + "/", timeout=600)
        assert stat_of(out, "Number of regular files transferred") == 10000
        got = read_tree(back)
        assert len(got) == 10000
        assert got["d42/f004.txt"] == b"42/4\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)
        d.stop()
