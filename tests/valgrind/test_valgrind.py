"""The daemon under valgrind through one session of each protocol: an HTTP
upload, fileget, a thumbnail and getmetadata; an SFTP put, get, listing,
rename and remove; scp both ways in both modes; rsync push and pull. Then a
clean stop, and valgrind must report no error and no definite leak
(--leak-check=full --errors-for-leak-kinds=definite).

Run by `make valgrind` (not by `make check`: under valgrind the daemon is
some 30 times slower, and a session of each protocol takes a minute or
more). One backend is enough for memory errors in our code; the
filesystem one, so nothing but the daemon is measured.
"""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))

from conftest import ASSETD, ROOT, Daemon, wait_port  # noqa: E402
from media import jpeg_with_exif  # noqa: E402
from specify_client import make_token  # noqa: E402
from sshtools import make_file, scp, sftp_batch  # noqa: E402

SUPP = os.path.join(ROOT, "tests", "valgrind", "assetd.supp")


class ValgrindDaemon(Daemon):
    def start(self, wait=True):
        # the host keys, as the plain daemon gets them
        src = self._host_keys()
        for name in os.listdir(src):
            dst = os.path.join(self.var, name)
            if not os.path.exists(dst):
                with open(os.path.join(src, name), "rb") as f, \
                        open(dst, "wb") as g:
                    g.write(f.read())
                os.chmod(dst, 0o600 if not name.endswith(".pub") else 0o644)
        self.vglog = os.path.join(self.workdir, "valgrind.log")
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["valgrind", "--leak-check=full",
             "--errors-for-leak-kinds=definite", "--error-exitcode=99",
             "--num-callers=30", "--suppressions=" + SUPP,
             "--log-file=" + self.vglog, ASSETD, "-f", self.conf_path, "-d"],
            stdout=self.logf, stderr=subprocess.STDOUT, env=self.env,
            cwd=self.workdir)
        wait_port(self.http_port, 180, self.proc)
        wait_port(self.ssh_port, 180, self.proc)
        return self


def test_one_session_of_each_protocol_under_valgrind(tmp_path):
    d = ValgrindDaemon(tmp_path / "d", "fs")
    d.start()
    try:
        c = d.add_client("vg")
        # HTTP: upload, read, thumbnail, metadata
        img = jpeg_with_exif(tmp_path, 320, 240)
        src = tmp_path / "img.jpg"
        src.write_bytes(img)
        tok = make_token(c.attachment_key, "img.jpg", int(time.time()))
        base = "%s/c/%s" % (d.http, c.name)
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "120", "-o", "/dev/null", "-w",
             "%{http_code}", "-F", "file=@%s" % src, "-F", "token=" + tok,
             "-F", "store=img.jpg", "-F", "type=O", "-F", "coll=Demo",
             base + "/fileupload"], capture_output=True, text=True)
        assert r.stdout == "200", r
        def get(path, **q):
            url = base + path + "?" + urllib.parse.urlencode(q)
            with urllib.request.urlopen(url, timeout=120) as resp:
                return resp.read()
        assert get("/fileget", coll="Demo", type="O",
                   filename="img.jpg") == img
        assert get("/fileget", coll="Demo", type="T", filename="img.jpg",
                   scale="64")[:2] == b"\xff\xd8"
        assert b"AssetTestCam" in get("/getmetadata", coll="Demo",
                                      filename="img.jpg", dt="json")
        # SFTP
        data = make_file(str(tmp_path / "f.bin"), 300000, seed=5)
        sftp_batch(d, c, ["put %s /attachments/originals/f.bin" %
                          (tmp_path / "f.bin"),
                          "ls -l /attachments/originals",
                          "get /attachments/originals/f.bin %s" %
                          (tmp_path / "g.bin"),
                          "rename /attachments/originals/f.bin "
                          "/attachments/originals/h.bin",
                          "rm /attachments/originals/h.bin"], timeout=180)
        assert (tmp_path / "g.bin").read_bytes() == data
        # scp, both modes, both ways
        for legacy in (False, True):
            scp(d, c, [str(tmp_path / "f.bin"), "R:/attachments/s.bin"],
                legacy=legacy, timeout=180)
            out = tmp_path / ("s%d.bin" % legacy)
            scp(d, c, ["R:/attachments/s.bin", str(out)], legacy=legacy,
                timeout=180)
            assert out.read_bytes() == data
        # rsync push (then a delta against it) and pull
        ssh = " ".join(["ssh", "-p", str(d.ssh_port)] + c.ssh_opts())
        remote = "%s@127.0.0.1:attachments/r/" % c.name
        tree = tmp_path / "tree"
        tree.mkdir()
        make_file(str(tree / "a.bin"), 200000, seed=6)
        make_file(str(tree / "b.bin"), 1000, seed=7)
        for _ in range(2):
            subprocess.run(["rsync", "-a", "-e", ssh, str(tree) + "/",
                            remote], check=True, timeout=180)
            with open(tree / "a.bin", "r+b") as f:
                f.seek(100000)
                f.write(b"changed")
        back = tmp_path / "back"
        subprocess.run(["rsync", "-a", "-e", ssh, remote, str(back) + "/"],
                       check=True, timeout=180)
        assert (back / "b.bin").read_bytes() == (tree / "b.bin").read_bytes()
    finally:
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(180)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
        d.logf.close()
        d.logf = None
    with open(d.vglog) as f:
        report = f.read()
    summary = re.findall(r"ERROR SUMMARY: (\d+) errors", report)
    lost = re.findall(r"definitely lost: ([\d,]+) bytes", report)
    print(report[-3000:])
    assert d.proc.returncode != 99, report[-20000:]
    assert summary and summary[-1] == "0", report[-20000:]
    assert not lost or lost[-1] == "0", report[-20000:]
