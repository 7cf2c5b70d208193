"""A push's destination listings, taken ahead of the generator in parallel
(sshd/rsync/dirlist.c), must be exactly what listing each folder in turn
gives: each folder its own listing, every error at its own folder.

Run through tests/tools/rsync_stdio (the engine the SSH side runs) on the
filesystem, on the test S3 server as the suite uses it (delimiter listings
rolled up client-side: folders are cut from one read of the tree), and on
the test S3 server with its own delimiter listings (one listing per folder,
several in flight).
"""
import os
import re
import shutil

import pytest

from rsynctree import read_tree, write_tree
from test_rsync_engine import Loc, _backends

MODES = _backends() + (["s3-delim"] if "s3" in _backends() else [])


@pytest.fixture(params=MODES)
def loc(request, tmp_path):
    mode = request.param
    s3 = request.getfixturevalue("s3server") if mode != "fs" else None
    lo = Loc("fs" if mode == "fs" else "s3", s3, tmp_path)
    if mode == "s3-delim":
        # Every folder below holds objects directly, so the test server's
        # own delimiter listings are complete for these trees.
        lo.env["ASSETD_S3_CLIENT_DELIMITER"] = "0"
    return lo


def itemized(out):
    """({names sent}, {names deleted}) from rsync -i output."""
    sent, deleted = set(), set()
    for line in out.splitlines():
        m = re.match(r"^[<>]f\S* (.*)$", line)
        if m:
            sent.add(m.group(1))
        m = re.match(r"^\*deleting +(.*)$", line)
        if m:
            deleted.add(m.group(1).rstrip("/"))
    return sent, deleted


def remove_dest(loc, under):
    """Remove folder attachments/UNDER behind the engine's back."""
    if loc.backend == "fs":
        shutil.rmtree(os.path.join(str(loc.root), under))
        return
    c = loc.s3.boto3()
    for k in loc.s3.keys(loc.bucket, "att/" + under + "/"):
        c.delete_object(Bucket=loc.bucket, Key=k)


def put_dest(loc, name, data):
    if loc.backend == "fs":
        p = os.path.join(str(loc.root), name)
        with open(p, "wb") as f:
            f.write(data)
    else:
        loc.s3.boto3().put_object(Bucket=loc.bucket, Key="att/" + name,
                                  Body=data)


def test_each_folder_gets_its_own_listing(loc, tmp_path):
    """40 folders whose files share names but not sizes: a listing handed
    to the wrong folder would make the quick check send files that did
    not change, miss ones that did, or --delete the wrong names."""
    src = tmp_path / "src"
    files = {}
    for n in range(40):
        d = "d%02d" % n
        files["%s/same.txt" % d] = b"s" * (n + 1)
        files["%s/only_%02d.txt" % (d, n)] = b"%d" % n
        if n % 2 == 0:
            files["%s/sub/x.txt" % d] = b"x" * (n + 100)
    write_tree(src, files)
    loc.rsync("-a", str(src) + "/", "x:attachments/t/")
    assert loc.objects("t/") == files

    want_sent, want_deleted = set(), set()
    for n in range(40):
        d = "d%02d" % n
        if n % 3 == 0:      # same size, new bytes and mtime: sent
            p = src / d / "same.txt"
            p.write_bytes(b"S" * (n + 1))
            os.utime(str(p), (1600000000 + n, 1600000000 + n))
            files["%s/same.txt" % d] = b"S" * (n + 1)
            want_sent.add("%s/same.txt" % d)
        if n % 3 == 1:      # gone from the source: deleted
            os.remove(str(src / d / ("only_%02d.txt" % n)))
            del files["%s/only_%02d.txt" % (d, n)]
            want_deleted.add("%s/only_%02d.txt" % (d, n))
        if n % 10 == 4:     # a nested folder gone from the source
            shutil.rmtree(str(src / d / "sub"))
            del files["%s/sub/x.txt" % d]
            want_deleted |= {"%s/sub" % d, "%s/sub/x.txt" % d}
        if n % 7 == 5:      # a stray object at the destination
            put_dest(loc, "t/%s/stray.txt" % d, b"stray")
            want_deleted.add("%s/stray.txt" % d)
        if n % 11 == 2:     # a folder removed at the destination: resent
            remove_dest(loc, "t/%s" % d)
            want_sent |= {k for k in files if k.startswith(d + "/")}
            want_deleted -= {k for k in want_deleted
                             if k.startswith(d + "/")}
    _, out, _ = loc.rsync("-a", "-i", "--delete", str(src) + "/",
                          "x:attachments/t/")
    sent, deleted = itemized(out)
    assert sent == want_sent, out
    assert deleted == want_deleted, out
    assert loc.objects("t/") == files

    # and now nothing differs
    _, out, _ = loc.rsync("-a", "-i", "--delete", str(src) + "/",
                          "x:attachments/t/")
    assert itemized(out) == (set(), set()), out
    # a pull lists the folders ahead too: each one's files come back
    dst = tmp_path / "back"
    loc.rsync("-a", "x:attachments/t/", str(dst) + "/")
    assert read_tree(dst) == files


def test_deep_and_uneven_folders(loc, tmp_path):
    """Folders at many depths, some empty, some only holding folders: the
    look-ahead waits for a parent's listing before it lists below it, and
    a folder the destination lacks is made, not listed."""
    src = tmp_path / "src"
    files = {}
    for a in range(3):
        for b in range(4):
            for c in range(2):
                files["a%d/b%d/c%d/f.txt" % (a, b, c)] = b"%d%d%d" % (a, b, c)
        files["a%d/top_%d.txt" % (a, a)] = b"t" * (a + 1)
    write_tree(src, files)
    os.makedirs(str(src / "empty" / "inner"))
    loc.rsync("-a", str(src) + "/", "x:attachments/deep/")
    assert loc.objects("deep/") == files

    # New folders inside existing ones, a file in each existing leaf
    # changed, and one leaf gone from the destination.
    for a in range(3):
        write_tree(src, {"a%d/b9/new.txt" % a: b"new%d" % a})
        files["a%d/b9/new.txt" % a] = b"new%d" % a
    p = src / "a1" / "b2" / "c1" / "f.txt"
    p.write_bytes(b"XYZ")
    os.utime(str(p), (1600000000, 1600000000))
    files["a1/b2/c1/f.txt"] = b"XYZ"
    remove_dest(loc, "deep/a2/b3/c0")
    _, out, _ = loc.rsync("-a", "-i", "--delete", str(src) + "/",
                          "x:attachments/deep/")
    sent, deleted = itemized(out)
    assert sent == {"a0/b9/new.txt", "a1/b9/new.txt", "a2/b9/new.txt",
                    "a1/b2/c1/f.txt", "a2/b3/c0/f.txt"}, out
    assert deleted == set(), out
    assert loc.objects("deep/") == files
    dst = tmp_path / "back"
    loc.rsync("-a", "x:attachments/deep/", str(dst) + "/")
    assert read_tree(dst) == files
    assert os.path.isdir(str(dst / "empty" / "inner"))


def test_a_failed_listing_is_reported_at_its_folder(s3server, tmp_path):
    """One folder's listing fails (the server keeps answering 500): the
    client is told which folder, the run ends with rsync's partial-transfer
    code 23, and the folders around it, listed ahead in parallel, are
    synced as usual."""
    from faultproxy import FaultProxy
    proxy = FaultProxy(s3server.port)
    try:
        loc = Loc("s3", s3server, tmp_path)
        loc.shell = loc.shell.replace(s3server.endpoint, proxy.endpoint)
        loc.env.update({"ASSETD_S3_CLIENT_DELIMITER": "0",
                        "ASSETD_S3_MAX_TRIES": "2",
                        "ASSETD_S3_RETRY_BASE_MS": "1"})
        src = tmp_path / "src"
        files = write_tree(src, {"d%02d/f.txt" % n: b"%d" % n
                                 for n in range(20)})
        loc.rsync("-a", str(src) + "/", "x:attachments/k/")
        for n in (6, 7, 8):
            p = src / ("d%02d" % n) / "f.txt"
            p.write_bytes(b"new%d" % n)
            files["d%02d/f.txt" % n] = b"new%d" % n
        os.remove(str(src / "d08" / "f.txt"))
        del files["d08/f.txt"]
        failing = proxy.add("500", method="GET",
                            query=r"prefix=att%2Fk%2Fd07%2F(&|$)")
        rc, out, err = loc.rsync("-a", "-i", "--delete", str(src) + "/",
                                 "x:attachments/k/", check=False)
        assert rc == 23, (out, err)
        assert re.search(r'opendir "d07" failed', err), err
        assert len(re.findall(r"opendir", err)) == 1, err
        assert failing.used == 2  # both tries
        sent, deleted = itemized(out)
        assert {"d06/f.txt"} <= sent, out
        assert deleted == {"d08/f.txt"}, out
        got = loc.objects("k/")
        assert got["d06/f.txt"] == b"new6"
        assert "d08/f.txt" not in got
        assert got["d09/f.txt"] == b"9"

        # A pull meets the same failure at the same folder: everything
        # else comes back.
        failing.used = 0
        dst = tmp_path / "back"
        rc, out, err = loc.rsync("-a", "x:attachments/k/", str(dst) + "/",
                                 check=False)
        assert rc == 23, (out, err)
        assert re.search(r'opendir "d07" failed', err), err
        assert len(re.findall(r"opendir", err)) == 1, err
        assert failing.used == 2
        back = read_tree(dst)
        assert "d07/f.txt" not in back
        assert back == {k: v for k, v in got.items()
                        if not k.startswith("d07/")}
    finally:
        proxy.close()
