"""A full disk under the filesystem backend, through the daemon: the
region's assets live on a small tmpfs mounted for the test (CI runs as
root; where mounting is not permitted the test is skipped and says so).

With the disk full, an upload over HTTP, SFTP, scp (both modes) and rsync
fails with a clear error (HTTP 507 with a "no space" message; scp -O and
rsync show the message; OpenSSH's sftp and scp print only the SFTP status,
"Failure", and exit non-zero), the files already stored are intact, nothing
partial is left on the disk, and the daemon keeps serving reads. Once
space is freed, the same uploads succeed.
"""
import hashlib
import os
import urllib.request

import pytest

from conftest import Daemon, files_below, tmpfs
from sshtools import FRONTENDS, make_file, sftp_batch, upload_via

KiB = 1024


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def small_disk(tmp_path):
    root = tmp_path / "d" / "assets"
    root.mkdir(parents=True)
    with tmpfs("8m", root):
        yield root


def test_full_disk_through_every_front_end(small_disk, tmp_path):
    root = small_disk
    d = Daemon(tmp_path / "d", "fs")
    try:
        d.start()
        c = d.add_client("full")
        old = make_file(str(tmp_path / "old.bin"), 300 * KiB, seed=3)
        sftp_batch(d, c, ["put %s /attachments/originals/keep.bin" %
                          (tmp_path / "old.bin")])
        for fe in FRONTENDS:   # an existing file per front end, replaced
            sftp_batch(d, c, ["put %s /attachments/originals/%s.bin" %
                              (tmp_path / "old.bin", fe)])
        new = make_file(str(tmp_path / "new.bin"), 1024 * KiB, seed=4)
        # fill the disk but for 128 KiB
        st = os.statvfs(str(root))
        free = st.f_bavail * st.f_frsize
        with open(root / "filler", "wb") as f:
            f.write(b"\0" * (free - 128 * KiB))
        before = files_below(root)

        for fe in FRONTENDS:
            for name in (fe + ".bin", fe + "-new.bin"):
                ok, msg = upload_via(d, c, fe, str(tmp_path / "new.bin"),
                                     name)
                assert not ok, "%s reported success on a full disk" % fe
                assert msg, "%s: a failure with no message" % fe
                if fe == "http":
                    assert msg.startswith("507 ") and "space" in msg.lower()
                if fe in ("scp_legacy", "rsync"):
                    assert "space" in msg.lower(), msg
        # nothing partial, nothing damaged
        assert files_below(root) == before
        for fe in FRONTENDS:
            assert sha(c.read("originals/%s.bin" % fe)) == sha(old)
        # reads are still served, over HTTP and SFTP
        with urllib.request.urlopen(
                "%s/c/%s/fileget?coll=Demo&type=O&filename=keep.bin" %
                (d.http, c.name), timeout=30) as r:
            assert sha(r.read()) == sha(old)
        sftp_batch(d, c, ["get /attachments/originals/keep.bin %s" %
                          (tmp_path / "got.bin")])
        with open(tmp_path / "got.bin", "rb") as f:
            assert sha(f.read()) == sha(old)

        # space freed: the same uploads go through
        os.unlink(root / "filler")
        for fe in FRONTENDS:
            ok, msg = upload_via(d, c, fe, str(tmp_path / "new.bin"),
                                 fe + ".bin")
            assert ok, "%s after space was freed: %s" % (fe, msg)
            assert sha(c.read("originals/%s.bin" % fe)) == sha(new)
        assert "assetd-tmp" not in " ".join(files_below(root))
    finally:
        d.stop()
