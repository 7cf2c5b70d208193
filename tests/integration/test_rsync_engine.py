"""The rsync engine driven by Debian's rsync client, on both backends.

The engine runs in tests/tools/rsync_stdio (the same code the SSH side
runs for `exec rsync --server ...`), which rsync starts as its remote shell:
`rsync -e "rsync_stdio --attachments URL --backups URL" src/ x:attachments/`.
What landed is checked on the backend itself (the directory, or the S3
server through boto3), never through the engine.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import TOOLS, clean_env
from rsynctree import RSYNC, MiB, read_tree, run_rsync, stat_of, write_tree

TOOL = os.path.join(TOOLS, "rsync_stdio")


def _backends():
    # Every test runs on each storage backend the build has.
    out = ["fs"]
    if subprocess.run([TOOL, "--has-s3"]).returncode == 0:
        out.append("s3")
    return out


@pytest.fixture(params=_backends())
def backend(request):
    return request.param


class Loc:
    """An attachments location and a read-only backups location."""

    def __init__(self, backend, s3server, tmp_path):
        self.backend = backend
        self.s3 = s3server
        self.tmp = tmp_path
        if backend == "fs":
            self.root = tmp_path / "att"
            self.broot = tmp_path / "bak"
            self.root.mkdir()
            self.broot.mkdir()
            self.url = "file://%s/" % self.root
            self.burl = "file://%s/" % self.broot
            self.shell = "%s --attachments %s --backups %s" % (
                TOOL, self.url, self.burl)
        else:
            self.bucket = s3server.create_bucket()
            self.url = "s3://%s/att/" % self.bucket
            self.burl = "s3://%s/bak/" % self.bucket
            self.shell = "%s --endpoint %s --attachments %s --backups %s" % (
                TOOL, s3server.endpoint, self.url, self.burl)
        self.env = clean_env()

    def objects(self, under=""):
        """name -> bytes of every object below attachments/UNDER."""
        out = {}
        if self.backend == "fs":
            base = os.path.join(str(self.root), under)
            for d, _, files in os.walk(base):
                for f in files:
                    p = os.path.join(d, f)
                    with open(p, "rb") as fh:
                        out[os.path.relpath(p, base)] = fh.read()
            return out
        prefix = "att/" + under
        for k in self.s3.keys(self.bucket, prefix):
            if k.endswith("/"):
                continue
            out[k[len(prefix):]] = self.s3.get(self.bucket, k)
        return out

    def names(self, under=""):
        """The object names below attachments/UNDER (no contents read)."""
        if self.backend == "fs":
            base = os.path.join(str(self.root), under)
            return {os.path.relpath(os.path.join(d, f), base)
                    for d, _, files in os.walk(base) for f in files}
        prefix = "att/" + under
        return {k[len(prefix):] for k in self.s3.keys(self.bucket, prefix)
                if not k.endswith("/")}

    def put_backup(self, name, data):
        if self.backend == "fs":
            with open(os.path.join(str(self.broot), name), "wb") as fh:
                fh.write(data)
        else:
            self.s3.boto3().put_object(Bucket=self.bucket, Key="bak/" + name,
                                       Body=data)

    def rsync(self, *args, check=True, timeout=120):
        return run_rsync(self.shell, args, check, timeout, self.env)


@pytest.fixture
def loc(backend, request, tmp_path):
    s3 = request.getfixturevalue("s3server") if backend == "s3" else None
    return Loc(backend, s3, tmp_path)


def make_tree(root):
    files = {
        "top.txt": b"top level\n",
        "empty.dat": b"",
        "a/one.jpg": os.urandom(3000),
        "a/b/two.tif": os.urandom(70000),
        "a/b/c/deep.txt": b"deep\n",
        "with space/name with spaces.png": b"spaces",
        "unicod\u00e9/\u6a19\u672c-\u00e5.jpg": "unicode".encode(),
    }
    write_tree(root, files)
    os.makedirs(os.path.join(str(root), "emptydir"), exist_ok=True)
    return files


def test_push_pull_tree_and_no_change_rerun(loc, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    big = os.urandom(20 * 1024 * 1024)
    (src / "a" / "big.bin").write_bytes(big)
    files["a/big.bin"] = big
    os.utime(str(src / "top.txt"), (1500000000, 1500000000))

    _, out, _ = loc.rsync("-av", "--stats", str(src) + "/",
                          "x:attachments/originals/")
    assert stat_of(out, "Number of regular files transferred") == len(files)
    assert loc.objects("originals/") == files

    # Nothing changed: nothing moves.
    _, out, _ = loc.rsync("-av", "--stats", str(src) + "/",
                          "x:attachments/originals/")
    assert stat_of(out, "Number of regular files transferred") == 0
    assert stat_of(out, "Literal data") == 0

    # Pull it back: same bytes, same mtimes, the empty directory too.
    dst = tmp_path / "pulled"
    loc.rsync("-av", "x:attachments/originals/", str(dst) + "/")
    assert read_tree(dst) == files
    assert os.stat(str(dst / "top.txt")).st_mtime == 1500000000
    assert os.path.isdir(str(dst / "emptydir"))
    # A pull of an unchanged tree transfers nothing either.
    _, out, _ = loc.rsync("-av", "--stats", "x:attachments/originals/",
                          str(dst) + "/")
    assert stat_of(out, "Number of regular files transferred") == 0


# Plain, and compressed: zlib (whose history the matched blocks join)
# for the push, the negotiated default for the pull.
@pytest.mark.parametrize("push_z,pull_z", [
    ([], []), (["-z", "--compress-choice=zlib"], ["-z"])],
    ids=["plain", "compressed"])
def test_delta_of_a_1k_change_in_20mib(loc, tmp_path, push_z, pull_z):
    src = tmp_path / "src"
    src.mkdir()
    data = bytearray(os.urandom(20 * MiB))
    (src / "big.bin").write_bytes(data)
    loc.rsync("-a", str(src) + "/", "x:attachments/d/")

    data[10 * MiB:10 * MiB + 1024] = os.urandom(1024)
    (src / "big.bin").write_bytes(data)
    # the store keeps whole seconds: make the change visible to the quick
    # check even when it happens within the second of the first push
    st = os.stat(str(src / "big.bin"))
    os.utime(str(src / "big.bin"), (st.st_atime, st.st_mtime + 10))
    _, out, _ = loc.rsync("-a", "--stats", *push_z, str(src) + "/",
                          "x:attachments/d/")
    assert stat_of(out, "Number of regular files transferred") == 1
    literal = stat_of(out, "Literal data")
    assert 1024 <= literal < 64 * 1024, out
    assert stat_of(out, "Total bytes sent") < 256 * 1024
    assert loc.objects("d/") == {"big.bin": bytes(data)}

    # And the other way: a pull answers the client's block sums.
    dst = tmp_path / "dst"
    dst.mkdir()
    shutil.copy2(str(src / "big.bin"), str(dst / "big.bin"))
    with open(str(dst / "big.bin"), "r+b") as fh:
        fh.seek(5 * MiB)
        fh.write(b"\0" * 1024)
    _, out, _ = loc.rsync("-a", "--stats", *pull_z, "x:attachments/d/",
                          str(dst) + "/")
    literal = stat_of(out, "Literal data")
    assert 1024 <= literal < 64 * 1024, out
    assert stat_of(out, "Total bytes received") < 256 * 1024
    assert (dst / "big.bin").read_bytes() == bytes(data)


def test_delete_stays_in_the_tree_and_spares_excluded(loc, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    loc.rsync("-a", str(src) + "/", "x:attachments/originals/")
    loc.rsync("-a", str(src) + "/", "x:attachments/other/")
    before_other = loc.objects("other/")

    os.remove(str(src / "top.txt"))
    shutil.rmtree(str(src / "a" / "b"))
    (src / "keep.tmp").write_bytes(b"local only")
    # Something on the server side that an exclude protects:
    loc.rsync("-a", str(src / "keep.tmp"), "x:attachments/originals/prot.tmp")

    _, out, _ = loc.rsync("-av", "--delete", "--exclude", "*.tmp",
                          str(src) + "/", "x:attachments/originals/")
    assert "deleting top.txt" in out
    got = loc.objects("originals/")
    assert "top.txt" not in got
    assert not any(k.startswith("a/b/") for k in got)
    assert "prot.tmp" in got           # protected by the exclude
    assert "keep.tmp" not in got       # excluded from the push
    assert "a/one.jpg" in got
    assert loc.objects("other/") == before_other


def test_checksum_finds_same_size_same_mtime_changes(loc, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_bytes(b"AAAA")
    os.utime(str(src / "f.txt"), (1600000000, 1600000000))
    loc.rsync("-a", str(src) + "/", "x:attachments/c/")
    (src / "f.txt").write_bytes(b"BBBB")
    os.utime(str(src / "f.txt"), (1600000000, 1600000000))

    _, out, _ = loc.rsync("-a", "--stats", str(src) + "/", "x:attachments/c/")
    assert stat_of(out, "Number of regular files transferred") == 0
    assert loc.objects("c/") == {"f.txt": b"AAAA"}

    _, out, _ = loc.rsync("-a", "--checksum", "--stats", str(src) + "/",
                          "x:attachments/c/")
    assert stat_of(out, "Number of regular files transferred") == 1
    assert loc.objects("c/") == {"f.txt": b"BBBB"}

    # Pull with --checksum: the server sends the objects' MD5s.
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "f.txt").write_bytes(b"CCCC")
    os.utime(str(dst / "f.txt"), (1600000000, 1600000000))
    _, out, _ = loc.rsync("-a", "-c", "--stats", "x:attachments/c/",
                          str(dst) + "/")
    assert stat_of(out, "Number of regular files transferred") == 1
    assert (dst / "f.txt").read_bytes() == b"BBBB"


def test_excludes_and_includes_both_ways(loc, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    loc.rsync("-a", "--exclude", "*.tif", "--exclude", "with space/",
              str(src) + "/", "x:attachments/e/")
    got = loc.objects("e/")
    assert "a/b/two.tif" not in got
    assert not any(k.startswith("with space") for k in got)
    assert "a/one.jpg" in got

    dst = tmp_path / "dst"
    loc.rsync("-a", "--include", "*/", "--include", "*.jpg",
              "--exclude", "*", "x:attachments/e/", str(dst) + "/")
    pulled = read_tree(dst)
    assert set(pulled) == {"a/one.jpg", "unicod\u00e9/\u6a19\u672c-\u00e5.jpg"}


# -z as a current client sends it (negotiated: zstd first), and each
# algorithm named by --compress-choice (zlib also feeds the blocks the
# receiver has into the compressor's history).
COMPRESS = [None, "zlib", "zlibx", "zstd"]


def z_args(choice):
    return ["-z"] if choice is None else ["-z", "--compress-choice=" + choice]


def test_compress_push_pull_byte_for_byte(loc, tmp_path):
    src = tmp_path / "src"
    text = b"".join(b"specimen %06d, catalogue line of compressible text\n" % i
                    for i in range(60000))
    noise = os.urandom(MiB + 13)
    files = {"text.csv": text, "noise.jpg": noise, "empty.txt": b"",
             "sub/one.txt": b"1"}
    write_tree(src, files)
    for choice in COMPRESS:
        dest = "z-%s/" % (choice or "auto")
        _, out, _ = loc.rsync("-av", "--stats", *z_args(choice),
                              str(src) + "/", "x:attachments/" + dest)
        assert loc.objects(dest) == files
        # the text went compressed, the noise could not shrink
        assert stat_of(out, "Literal data") == len(text) + len(noise) + 1
        assert stat_of(out, "Total bytes sent") < len(noise) + len(text) // 4

        dst = tmp_path / ("pulled-" + (choice or "auto"))
        _, out, _ = loc.rsync("-av", "--stats", *z_args(choice),
                              "x:attachments/" + dest, str(dst) + "/")
        assert read_tree(dst) == files
        assert stat_of(out, "Total bytes received") < \
            len(noise) + len(text) // 4


def test_compress_choices_we_lack_are_refused(loc, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    rc, _, err = loc.rsync("-a", "--compress-choice=lz4", str(src) + "/",
                           "x:attachments/lz/", check=False)
    assert rc != 0
    assert "unknown compress name: lz4" in err
    # a client whose list has nothing we offer: rsync's negotiation error
    loc.env["RSYNC_COMPRESS_LIST"] = "lz4"
    rc, _, err = loc.rsync("-az", str(src) + "/", "x:attachments/lz/",
                           check=False)
    del loc.env["RSYNC_COMPRESS_LIST"]
    assert rc == 4, err
    assert "Failed to negotiate a compress choice" in err
    assert loc.objects("lz/") == {}


def test_backups_pull_and_push_refused(loc, tmp_path):
    loc.put_backup("kufish-2026-11-01.tar.xz", b"archive bytes" * 1000)
    dst = tmp_path / "dst"
    loc.rsync("-av", "x:backups/", str(dst) + "/")
    assert read_tree(dst) == {"kufish-2026-11-01.tar.xz":
                              b"archive bytes" * 1000}
    # the directory itself, and one archive by name
    loc.rsync("-a", "x:backups", str(tmp_path / "d2"))
    assert read_tree(tmp_path / "d2") == {
        "backups/kufish-2026-11-01.tar.xz": b"archive bytes" * 1000}
    loc.rsync("-a", "x:backups/kufish-2026-11-01.tar.xz",
              str(tmp_path / "one.tar.xz"))
    assert (tmp_path / "one.tar.xz").read_bytes() == b"archive bytes" * 1000

    src = tmp_path / "src"
    make_tree(src)
    rc, out, err = loc.rsync("-av", str(src) + "/", "x:backups/", check=False)
    assert rc == 3, (rc, out, err)
    assert "read-only" in err
    rc, out, err = loc.rsync("-av", str(src) + "/", "x:elsewhere/",
                             check=False)
    assert rc == 3
    assert "No such file or directory" in err


def test_cut_connection_keeps_the_old_object(loc, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    old = b"old contents\n" * 1000
    (src / "f.bin").write_bytes(old)
    loc.rsync("-a", str(src) + "/", "x:attachments/cut/")

    (src / "f.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    argv = [RSYNC, "-e", loc.shell, "-a", "--partial", "--bwlimit=2000",
            str(src) + "/", "x:attachments/cut/"]
    p = subprocess.Popen(argv, env=loc.env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    assert p.poll() is None, "the transfer ended before the cut"
    # Only the client dies, as when a network connection drops: the
    # server side sees its input end and must clean up by itself.
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 15
    while time.time() < deadline and loc.objects("cut/") != {"f.bin": old}:
        time.sleep(0.2)
    assert loc.objects("cut/") == {"f.bin": old}
    if loc.backend == "fs":
        # no temporary file left behind either
        assert os.listdir(str(loc.root / "cut")) == ["f.bin"]


@pytest.fixture
def fast_loc(backend, request):
    """Like loc, but on tmpfs when there is one. The fs backend fsyncs
    every file and its directory (20,000 fsyncs for this test) and writing
    the 10,000 source files is disk work too: on a busy disk that measures
    the disk, not the protocol."""
    s3 = request.getfixturevalue("s3server") if backend == "s3" else None
    base = request.getfixturevalue("tmp_path")
    shm = None
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        shm = tempfile.mkdtemp(prefix="assetd-rsync-", dir="/dev/shm")
        base = pathlib.Path(shm)
    yield Loc(backend, s3, base)
    if shm:
        shutil.rmtree(shm, ignore_errors=True)


def test_ten_thousand_small_files(fast_loc):
    loc = fast_loc
    src = loc.tmp / "src"
    # The test S3 server costs several milliseconds per request (a PUT per
    # file, then a HEAD per file in each fresh process, a GET per file to
    # pull): 500 files there exercise the same paths (the cold mtime cache
    # of a fresh process included) within the suite's time; 10,000 files
    # on S3 go through the daemon in test_rsync_ssh.py.
    n = 10000 if loc.backend == "fs" else 500
    for d in range(100):
        dd = src / ("d%02d" % d)
        dd.mkdir(parents=True)
        for i in range(n // 100):
            (dd / ("f%03d.txt" % i)).write_bytes(b"%d/%d\n" % (d, i))
    _, out, _ = loc.rsync("-a", "--stats", str(src) + "/", "x:attachments/many/",
                          timeout=600)
    assert stat_of(out, "Number of regular files transferred") == n
    _, out, _ = loc.rsync("-a", "--stats", str(src) + "/", "x:attachments/many/",
                          timeout=600)
    assert stat_of(out, "Number of regular files transferred") == 0
    got = loc.names("many/")
    assert len(got) == n
    assert "d42/f004.txt" in got
    # and back
    dst = loc.tmp / "back"
    _, out, _ = loc.rsync("-a", "--stats", "x:attachments/many/",
                          str(dst) + "/", timeout=600)
    assert stat_of(out, "Number of regular files transferred") == n
    back = read_tree(dst)
    assert len(back) == n
    assert back["d42/f004.txt"] == b"42/4\n"


def test_s3_requests_reuse_their_connections(s3server, tmp_path):
    """Many small files mean many requests at once (commits, mtime
    lookups, reads): they must share a few kept-alive connections, not
    open one each."""
    from faultproxy import FaultProxy
    proxy = FaultProxy(s3server.port)
    try:
        loc = Loc("s3", s3server, tmp_path)
        loc.shell = loc.shell.replace(s3server.endpoint, proxy.endpoint)
        src = tmp_path / "src"
        files = write_tree(src, {"d%d/f%03d.txt" % (i % 3, i): b"%d\n" % i
                                 for i in range(300)})
        loc.rsync("-a", str(src) + "/", "x:attachments/k/")
        loc.rsync("-a", "x:attachments/k/", str(tmp_path / "back") + "/")
        assert read_tree(tmp_path / "back") == files
        assert len(proxy.log) >= 600
        assert proxy.connections <= 40, (proxy.connections, len(proxy.log))
    finally:
        proxy.close()


def test_s3_puts_carry_the_md5_the_client_sent(s3server, tmp_path):
    """Each file's PUT carries, as Content-MD5, the whole-file MD5 the
    receiver checked against the client's (not a second hash of its own),
    for new files and for a delta built from the old object. A proxy does
    what S3 does and the test server does not: it refuses a body that does
    not match its Content-MD5."""
    import base64
    import hashlib
    from faultproxy import FaultProxy
    proxy = FaultProxy(s3server.port)
    try:
        proxy.add("check_md5", method="PUT")
        loc = Loc("s3", s3server, tmp_path)
        loc.shell = loc.shell.replace(s3server.endpoint, proxy.endpoint)
        src = tmp_path / "src"
        big = os.urandom(300 * 1024)
        files = write_tree(src, {"a/x.jpg": os.urandom(5000), "e.txt": b"",
                                 "a/big.bin": big})
        loc.rsync("-a", str(src) + "/", "x:attachments/m/")
        # a 1 KiB change in the middle: a delta against the old object
        big = big[:150000] + os.urandom(1024) + big[151024:]
        files["a/big.bin"] = big
        write_tree(src, {"a/big.bin": big})
        st = os.stat(str(src / "a" / "big.bin"))
        os.utime(str(src / "a" / "big.bin"), (st.st_atime, st.st_mtime + 5))
        _, out, _ = loc.rsync("-a", "--stats", str(src) + "/",
                              "x:attachments/m/")
        assert stat_of(out, "Literal data") < 100 * 1024
        assert loc.objects("m/") == files
        sent = {}
        for method, path, query, action, hdr in proxy.requests("PUT"):
            if not path.endswith("/") and not query:
                sent.setdefault(path.split("/m/", 1)[1], []).append(
                    hdr.get("content-md5"))
        for name, data in files.items():
            want = base64.b64encode(hashlib.md5(data).digest()).decode()
            assert sent[name][-1] == want, name
        assert len(sent["a/big.bin"]) == 2
    finally:
        proxy.close()


def test_symlinks_and_specials_are_skipped_as_rsync_does(loc, tmp_path):
    """The store keeps regular files only: like a stock rsync receiver that
    cannot make links, each one is named ("skipping non-regular file")
    and the run still succeeds; -a's perms, owner and group are fine."""
    src = tmp_path / "src"
    files = write_tree(src, {"d/f.txt": b"data\n"})
    os.symlink("f.txt", str(src / "d" / "rel-link"))
    os.symlink("/etc/passwd", str(src / "abs-link"))
    os.mkfifo(str(src / "fifo"))
    rc, out, err = loc.rsync("-av", "--numeric-ids", str(src) + "/",
                             "x:attachments/sl/")
    assert rc == 0
    text = out + err
    for name in ("d/rel-link", "abs-link", "fifo"):
        assert 'skipping non-regular file "%s"' % name in text, text
    assert loc.objects("sl/") == files
    dst = tmp_path / "back"
    loc.rsync("-a", "x:attachments/sl/", str(dst) + "/")
    assert read_tree(dst) == files


def test_dry_run_changes_nothing(loc, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    _, out, _ = loc.rsync("-avn", str(src) + "/", "x:attachments/n/")
    assert "a/b/two.tif" in out
    assert loc.names("n/") == set()
    loc.rsync("-a", str(src) + "/", "x:attachments/n/")
    os.remove(str(src / "top.txt"))
    _, out, _ = loc.rsync("-avn", "--delete", str(src) + "/",
                          "x:attachments/n/")
    assert "deleting top.txt" in out
    assert loc.names("n/") == set(files)
    dst = tmp_path / "dst"
    _, out, _ = loc.rsync("-avn", "x:attachments/n/", str(dst) + "/")
    assert "a/one.jpg" in out
    assert not dst.exists()
