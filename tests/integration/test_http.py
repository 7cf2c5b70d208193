"""The Specify endpoint against the real daemon, on both backends, driven
the way Specify 6 and 7 drive it (specify_client.py) and with curl."""
import concurrent.futures
import os
import re
import subprocess
import time
import urllib.parse

import pytest

from conftest import read_to_eof, wait_port
from media import (convert, image_info, jpeg_with_exif, pdf_bytes, pixel,
                   png_bytes)
from specify_client import for_client, make_token


def start_http(d):
    """Start D and wait for its HTTP listener only: these tests need no
    other front end."""
    d.start(wait=False)
    wait_port(d.http_port, 20, d.proc)
    return d


@pytest.fixture
def daemon(make_daemon, backend):
    """A started daemon on BACKEND (HTTP only), with no clients yet."""
    return start_http(make_daemon(backend))


def mkcert(dirpath, cn):
    """A self-signed P-256 certificate for CN in DIRPATH: (crt, key)."""
    crt = os.path.join(str(dirpath), cn + ".crt")
    key = os.path.join(str(dirpath), cn + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=" + cn, "-keyout", key,
                    "-out", crt], check=True, capture_output=True)
    return crt, key


def tls_request(port, request, timeout=None):
    """Send REQUEST (bytes, ending the connection) over TLS to PORT without
    checking the certificate: (the peer's certificate in DER, the
    response)."""
    import socket
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s) as t:
            der = t.getpeercert(binary_form=True)
            t.sendall(request)
            return der, read_to_eof(t)


def curl(*args):
    r = subprocess.run(["curl", "-s", "-S", "-i", "--max-time", "30"] +
                       list(args), capture_output=True)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def files(client, sub):
    """Object names under SUB/, without S3 directory markers."""
    return sorted(n for n in client.list(sub + "/")
                  if n and not n.endswith("/"))


# ---- discovery and tokens ---------------------------------------------

def test_token_vectors():
    # the contract's vectors, as the Python client computes them
    assert make_token("test_attachment_key",
                      "a6daad6c-5091-4461-86ee-eeba9434ef2b.jpg",
                      1700000000) == \
        "ee4efd433c8579597024c4ec1621cfd8:1700000000"
    assert make_token("test_attachment_key", "sp6-1234.att.jpg",
                      1700000000) == \
        "f62d0e45080192a5341c60c751d11501:1700000000"


def test_xml_timestamp_and_base(daemon):
    daemon.add_client("ku", collections=("Herp",), ssh_key=False)
    st, h, body = curl(daemon.http + "/web_asset_store.xml")
    assert st == 200
    assert h["content-type"].startswith("text/xml")
    assert abs(int(h["x-timestamp"]) - time.time()) < 5
    host = "127.0.0.1:%d" % daemon.http_port
    for t in ("read", "write", "delete", "getmetadata"):
        assert ("<url type=\"%s\"><![CDATA[http://%s/" % (t, host)).encode() \
            in body
    assert ("<url type=\"testkey\">http://%s/testkey</url>" % host).encode() \
        in body
    # behind a TLS proxy
    st, h, body = curl("-H", "X-Forwarded-Proto: https", "-H",
                       "X-Forwarded-Host: assets.example.org",
                       daemon.http + "/c/ku/web_asset_store.xml")
    assert st == 200
    assert b"https://assets.example.org/c/ku/fileupload" in body
    assert b"http://" not in body
    # X-Timestamp on errors too, and a poisoned Host is refused
    for url in ("/nope", "/c/nobody/web_asset_store.xml", "/testkey"):
        st, h, _ = curl(daemon.http + url)
        assert st in (403, 404) and "x-timestamp" in h, (url, st)
    st, h, _ = curl("-H", "Host: evil\"><x", daemon.http + "/web_asset_store.xml")
    assert st == 400 and "x-timestamp" in h
    st, h, body = curl(daemon.http + "/")
    assert st == 200 and body


def test_public_url(make_daemon):
    # not a storage behaviour: the fs backend is enough
    d = make_daemon("fs", "PublicURL https://assets.example.org/sp/\n")
    start_http(d)
    d.add_client("ku", ssh_key=False)
    st, _, body = curl(d.http + "/web_asset_store.xml")
    assert b"<![CDATA[https://assets.example.org/sp/fileget]]>" in body
    st, _, body = curl(d.http + "/c/ku/web_asset_store.xml")
    assert b"https://assets.example.org/sp/c/ku/testkey</url>" in body


def test_testkey_tokens(daemon):
    ku = daemon.add_client("ku", collections=("Herp",), ssh_key=False,
                           attachment_key="ku-key")
    c = for_client(daemon, ku, "Herp")
    assert c.testkey().status == 200
    assert c.testkey(key="wrong").status == 403
    rnd = "r-1"
    now = c.now()
    url = c.urls["testkey"] + "?random=%s&token=" % rnd
    bad = [make_token("ku-key", rnd, now - 200),        # expired
           make_token("ku-key", rnd, now + 200),        # from the future
           make_token("ku-key", "other", now),          # other name
           "", "abc", "nocolon" * 5,
           make_token("ku-key", rnd, now).split(":")[0] + ":12x",
           make_token("ku-key", rnd, now).upper()]
    for tok in bad:
        r = c.request("GET", url + urllib.parse.quote(tok))
        assert r.status == 403 and "x-timestamp" in r.headers, tok
    r = c.request("GET", c.urls["testkey"] + "?random=" + rnd)
    assert r.status == 403
    good = make_token("ku-key", rnd, now)
    assert c.request("GET", url + urllib.parse.quote(good)).status == 200
    # unprefixed: each client's own key is accepted, the server key too
    r = c.request("GET", daemon.http + "/testkey?random=%s&token=%s" % (
        rnd, urllib.parse.quote(good)))
    assert r.status == 200
    r = c.request("GET", daemon.http + "/testkey?random=%s&token=%s" % (
        rnd, urllib.parse.quote(make_token("test_attachment_key", rnd, now))))
    assert r.status == 200
    # tokens and keys never reach the log
    assert good not in daemon.log() and "ku-key" not in daemon.log()


# ---- Specify 7 end to end ---------------------------------------------

def test_specify7_flow(daemon, tmp_path):
    ku = daemon.add_client("ku", collections=("KU Fish",), ssh_key=False)
    c = for_client(daemon, ku, "KU Fish", prefixed=False)
    assert c.testkey().status == 200
    photo = convert(tmp_path, png_bytes(800, 600), ".jpg")
    name = c.new_name(".JPG")
    r = c.upload(photo, name)
    assert (r.status, r.body) == (200, b"Ok.")
    assert r.headers["access-control-allow-origin"] == "*"
    assert ku.read("originals/" + name) == photo

    root = name[:-4]
    for s in (123, 200, 600):
        r = c.thumbnail(name, s)
        assert r.status == 200 and r.headers["content-type"] == "image/jpeg"
        w, h, _, loader = image_info(tmp_path, r.body)
        assert (w, h, loader) == (s, s * 3 // 4, "jpegload")
        assert ku.read("thumbnails/%s_%d.JPG" % (root, s)) == r.body
    # served from the cache afterwards, with validators
    r2 = c.thumbnail(name, 200)
    assert r2.status == 200 and "etag" in r2.headers
    assert r2.body == ku.read("thumbnails/%s_200.JPG" % root)

    r = c.fileget(name, downloadname="Fish 1 \u00e9t\u00e9.jpg")
    assert r.status == 200 and r.body == photo
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"] == \
        "inline; filename*=utf-8''Fish%201%20%C3%A9t%C3%A9.jpg"
    assert r.headers["accept-ranges"] == "bytes"
    etag, lm = r.headers["etag"], r.headers["last-modified"]

    r = c.fileget(name, headers={"Range": "bytes=100-199"})
    assert r.status == 206 and r.body == photo[100:200]
    assert r.headers["content-range"] == "bytes 100-199/%d" % len(photo)
    r = c.fileget(name, headers={"Range": "bytes=-10"})
    assert r.status == 206 and r.body == photo[-10:]
    r = c.fileget(name, headers={"Range": "bytes=%d-" % len(photo)})
    assert r.status == 416
    assert r.headers["content-range"] == "bytes */%d" % len(photo)
    r = c.fileget(name, headers={"Range": "bytes=0-1", "If-Range": '"other"'})
    assert r.status == 200 and r.body == photo
    r = c.fileget(name, headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b""
    r = c.fileget(name, headers={"If-Modified-Since": lm})
    assert r.status == 304
    r = c.fileget(name, method="HEAD")
    assert r.status == 200 and r.body == b""
    assert int(r.headers["content-length"]) == len(photo)

    # download all: sequential plain fetches
    names = [name]
    for i in range(3):
        n = c.new_name(".png")
        data = png_bytes(20 + i, 10)
        assert c.upload(data, n).status == 200
        names.append(n)
    got = c.download_all(names + [c.new_name(".jpg")])
    assert sorted(got) == sorted(names)

    # an upload to an existing name replaces it
    other = names[1]
    assert c.upload(b"replaced", other).status == 200
    assert ku.read("originals/" + other) == b"replaced"
    # delete as multipart/form-data (a browser FormData) works too
    ctype, chunks = c.multipart([("filename", other), ("coll", "KU Fish"),
                                 ("token", c.token(other))], None)
    r = c.request("POST", c.urls["delete"], body=b"".join(chunks),
                  headers={"Content-Type": ctype})
    assert (r.status, r.body) == (200, b"Ok.")
    assert other not in files(ku, "originals")

    r = c.delete(name)
    assert (r.status, r.body) == (200, b"Ok.")
    assert not [n for n in ku.list("") if root in n]
    assert c.delete(name).status == 404
    assert c.fileget(name).status == 404
    assert c.thumbnail(name, 123).status == 404


def test_specify6_names_and_thumbnail_uploads(daemon, tmp_path):
    ku = daemon.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(daemon, ku, "Herp", prefixed=False)
    img = convert(tmp_path, png_bytes(400, 300), ".jpg")
    a, b = "sp6-1234.att.jpg", "sp6-12345.att.jpg"
    for n in (a, b):
        r = c.upload(img, n, file_first=False)
        assert r.status == 200, r
        r = c.upload_sp6_thumbnail(img, n)
        assert (r.status, r.body) == (200, b"Ignoring thumbnail upload!")
        assert c.thumbnail(n, 123).status == 200
        assert c.thumbnail(n, 600).status == 200
    th = files(ku, "thumbnails")
    assert th == ["sp6-1234.att_123.jpg", "sp6-1234.att_600.jpg",
                  "sp6-12345.att_123.jpg", "sp6-12345.att_600.jpg"]
    # a thumbnail upload with a bad token is refused all the same
    r = c.upload(img, "sp6-9.att.jpg", type_="T", token="0" * 32 + ":1")
    assert r.status == 403
    assert c.delete(a).status == 200
    assert files(ku, "thumbnails") == ["sp6-12345.att_123.jpg",
                                       "sp6-12345.att_600.jpg"]
    assert files(ku, "originals") == [b]


# ---- refusals ------------------------------------------------------------

def test_upload_refusals_leave_nothing(daemon, tmp_path):
    ku = daemon.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(daemon, ku, "Herp", prefixed=False)
    data = png_bytes(30, 30)
    name = c.new_name(".png")
    cases = [
        dict(token="0" * 32 + ":%d" % c.now()),                  # wrong
        dict(token=make_token(ku.attachment_key, name, c.now() - 1000)),
        dict(token="garbage"),
        dict(coll="No Such Coll"),
    ]
    for kw in cases:
        r = c.upload(data, name, **kw)
        assert r.status in (403, 404), (kw, r)
        assert r.headers["access-control-allow-origin"] == "*"
        assert "x-timestamp" in r.headers
    # fields first: refused before any byte is stored
    r = c.upload(data, name, token="0" * 32 + ":1", file_first=False)
    assert r.status == 403
    for bad in ("../x.png", "a/b.png", "..", ".", "x\x00y.png", "a\\b.png",
                "a" * 300 + ".png", "tab\there.png"):
        r = c.upload(data, bad, token=make_token(ku.attachment_key, bad,
                                                 c.now()))
        assert r.status == 400, (bad, r)
        assert r.headers["access-control-allow-origin"] == "*"
    # a body cut short, a multipart without a file, a non-multipart body
    ctype, chunks = c.multipart([("token", c.token(name)), ("store", name),
                                 ("type", "O"), ("coll", "Herp")],
                                ("file", "x.png", data))
    body = b"".join(chunks)
    r = c.request("POST", c.urls["write"], body=body[:-20],
                  headers={"Content-Type": ctype})
    assert r.status == 400
    ctype2, chunks2 = c.multipart([("token", c.token(name)), ("store", name),
                                   ("type", "O"), ("coll", "Herp")], None)
    r = c.request("POST", c.urls["write"], body=b"".join(chunks2),
                  headers={"Content-Type": ctype2})
    assert r.status == 400
    r = c.request("POST", c.urls["write"], body=b"a=b",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400 and r.headers["access-control-allow-origin"] == "*"
    assert [n for n in ku.list("") if not n.endswith("/")] == []
    # traversal through the query string and the delete form
    for q in ("%2e%2e", "%2e%2e%2fx.png", "a%2fb.png", "x%00.png", "..%5cx"):
        st, h, _ = curl(c.urls["read"] + "?coll=Herp&type=O&filename=" + q)
        assert st == 400, q
        r = c.request("POST", c.urls["delete"],
                      body=("filename=%s&coll=Herp&token=x" % q).encode(),
                      headers={"Content-Type":
                               "application/x-www-form-urlencoded"})
        assert r.status == 400, q
    # CORS preflight
    st, h, _ = curl("-X", "OPTIONS", "-H", "Origin: http://sp7.example.org",
                    "-H", "Access-Control-Request-Method: POST",
                    "-H", "Access-Control-Request-Headers: content-type",
                    c.urls["write"])
    assert st == 200 and h["access-control-allow-origin"] == "*"
    assert "POST" in h["access-control-allow-methods"]
    assert "content-type" in h["access-control-allow-headers"].lower()


def test_max_upload_size(make_daemon, backend):
    d = make_daemon(backend, "MaxUploadSize 64K\n")
    start_http(d)
    ku = d.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(d, ku, "Herp", prefixed=False)
    name = c.new_name(".bin")
    r = c.upload(os.urandom(200 * 1024), name)
    assert r.status == 413
    assert r.headers["access-control-allow-origin"] == "*"
    assert "x-timestamp" in r.headers
    # without Content-Length (chunked): counted as it arrives
    with open(os.path.join(d.workdir, "big.bin"), "wb") as f:
        f.write(os.urandom(200 * 1024))
    st, h, _ = curl("-H", "Transfer-Encoding: chunked",
                    "-F", "file=@" + os.path.join(d.workdir, "big.bin"),
                    "-F", "token=" + c.token(name), "-F", "store=" + name,
                    "-F", "type=O", "-F", "coll=Herp", c.urls["write"])
    assert st == 413 and h["access-control-allow-origin"] == "*"
    assert [n for n in ku.list("") if not n.endswith("/")] == []
    # far over the limit, with "Expect: 100-continue" (curl's way for big
    # bodies): refused before the body is sent
    with open(os.path.join(d.workdir, "huge.bin"), "wb") as f:
        f.write(b"\0" * (9 << 20))
    st, h, _ = curl("-F", "file=@" + os.path.join(d.workdir, "huge.bin"),
                    "-F", "token=" + c.token(name), "-F", "store=" + name,
                    "-F", "type=O", "-F", "coll=Herp", c.urls["write"])
    assert st == 413 and h["access-control-allow-origin"] == "*"
    small = os.urandom(1000)
    assert c.upload(small, name).status == 200
    assert ku.read("originals/" + name) == small


def test_slow_upload_keeps_its_token(make_daemon, backend):
    """The token is judged against the request's start: an upload that
    takes longer than TimeTolerance still succeeds."""
    d = make_daemon(backend, "TimeTolerance 2\n")
    start_http(d)
    ku = d.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(d, ku, "Herp", prefixed=False)
    name = c.new_name(".bin")
    pieces = [os.urandom(4096) for _ in range(5)]
    r = c.upload(pieces, name, chunk_delay=1.0)
    assert r.status == 200, r
    assert ku.read("originals/" + name) == b"".join(pieces)
    # and a token already too old when the request starts is refused
    old = make_token(ku.attachment_key, name, c.now() - 3)
    assert c.upload(b"x", name, token=old).status == 403


# ---- clients, collections, keys -----------------------------------------

def test_clients_kept_apart(make_daemon, backend):
    d = make_daemon(backend, "RequireKeyForGet yes\n")
    start_http(d)
    a = d.add_client("museum-a", collections=("Herpetology",), ssh_key=False)
    b = d.add_client("museum-b", collections=("Herpetology",), ssh_key=False)
    ca = for_client(d, a, "Herpetology")
    cb = for_client(d, b, "Herpetology")
    assert a.attachment_key != b.attachment_key
    na, nb = ca.new_name(".txt"), cb.new_name(".txt")
    assert ca.upload(b"A's file", na).status == 200
    assert cb.upload(b"B's file", nb).status == 200
    assert a.read("originals/" + na) == b"A's file"
    assert b.read("originals/" + nb) == b"B's file"
    # A's key under B's prefix: no write, no read, no delete, no key test
    evil = for_client(d, b, "Herpetology", key=a.attachment_key)
    assert evil.testkey().status == 403
    assert evil.upload(b"x", nb).status == 403
    assert evil.fileget(nb).status == 403
    assert evil.delete(nb).status == 403
    assert b.read("originals/" + nb) == b"B's file"
    # A's own prefix does not reach B's files
    assert ca.fileget(nb).status == 404
    # the shared name is ambiguous on the unprefixed routes, and logged
    plain = for_client(d, a, "Herpetology", prefixed=False)
    assert plain.fileget(na).status == 404
    assert plain.upload(b"y", plain.new_name(".txt")).status == 404
    assert "reason=ambiguous_collection" in d.log()
    # RequireKeyForGet: no token, no file
    assert ca.fileget(na, with_token=False).status == 403
    assert ca.fileget(na).status == 200


def test_default_client_and_subfolders(make_daemon, backend):
    d = make_daemon(backend, "DefaultClient legacy\n")
    start_http(d)
    legacy = d.add_client("legacy", collections=(), ssh_key=False)
    other = d.add_client("other", collections=(), ssh_key=False)
    d.ctl("collection", "add", "other", "Botany", "--subfolder", "botany")
    c = for_client(d, legacy, "Anything At All", prefixed=False)
    n = c.new_name(".txt")
    assert c.upload(b"legacy", n).status == 200
    assert legacy.read("originals/" + n) == b"legacy"
    c.coll = "Another"
    assert c.fileget(n).body == b"legacy"
    bo = for_client(d, other, "Botany", prefixed=False)
    n2 = bo.new_name(".txt")
    assert bo.upload(b"plant", n2).status == 200
    assert other.read("botany/originals/" + n2) == b"plant"
    # a flat client under its prefix takes any coll
    fl = for_client(d, legacy, "Whatever")
    assert fl.fileget(n).body == b"legacy"


# ---- thumbnails and metadata ----------------------------------------------

KINDS = [  # ext, thumbnail loader, thumbnail extension
    (".jpg", "jpegload", ".jpg"),
    (".png", "pngload", ".png"),
    (".gif", "gifload", ".gif"),
    (".tif", "pngload", ".png"),
    (".heic", "pngload", ".png"),
    (".pdf", "pngload", ".png"),
]


def test_thumbnail_kinds(daemon, tmp_path):
    ku = daemon.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(daemon, ku, "Herp", prefixed=False)
    src = png_bytes(400, 300)
    for ext, loader, text in KINDS:
        if ext == ".pdf":
            data = pdf_bytes(pages=20, w=300, h=400)
            want = (92, 123)
        elif ext == ".png":
            data = src
            want = (123, 92)
        else:
            data = convert(tmp_path, src, ext)
            want = (123, 92)
        name = c.new_name(ext)
        assert c.upload(data, name).status == 200
        r = c.thumbnail(name, 123)
        assert r.status == 200, (ext, r)
        w, h, bands, got_loader = image_info(tmp_path, r.body, "t" + ext)
        assert (w, h, got_loader) == (want[0], want[1], loader), ext
        assert ku.read("thumbnails/%s_123%s" % (name[:-len(ext)], text)) \
            == r.body
        if ext == ".pdf":
            # first page, on white: no alpha, the unpainted corner is white
            assert bands == 3
            assert pixel(tmp_path, r.body, 1, 1) == [255.0, 255.0, 255.0]
    # never enlarged; S beyond MaxThumbnailScale is clamped to it
    small = c.new_name(".png")
    assert c.upload(png_bytes(50, 40), small).status == 200
    r = c.thumbnail(small, 600)
    assert image_info(tmp_path, r.body)[:2] == (50, 40)
    big = c.new_name(".png")
    assert c.upload(png_bytes(1500, 1000), big).status == 200
    r = c.thumbnail(big, 5000)
    assert image_info(tmp_path, r.body)[:2] == (1024, 683)
    assert big[:-4] + "_1024.png" in ku.list("thumbnails/")
    # what cannot be thumbnailed: a clean 415 or 404, never a 500
    mp4 = c.new_name(".mp4")
    assert c.upload(b"\x00\x00\x00\x18ftypmp42", mp4).status == 200
    assert c.thumbnail(mp4, 123).status == 415
    broken = c.new_name(".jpg")
    assert c.upload(b"not a jpeg at all", broken).status == 200
    assert c.thumbnail(broken, 123).status == 415
    assert c.thumbnail(c.new_name(".jpg"), 123).status == 404
    assert c.fileget(small, "T", scale=None).status == 400
    assert c.fileget(small, "T", scale="0").status == 400
    assert c.fileget(small, "T", scale="12x").status == 400
    # delete removes the pdf's PNG thumbnails
    pdfs = [n for n in ku.list("originals/") if n.endswith(".pdf")]
    assert c.delete(pdfs[0]).status == 200
    assert not [t for t in ku.list("thumbnails/")
                if t.startswith(pdfs[0][:-4])]


def test_thumbnail_single_flight(daemon, tmp_path):
    ku = daemon.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(daemon, ku, "Herp", prefixed=False)
    name = c.new_name(".jpg")
    assert c.upload(convert(tmp_path, png_bytes(1600, 1200), ".jpg"),
                    name).status == 200
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        rs = list(ex.map(lambda _: c.thumbnail(name, 300), range(8)))
    assert all(r.status == 200 for r in rs)
    assert len({r.body for r in rs}) == 1
    assert daemon.log().count("event=thumb_generated") == 1


def test_image_library_starts_with_first_generation(make_daemon, tmp_path):
    """libvips and its format modules are loaded by the first thumbnail to
    be generated, not at start: an idle daemon does not hold them. Four
    first generations at once start it once."""
    d = start_http(make_daemon("fs"))
    ku = d.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(d, ku, "Herp", prefixed=False)
    name = c.new_name(".jpg")
    assert c.upload(convert(tmp_path, png_bytes(800, 600), ".jpg"),
                    name).status == 200

    def mapped():
        with open("/proc/%d/maps" % d.proc.pid) as f:
            return "vips-modules" in f.read()
    assert not mapped()
    assert "event=thumb_init" not in d.log()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        rs = list(ex.map(lambda s: c.thumbnail(name, s), (64, 100, 123, 200)))
    assert [r.status for r in rs] == [200] * 4
    assert mapped()
    assert d.log().count("event=thumb_init") == 1


def test_exif(daemon, tmp_path):
    ku = daemon.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(daemon, ku, "Herp", prefixed=False)
    name = c.new_name(".jpg")
    assert c.upload(jpeg_with_exif(tmp_path), name).status == 200
    r = c.metadata(name, dt="date")
    assert (r.status, r.body) == (200, b"2021:06:15 10:20:30")
    r = c.metadata(name)
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    import json
    groups = {g["Name"]: g["Fields"] for g in json.loads(r.body)}
    assert groups["Image"]["Make"] == "AssetTestCam"
    assert groups["Image"]["Model"] == "Model 7"
    assert groups["EXIF"]["DateTimeOriginal"] == "2021:06:15 10:20:30"
    assert groups["GPS"]["GPSLatitudeRef"] == "N"
    assert "GPSLatitude" in groups["GPS"]
    png = c.new_name(".png")
    assert c.upload(png_bytes(10, 10), png).status == 200
    assert c.metadata(png, dt="date").status == 404
    assert c.metadata(png).body == b"[]"
    assert c.metadata(c.new_name(".jpg")).status == 404


# ---- extras ---------------------------------------------------------------

def test_static_files_off_and_on(make_daemon, backend):
    d = make_daemon(backend)
    start_http(d)
    ku = d.add_client("ku", collections=("Herp",), ssh_key=False)
    c = for_client(d, ku, "Herp", prefixed=False)
    n = c.new_name(".txt")
    assert c.upload(b"static", n).status == 200
    st, _, _ = curl(d.http + "/getfileref?coll=Herp&type=O&filename=" + n)
    assert st == 404
    st, _, _ = curl(d.http + "/static/Herp/originals/" + n)
    assert st == 404
    d.stop()
    with open(d.conf_path, "a") as f:
        f.write("StaticFiles yes\n")
    start_http(d)
    st, _, body = curl(d.http + "/getfileref?coll=Herp&type=O&filename=" + n)
    assert st == 200
    assert body.decode() == "%s/static/Herp/originals/%s" % (d.http, n)
    st, _, body = curl(body.decode())
    assert (st, body) == (200, b"static")


def test_tls_and_reload(make_daemon, tmp_path):
    """TLSCertificate/TLSKey: HTTPS without a proxy; a SIGHUP re-reads the
    files and new connections get the new certificate."""
    import signal
    import ssl

    crt1, key1 = mkcert(tmp_path, "first")
    live_crt, live_key = str(tmp_path / "live.crt"), str(tmp_path / "live.key")
    for s, d in ((crt1, live_crt), (key1, live_key)):
        with open(s, "rb") as f, open(d, "wb") as g:
            g.write(f.read())
    d = make_daemon("fs", "TLSCertificate %s\nTLSKey %s\n" % (live_crt,
                                                                 live_key))
    start_http(d)
    d.add_client("ku", collections=("Herp",), ssh_key=False)

    def peer_cn():
        der, resp = tls_request(
            d.http_port, b"GET /web_asset_store.xml HTTP/1.1\r\nHost: h\r\n"
            b"Connection: close\r\n\r\n")
        pem = ssl.DER_cert_to_PEM_cert(der)
        out = subprocess.run(["openssl", "x509", "-noout", "-subject"],
                             input=pem, capture_output=True, text=True).stdout
        return out.strip(), resp

    cn, resp = peer_cn()
    assert cn.endswith("CN = first"), cn
    assert b"200 OK" in resp.split(b"\r\n")[0]
    assert b"X-Timestamp" in resp
    assert b"<![CDATA[https://h/fileget]]>" in resp
    crt2, key2 = mkcert(tmp_path, "second")
    for s, dst in ((crt2, live_crt), (key2, live_key)):
        with open(s, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline:
        cn, resp = peer_cn()
        if cn.endswith("CN = second"):
            break
        time.sleep(0.2)
    assert cn.endswith("CN = second"), cn
    assert b"200 OK" in resp.split(b"\r\n")[0]


def test_reload_refuses_nobody(make_daemon, tmp_path):
    """Clients connecting all through several SIGHUPs, each with a new TLS
    certificate, are all served: the listening socket stays open across
    the reload and the old daemon drains."""
    import signal
    import threading

    pairs = [mkcert(tmp_path, cn) for cn in ("one", "two")]
    live = (str(tmp_path / "live.crt"), str(tmp_path / "live.key"))

    def install(i):
        # as certbot does: the new files appear whole (rename)
        for src, dst in zip(pairs[i % 2], live):
            with open(src, "rb") as f, open(dst + ".new", "wb") as g:
                g.write(f.read())
            os.rename(dst + ".new", dst)

    install(0)
    d = make_daemon("fs", "TLSCertificate %s\nTLSKey %s\n" % live)
    start_http(d)
    stop = threading.Event()
    ok, errors = [0], []

    def hammer():
        while not stop.is_set():
            try:
                _, resp = tls_request(d.http_port,
                                      b"GET / HTTP/1.1\r\nHost: h\r\n"
                                      b"Connection: close\r\n\r\n",
                                      timeout=20)
                if resp.startswith(b"HTTP/1.1 200"):
                    ok[0] += 1
                else:
                    errors.append(resp[:40])
            except OSError as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 7):
            time.sleep(0.4)
            install(i)
            d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.6)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert ok[0] > 20
    with open(d.log_path) as f:
        assert f.read().count("event=http_reload tls=1") == 6
