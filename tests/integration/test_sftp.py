"""SFTP against the real daemon with OpenSSH's sftp and paramiko, on both
backends; what landed is read back from the backend directly."""
import os
import random
import re
import signal
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import paramiko
import pytest

from sshtools import (make_file, new_client, paramiko_sftp, put_bytes,
                      sftp_batch, sftp_session, shared_daemon, visible)

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["fs", "s3"])
def daemon(request, tmp_path_factory, s3server):
    d = shared_daemon(request, tmp_path_factory, s3server,
                      "PerSourceMaxStartups 60\nMaxStartups 60\n")
    yield d
    d.stop()


def test_put_get_ls_mkdir_rename_rm(daemon, tmp_path):
    c = new_client(daemon)
    data = make_file(tmp_path / "photo one.jpg", 3 * MiB + 123, seed=1)
    r = sftp_batch(daemon, c, [
        "cd attachments",
        "mkdir originals/2024",
        'put "%s" "originals/2024/photo one.jpg"' % (tmp_path / "photo one.jpg"),
        "ls -l originals/2024",
        "rename \"originals/2024/photo one.jpg\" originals/2024/p1.jpg",
        "get originals/2024/p1.jpg %s" % (tmp_path / "back.jpg"),
        "df",
    ])
    assert "photo one.jpg" in r.stdout
    assert "3145851" in r.stdout          # ls -l shows the size
    assert c.read("originals/2024/p1.jpg") == data
    assert (tmp_path / "back.jpg").read_bytes() == data
    assert "originals/2024/photo one.jpg" not in visible(c)

    sftp_batch(daemon, c, [
        "cd attachments/originals",
        "rm 2024/p1.jpg",
        "rmdir 2024",
    ])
    assert not any(n.startswith("originals/2024") for n in c.list())
    # rmdir of a folder that holds something fails, and keeps it
    make_file(tmp_path / "x", 10)
    sftp_batch(daemon, c, ["mkdir attachments/full",
                           "put %s attachments/full/x" % (tmp_path / "x")])
    r = sftp_batch(daemon, c, ["rmdir attachments/full"], check=False)
    assert r.returncode != 0
    assert "full/x" in visible(c)


def test_limits_make_openssh_send_big_writes(daemon, tmp_path):
    """With limits@openssh.com OpenSSH writes 255 KiB per request: a 4 MiB
    put takes ~16 WRITEs, not 128 (counted on the wire by the bytes the
    server reports as received per session end)."""
    c = new_client(daemon)
    data = make_file(tmp_path / "big", 4 * MiB, seed=2)
    r = sftp_batch(daemon, c, ["put %s attachments/big" % (tmp_path / "big")],
                   extra=["-vvv"])
    assert c.read("big") == data
    # OpenSSH logs the server's limits at debug level
    assert "Server supports extension \"limits@openssh.com\"" in r.stderr
    assert "write 261120" in r.stderr or "261120" in r.stderr


def test_df_reports_quota(daemon, tmp_path):
    c = new_client(daemon)
    daemon.ctl("client", "set", c.name, "--quota-bytes", "100M")
    make_file(tmp_path / "f", 5 * MiB)
    sftp_batch(daemon, c, ["put %s attachments/f" % (tmp_path / "f")])
    r = sftp_batch(daemon, c, ["df"])
    # df prints 1K-blocks: Size Used Avail (root) %Capacity
    line = r.stdout.strip().splitlines()[-1].split()
    size, used, avail = int(line[0]), int(line[1]), int(line[2])
    assert size == 100 * 1024
    assert 5 * 1024 <= used <= 5 * 1024 + 8
    assert avail == size - used


def test_reput_and_reget(daemon, tmp_path):
    c = new_client(daemon)
    full = make_file(tmp_path / "full.bin", 2 * MiB + 777, seed=3)
    half = full[:MiB + 5]
    (tmp_path / "half.bin").write_bytes(half)
    # upload the first part under the final name, then resume it
    sftp_batch(daemon, c, ["put %s attachments/r.bin" % (tmp_path / "half.bin")])
    assert c.read("r.bin") == half
    sftp_batch(daemon, c, ["reput %s attachments/r.bin" % (tmp_path / "full.bin")])
    assert c.read("r.bin") == full
    # download part of it, then resume the download
    (tmp_path / "got.bin").write_bytes(full[:700000])
    sftp_batch(daemon, c, ["reget attachments/r.bin %s" % (tmp_path / "got.bin")])
    assert (tmp_path / "got.bin").read_bytes() == full


def test_paramiko_random_reads_and_stat(daemon, tmp_path):
    c = new_client(daemon)
    data = make_file(tmp_path / "f", 3 * MiB + 1, seed=4)
    with sftp_session(daemon, c) as sftp:
        sftp.put(str(tmp_path / "f"), "/attachments/f")
        st = sftp.stat("/attachments/f")
        assert st.st_size == len(data)
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_ISDIR(sftp.stat("/attachments").st_mode)
        rnd = random.Random(5)
        with sftp.open("/attachments/f", "rb") as f:
            for _ in range(40):
                off = rnd.randrange(0, len(data))
                n = rnd.randrange(1, 300000)
                f.seek(off)
                assert f.read(n) == data[off:off + n]
            f.seek(len(data) - 10)
            assert f.read(100) == data[-10:]
            f.seek(len(data) + 10)
            assert f.read(10) == b""
        # a sequential read with paramiko's prefetch (pipelined READs)
        with sftp.open("/attachments/f", "rb") as f:
            f.prefetch()
            assert f.read() == data


def test_paramiko_out_of_order_writes(daemon, tmp_path):
    """Writes that arrive in any order are absorbed; the object appears
    only at close, byte for byte."""
    c = new_client(daemon)
    data = os.urandom(2 * MiB + 4321)
    chunk = 32768
    offsets = list(range(0, len(data), chunk))
    random.Random(6).shuffle(offsets)
    with sftp_session(daemon, c) as sftp:
        f = sftp.open("/attachments/ooo.bin", "wb")
        f.set_pipelined(True)
        for i, off in enumerate(offsets):
            f.seek(off)
            f.write(data[off:off + chunk])
            if i == len(offsets) // 2:
                f.flush()
                assert "ooo.bin" not in visible(c)
        f.close()
        assert c.read("ooo.bin") == data
        # a sparse write: the gap reads as zeros, like a POSIX file
        with sftp.open("/attachments/sparse.bin", "wb") as f:
            f.seek(100000)
            f.write(b"tail")
            f.seek(0)
            f.write(b"head")
        got = c.read("sparse.bin")
        assert got == b"head" + b"\0" * (100000 - 4) + b"tail"


def test_paramiko_setstat_and_modes(daemon, tmp_path):
    c = new_client(daemon)
    (tmp_path / "f").write_bytes(b"hello")
    with sftp_session(daemon, c) as sftp:
        sftp.put(str(tmp_path / "f"), "/attachments/f")
        sftp.utime("/attachments/f", (1500000000, 1500000000))
        assert sftp.stat("/attachments/f").st_mtime == 1500000000
        sftp.chmod("/attachments/f", 0o600)  # accepted, no effect needed
        # mtime set on an open handle is applied when the file is stored
        with sftp.open("/attachments/g", "wb") as f:
            f.write(b"x" * 1000)
            f.utime((1400000000, 1400000000))
        assert sftp.stat("/attachments/g").st_mtime == 1400000000
        assert c.read("g") == b"x" * 1000
        # listing carries sizes and types
        names = {a.filename: a for a in sftp.listdir_attr("/attachments")}
        assert names["f"].st_size == 5
        assert stat.S_ISDIR(names["originals"].st_mode)


def spool_files(d):
    """Files the daemon holds open in its spool folder (unlinked temp
    files: only /proc shows them)."""
    spool = os.path.join(d.var, "spool") + "/"
    fds = "/proc/%d/fd" % d.proc.pid
    n = 0
    for fd in os.listdir(fds):
        try:
            n += os.readlink(os.path.join(fds, fd)).startswith(spool)
        except OSError:
            pass                      # closed meanwhile
    return n


def test_paramiko_rewrites_after_streaming(daemon, tmp_path):
    """Bytes already streamed into the store (12 MiB in order: past the
    first 8 MiB S3 part) are rewritten at offset 0, in the middle and
    across the end; nothing is refused, the object appears only at close,
    byte for byte."""
    c = new_client(daemon)
    data = bytearray(os.urandom(12 * MiB + 777))
    with sftp_session(daemon, c) as sftp:
        f = sftp.open("/attachments/rw.bin", "wb")
        f.set_pipelined(True)
        for off in range(0, len(data), 65536):
            f.write(bytes(data[off:off + 65536]))
        sftp.stat("/attachments")     # a round trip: the writes were taken
        assert "rw.bin" not in visible(c)
        # In-order bytes are copied into a spool file only where the store
        # cannot give them back for a rewrite (S3); the fs writer's temp
        # file can, and the spool appears only when the rewrite needs it.
        assert spool_files(daemon) == (0 if daemon.backend == "fs" else 1)
        for off, b in ((0, b"HEAD" * 1000), (5 * MiB + 3, os.urandom(70000)),
                       (len(data) - 10, b"tail" * 10)):
            f.seek(off)
            f.write(b)
            data[off:off + len(b)] = b
        f.seek(len(data))
        f.write(b"appended after the rewrites")
        data += b"appended after the rewrites"
        sftp.stat("/attachments")
        assert "rw.bin" not in visible(c)
        assert spool_files(daemon) == 1
        assert f.stat().st_size == len(data)
        f.close()
        assert c.read("rw.bin") == bytes(data)
        assert spool_files(daemon) == 0
        # the same onto an existing object opened without TRUNC (reput):
        # its old bytes are streamed first, then rewritten
        small = bytearray(os.urandom(300000))
        put_bytes(sftp, "/attachments/small.bin", bytes(small))
        with sftp.open("/attachments/small.bin", "r+") as f:
            f.seek(len(small))
            f.write(b"more")
            f.seek(1)
            f.write(b"EAD")
        small += b"more"
        small[1:4] = b"EAD"
        assert c.read("small.bin") == bytes(small)


def test_paramiko_truncate(daemon, tmp_path):
    """truncate() shrinks and extends (with zeros) stored files and open
    handles; open with TRUNC empties the file at close."""
    c = new_client(daemon)
    data = os.urandom(3 * MiB + 5)
    with sftp_session(daemon, c) as sftp:
        put_bytes(sftp, "/attachments/t.bin", data)
        sftp.utime("/attachments/t.bin", (1500000000, 1500000000))
        sftp.truncate("/attachments/t.bin", 1000)
        assert c.read("t.bin") == data[:1000]
        assert sftp.stat("/attachments/t.bin").st_size == 1000
        sftp.truncate("/attachments/t.bin", 5000)
        assert c.read("t.bin") == data[:1000] + b"\0" * 4000
        sftp.truncate("/attachments/t.bin", 0)
        assert c.read("t.bin") == b""
        # an open handle, behind what it already streamed, then beyond
        with sftp.open("/attachments/h.bin", "wb") as f:
            f.set_pipelined(True)
            f.write(data)
            f.truncate(100)
            f.seek(100)
            f.write(b"more")
            f.truncate(200)
            assert f.stat().st_size == 200
            assert "h.bin" not in visible(c)
        assert c.read("h.bin") == data[:100] + b"more" + b"\0" * 96
        # an existing object opened without TRUNC keeps its bytes up to
        # the new size
        put_bytes(sftp, "/attachments/t.bin", data)
        with sftp.open("/attachments/t.bin", "r+") as f:
            f.truncate(10)
        assert c.read("t.bin") == data[:10]
        # SSH_FXF_TRUNC ("w"): empty once closed, even with nothing written
        with sftp.open("/attachments/t.bin", "w"):
            pass
        assert c.read("t.bin") == b""
        # folders and the read-only tree are refused, nothing changes
        with pytest.raises(IOError):
            sftp.truncate("/attachments/originals", 0)
        with pytest.raises(PermissionError):
            sftp.truncate("/backups", 0)
        assert c.read("h.bin") == data[:100] + b"more" + b"\0" * 96


def test_rename_semantics(daemon, tmp_path):
    c = new_client(daemon)
    with sftp_session(daemon, c) as sftp:
        put_bytes(sftp, "/attachments/a", b"A")
        put_bytes(sftp, "/attachments/b", b"B")
        # plain SFTP rename never replaces
        with pytest.raises(IOError):
            sftp.rename("/attachments/a", "/attachments/b")
        assert c.read("b") == b"B"
        # posix-rename@openssh.com does
        sftp.posix_rename("/attachments/a", "/attachments/b")
        assert c.read("b") == b"A"
        assert "a" not in visible(c)
        # a folder moves with its content
        sftp.mkdir("/attachments/d1")
        put_bytes(sftp, "/attachments/d1/x", b"X")
        sftp.rename("/attachments/d1", "/attachments/d2")
        assert c.read("d2/x") == b"X"
        assert not any(n.startswith("d1/") for n in visible(c))
        with pytest.raises(IOError):
            sftp.rename("/attachments/nothing", "/attachments/y")


def test_links_refused_cleanly(daemon, tmp_path):
    c = new_client(daemon)
    with sftp_session(daemon, c) as sftp:
        put_bytes(sftp, "/attachments/a", b"A")
        with pytest.raises(IOError) as e:
            sftp.symlink("/attachments/a", "/attachments/l")
        assert "not supported" in str(e.value).lower() or \
            "unsupported" in str(e.value).lower()
        with pytest.raises(IOError):
            sftp.readlink("/attachments/a")
        # the session is still fine afterwards
        assert sftp.stat("/attachments/a").st_size == 1
    r = sftp_batch(daemon, c, ["ln attachments/a attachments/h"], check=False)
    assert r.returncode != 0
    assert sorted(visible(c)) == ["a"]


def test_tree_and_backups_read_only(daemon, tmp_path):
    c = new_client(daemon)
    (tmp_path / "f").write_bytes(b"data")
    with sftp_session(daemon, c) as sftp:
        assert sftp.normalize(".") == "/"
        assert sorted(sftp.listdir("/")) == ["attachments", "backups"]
        assert sftp.listdir("/backups") == []
        for target in ("/backups/f", "/f", "/backups/x/y"):
            with pytest.raises(PermissionError):
                sftp.put(str(tmp_path / "f"), target)
        with pytest.raises(IOError):
            sftp.mkdir("/backups/d")
        with pytest.raises(IOError):
            sftp.mkdir("/newtop")
        with pytest.raises(IOError):
            sftp.remove("/attachments")
        with pytest.raises(IOError):
            sftp.rmdir("/attachments")
        with pytest.raises(FileNotFoundError):
            sftp.stat("/attachments/none")
        with pytest.raises(FileNotFoundError):
            sftp.open("/attachments/none", "rb")
        with pytest.raises(FileNotFoundError):
            sftp.put(str(tmp_path / "f"), "/attachments/nodir/f")
    r = sftp_batch(daemon, c, ["put %s backups/f" % (tmp_path / "f")],
                   check=False)
    assert r.returncode != 0
    assert "Permission denied" in r.stderr


def test_backups_lists_archives(daemon, tmp_path):
    """Finished archives recorded in the catalog are served read-only under
    /backups, the newest also as /<client>-assets.tar.xz."""
    c = new_client(daemon)
    arch_dir = tmp_path / "archives"
    arch_dir.mkdir()
    old = os.urandom(50000)
    new = os.urandom(70000)
    n = c.name
    a1, a2 = n + "-20260101.tar.xz", n + "-20260201.tar.xz"
    (arch_dir / a1).write_bytes(old)
    (arch_dir / a2).write_bytes(new)
    db = os.path.join(daemon.var, "assetd.db")
    sql = ("INSERT INTO archives(client, location, created, size, state) "
           "VALUES('{n}', 'file://{d}/{a1}', 1767225600, {s1}, 1), "
           "('{n}', 'file://{d}/{a2}', 1769904000, {s2}, 1), "
           "('{n}', 'file://{d}/{n}-run.tar.xz', 1769990000, 0, 0);").format(
               n=n, d=arch_dir, a1=a1, a2=a2, s1=len(old), s2=len(new))
    subprocess.run(["sqlite3", db, sql], check=True)
    with sftp_session(daemon, c) as sftp:
        assert sorted(sftp.listdir("/backups")) == [a1, a2]
        assert n + "-assets.tar.xz" in sftp.listdir("/")
        with sftp.open("/backups/" + a1, "rb") as f:
            assert f.read() == old
        with sftp.open("/%s-assets.tar.xz" % n, "rb") as f:
            assert f.read() == new
        assert sftp.stat("/%s-assets.tar.xz" % n).st_size == len(new)
        with pytest.raises(PermissionError):
            sftp.remove("/backups/" + a1)
        with pytest.raises(PermissionError):
            sftp.open("/backups/" + a1, "wb")
        with pytest.raises(FileNotFoundError):
            sftp.stat("/backups/%s-run.tar.xz" % n)
    assert (arch_dir / a1).read_bytes() == old


def put_direct(daemon, client, rel, data):
    """Write an object straight into the backend, bypassing assetd."""
    url = client.location + rel
    if url.startswith("file://"):
        path = url[len("file://"):]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    else:
        bucket, _, key = url[len("s3://"):].partition("/")
        daemon.s3.boto3().put_object(Bucket=bucket, Key=key, Body=data)


def test_listing_streams_in_pages(daemon, tmp_path):
    """A folder with more names than one READDIR reply holds (256) lists
    whole, each name once, with the right sizes."""
    c = new_client(daemon)
    names = {}
    for i in range(300):
        names["f%04d.txt" % i] = i % 7
    for i in range(3):
        names["d%d" % i] = None
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda n: put_direct(
            daemon, c, "many/" + (n + "/inner" if names[n] is None else n),
            b"x" * (names[n] or 0)), names))
    with sftp_session(daemon, c) as sftp:
        listed = sftp.listdir_attr("/attachments/many")
        got = [a.filename for a in listed]
        assert len(got) == len(set(got))
        assert set(got) == set(names)
        for a in listed:
            if names[a.filename] is None:
                assert stat.S_ISDIR(a.st_mode)
            else:
                assert a.st_size == names[a.filename]


TRAVERSALS = [
    "../../../../etc/passwd",
    "/attachments/../../etc/x",
    "/attachments/../../../tmp/x",
    "attachments/../../{o}/attachments/x",
    "/../{o}/x",
    "/attachments/../backups/../../x",
    "..",
    "/attachments/./../../x",
    "//attachments//..//..//x",
    "/attachments/%2e%2e/%2e%2e/x",
    "/attachments/..%2f..%2fx",
    "/attachments/..\\..\\x",
    "/attachments/a\x00/../../x",
    "/attachments/\x1b[0m",
    "/attachments/x\ny",
    "/attachments/\xc0\xae\xc0\xae/x",
    "/attachments/" + "a" * 300,
    "/attachments/" + "/".join(["d"] * 600),
    "~/../../x",
    "~{o}/attachments/x",
    "/home/{o}/attachments/x",
    "/home/{c}/../{o}/attachments/x",
    "/attachments/originals/../../../{o}/attachments/originals/x",
    "attachments/../../../../../../../../../../x",
]


def test_traversal_never_leaves_the_tree(daemon, tmp_path):
    """Every attempt either fails or lands inside the client's own folder;
    the other client's folder and everything outside stay untouched."""
    c = new_client(daemon)
    other = new_client(daemon, "o")
    with sftp_session(daemon, other) as sftp:
        put_bytes(sftp, "/attachments/x", b"other's")
    before_other = sorted(other.list())
    with sftp_session(daemon, c) as sftp:
        for p in TRAVERSALS:
            p = p.replace("{o}", other.name).replace("{c}", c.name)
            enc = p.encode("utf-8", "surrogateescape") if isinstance(p, str) \
                else p
            try:
                # paramiko encodes str as UTF-8; pass bytes to send raw
                raw = p.encode("latin-1") if "\xc0" in p else p
                put_bytes(sftp, raw, b"evil")
            except (IOError, OSError, UnicodeError):
                pass
            try:
                sftp.stat(raw)
            except (IOError, OSError, UnicodeError):
                pass
            try:
                sftp.remove(raw)
            except (IOError, OSError, UnicodeError):
                pass
            assert enc is not None
    assert sorted(other.list()) == before_other
    assert other.read("x") == b"other's"
    # anything that was written went below the client's own folder
    for n in visible(c):
        assert not n.startswith("..")
    if daemon.backend == "fs":
        base = daemon.assets[len("file://"):]
        outside = [p for p in os.listdir(base)
                   if not re.match(r"^[co][0-9]+$", p)]
        assert outside == []
        assert not os.path.exists("/tmp/x")
        assert not os.path.exists("/etc/x")
    else:
        keys = daemon.s3.keys(daemon.bucket, "")
        for k in keys:
            assert re.match(r"^assets/[co][0-9]+/", k), k


def test_killed_mid_upload_leaves_nothing(daemon, tmp_path):
    c = new_client(daemon)
    sftp, t = paramiko_sftp(daemon, c)
    f = sftp.open("/attachments/partial.bin", "wb")
    f.set_pipelined(True)
    chunk = os.urandom(32768)
    for _ in range(100):          # 3.2 MiB, in order
        f.write(chunk)
    f.seek(10 * MiB)              # and some spooled out-of-order bytes
    f.write(chunk)
    sftp.stat("/attachments")     # a round trip: the writes were taken
    t.sock.close()                # the network drops, no CLOSE sent
    t.close()
    time.sleep(1.5)
    assert visible(c) == []
    # and a session that is killed with sftp's own process
    make_file(tmp_path / "big", 30 * MiB, seed=9)
    argv = ["sftp", "-b", "-", "-l", "800", "-P", str(daemon.ssh_port)] + \
        c.ssh_opts() + ["%s@127.0.0.1" % c.name]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdin.write("put %s attachments/big\n" % (tmp_path / "big"))
    p.stdin.close()
    time.sleep(2.0)
    p.kill()
    p.wait()
    time.sleep(1.5)
    assert visible(c) == []


def test_fifty_concurrent_uploads(daemon, tmp_path):
    d = daemon
    c = new_client(d)
    files = []
    for i in range(50):
        p = tmp_path / ("u%02d.bin" % i)
        files.append(make_file(p, 256 * 1024 + i, seed=100 + i))
    procs = []
    for i in range(50):
        argv = ["sftp", "-b", "-", "-P", str(d.ssh_port)] + c.ssh_opts() + \
            ["%s@127.0.0.1" % c.name]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        p.stdin.write("put %s attachments/u%02d.bin\n" % (
            tmp_path / ("u%02d.bin" % i), i))
        p.stdin.close()
        procs.append(p)
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    for i in range(50):
        assert c.read("u%02d.bin" % i) == files[i]

