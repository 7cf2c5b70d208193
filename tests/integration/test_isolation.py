"""Isolation and abuse: client A, holding its own SSH key and its own
attachment key, aims every operation of every protocol at client B's
files, at paths outside both clients, and at hostile names; everything is
refused, nothing of B's changes (B's tree is hashed through the backend
before and after), nothing is disclosed (the answer for an existing B file
equals the answer for a missing one), nothing is written outside A's own
folder, and no secret reaches the log or an error message.

One daemon per backend serves the whole module (RequireKeyForGet on, so
reads need a token too); A and B get distinctive attachment keys so the
log can be searched for them.
"""
import hashlib
import os
import subprocess
import time
import urllib.parse
import uuid

import paramiko
import pytest

from conftest import Daemon, wait_port
from media import jpeg_with_exif
from specify_client import SpecifyClient, for_client, make_token
from sshtools import paramiko_sftp, scp

KEY_A = "isoA-" + uuid.uuid4().hex
KEY_B = "isoB-" + uuid.uuid4().hex
KEY_GLOBAL = "isoG-" + uuid.uuid4().hex
COLL = "Herp"           # both clients have it: ambiguous unprefixed
B_ONLY = "BSecretColl"  # only B has it

# Hostile names. {b} is B's client name, {nb} an existing file of B's.
HOSTILE = [
    "..", "../", "../..", "../../..", "../{b}", "../{b}/originals/{nb}",
    "../../{b}/originals/{nb}", "originals/../../{b}/originals/{nb}",
    "/etc/passwd", "/etc/x", "//etc/x", "/../{b}/originals/{nb}",
    "/tmp/iso-evil", "./../x", "a/../../x", "a/b/../../../x",
    "....//....//x", "..;/x", "%2e%2e/x", "%2e%2e%2fx", "%252e%252e%252fx",
    "..%2f..%2fx", "%2e%2e%5cx", "..%c0%afx", "..%c1%9cx",
    "..\\x", "..\\..\\x", "\\..\\x", "\\\\server\\share\\x",
    "C:\\Windows\\x", "C:/x", "a\\..\\..\\x",
    "\u2215etc\u2215passwd", "..\u2215x", "\u2025/x", "\uff0e\uff0e/x",
    "\uff0e\uff0e\u2215x", "\u2024\u2024/x", "..\uff0fx", "\u0000x",
    "x\u0000.jpg", "../x\u0000.jpg", "x" * 300, "a/" * 200 + "x",
    ("../" * 64) + "etc/passwd", "~/x", "~root/x", "$HOME/x",
    "x/../../../{b}", ".", "./", "", " ../x", "..\t/x", "..\n/x",
    "\r\n../x", "../\u200bx", "..\u0085/x",
    "x\ty.jpg", "x\ry.jpg", "x\ny.jpg", "x\x1b[2Jy.jpg", "x\x7f.jpg",
]
assert len(HOSTILE) >= 50


def _fill(p, b, nb):
    return p.replace("{b}", b).replace("{nb}", nb)


# ---- the world: one daemon per backend, clients A and B -----------------

class World:
    pass


def _tree(client):
    """{name: sha256} of every object of CLIENT, read through the backend."""
    out = {}
    for n in client.list():
        if n.endswith("/"):
            continue
        out[n] = hashlib.sha256(client.read(n)).hexdigest()
    return out


def _everything(d):
    """Every object name under the region's assets root."""
    return d.backend_list(d.assets)


@pytest.fixture(scope="module", params=["fs", "s3"])
def world(request, tmp_path_factory, s3server):
    backend = request.param
    d = Daemon(tmp_path_factory.mktemp("iso-" + backend), backend,
               s3server if backend == "s3" else None,
               "RequireKeyForGet yes\nPerSourceMaxStartups 200\n"
               "MaxStartups 200\n"
               "MaxAuthTries 6\n")
    d.attachment_key = KEY_GLOBAL
    d.write_conf()
    d.start()
    try:
        yield _populate(d, backend, tmp_path_factory)
    finally:
        d.stop()            # even when the set-up below fails


def _populate(d, backend, tmp_path_factory):
    w = World()
    w.d = d
    w.tokens = []           # every token sent, to search the log for
    w.bodies = []           # every error body received
    w.a = d.add_client("isoa", collections=(COLL,), attachment_key=KEY_A)
    w.b = d.add_client("isob", collections=(COLL, B_ONLY),
                       attachment_key=KEY_B)
    w.ca = for_client(w.d, w.a, COLL)
    w.cb = for_client(w.d, w.b, COLL)
    # B's files: an image (so thumbnails and metadata exist), a text file,
    # one in B's own collection, one put over SFTP.
    w.nb = w.cb.new_name(".jpg")
    assert w.cb.upload(jpeg_with_exif(str(tmp_path_factory.mktemp("img"))), w.nb).status == 200
    w.nb_txt = w.cb.new_name(".txt")
    assert w.cb.upload(b"B's secret text", w.nb_txt).status == 200
    r = w.cb.thumbnail(w.nb)
    assert r.status == 200
    cbo = for_client(w.d, w.b, B_ONLY)
    w.nb_only = cbo.new_name(".txt")
    assert cbo.upload(b"B-only", w.nb_only).status == 200
    sf, t = paramiko_sftp(d, w.b)
    sf.mkdir("/attachments/private")
    with sf.open("/attachments/private/secret.txt", "wb") as f:
        f.write(b"B's private sftp file")
    t.close()
    # A's own file
    w.na = w.ca.new_name(".txt")
    assert w.ca.upload(b"A's own", w.na).status == 200
    # a canary outside both clients, in the region's root
    if backend == "fs":
        root = d.assets[len("file://"):]
        with open(os.path.join(root, "canary.txt"), "wb") as f:
            f.write(b"canary")
    else:
        d.s3.boto3().put_object(Bucket=d.bucket, Key="assets/canary.txt",
                                Body=b"canary")
    w.b_before = _tree(w.b)
    assert "originals/" + w.nb in w.b_before
    w.all_before = set(_everything(d))
    return w


def _check_untouched(w):
    """B's tree is byte-for-byte what it was; nothing new exists outside
    A's folder; the canary is intact."""
    assert _tree(w.b) == w.b_before
    d = w.d
    a_loc = w.a.location[len(d.assets):]
    for n in set(_everything(d)) - w.all_before:
        assert n.startswith(a_loc), "written outside A's folder: %r" % n
    assert d.backend_read(d.assets + "canary.txt") == b"canary"
    assert not os.path.exists("/tmp/iso-evil")
    assert not os.path.exists("/etc/x")


def _tok(w, name, key=KEY_A, ts=None):
    t = make_token(key, name, int(time.time()) if ts is None else ts)
    w.tokens.append(t.split(":")[0])
    return t


def _req(w, method, url, body=None, headers=None):
    r = SpecifyClient.request(method, url, body=body, headers=headers,
                              timeout=30)
    if r.status >= 400:
        w.bodies.append(r.body)
    return r


def _get(w, base, route, **q):
    return _req(w, "GET", base + route + "?" + urllib.parse.urlencode(q))


def _upload(w, base, name, data, coll=COLL, key=KEY_A):
    c = SpecifyClient("", key, coll)
    ctype, chunks = c.multipart(
        [("token", _tok(w, name, key)), ("store", name), ("type", "O"),
         ("coll", coll)], ("file", "p.jpg", data))
    body = b"".join(chunks)
    return _req(w, "POST", base + "/fileupload", body=body,
                headers={"Content-Type": ctype})


def _delete(w, base, name, coll=COLL, key=KEY_A):
    body = urllib.parse.urlencode({"filename": name, "coll": coll,
                                   "token": _tok(w, name, key)}).encode()
    return _req(w, "POST", base + "/filedelete", body=body,
                headers={"Content-Type":
                         "application/x-www-form-urlencoded"})


def _http_ops(w, base, name, coll=COLL, key=KEY_A):
    """Every HTTP operation on NAME under BASE with KEY; returns
    {op: (status, body)}; the upload writes a fresh body."""
    out = {}
    for op, typ, extra in (("fileget", "O", {}), ("thumb", "T",
                                                  {"scale": "123"})):
        r = _get(w, base, "/fileget", coll=coll, type=typ, filename=name,
                 token=_tok(w, name, key), **extra)
        out[op] = (r.status, r.body)
    r = _get(w, base, "/getmetadata", coll=coll, filename=name,
             token=_tok(w, name, key))
    out["getmetadata"] = (r.status, r.body)
    r = _upload(w, base, name, b"A overwrites", coll=coll, key=key)
    out["fileupload"] = (r.status, r.body)
    r = _delete(w, base, name, coll=coll, key=key)
    out["filedelete"] = (r.status, r.body)
    return out


# ---- HTTP -------------------------------------------------------------

def test_http_a_key_under_b_prefix_refused_alike(world):
    """A's key on B's /c/ prefix: every operation 403, the same answer for
    an existing and a missing file of B's."""
    w = world
    base = w.d.http + "/c/" + w.b.name
    missing = str(uuid.uuid4()) + ".jpg"
    for coll in (COLL, B_ONLY):
        name = w.nb if coll == COLL else w.nb_only
        got = _http_ops(w, base, name, coll=coll)
        miss = _http_ops(w, base, missing, coll=coll)
        for op in got:
            assert got[op][0] == 403, (coll, op, got[op])
            assert got[op] == miss[op], (coll, op, got[op], miss[op])
    # testkey with A's key under B's prefix
    rnd = str(uuid.uuid4())
    r = _get(w, base, "/testkey", random=rnd, token=_tok(w, rnd))
    assert r.status == 403
    _check_untouched(w)


def test_http_a_prefix_and_unprefixed_never_reach_b(world):
    """Under A's own prefix and on the unprefixed routes (COLL is shared,
    so ambiguous), B's names answer exactly like missing names."""
    w = world
    missing = str(uuid.uuid4()) + ".jpg"
    for base, coll in ((w.d.http + "/c/" + w.a.name, COLL),
                       (w.d.http + "/c/" + w.a.name, B_ONLY),
                       (w.d.http, COLL), (w.d.http, B_ONLY)):
        for name in (w.nb, w.nb_only):
            got = _http_ops(w, base, name, coll=coll)
            miss = _http_ops(w, base, missing, coll=coll)
            for op in ("fileget", "thumb", "getmetadata", "filedelete"):
                if op == "filedelete" and got["fileupload"][0] == 200:
                    continue            # deletes A's own upload just made
                assert got[op][0] in (400, 403, 404), (base, coll, op, got)
                assert got[op] == miss[op], (base, coll, op, got[op],
                                             miss[op])
            # an upload under A's prefix with COLL lands in A's folder
            # (the name is A's to use); anywhere else it is refused
            if base.endswith("/c/" + w.a.name) and coll == COLL:
                assert got["fileupload"][0] == 200
                # ...and its delete removes A's copy, not B's
                assert got["filedelete"][0] == 200
            else:
                assert got["fileupload"][0] in (400, 403, 404), (base, coll)
    _check_untouched(w)


def test_http_hostile_names(world):
    """Hostile filename/store values with A's valid token on A's prefix:
    refused, nothing of B's disclosed, nothing written outside A."""
    w = world
    base = w.d.http + "/c/" + w.a.name
    b_bytes = {w.b.read(n) for n in w.b_before}
    before_a = set(w.a.list())
    accepted = []
    for p in HOSTILE:
        name = _fill(p, w.b.name, w.nb)
        ops = _http_ops(w, base, name)
        for op, (st, body) in ops.items():
            assert body not in b_bytes, (repr(name), op)
            if st in (400, 403, 404, 413, 414):
                continue
            # a name with no separator in it is only a strange name: it
            # may be stored, verbatim, in A's originals/ and nowhere else
            assert op in ("fileupload", "filedelete") and st == 200 and \
                ops["fileupload"][0] == 200, (repr(name), op, st)
            accepted.append(name)
        # the same names, percent-encoded once more by hand
        r = _req(w, "GET", base + "/fileget?coll=%s&type=O&filename=%s"
                 "&token=%s" % (COLL, urllib.parse.quote(
                     urllib.parse.quote(name, safe=""), safe=""),
                     _tok(w, name)))
        assert r.status in (400, 403, 404), (repr(name), r.status)
        assert r.body not in b_bytes
    # raw path traversal on the routes themselves
    for path in ("/c/%s/../%s/fileget" % (w.a.name, w.b.name),
                 "/c/%s/%%2e%%2e/%s/fileget" % (w.a.name, w.b.name),
                 "/c/..%%2f%s/fileget" % w.b.name,
                 "/c/%s%%2f..%%2f%s/fileget" % (w.a.name, w.b.name),
                 "/static/%s/originals/%s" % (COLL, w.nb),
                 "/static/../%s/originals/%s" % (w.b.name, w.nb)):
        r = _req(w, "GET", w.d.http + path + "?coll=%s&type=O&filename=%s"
                 "&token=%s" % (COLL, w.nb, _tok(w, w.nb)))
        assert r.status in (400, 403, 404), (path, r.status)
        assert r.body not in b_bytes
    for name in accepted:
        assert "/" not in name and "\\" not in name and \
            name not in ("", ".", ".."), repr(name)
        assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in name), \
            repr(name)
    # every accepted upload was deleted again by its filedelete
    assert set(w.a.list()) == before_a
    _check_untouched(w)


def test_http_token_replay_outside_tolerance(world):
    """Tokens older or newer than TimeTolerance (150 s), or minted for
    another name, are refused for every operation."""
    w = world
    base = w.d.http + "/c/" + w.a.name
    now = int(time.time())
    fresh = w.ca.new_name(".txt")
    for ts in (now - 151, now - 600, now + 151, now - 86400 * 365, 0):
        t = _tok(w, w.na, ts=ts)
        r = _get(w, base, "/fileget", coll=COLL, type="O", filename=w.na,
                 token=t)
        assert r.status == 403, ts
        r = _get(w, base, "/getmetadata", coll=COLL, filename=w.na, token=t)
        assert r.status == 403, ts
        c = SpecifyClient("", KEY_A, COLL)
        ctype, chunks = c.multipart(
            [("token", _tok(w, fresh, ts=ts)), ("store", fresh),
             ("type", "O"), ("coll", COLL)], ("file", "p.txt", b"late"))
        r = _req(w, "POST", base + "/fileupload", body=b"".join(chunks),
                 headers={"Content-Type": ctype})
        assert r.status == 403, ts
        body = urllib.parse.urlencode({"filename": w.na, "coll": COLL,
                                       "token": t}).encode()
        r = _req(w, "POST", base + "/filedelete", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 403, ts
        rnd = str(uuid.uuid4())
        r = _get(w, base, "/testkey", random=rnd, token=_tok(w, rnd, ts=ts))
        assert r.status == 403, ts
    # a fresh token for another name does not open this one
    r = _get(w, base, "/fileget", coll=COLL, type="O", filename=w.na,
             token=_tok(w, fresh))
    assert r.status == 403
    # the refusals carry X-Timestamp, so an honest client can resync
    assert "x-timestamp" in r.headers
    assert w.a.read("originals/" + w.na) == b"A's own"
    assert fresh not in " ".join(w.a.list())
    # within the tolerance the token works (and may be replayed: the
    # protocol's known weakness, documented in docs/SECURITY.md)
    t = _tok(w, w.na, ts=now - 100)
    for _ in range(2):
        r = _get(w, base, "/fileget", coll=COLL, type="O", filename=w.na,
                 token=t)
        assert r.status == 200 and r.body == b"A's own"


# ---- SFTP ------------------------------------------------------------

def _sftp_errors(fn):
    """Run FN; return None if it succeeded, else the error's (type, errno,
    text) with nothing that names the path."""
    try:
        fn()
        return None
    except (IOError, OSError) as e:
        return (type(e).__name__, getattr(e, "errno", None),
                str(e.args[-1]) if e.args else "")


def _sftp_attempts(sf, target, own):
    """Every SFTP operation aimed at TARGET; returns {op: error or None}."""
    def rd():
        with sf.open(target, "rb") as f:
            f.read()

    def wr():
        with sf.open(target, "wb") as f:
            f.write(b"A was here")

    def ap():
        with sf.open(target, "ab") as f:
            f.write(b"A was here")

    return {
        "stat": _sftp_errors(lambda: sf.stat(target)),
        "lstat": _sftp_errors(lambda: sf.lstat(target)),
        "read": _sftp_errors(rd),
        "write": _sftp_errors(wr),
        "append": _sftp_errors(ap),
        "remove": _sftp_errors(lambda: sf.remove(target)),
        "listdir": _sftp_errors(lambda: sf.listdir(target)),
        "mkdir": _sftp_errors(lambda: sf.mkdir(
            target + (b"/sub" if isinstance(target, bytes) else "/sub"))),
        "rmdir": _sftp_errors(lambda: sf.rmdir(target)),
        "rename_into": _sftp_errors(lambda: sf.rename(own, target)),
        "rename_from": _sftp_errors(
            lambda: sf.rename(target, "/attachments/stolen")),
        "posix_rename": _sftp_errors(lambda: sf.posix_rename(own, target)),
        "symlink_to": _sftp_errors(
            lambda: sf.symlink(target, "/attachments/link-%s" %
                               uuid.uuid4().hex[:6])),
        "symlink_at": _sftp_errors(lambda: sf.symlink(own, target)),
        "readlink": _sftp_errors(lambda: sf.readlink(target)),
        "chmod": _sftp_errors(lambda: sf.chmod(target, 0o777)),
        "utime": _sftp_errors(lambda: sf.utime(target, (1, 1))),
        "truncate": _sftp_errors(lambda: sf.truncate(target, 0)),
    }


def _b_targets(w):
    """Paths by which A might try to reach B's files, and the same paths
    to a missing file (pairs: existing, missing)."""
    b, nb = w.b.name, w.nb
    miss = str(uuid.uuid4()) + ".jpg"
    pats = ["/../%s/originals/%s", "/attachments/../../%s/originals/%s",
            "/attachments/../%s/originals/%s", "../../%s/originals/%s",
            "/%s/attachments/originals/%s", "/%s/originals/%s",
            "/home/%s/attachments/originals/%s"]
    return [(p % (b, nb), p % (b, miss)) for p in pats]


def test_sftp_cross_client_matrix(world):
    w = world
    sf, t = paramiko_sftp(w.d, w.a)
    try:
        own = "/attachments/own-%s.txt" % uuid.uuid4().hex[:6]
        with sf.open(own, "wb") as f:
            f.write(b"mine")
        for there, missing in _b_targets(w):
            got = _sftp_attempts(sf, there, own)
            nope = _sftp_attempts(sf, missing, own)
            for op in got:
                # existing and missing look alike
                assert got[op] == nope[op], (there, op, got[op], nope[op])
            # and every one of them is refused (none of these paths is
            # inside A's tree)
            for op in got:
                assert got[op] is not None, (there, op)
            # realpath never names anything outside the virtual tree
            # (lexically, alike for an existing and a missing file)
            def rp(p):
                try:
                    return sf.normalize(p)
                except (IOError, OSError) as e:
                    return type(e).__name__
            got_rp, miss_rp = rp(there), rp(missing)
            assert ".." not in got_rp.split("/"), got_rp
            assert got_rp.replace(w.nb, "X") == \
                miss_rp.replace(missing.rsplit("/", 1)[-1], "X")
        # nothing named after B, nothing of B's readable, from anywhere
        for d in ("/", "/attachments", "/backups"):
            try:
                names = sf.listdir(d)
            except (IOError, OSError):
                continue
            assert w.b.name not in names, d
            assert w.nb not in names
        assert sf.normalize("/..") == "/"
        assert sf.normalize("../../..") in ("/", "/attachments")
    finally:
        t.close()
    _check_untouched(w)


def test_sftp_hostile_names(world):
    w = world
    sf, t = paramiko_sftp(w.d, w.a)
    b_bytes = {w.b.read(n) for n in w.b_before}
    try:
        own = "/attachments/own2-%s.txt" % uuid.uuid4().hex[:6]
        with sf.open(own, "wb") as f:
            f.write(b"mine")
        for p in HOSTILE:
            name = _fill(p, w.b.name, w.nb)
            for target in (name, "/attachments/" + name,
                           "/attachments/originals/" + name):
                if "\x00" in target:
                    target = target.encode("utf-8")
                res = _sftp_attempts(sf, target, own)
                # reading B's bytes through a hostile name is never possible
                try:
                    with sf.open(target, "rb") as f:
                        assert f.read() not in b_bytes, repr(target)
                except (IOError, OSError):
                    pass
                assert res["read"] is not None or res["stat"] is None
                if _sftp_errors(lambda: sf.stat(own)) is not None:
                    with sf.open(own, "wb") as f:   # renamed away: again
                        f.write(b"mine")
    finally:
        t.close()
    _check_untouched(w)


# ---- scp (legacy and SFTP mode) -----------------------------------------

def _scp_raw(w, command, payload=b"", timeout=20):
    """Run an scp server command as A over a paramiko exec channel;
    returns (exit status, bytes received)."""
    key = paramiko.Ed25519Key.from_private_key_file(w.a.key_path)
    tr = paramiko.Transport(("127.0.0.1", w.d.ssh_port))
    try:
        tr.connect(username=w.a.name, pkey=key)
        ch = tr.open_session()
        ch.settimeout(timeout)
        ch.exec_command(command)
        out = b""
        try:
            if payload:
                ch.sendall(payload)
            ch.shutdown_write()
        except OSError:
            pass                # the server refused and closed: fine
        try:
            while True:
                d = ch.recv(65536)
                if not d:
                    break
                out += d
        except Exception:
            pass
        st = ch.recv_exit_status()
        return st, out
    finally:
        tr.close()


def _quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def test_scp_legacy_protocol_hostile_names(world):
    """The scp -t / -f server side driven by hand, so hostile names reach
    it unmangled: 50+ hostile file names in one upload session, the same
    as sink directories and as sources."""
    w = world
    b_bytes = {w.b.read(n) for n in w.b_before}
    # one sink session, every hostile name as the file name in a C line
    payload = b"\0"
    for p in HOSTILE:
        name = _fill(p, w.b.name, w.nb).replace("\n", "_")
        payload += b"C0644 4 " + name.encode("utf-8") + b"\nevil\0"
    _scp_raw(w, "scp -t attachments/", payload + b"E\n")
    for p in HOSTILE:
        name = _fill(p, w.b.name, w.nb)
        if "\x00" in name or "\n" in name:
            continue
        st, out = _scp_raw(w, "scp -t %s" % _quote(name),
                           b"C0644 4 f.txt\nevil\0")
        st, out = _scp_raw(w, "scp -f %s" % _quote(name), b"\0" * 4)
        for bb in b_bytes:
            assert bb not in out, repr(name)
    # nothing landed outside A, and no hostile name made it into A either
    # as a traversal (any new A file lies below A's folder by construction)
    _check_untouched(w)


def test_scp_clients_aimed_at_b_and_outside(world, tmp_path):
    """Stock scp, legacy (-O) and SFTP mode, both directions."""
    w = world
    src = tmp_path / "evil.txt"
    src.write_bytes(b"A was here")
    b, nb = w.b.name, w.nb
    targets = ["../%s/originals/%s" % (b, nb),
               "../../%s/originals/%s" % (b, nb),
               "/../%s/originals/%s" % (b, nb),
               "attachments/../../%s/originals/%s" % (b, nb),
               "/etc/passwd", "/tmp/iso-evil", "../canary.txt",
               "attachments/../../canary.txt", "..\\..\\%s" % b,
               "\uff0e\uff0e/%s/originals/%s" % (b, nb)]
    for legacy in (True, False):
        for i, tg in enumerate(targets):
            scp(w.d, w.a, [str(src), "R:" + tg], legacy=legacy, check=False)
            dst = tmp_path / ("back-%d-%d" % (legacy, i))
            r = scp(w.d, w.a, ["R:" + tg, str(dst)], legacy=legacy,
                    check=False)
            if dst.exists():
                assert dst.read_bytes() not in {w.b.read(n)
                                                for n in w.b_before}
                assert dst.read_bytes() != b"canary"
            else:
                assert r.returncode != 0
    # an existing file of B's and a missing one: the same error, both modes
    miss = str(uuid.uuid4()) + ".jpg"
    for legacy in (True, False):
        for pat in ("../%s/originals/%s", "/../%s/originals/%s"):
            errs = []
            for name in (nb, miss):
                r = scp(w.d, w.a, ["R:" + pat % (b, name),
                                   str(tmp_path / "d")], legacy=legacy,
                        check=False)
                assert r.returncode != 0
                errs.append(r.stderr.replace(name, "X"))
            assert errs[0] == errs[1], (legacy, errs)
    _check_untouched(w)


# ---- rsync ---------------------------------------------------------------

def test_rsync_aimed_at_b_and_outside(world, tmp_path):
    """rsync -a --delete from an empty folder, and pushes and pulls, aimed
    at B's folder and outside A's tree: B keeps everything."""
    w = world
    empty = tmp_path / "empty"
    empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "evil.txt").write_bytes(b"A was here")
    e = "ssh -p %d %s" % (w.d.ssh_port, " ".join(w.a.ssh_opts()))
    b = w.b.name
    dests = ["../%s/" % b, "../../%s/" % b, "/../%s/" % b,
             "attachments/../../%s/" % b, "attachments/../../",
             "/", "../", "/etc/", "%2e%2e/" + b + "/",
             "\uff0e\uff0e/%s/" % b, "attachments/..\\..\\%s/" % b]
    for dst in dests:
        for src in (empty, full):
            r = subprocess.run(["rsync", "-a", "--delete", "-e", e,
                                str(src) + "/", "%s@127.0.0.1:%s" % (
                                    w.a.name, dst)],
                               capture_output=True, timeout=60)
            assert r.returncode != 0, (dst, src.name)
        back = tmp_path / ("pull-%d" % abs(hash(dst)))
        subprocess.run(["rsync", "-a", "-e", e, "%s@127.0.0.1:%s" % (
            w.a.name, dst), str(back) + "/"], capture_output=True,
            timeout=60)
        if back.exists():
            for root, _, fns in os.walk(back):
                for fn in fns:
                    with open(os.path.join(root, fn), "rb") as f:
                        data = f.read()
                    assert data not in {w.b.read(n) for n in w.b_before}, \
                        (dst, fn)
                    assert data != b"canary", (dst, fn)
    # B's existing folder and a client that does not exist: the same error
    errs = []
    for who in (b, "nosuch" + uuid.uuid4().hex[:6]):
        r = subprocess.run(["rsync", "-a", "-e", e, str(full) + "/",
                            "%s@127.0.0.1:../%s/" % (w.a.name, who)],
                           capture_output=True, text=True, timeout=60)
        errs.append(r.stderr.replace(who, "X"))
    assert errs[0] == errs[1]
    # every hostile name as a source of one pull (one connection, many
    # sources: the server's sender resolves each)
    srcs = []
    for p in HOSTILE:
        name = _fill(p, b, w.nb)
        if any(ord(ch) < 32 for ch in name) or not name:
            continue            # not expressible on an rsync command line
        srcs.append(name)
    assert len(srcs) >= 45
    back = tmp_path / "pull-hostile"
    back.mkdir()
    argv = ["rsync", "-a", "-e", e, "%s@127.0.0.1:%s" % (w.a.name, srcs[0])]
    argv += [":" + x for x in srcs[1:]] + [str(back) + "/"]
    r = subprocess.run(argv, capture_output=True, timeout=120)
    assert r.returncode != 0          # the refusals are reported
    for root, _, fns in os.walk(back):
        for fn in fns:
            with open(os.path.join(root, fn), "rb") as f:
                data = f.read()
            assert data not in {w.b.read(n) for n in w.b_before}, fn
            assert data != b"canary", fn
    _check_untouched(w)


# ---- symlinks planted on the fs backend -----------------------------------

@pytest.mark.parametrize("world", ["fs"], indirect=True)
def test_planted_symlinks_fs(world, tmp_path):
    """Symlinks planted in A's folder on disk (by an admin's mistake or a
    restored archive) that point outside A's folder, into B's folder or at
    one of B's files: no protocol follows them. (Only the filesystem
    backend has symlinks.)"""
    w = world
    assert w.d.backend == "fs"
    a_dir = w.a.location[len("file://"):]
    b_dir = w.b.location[len("file://"):]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside secret")
    os.makedirs(os.path.join(a_dir, "originals"), exist_ok=True)
    links = {
        "originals/lnk-b.jpg": os.path.join(b_dir, "originals", w.nb),
        "originals/lnk-out.txt": str(outside / "secret.txt"),
        "originals/lnk-passwd.txt": "/etc/passwd",
        "originals/lnk-rel.txt": "../../%s/originals/%s" % (w.b.name,
                                                            w.nb_txt),
        "lnkdir-b": b_dir,
        "lnkdir-out": str(outside),
    }
    for rel, target in links.items():
        os.symlink(target, os.path.join(a_dir, rel))
    b_bytes = {w.b.read(n) for n in w.b_before} | {b"outside secret",
                                                   open("/etc/passwd",
                                                        "rb").read()}
    try:
        base = w.d.http + "/c/" + w.a.name
        for rel in links:
            if not rel.startswith("originals/"):
                continue
            name = rel[len("originals/"):]
            for op, typ, extra in (("fileget", "O", {}),
                                   ("thumb", "T", {"scale": "123"})):
                r = _get(w, base, "/fileget", coll=COLL, type=typ,
                         filename=name, token=_tok(w, name), **extra)
                assert r.status in (403, 404), (rel, op, r)
                assert r.body not in b_bytes, (rel, op)
            r = _get(w, base, "/getmetadata", coll=COLL, filename=name,
                     token=_tok(w, name))
            assert r.status in (403, 404), (rel, "getmetadata", r)
            # an upload over the link does not write through it
            r = _upload(w, base, name, b"through the link")
            assert r.status != 200 or not os.path.islink(
                os.path.join(a_dir, rel)), (rel, r)
        sf, t = paramiko_sftp(w.d, w.a)
        try:
            for rel in links:
                p = "/attachments/" + rel
                try:
                    with sf.open(p, "rb") as f:
                        assert f.read() not in b_bytes, rel
                except (IOError, OSError):
                    pass
                for sub in ("", "/originals", "/private"):
                    try:
                        names = sf.listdir(p + sub)
                        assert w.nb not in names and "secret.txt" not in \
                            names, (rel, sub, names)
                    except (IOError, OSError):
                        pass
                for tgt in (p + "/originals/" + w.nb,
                            p + "/private/secret.txt", p + "/secret.txt",
                            p + "/new.txt"):
                    _sftp_attempts(sf, tgt, "/attachments/" + rel)
        finally:
            t.close()
        for rel in links:
            dst = tmp_path / ("scp-" + rel.replace("/", "_"))
            scp(w.d, w.a, ["R:attachments/" + rel, str(dst)], legacy=True,
                check=False)
            if dst.exists() and dst.is_file():
                assert dst.read_bytes() not in b_bytes, rel
        e = "ssh -p %d %s" % (w.d.ssh_port, " ".join(w.a.ssh_opts()))
        back = tmp_path / "rs"
        subprocess.run(["rsync", "-a", "-e", e, "%s@127.0.0.1:attachments/"
                        % w.a.name, str(back) + "/"],
                       capture_output=True, timeout=60)
        for root, _, fns in os.walk(back):
            for fn in fns:
                fp = os.path.join(root, fn)
                if os.path.islink(fp):
                    continue
                with open(fp, "rb") as f:
                    assert f.read() not in b_bytes, fp
        empty = tmp_path / "empty"
        empty.mkdir()
        for rel in ("lnkdir-b/", "lnkdir-out/"):
            subprocess.run(["rsync", "-a", "--delete", "-e", e,
                            str(empty) + "/", "%s@127.0.0.1:attachments/%s"
                            % (w.a.name, rel)], capture_output=True,
                           timeout=60)
        # last, deleting over HTTP removes at most the link, never its target
        for rel in links:
            if rel.startswith("originals/"):
                _delete(w, base, rel[len("originals/"):])
        assert (outside / "secret.txt").read_bytes() == b"outside secret"
        assert sorted(os.listdir(outside)) == ["secret.txt"]
    finally:
        for rel in links:
            p = os.path.join(a_dir, rel)
            if os.path.islink(p):
                os.unlink(p)
    _check_untouched(w)


# ---- secrets ---------------------------------------------------------------

def test_no_secret_in_log_or_errors(world):
    """Runs last in the module: the whole log of everything above holds no
    attachment key, no token, and no error body does either."""
    w = world
    # make sure there is failure traffic of every kind in the log
    base = w.d.http + "/c/" + w.b.name
    _http_ops(w, base, w.nb)
    _get(w, w.d.http, "/testkey", random="r", token=_tok(w, "r",
                                                          key=KEY_GLOBAL))
    log = w.d.log()
    assert "fileget" in log or "GET" in log       # the log is not empty
    for secret in (KEY_A, KEY_B, KEY_GLOBAL):
        assert secret not in log
        for b in w.bodies:
            assert secret.encode() not in b
    assert len(w.tokens) > 100
    for mac in set(w.tokens):
        assert mac not in log, "a token in the log"
        for b in w.bodies:
            assert mac.encode() not in b


def test_aws_secret_not_in_log_when_s3_refuses(make_daemon, s3server):
    """The daemon signs with a distinctive, wrong AWS secret: S3 refuses
    every request, and neither the log (at debug level) nor any reply
    carries the secret, whatever the protocol that ran into the refusal."""
    d = make_daemon("s3")
    c = d.add_client("awsc", collections=(COLL,), attachment_key=KEY_A)
    secret = "isoAWS" + uuid.uuid4().hex
    d.env["AWS_SECRET_ACCESS_KEY"] = secret
    d.start()
    bodies = []
    spec = SpecifyClient(d.http + "/c/awsc/web_asset_store.xml", KEY_A, COLL)
    spec.start()
    name = spec.new_name(".jpg")
    up = spec.upload(b"x" * 1000, name)
    assert up.status >= 500, up             # S3 really refused
    for r in (up, spec.fileget(name), spec.thumbnail(name),
              spec.metadata(name), spec.delete(name)):
        assert r.status != 200, r
        bodies.append(r.body + repr(r.headers).encode())
    sf, t = paramiko_sftp(d, c)
    try:
        for fn in (lambda: sf.listdir("/attachments"),
                   lambda: sf.stat("/attachments/x"),
                   lambda: sf.open("/attachments/x", "wb").write(b"x")):
            try:
                fn()
            except (IOError, OSError) as e:
                bodies.append(str(e).encode())
    finally:
        t.close()
    r = scp(d, c, ["R:attachments/x", "/dev/null"], legacy=True, check=False)
    bodies.append((r.stdout + r.stderr).encode())
    d.stop()
    log = d.log()
    assert "awsc" in log                     # the traffic was logged
    assert secret not in log
    for b in bodies:
        assert secret.encode() not in b


def test_repeated_auth_failures_refuse_the_source(make_daemon, tmp_path):
    """Twenty connections from one address that each fail public-key
    authentication: the next connection from that address is refused
    (closed before the SSH banner) for a while, even with a good key."""
    import socket
    d = make_daemon("fs", "PerSourcePenaltyExemptList none\n")
    d.start()
    c = d.add_client("guessed")
    wrong = str(tmp_path / "wrong")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    wrong], check=True)
    for _ in range(20):
        r = subprocess.run(
            ["ssh", "-p", str(d.ssh_port), "-i", wrong,
             "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
             "-o", "LogLevel=ERROR", "-T", "guessed@127.0.0.1", "true"],
            capture_output=True, timeout=30)
        assert r.returncode == 255
    s = socket.create_connection(("127.0.0.1", d.ssh_port))
    s.settimeout(3)
    try:
        banner = s.recv(64)
    except (socket.timeout, ConnectionResetError):
        banner = b""
    s.close()
    assert banner == b"", "the penalised source still gets a banner"
    r = subprocess.run(
        ["ssh", "-p", str(d.ssh_port)] + c.ssh_opts() +
        ["-T", "guessed@127.0.0.1", "true"], capture_output=True, timeout=30)
    assert r.returncode == 255        # the right key is refused too
    assert "penalty_source_refused" in d.log()
    assert "reason=authfail" in d.log()
