"""assetctl bucket policy / bucket check, and the check at client add.

The check runs against a directory and the test S3 server: a good layout
passes; each kind of problem is reported with its own line and exit code;
a write refused by the server (wrong credentials) is reported as such; the
probe object never remains; --fix creates the markers. The policy JSON is
parsed and its ARNs checked with and without a prefix."""
import json
import os

import pytest

from backuputil import Loc
from conftest import S3_KEY

JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40
PDF = b"%PDF-1.4\n" + b"\0" * 40
PRINCIPAL = "arn:aws:iam::123456789012:user/assetd"


# ---- policy ------------------------------------------------------------------

def test_policy_whole_bucket(make_daemon):
    d = make_daemon("fs", conf_extra="AwsPrincipal %s\n" % PRINCIPAL)
    pol = json.loads(d.ctl("bucket", "policy", "s3://client-bucket").stdout)
    assert pol["Version"] == "2012-10-17"
    assert len(pol["Statement"]) == 1
    st = pol["Statement"][0]
    assert st["Effect"] == "Allow"
    assert st["Principal"] == {"AWS": PRINCIPAL}
    assert set(st["Action"]) == {"s3:GetObject", "s3:PutObject",
                                 "s3:DeleteObject", "s3:ListBucket"}
    assert set(st["Resource"]) == {"arn:aws:s3:::client-bucket",
                                   "arn:aws:s3:::client-bucket/*"}
    assert "Condition" not in st


def test_policy_prefix_and_read_only(make_daemon):
    d = make_daemon("fs")
    other = "arn:aws:iam::210987654321:role/assets"
    out = d.ctl("bucket", "policy", "s3://client-bucket/kufish/assets/",
                "--principal", other).stdout
    pol = json.loads(out)
    objs = [s for s in pol["Statement"] if s["Sid"] == "AssetdObjects"][0]
    lst = [s for s in pol["Statement"] if s["Sid"] == "AssetdList"][0]
    assert objs["Principal"] == {"AWS": other}
    assert set(objs["Action"]) == {"s3:GetObject", "s3:PutObject",
                                   "s3:DeleteObject"}
    assert objs["Resource"] == "arn:aws:s3:::client-bucket/kufish/assets/*"
    assert lst["Action"] == "s3:ListBucket"
    assert lst["Resource"] == "arn:aws:s3:::client-bucket"
    assert lst["Condition"] == {
        "StringLike": {"s3:prefix": ["kufish/assets/*"]}}

    ro = json.loads(d.ctl("bucket", "policy", "s3://client-bucket/p",
                          "--principal", other, "--read-only").stdout)
    objs = [s for s in ro["Statement"] if s["Sid"] == "AssetdObjects"][0]
    assert objs["Action"] == ["s3:GetObject"]
    assert objs["Resource"] == "arn:aws:s3:::client-bucket/p/*"


def test_policy_refusals(make_daemon):
    d = make_daemon("fs")
    r = d.ctl("bucket", "policy", "s3://client-bucket", check=False)
    assert r.returncode == 2 and "AwsPrincipal" in r.stderr
    assert r.stdout == ""
    r = d.ctl("bucket", "policy", "s3://Bad_Bucket", "--principal",
              PRINCIPAL, check=False)
    assert r.returncode == 2 and "bucket name" in r.stderr
    r = d.ctl("bucket", "policy", "s3://ok-bucket", "--principal",
              'arn:x" , "evil', check=False)
    assert r.returncode == 2 and r.stdout == ""
    r = d.ctl("bucket", "policy", "file:///tmp/", "--principal", PRINCIPAL,
              check=False)
    assert r.returncode == 2


# ---- check -------------------------------------------------------------------

def good_layout(loc):
    loc.put("originals/a.jpg", JPEG)
    loc.put("originals/b.pdf", PDF)
    loc.put("originals/c.JPG", JPEG)
    loc.put("thumbnails/a_200.jpg", JPEG)
    loc.put("thumbnails/b_123.png", PNG)   # a PDF's thumbnail is a PNG
    loc.put("thumbnails/c_600.JPG", JPEG)
    loc.put("originals/", b"") if loc.s3 else None
    loc.put("thumbnails/", b"") if loc.s3 else None


def check(d, url, *args):
    r = d.ctl("bucket", "check", url, *args, check=False)
    j = d.ctl("bucket", "check", url, *args, "--json", check=False)
    assert r.returncode == j.returncode
    return r, json.loads(j.stdout)


def new_loc(backend, tmp_path, s3server, d, name):
    if backend == "fs":
        return Loc.new("fs", tmp_path, None, name)
    return Loc.new("s3", tmp_path, s3server, name, d.bucket)


def no_probe_left(loc):
    assert not [n for n in loc.names() if "assetd-probe" in n]


def test_good_layout_passes(make_daemon, backend, s3server, tmp_path):
    d = make_daemon(backend)
    loc = new_loc(backend, tmp_path, s3server, d, "good")
    good_layout(loc)
    r, j = check(d, loc.url)
    assert r.returncode == 0, r.stdout
    assert j["usable"] is True and j["errors"] == 0 and j["warnings"] == 0
    assert j["objects"] == 6
    assert "list, write, read back and delete are allowed" in r.stdout
    assert "0 errors, 0 warnings, 6 objects checked: usable" in r.stdout
    no_probe_left(loc)


def test_each_problem_reported(make_daemon, backend, s3server, tmp_path):
    d = make_daemon(backend)
    loc = new_loc(backend, tmp_path, s3server, d, "bad")
    loc.put("originals/a.jpg", JPEG)
    loc.put("originals/fake.jpg", PDF)              # a .jpg holding a PDF
    loc.put("originals/sub/nested.jpg", JPEG)       # a name with '/'
    loc.put("stray.txt", b"top-level file")         # a stray top-level file
    loc.put("junk/x", b"unexpected folder")
    r, j = check(d, loc.url)
    assert r.returncode == 1
    assert j["usable"] is False
    lines = r.stdout.splitlines()

    def line(*words):
        hits = [l for l in lines if all(w in l for w in words)]
        assert hits, (words, r.stdout)
        return hits[0]

    assert line("ERROR", "missing thumbnails/")
    assert line("ERROR", "directly under the root", "stray.txt")
    assert line("warn", "unexpected", "junk/")
    assert line("ERROR", "originals/fake.jpg", "says JPEG",
                "content is PDF")
    assert line("ERROR", "originals/sub/nested.jpg", "single segment")
    assert not [l for l in lines if "originals/a.jpg" in l]
    errs = {f["name"] for f in j["findings"] if f["level"] == "error"}
    assert {"thumbnails", "originals/fake.jpg",
            "originals/sub/nested.jpg"} <= errs
    no_probe_left(loc)


def test_thumbnail_problems(make_daemon, backend, s3server, tmp_path):
    d = make_daemon(backend)
    loc = new_loc(backend, tmp_path, s3server, d, "thumbs")
    good_layout(loc)
    loc.put("thumbnails/misnamed.jpg", JPEG)        # no _<scale>
    loc.put("thumbnails/orphan_200.jpg", JPEG)      # no original
    loc.put("thumbnails/doc_200.tif", b"II*\0")     # not a thumbnail type
    r, j = check(d, loc.url)
    assert r.returncode == 1
    out = r.stdout
    assert "thumbnails/misnamed.jpg: a thumbnail is named <root>_<scale>" \
        in out
    assert "warn" in [l for l in out.splitlines()
                      if "orphan_200.jpg" in l][0].split()[0]
    assert "orphan thumbnail" in out
    assert "thumbnails/doc_200.tif: not an image served as a thumbnail" in out
    assert (j["errors"], j["warnings"]) == (2, 1)
    # the orphan alone is only a warning: usable
    loc2 = new_loc(backend, tmp_path, s3server, d, "orphan-only")
    good_layout(loc2)
    loc2.put("thumbnails/orphan_200.jpg", JPEG)
    r, j = check(d, loc2.url)
    assert r.returncode == 0 and j["warnings"] == 1 and j["usable"]


def test_fix_creates_markers(make_daemon, backend, s3server, tmp_path):
    d = make_daemon(backend)
    loc = new_loc(backend, tmp_path, s3server, d, "empty")
    if backend == "fs":
        os.makedirs(loc.path, exist_ok=True)
    r, j = check(d, loc.url)
    assert r.returncode == 1
    r = d.ctl("bucket", "check", loc.url, "--fix")
    assert r.returncode == 0, r.stdout
    assert "created originals/" in r.stdout
    assert "created thumbnails/" in r.stdout
    if backend == "fs":
        assert os.path.isdir(os.path.join(loc.path, "originals"))
        assert os.path.isdir(os.path.join(loc.path, "thumbnails"))
    else:
        keys = s3server.keys(loc.bucket, loc.prefix)
        assert set(keys) == {loc.prefix + "originals/",
                             loc.prefix + "thumbnails/"}
    r, j = check(d, loc.url)
    assert r.returncode == 0


def test_collection_subfolders(make_daemon, backend, s3server, tmp_path):
    d = make_daemon(backend)
    loc = new_loc(backend, tmp_path, s3server, d, "colls")
    loc.put("Fish/originals/a.jpg", JPEG)
    loc.put("Fish/thumbnails/a_200.jpg", JPEG)
    loc.put("Plants/originals/p.jpg", JPEG)
    r, j = check(d, loc.url, "--collection", "Fish", "--collection",
                 "Plants")
    assert r.returncode == 1
    assert "missing thumbnails/ in Plants" in r.stdout
    assert "Fish holds originals/ and thumbnails/" in r.stdout
    assert not [l for l in r.stdout.splitlines()
                if "missing" in l and "Fish" in l]
    # without --collection the subfolders are found by themselves
    r2, j2 = check(d, loc.url)
    assert r2.returncode == 1
    assert "missing thumbnails/ in Plants" in r2.stdout


def test_denied_write_reported(make_daemon, s3server, tmp_path):
    d = make_daemon("s3")
    loc = new_loc("s3", tmp_path, s3server, d, "denied")
    good_layout(loc)
    # credentials the server refuses
    d.env = dict(d.env, AWS_SECRET_ACCESS_KEY="not-" + S3_KEY)
    r, j = check(d, loc.url)
    assert r.returncode == 1
    arn = "arn:aws:s3:::%s/denied/*" % loc.bucket
    assert ("PutObject denied: the policy lacks s3:PutObject on %s" % arn) \
        in r.stdout
    assert "ListBucket denied" in r.stdout
    no_probe_left(loc)


def test_client_add_checks_location(make_daemon, backend, s3server,
                                    tmp_path):
    d = make_daemon(backend)
    bad = new_loc(backend, tmp_path, s3server, d, "byo-bad")
    bad.put("stray.txt", b"x")
    bad.put("originals/fake.jpg", PDF)
    # the client's own bucket, reached through its own endpoint
    reach = ["--endpoint", s3server.endpoint, "--s3-region", "us-east-1"] \
        if backend == "s3" else []
    r = d.ctl("client", "add", "byo", "--location", bad.url, *reach,
              check=False)
    assert r.returncode == 1
    assert "content is PDF" in r.stderr + r.stdout
    r = d.ctl("client", "show", "byo", check=False)
    assert r.returncode != 0     # refused: not added
    good = new_loc(backend, tmp_path, s3server, d, "byo-good")
    good_layout(good)
    d.ctl("client", "add", "byo", "--location", good.url, *reach)
    r = d.ctl("client", "set", "byo", "--location", bad.url, check=False)
    assert r.returncode == 1
    d.ctl("client", "set", "byo", "--location", bad.url, "--no-check")
