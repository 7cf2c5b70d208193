"""Usage and quotas, on both backends, through every upload path: Specify's
HTTP upload, OpenSSH's sftp, scp (legacy -O and SFTP mode) and Debian's
rsync.

The figures the daemon keeps as writes commit must equal what
`assetctl client usage --recount` finds in the store, per folder and per
collection; a quota must refuse the upload that would cross it, on each
protocol, with the client told why and nothing of it stored; `df` in sftp
shows the quota as the disk."""
import json
import os
import threading

import pytest

from rsynctree import stat_of
from specify_client import for_client
from sshtools import (make_file, new_client, rsync, scp, sftp_batch,
                      shared_daemon, visible)

K = 1024


@pytest.fixture(scope="module", params=["fs", "s3"])
def d(request, tmp_path_factory, s3server):
    dm = shared_daemon(request, tmp_path_factory, s3server)
    yield dm
    dm.stop()


def usage(d, client, recount=False):
    args = ["client", "usage", client.name] + (["--recount"] if recount
                                               else [])
    return d.ctl(*args, json_out=True)


def stored(client):
    """{folder: [objects, bytes]} and the totals, from the backend itself."""
    per = {}
    for name in visible(client):
        folder = name.split("/", 1)[0] if "/" in name else ""
        f = per.setdefault(folder, [0, 0])
        f[0] += 1
        f[1] += len(client.read(name))
    return per


def kept(u):
    return {f["folder"]: [f["objects"], f["bytes"]] for f in u["folders"]
            if f["objects"] or f["bytes"]}


def test_usage_kept_as_writes_happen_equals_recount(d, tmp_path):
    c = new_client(d, "u")
    d.ctl("collection", "add", c.name, "Fish", "--subfolder", "fish")
    files = {}
    for i, size in enumerate((3000, 5000, 7000, 11000, 13000, 2000)):
        files[i] = str(tmp_path / ("f%d.bin" % i))
        make_file(files[i], size, seed=i)

    # HTTP: one original for the root collection, one for Fish
    demo, fish = for_client(d, c, "Demo"), for_client(d, c, "Fish")
    assert demo.upload(b"a" * 4000, demo.new_name(".jpg")).status == 200
    assert fish.upload(b"b" * 6000, fish.new_name(".jpg")).status == 200
    # sftp, scp -O and scp (SFTP mode), into two folders
    sftp_batch(d, c, ["mkdir /attachments/misc",
                      "put %s /attachments/fish/s1.bin" % files[0]])
    scp(d, c, [files[1], "R:/attachments/misc/o.bin"], legacy=True)
    scp(d, c, [files[2], "R:/attachments/misc/n.bin"])
    # rsync: a tree of three files
    src = tmp_path / "tree"
    src.mkdir()
    for n in (3, 4, 5):
        os.link(files[n], str(src / ("r%d.bin" % n)))
    rsync(d, c, "-r", str(src) + "/", "R:/attachments/rs/")
    # a replacement, a delete, a rename across folders, an rsync --delete
    sftp_batch(d, c, ["put %s /attachments/fish/s1.bin" % files[3],
                      "rm /attachments/misc/n.bin",
                      "rename /attachments/misc/o.bin /attachments/rs/o.bin"])
    os.unlink(str(src / "r5.bin"))
    # r4 shrinks: rsync's receiver tells the meter the size it replaces
    # from its listing of the folder (no lookup of its own)
    os.unlink(str(src / "r4.bin"))
    make_file(str(src / "r4.bin"), 9000, seed=40)
    rsync(d, c, "-r", "--delete", str(src) + "/", "R:/attachments/rs/")

    truth = stored(c)
    assert truth["rs"] == [2, 11000 + 9000]  # o.bin moved in, then --delete
    assert truth["fish"][0] == 2 and truth["fish"][1] == 11000 + 6000
    u = usage(d, c)
    assert kept(u) == truth
    assert u["objects"] == sum(v[0] for v in truth.values())
    assert u["bytes"] == sum(v[1] for v in truth.values())
    assert u["recounted"] == 0  # the figures above were kept, not counted
    colls = {x["name"]: x for x in u["collections"]}
    assert [colls["Fish"]["objects"], colls["Fish"]["bytes"]] == truth["fish"]
    assert colls["Demo"]["bytes"] == u["bytes"]  # the root: everything

    again = usage(d, c, recount=True)
    assert again["recounted"] > 0
    assert kept(again) == truth
    text = d.ctl("client", "usage", c.name).stdout
    assert "fish" in text and "Fish" in text and ("%d bytes" % u["bytes"]) \
        in text
    info = d.ctl("client", "show", c.name, json_out=True)
    assert info["usage_bytes"] == u["bytes"]


def test_quota_refuses_crossing_upload_on_each_protocol(d, tmp_path):
    c = new_client(d, "q")
    r = d.ctl("client", "set", c.name, "--quota-bytes", "64K")
    assert "usage counted" in r.stdout  # never counted: counted now
    small, big = str(tmp_path / "small"), str(tmp_path / "big")
    make_file(small, 40000)
    make_file(big, 30000, seed=1)
    sftp_batch(d, c, ["put %s /attachments/first.bin" % small])

    # HTTP: 507 with the CORS header, a body that says why
    spec = for_client(d, c)
    name = spec.new_name(".jpg")
    r = spec.upload(b"x" * 30000, name)
    assert r.status == 507, r
    assert r.headers["access-control-allow-origin"] == "*"
    assert b"Quota exceeded" in r.body
    # fields first (Specify 6): the bytes stream straight to the store and
    # are cut off once past the room left
    r = spec.upload(b"x" * 30000, spec.new_name(".jpg"), file_first=False)
    assert r.status == 507 and b"Quota exceeded" in r.body, r
    # sftp: the transfer fails and the client shows why
    r = sftp_batch(d, c, ["put %s /attachments/sftp.bin" % big], check=False)
    assert r.returncode != 0 and "quota exceeded" in r.stderr
    # scp -O: refused on the size line, before any data
    r = scp(d, c, [big, "R:/attachments/scp-legacy.bin"], legacy=True,
            check=False)
    assert r.returncode != 0 and "quota exceeded" in r.stderr
    # scp over SFTP
    r = scp(d, c, [big, "R:/attachments/scp-sftp.bin"], check=False)
    assert r.returncode != 0 and "quota exceeded" in r.stderr
    # rsync: an error the client prints, a non-zero exit, and the file's
    # data never asked for
    rc, out, err = rsync(d, c, "--stats", big, "R:/attachments/rsync.bin",
                         check=False)
    assert rc != 0 and "quota exceeded" in err
    assert stat_of(out, "Total bytes sent") < 30000, out

    assert visible(c) == ["first.bin"]
    u = usage(d, c)
    assert (u["objects"], u["bytes"]) == (1, 40000)
    assert round(u["percent_bytes"], 1) == round(100 * 40000 / 65536, 1)
    assert kept(usage(d, c, recount=True)) == {"": [1, 40000]}

    # what fits still goes through: 40000 + 20000 <= 65536
    ok = spec.new_name(".jpg")
    assert spec.upload(b"y" * 20000, ok).status == 200
    assert c.read("originals/" + ok) == b"y" * 20000

    # df: the quota is the disk's size, what is left of it is free
    r = sftp_batch(d, c, ["df /attachments"])
    size, used, avail = r.stdout.splitlines()[-1].split()[:3]
    free_blocks = (65536 - 60000) // 4096  # statvfs counts 4 KiB blocks
    assert (size, avail) == ("64", str(free_blocks * 4)), r.stdout
    assert used == str(64 - free_blocks * 4), r.stdout

    # an object quota: no new object, but a replacement is no new object
    d.ctl("client", "set", c.name, "--quota-bytes", "none",
          "--quota-objects", "2")
    r = sftp_batch(d, c, ["put %s /attachments/third.bin" % big],
                   check=False)
    assert r.returncode != 0 and "quota exceeded" in r.stderr
    sftp_batch(d, c, ["put %s /attachments/first.bin" % big])
    assert sorted(visible(c)) == ["first.bin", "originals/" + ok]
    assert c.read("first.bin") == open(big, "rb").read()


def test_racing_uploads_cross_the_quota_once(d):
    """Four uploads of 40,000 bytes race for 100,000: whichever commit
    first, exactly two fit; the others are refused and leave nothing."""
    c = new_client(d, "r")
    d.ctl("client", "set", c.name, "--quota-bytes", "100000")
    spec = for_client(d, c)
    names = [spec.new_name(".jpg") for _ in range(4)]
    status = {}

    def up(n):
        status[n] = spec.upload(os.urandom(40000), n).status

    ts = [threading.Thread(target=up, args=(n,)) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(status.values()) == [200, 200, 507, 507], status
    won = sorted("originals/" + n for n in names if status[n] == 200)
    assert sorted(visible(c)) == won
    assert usage(d, c)["bytes"] == 80000
