"""Large SFTP directory listings (issues 5 and 9): a folder is read page by
page through one open directory handle (READDIR returns ~256 names at a
time) and every name comes back exactly once, none missing, on both
backends. How long that takes is measured by the growth benchmark."""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from sshtools import new_client, paramiko_sftp, sftp_batch, shared_daemon


@pytest.fixture(scope="module", params=["fs", "s3"])
def daemon(request, tmp_path_factory, s3server):
    d = shared_daemon(request, tmp_path_factory, s3server)
    yield d
    d.stop()


def fs_folder(client, folder, names):
    """Empty files NAMES in FOLDER, made on disk directly (fast)."""
    root = os.path.join(client.location[len("file://"):], folder)
    os.makedirs(root, exist_ok=True)
    for n in names:
        open(os.path.join(root, n), "wb").close()
    return root


# fs only: the objects are made on disk, quickly. The test S3 server reads
# every object of the bucket per listing page, so S3 gets fewer objects in
# the paramiko test below.
@pytest.mark.parametrize("daemon", ["fs"], indirect=True)
def test_sftp_ls_of_20000_objects_lists_each_once(daemon):
    c = new_client(daemon)
    names = ["sp6%07d.att.jpg" % i for i in range(20000)]
    fs_folder(c, "big", names)
    r = sftp_batch(daemon, c, ["cd attachments/big", "ls -1"], timeout=120)
    got = [l.strip() for l in r.stdout.splitlines()
           if l.strip() and not l.startswith("sftp>")]
    assert len(got) == len(names)          # no name twice
    assert sorted(got) == sorted(names)    # none missing, none made up


def test_paramiko_listdir_pages_with_folders(daemon, tmp_path):
    """Several READDIR pages, with folders (holding objects) between the
    files: each folder is listed once, its contents not at all."""
    c = new_client(daemon)
    n = 3000 if daemon.backend == "fs" else 700
    files = ["f%05d.jpg" % i for i in range(n)]
    folders = ["f%05d.d" % i for i in range(0, n, 97)]
    if daemon.backend == "fs":
        root = fs_folder(c, "many", files)
        for d in folders:
            fs_folder(c, "many/" + d, ["a.jpg", "b.jpg"])
        os.makedirs(os.path.join(root, "emptydir"))
    else:
        s3 = daemon.s3.boto3()
        bucket, prefix = daemon._split(c.location)
        keys = [prefix + "many/" + f for f in files]
        for d in folders:
            keys += [prefix + "many/%s/a.jpg" % d, prefix + "many/%s/b.jpg" % d]
        keys.append(prefix + "many/emptydir/")     # a directory marker
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k,
                                                Body=b""), keys))
    sftp, t = paramiko_sftp(daemon, c)
    try:
        got = sftp.listdir("attachments/many")
        attrs = {a.filename: a for a in sftp.listdir_attr("attachments/many")}
    finally:
        sftp.close()
        t.close()
    want = files + folders + ["emptydir"]
    assert len(got) == len(want)
    assert sorted(got) == sorted(want)
    assert all(a.st_mode & 0o040000 for f, a in attrs.items()
               if f in folders or f == "emptydir")
    assert not any(attrs[f].st_mode & 0o040000 for f in files)


def test_open_directory_handles_are_bounded(daemon):
    """Each open listing holds its folder's names, so a session may hold
    16 at once; the 17th OPENDIR fails cleanly until one is closed."""
    import paramiko.sftp as ps
    c = new_client(daemon)
    sftp, t = paramiko_sftp(daemon, c)
    try:
        sftp.mkdir("attachments/d")
        handles = []
        for _ in range(16):
            _, msg = sftp._request(ps.CMD_OPENDIR, "attachments/d")
            handles.append(msg.get_binary())
        with pytest.raises(IOError, match="Too many open directories"):
            sftp._request(ps.CMD_OPENDIR, "attachments/d")
        sftp._request(ps.CMD_CLOSE, handles.pop())
        assert "d" in sftp.listdir("attachments")
        for h in handles:
            sftp._request(ps.CMD_CLOSE, h)
        assert sftp.listdir("attachments/d") == []
    finally:
        sftp.close()
        t.close()
