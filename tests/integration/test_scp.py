"""scp against the real daemon: OpenSSH 9's default (SFTP) mode and the
legacy protocol (scp -O), both directions, both backends."""
import os
import subprocess
import time

import pytest

from sshtools import (make_file, new_client, paramiko_sftp, scp,
                      shared_daemon, ssh, visible)

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["fs", "s3"])
def daemon(request, tmp_path_factory, s3server):
    d = shared_daemon(request, tmp_path_factory, s3server)
    yield d
    d.stop()


def test_scp_sftp_mode_single_file(daemon, tmp_path):
    c = new_client(daemon)
    data = make_file(tmp_path / "a.jpg", MiB + 3, seed=11)
    scp(daemon, c, [str(tmp_path / "a.jpg"), "R:attachments/originals/"])
    assert c.read("originals/a.jpg") == data
    scp(daemon, c, ["R:attachments/originals/a.jpg", str(tmp_path / "b.jpg")])
    assert (tmp_path / "b.jpg").read_bytes() == data


def make_tree(root):
    """A small tree with nested folders, spaces and unicode names."""
    files = {}
    spec = {
        "top.txt": 1000,
        "sub dir/ü 日本.jpg": 300000,
        "sub dir/deeper/x.bin": 70000,
        "sub dir/deeper/empty.txt": 0,
        "other/y.pdf": 5000,
    }
    for i, (rel, size) in enumerate(sorted(spec.items())):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        files[rel] = make_file(p, size, seed=20 + i)
        os.utime(p, (1600000000 + i, 1600000000 + i))
    return files


def test_scp_legacy_file_both_ways_with_times(daemon, tmp_path):
    c = new_client(daemon)
    data = make_file(tmp_path / "one.bin", 2 * MiB + 1, seed=12)
    os.utime(tmp_path / "one.bin", (1500000000, 1500000000))
    scp(daemon, c, ["-p", str(tmp_path / "one.bin"), "R:attachments/"],
        legacy=True)
    assert c.read("one.bin") == data
    sftp, t = paramiko_sftp(daemon, c)
    try:
        assert sftp.stat("/attachments/one.bin").st_mtime == 1500000000
    finally:
        t.close()
    # onto a new name
    scp(daemon, c, [str(tmp_path / "one.bin"), "R:attachments/renamed.bin"],
        legacy=True)
    assert c.read("renamed.bin") == data
    # download with -p keeps the time
    out = tmp_path / "down"
    out.mkdir()
    scp(daemon, c, ["-p", "R:attachments/one.bin", str(out)], legacy=True)
    assert (out / "one.bin").read_bytes() == data
    assert int(os.stat(out / "one.bin").st_mtime) == 1500000000


def test_scp_legacy_many_sources_need_a_folder(daemon, tmp_path):
    """Two sources make OpenSSH send "scp -d -t TARGET": the target must be
    a folder."""
    c = new_client(daemon)
    a = make_file(tmp_path / "a", 1000, seed=16)
    b = make_file(tmp_path / "b", 2000, seed=17)
    scp(daemon, c, [str(tmp_path / "a"), str(tmp_path / "b"),
                    "R:attachments/originals"], legacy=True)
    assert c.read("originals/a") == a
    assert c.read("originals/b") == b
    r = scp(daemon, c, [str(tmp_path / "a"), str(tmp_path / "b"),
                        "R:attachments/originals/a"], legacy=True, check=False)
    assert r.returncode == 1
    assert "Not a directory" in r.stderr
    assert c.read("originals/a") == a
    r = scp(daemon, c, [str(tmp_path / "a"), "R:attachments/nodir/"],
            legacy=True, check=False)
    assert r.returncode == 1
    assert "nodir" not in " ".join(visible(c))


def test_scp_legacy_recursive_tree(daemon, tmp_path):
    c = new_client(daemon)
    src = tmp_path / "tree"
    files = make_tree(src)
    scp(daemon, c, ["-r", "-p", str(src), "R:attachments/"], legacy=True)
    for rel, data in files.items():
        assert c.read("tree/" + rel) == data, rel
    sftp, t = paramiko_sftp(daemon, c)
    try:
        st = sftp.stat("/attachments/tree/top.txt")
        assert st.st_mtime == int(os.stat(src / "top.txt").st_mtime)
    finally:
        t.close()
    # and back down, -r -p
    down = tmp_path / "down"
    down.mkdir()
    scp(daemon, c, ["-r", "-p", "R:attachments/tree", str(down)], legacy=True)
    for rel, data in files.items():
        p = down / "tree" / rel
        assert p.read_bytes() == data, rel
        assert int(os.stat(p).st_mtime) == int(os.stat(src / rel).st_mtime)


def test_scp_legacy_names_with_spaces_and_unicode(daemon, tmp_path):
    c = new_client(daemon)
    data = make_file(tmp_path / "my photo ü.jpg", 12345, seed=13)
    sftp, t = paramiko_sftp(daemon, c)
    sftp.mkdir("/attachments/dir with space")
    t.close()
    # scp -O passes the remote path to the remote "shell": quote it
    scp(daemon, c, [str(tmp_path / "my photo ü.jpg"),
                    "R:'attachments/dir with space/'"], legacy=True)
    assert c.read("dir with space/my photo ü.jpg") == data
    (tmp_path / "out").mkdir()
    scp(daemon, c, ["R:attachments/dir\\ with\\ space/my\\ photo\\ ü.jpg",
                    str(tmp_path / "out")], legacy=True)
    assert (tmp_path / "out" / "my photo ü.jpg").read_bytes() == data
    # a wildcard is expanded like the remote shell would
    make_file(tmp_path / "b.jpg", 100, seed=14)
    scp(daemon, c, [str(tmp_path / "b.jpg"), "R:'attachments/dir with space/'"],
        legacy=True)
    (tmp_path / "glob").mkdir()
    scp(daemon, c, ["R:attachments/dir\\ with\\ space/*.jpg",
                    str(tmp_path / "glob")], legacy=True)
    assert sorted(os.listdir(tmp_path / "glob")) == ["b.jpg", "my photo ü.jpg"]


def test_scp_legacy_errors_are_shown(daemon, tmp_path):
    c = new_client(daemon)
    (tmp_path / "f").write_bytes(b"data")
    r = scp(daemon, c, ["R:attachments/missing.jpg", str(tmp_path / "x")],
            legacy=True, check=False)
    assert r.returncode == 1
    assert "No such file or directory" in r.stderr
    r = scp(daemon, c, [str(tmp_path / "f"), "R:backups/"], legacy=True,
            check=False)
    assert r.returncode == 1
    assert "Permission denied" in r.stderr
    r = scp(daemon, c, [str(tmp_path / "f"), "R:nowhere/f"], legacy=True,
            check=False)
    assert r.returncode == 1
    r = scp(daemon, c, ["R:attachments", str(tmp_path / "d")], legacy=True,
            check=False)
    assert r.returncode == 1
    assert "not a regular file" in r.stderr
    # one missing source among good ones: the good one still arrives
    sftp, t = paramiko_sftp(daemon, c)
    with sftp.open("/attachments/good", "wb") as f:
        f.write(b"good")
    t.close()
    (tmp_path / "dl").mkdir()
    r = scp(daemon, c, ["R:attachments/good", "R:attachments/bad",
                        str(tmp_path / "dl")], legacy=True, check=False)
    assert r.returncode == 1
    assert (tmp_path / "dl" / "good").read_bytes() == b"good"
    assert visible(c) == ["good"]


def test_scp_legacy_traversal_refused(daemon, tmp_path):
    c = new_client(daemon)
    other = new_client(daemon, "o")
    (tmp_path / "f").write_bytes(b"evil")
    for target in ("R:../%s/attachments/" % other.name,
                   "R:attachments/../../%s/" % other.name,
                   "R:/etc/", "R:attachments/x;id", "R:attachments/`id`",
                   "R:attachments/$(id)", "R:attachments/$HOME"):
        r = scp(daemon, c, [str(tmp_path / "f"), target], legacy=True,
                check=False)
        assert r.returncode != 0, target
    assert not any(n.endswith("f") for n in other.list())
    assert visible(c) == []


def test_scp_legacy_killed_mid_upload_leaves_nothing(daemon, tmp_path):
    c = new_client(daemon)
    make_file(tmp_path / "big", 30 * MiB, seed=15)
    argv = ["scp", "-O", "-l", "8000", "-P", str(daemon.ssh_port)] + \
        c.ssh_opts() + [str(tmp_path / "big"),
                        "%s@127.0.0.1:attachments/" % c.name]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)
    p.kill()
    p.wait()
    time.sleep(1.5)
    assert visible(c) == []


def test_exec_other_commands_refused(daemon, tmp_path):
    c = new_client(daemon)
    r = ssh(daemon, c, "ls -la /")
    assert r.returncode != 0
    assert b"not allowed" in r.stderr
    r = ssh(daemon, c, "rsync --version")
    assert r.returncode != 0
    assert b"server mode" in r.stderr
    r = ssh(daemon, c, None, input=b"")
    assert r.returncode != 0
    assert b"no shell" in r.stderr
    r = ssh(daemon, c, "scp -t; id")
    assert r.returncode != 0


def test_exec_rsync_push_and_pull(daemon, tmp_path):
    """Debian's rsync over the daemon's SSH: the exec request reaches the
    rsync engine with the session's tree as its resolver."""
    c = new_client(daemon)
    src = tmp_path / "tree"
    files = make_tree(src)
    e = "ssh -p %d %s" % (daemon.ssh_port, " ".join(c.ssh_opts()))
    r = subprocess.run(["rsync", "-a", "-e", e, str(src) + "/",
                        "%s@127.0.0.1:attachments/synced/" % c.name],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for rel, data in files.items():
        assert c.read("synced/" + rel) == data, rel
    back = tmp_path / "back"
    r = subprocess.run(["rsync", "-a", "-e", e,
                        "%s@127.0.0.1:attachments/synced/" % c.name,
                        str(back) + "/"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for rel, data in files.items():
        assert (back / rel).read_bytes() == data, rel
    # the tree's limits hold for rsync too
    r = subprocess.run(["rsync", "-a", "-e", e, str(src) + "/",
                        "%s@127.0.0.1:backups/" % c.name],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    r = subprocess.run(["rsync", "-a", "-e", e, str(src) + "/",
                        "%s@127.0.0.1:../../etc/" % c.name],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
