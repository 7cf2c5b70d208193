"""Unicode look-alikes are distinct names, stored literally, and never
separators.

assetd does not normalise names (no NFC/NFD folding, no case folding, no
mapping of look-alikes): a name is its UTF-8 bytes, as S3, OpenSSH's
sftp-server and rsync treat it. Only the byte '/' separates, and the name
rules (store_name_valid) refuse what could escape or confuse a peer (".."
segments, backslashes, control characters, invalid UTF-8). So a division
slash, a fullwidth dot, a Cyrillic letter, a right-to-left override or a
zero-width space is just a character of one name in the client's own
folder. This checks, on both backends, that each such name is stored as
exactly those bytes, as one object, with its own content: names that
look alike (or are canonically equivalent) do not overwrite each other,
and every protocol lists them back byte for byte.
"""
import hashlib
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import Daemon
from specify_client import make_token
from sshtools import paramiko_sftp

NAMES = [
    "\u00e9t\u00e9.jpg",            # NFC "été"
    "e\u0301te\u0301.jpg",           # NFD "été": a different name
    "a.jpg",
    "\u0430.jpg",                    # CYRILLIC SMALL LETTER A
    "\uff41.jpg",                    # FULLWIDTH LATIN SMALL LETTER A
    "a\u200b.jpg",                   # ZERO WIDTH SPACE
    "photo\u202egpj.exe",            # RIGHT-TO-LEFT OVERRIDE
    "x\u2215y.jpg",                  # DIVISION SLASH: not a separator
    "x\u2044y.jpg",                  # FRACTION SLASH
    "x\uff0fy.jpg",                  # FULLWIDTH SOLIDUS
    "\uff0e\uff0e",                  # two FULLWIDTH FULL STOPs
    "\u2024\u2024",                  # two ONE DOT LEADERs
    "A.JPG",                         # case is not folded either
]


@pytest.fixture(scope="module", params=["fs", "s3"])
def world(request, tmp_path_factory, s3server):
    d = Daemon(tmp_path_factory.mktemp("uni-" + request.param),
               request.param, s3server if request.param == "s3" else None)
    d.start()
    c = d.add_client("uni")
    yield d, c
    d.stop()


def body(i):
    return ("object %d " % i).encode() * (100 + i)


def test_look_alike_names_are_distinct_and_literal(world, tmp_path):
    d, c = world
    sftp, t = paramiko_sftp(d, c)
    try:
        for i, n in enumerate(NAMES):
            with sftp.open("/attachments/originals/" + n, "wb") as f:
                f.write(body(i))
        listed = sftp.listdir("/attachments/originals")
        assert sorted(listed) == sorted(NAMES)
        for i, n in enumerate(NAMES):
            with sftp.open("/attachments/originals/" + n, "rb") as f:
                assert f.read() == body(i), n
    finally:
        t.close()
    # on the backend: exactly these keys, as these bytes, in originals/
    assert sorted(x for x in c.list() if not x.endswith("/")) == \
        sorted("originals/" + n for n in NAMES)
    # nothing outside the client's folder
    assert all(x.startswith(c.name + "/")
               for x in d.backend_list(d.assets)), d.backend_list(d.assets)
    for i, n in enumerate(NAMES):
        assert hashlib.sha256(c.read("originals/" + n)).digest() == \
            hashlib.sha256(body(i)).digest()
    # rsync lists the same bytes (-8: print them raw)
    ssh = " ".join(["ssh", "-p", str(d.ssh_port)] + c.ssh_opts())
    r = subprocess.run(["rsync", "-8", "-e", ssh, "--list-only",
                        "%s@127.0.0.1:attachments/originals/" % c.name],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = [ln.split(None, 4)[4].decode("utf-8")
           for ln in r.stdout.splitlines() if not ln.endswith(b" .")]
    assert sorted(got) == sorted(NAMES)
    # HTTP reads each by its exact name, and an upload with an NFD name
    # does not touch the NFC object
    for i, n in enumerate(NAMES[:4]):
        q = urllib.parse.urlencode({"coll": "Demo", "type": "O",
                                    "filename": n})
        with urllib.request.urlopen("%s/c/%s/fileget?%s" %
                                    (d.http, c.name, q), timeout=30) as resp:
            assert resp.read() == body(i), n
    name = NAMES[1]
    tok = make_token(c.attachment_key, name, int(time.time()))
    src = tmp_path / "up.bin"
    src.write_bytes(b"replaced over HTTP")
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                        "%{http_code}", "-F", "file=@%s" % src,
                        "-F", "token=" + tok, "-F", "store=" + name,
                        "-F", "type=O", "-F", "coll=Demo",
                        "%s/c/%s/fileupload" % (d.http, c.name)],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout == "200", r
    assert c.read("originals/" + NAMES[1]) == b"replaced over HTTP"
    assert c.read("originals/" + NAMES[0]) == body(0)
