"""Uploads whose file part comes first (Specify 7's order) stream into a
hidden temp object in the store and are renamed (fs) or copied server-side
(S3) into place once the fields check out; refused, too large and broken
uploads leave nothing; temp objects left by a crash are swept at start.
Every check lists the backend raw (the directory tree, or every key of the
bucket), not through assetd."""
import os
import socket
import time

import pytest

from conftest import wait_port
from specify_client import for_client, make_token

MiB = 1 << 20


def start(d, **env):
    d.env.update({k: str(v) for k, v in env.items()})
    # S3: 5 MiB parts, so that 12 MiB is a real multipart upload, and
    # UploadPartCopy from 6 MiB up, so that the >5 GiB copy path runs too.
    d.env.setdefault("ASSETD_S3_PART_SIZE", str(5 * MiB))
    d.start(wait=False)
    wait_port(d.http_port, 20, d.proc)
    return d




def raw(d):
    """Every object below the region's assets location, as the backend
    holds it (fs temp files included), without S3 directory markers."""
    return [n for n in d.backend_list(d.assets) if not n.endswith("/")]


def temps(d):
    return [n for n in raw(d) if ".assetd-tmp." in n]


def wait_log(d, needle, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(d.log_path, "rb") as f:
            if needle.encode() in f.read():
                return True
        time.sleep(0.1)
    return False


def test_file_first_uploads_land_with_no_temp(make_daemon, backend):
    """One client (staged in its location), two clients on the unprefixed
    URL (staged at the region's assets root), a /c/<client>/ URL: small
    (single PUT) and 12 MiB (multipart temp + copy) files all land whole,
    and no temp object is left."""
    d = start(make_daemon(backend), ASSETD_S3_COPY_THRESHOLD=6 * MiB)
    ku = d.add_client("ku", collections=("Herp",), ssh_key=False)
    big = os.urandom(12 * MiB + 123)
    small = os.urandom(70000)
    c = for_client(d, ku, "Herp", prefixed=False)
    n1, n2 = c.new_name(".bin"), c.new_name(".JPG")
    assert c.upload(big, n1).status == 200
    assert c.upload(small, n2).status == 200
    assert ku.read("originals/" + n1) == big
    assert ku.read("originals/" + n2) == small
    assert temps(d) == []

    uf = d.add_client("uf", collections=("Botany",), ssh_key=False)
    cu = for_client(d, uf, "Botany", prefixed=False)
    n3 = cu.new_name(".png")
    assert cu.upload(big, n3).status == 200
    assert uf.read("originals/" + n3) == big
    cp = for_client(d, ku, "Herp")
    n4 = cp.new_name(".tif")
    assert cp.upload(big, n4).status == 200
    assert ku.read("originals/" + n4) == big
    assert temps(d) == []
    assert sorted(raw(d)) == sorted(
        ["ku/originals/" + n for n in (n1, n2, n4)] +
        ["uf/originals/" + n3])
    if backend == "s3":
        # the final object has the type of its own name, not the temp's
        meta = d.s3.boto3().head_object(Bucket=d.bucket,
                                        Key="assets/uf/originals/" + n3)
        assert meta["ContentType"] == "image/png"


def test_refused_and_broken_uploads_leave_nothing(make_daemon, backend):
    d = start(make_daemon(backend, "MaxUploadSize 8M\n"))
    ku = d.add_client("ku", collections=("Herp",), ssh_key=False)
    d.add_client("uf", collections=("Botany",), ssh_key=False)
    c = for_client(d, ku, "Herp", prefixed=False)
    data = os.urandom(6 * MiB)
    name = c.new_name(".bin")
    # the bytes are in the store before the fields say no
    assert c.upload(data, name, token="0" * 32 + ":%d" % c.now()).status == 403
    assert c.upload(data, name, coll="No Such Coll").status == 404
    assert c.upload(data, name, token=make_token(ku.attachment_key, name,
                                                 c.now() - 1000)).status == 403
    # too large, counted as it arrives (chunked: no Content-Length)
    ctype, chunks = c.multipart(
        [("token", c.token(name)), ("store", name), ("type", "O"),
         ("coll", "Herp")], ("file", "x.bin", [os.urandom(MiB)] * 9))
    body = [b"%x\r\n%s\r\n" % (len(p), p) for p in chunks if p] + [b"0\r\n\r\n"]
    r = c.request("POST", c.urls["write"], chunks=body,
                  headers={"Content-Type": ctype,
                           "Transfer-Encoding": "chunked"})
    assert r.status == 413
    assert raw(d) == []

    # a client that dies mid-upload: the daemon notices, nothing stays
    boundary = "----assetdkill"
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"x.bin\"\r\nContent-Type: application/octet-stream"
            "\r\n\r\n" % boundary).encode()
    s = socket.create_connection(("127.0.0.1", d.http_port))
    s.sendall(("POST /fileupload HTTP/1.1\r\nHost: x\r\nContent-Type: "
               "multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
               % (boundary, 7 * MiB + len(head) + 100)).encode() + head)
    for _ in range(6):
        s.sendall(os.urandom(MiB))
    if backend == "fs":
        # streamed into the store as it arrives: a temp file, already
        # holding most of the bytes, that no listing shows
        deadline = time.time() + 10
        while time.time() < deadline:
            t = temps(d)
            if t and os.path.getsize(os.path.join(d.assets[7:], t[0])) >= 5 * MiB:
                break
            time.sleep(0.1)
        # two clients, unprefixed: staged at the region's assets root
        assert len(t) == 1 and t[0].startswith(".assetd-tmp."), t
    s.close()
    assert wait_log(d, "aborted=1")
    deadline = time.time() + 10
    while raw(d) and time.time() < deadline:
        time.sleep(0.1)
    assert raw(d) == []


def test_startup_sweeps_left_temps(make_daemon, backend):
    """Temp objects a crash left (fs: anywhere below a location; S3: at a
    location's root) are removed when the daemon starts; other objects
    stay."""
    d = make_daemon(backend)
    ku = d.add_client("ku", collections=("Herp",), ssh_key=False)
    left = ["ku/.assetd-tmp.0123456789abcdef", ".assetd-tmp.fedcba9876543210"]
    if backend == "fs":
        left.append("ku/originals/.assetd-tmp.00000000000000aa")
    keep = "ku/originals/kept.bin"
    for n in left + [keep]:
        if backend == "fs":
            p = os.path.join(d.assets[7:], n)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(b"partial")
        else:
            d.s3.boto3().put_object(Bucket=d.bucket, Key="assets/" + n,
                                    Body=b"partial")
    assert sorted(raw(d)) == sorted(left + [keep])
    # S3 staged temps are kept a day (nothing can lock them); 0 here
    start(d, ASSETD_S3_TEMP_MIN_AGE=0)
    assert wait_log(d, "event=recovered")
    assert raw(d) == [keep]
    assert ku.read("originals/kept.bin") == b"partial"
