"""assetctl against a real catalog file: every verb, --json, --help at each
level, exit codes, and that refused input leaves the catalog unchanged.

These tests need no daemon: assetctl works on the catalog file directly
(the daemon reads the same file and sees the changes)."""
import json
import os
import sqlite3
import subprocess

import pytest

from conftest import ASSETCTL

# design.md's table of the old hosted setup.
FIVE_REGIONS = [
    ("us", "s3://sp-assets-us/", "s3://sp-assets-na-snapshots/"),
    ("ca", "s3://sp-assets-ca/", "s3://sp-assets-ca-snapshot/"),
    ("eu", "s3://sp-assets-eu/", "s3://sp-assets-eu-snapshot/"),
    ("il", "s3://sp-assets-il/",
     "s3://specify-cloud-rds-backups-il/asset-backups/"),
    ("br", "s3://sp-assets-br/",
     "s3://specify-cloud-rds-backups-br/asset-backups/"),
]

# Backends for the tests that make and check clients' folders through the
# store.
FOLDER_BACKENDS = ["fs", "s3"]

NOUNS = {
    "region": ["add", "list", "show", "set", "remove"],
    "client": ["add", "list", "show", "set", "disable", "enable", "remove"],
    "collection": ["add", "list", "remove"],
    "key": ["add", "list", "remove"],
}


class Ctl:
    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.db = str(tmp_path / "assetd.db")
        self.assets = tmp_path / "assets"
        self.assets.mkdir()
        self.assets_url = "file://%s/" % self.assets

    def run(self, *args, input=None, db=True, cwd=None):
        argv = [ASSETCTL] + (["-D", self.db] if db else []) + list(args)
        return subprocess.run(argv, input=input, capture_output=True,
                              text=True, timeout=60,
                              cwd=cwd or str(self.dir))

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def json(self, *args):
        r = self.ok(*args, "--json")
        return json.loads(r.stdout)

    def dump(self):
        con = sqlite3.connect(self.db)
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()


@pytest.fixture
def ctl(tmp_path):
    c = Ctl(tmp_path)
    c.ok("region", "add", "test", "--assets", c.assets_url)
    return c


def keygen(tmp_path, name, kind="ed25519", comment=None):
    path = str(tmp_path / name)
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", path]
    if comment:
        args += ["-C", comment]
    if kind == "rsa":
        args += ["-b", "2048"]
    subprocess.run(args, check=True)
    return path + ".pub"


def keygen_l(pub):
    """What ssh-keygen -lf prints for every key of a file, one per line."""
    r = subprocess.run(["ssh-keygen", "-lf", pub], capture_output=True,
                       text=True, check=True)
    return r.stdout.strip().splitlines()


# ---- help and usage -----------------------------------------------------

def test_help_at_every_level(ctl):
    r = ctl.run("--help", db=False)
    assert r.returncode == 0
    for noun in NOUNS:
        assert noun in r.stdout
    assert "Exit status" in r.stdout
    for noun, verbs in NOUNS.items():
        r = ctl.run(noun, "--help", db=False)
        assert r.returncode == 0, r.stderr
        for verb in verbs:
            assert "  %s " % verb in r.stdout, (noun, verb, r.stdout)
            r2 = ctl.run(noun, verb, "--help", db=False)
            assert r2.returncode == 0, r2.stderr
            assert r2.stdout.startswith("usage: assetctl %s %s" % (noun, verb))
    r = ctl.run("client", "add", "--help", db=False)
    for opt in ("--region", "--location", "--attachment-key", "--quota-bytes",
                "--quota-objects", "--no-check", "--endpoint"):
        assert opt in r.stdout
    # The backup nouns parse their own verbs; --help works for them too,
    # with no catalog anywhere.
    for args in (["sync", "--help"], ["archive", "--help"],
                 ["archive", "create", "--help"], ["runs", "--help"]):
        r = ctl.run(*args, db=False, cwd="/")
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout.startswith("usage: assetctl " + args[0])
    r = ctl.run("-V", db=False)
    assert r.returncode == 0 and r.stdout.startswith("assetctl ")


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["client"],
    ["client", "frob"],
    ["client", "add"],
    ["client", "add", "x", "--region"],
    ["client", "add", "x", "--bogus", "1"],
    ["client", "add", "x"],
    ["client", "show", "a", "b"],
    ["client", "remove", "x", "--force=yes"],
    ["key", "add", "x"],
    ["key", "remove", "x"],
    ["region", "add", "x"],
    ["-Q", "client", "list"],
    ["-D"],
])
def test_usage_errors_exit_2(ctl, args):
    before = ctl.dump()
    r = ctl.run(*args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert r.stderr.strip(), "a usage error must say something"
    assert ctl.dump() == before


def test_errors_exit_1(ctl):
    for args in (["client", "show", "nobody"],
                 ["region", "show", "nowhere"],
                 ["region", "remove", "nowhere"],
                 ["collection", "list", "nobody"],
                 ["key", "list", "nobody"]):
        r = ctl.run(*args)
        assert r.returncode == 1, args
        assert "nobody" in r.stderr or "nowhere" in r.stderr


# ---- regions -------------------------------------------------------------

def test_region_verbs(ctl):
    ctl.ok("region", "add", "s3r", "--assets", "s3://bucket-one/assets",
           "--snapshot", "s3://bucket-two/snap/", "--endpoint",
           "http://127.0.0.1:4569", "--s3-region", "us-east-1",
           "--profile", "prod")
    r = ctl.json("region", "show", "s3r")
    assert r == {"name": "s3r", "assets": "s3://bucket-one/assets/",
                 "snapshot": "s3://bucket-two/snap/",
                 "endpoint": "http://127.0.0.1:4569",
                 "s3_region": "us-east-1", "profile": "prod"}
    out = ctl.ok("region", "show", "s3r").stdout
    assert "s3://bucket-one/assets/" in out and "us-east-1" in out
    names = [x["name"] for x in ctl.json("region", "list")]
    assert names == ["s3r", "test"]
    table = ctl.ok("region", "list").stdout.splitlines()
    assert table[0].split()[0] == "NAME" and len(table) == 3
    ctl.ok("region", "set", "s3r", "--snapshot", "", "--s3-region",
           "eu-west-1")
    r = ctl.json("region", "show", "s3r")
    assert r["snapshot"] is None and r["s3_region"] == "eu-west-1"
    assert r["assets"] == "s3://bucket-one/assets/"
    ctl.ok("region", "remove", "s3r")
    assert [x["name"] for x in ctl.json("region", "list")] == ["test"]


def test_five_regions_of_the_old_setup(tmp_path):
    c = Ctl(tmp_path)
    for name, assets, snap in FIVE_REGIONS:
        c.ok("region", "add", name, "--assets", assets, "--snapshot", snap)
    got = {r["name"]: (r["assets"], r["snapshot"])
           for r in c.json("region", "list")}
    assert got == {n: (a, s) for n, a, s in FIVE_REGIONS}
    # Clients in them get <assets><client>/ (no bucket is contacted).
    c.ok("client", "add", "kufish", "--region", "us", "--no-check")
    assert c.json("client", "show", "kufish")["location"] == \
        "s3://sp-assets-us/kufish/"


# ---- clients -------------------------------------------------------------

def test_client_add_show_list(ctl):
    r = ctl.ok("client", "add", "kufish", "--region", "test")
    loc = ctl.assets_url + "kufish/"
    assert loc in r.stdout
    # The folder exists with originals/ and thumbnails/.
    assert sorted(os.listdir(ctl.assets / "kufish")) == \
        ["originals", "thumbnails"]
    info = ctl.json("client", "show", "kufish")
    for field in ("name", "region", "location", "attachment_key", "disabled",
                  "quota_bytes", "quota_objects", "created"):
        assert field in info
    assert info["name"] == "kufish" and info["region"] == "test"
    assert info["location"] == loc
    assert info["disabled"] is False
    key = info["attachment_key"]
    assert len(key) == 64 and int(key, 16) >= 0
    assert key in r.stdout  # the generated key is shown at creation
    # ... and not in the plain show, unless asked.
    assert key not in ctl.ok("client", "show", "kufish").stdout
    assert key in ctl.ok("client", "show", "kufish", "--show-key").stdout

    ctl.ok("client", "add", "own", "--location",
           "file://%s/own" % ctl.dir, "--attachment-key", "k-123",
           "--quota-bytes", "10G", "--quota-objects", "1K")
    assert sorted(os.listdir(ctl.dir / "own")) == ["originals", "thumbnails"]
    info = ctl.json("client", "show", "own")
    assert info["attachment_key"] == "k-123"
    assert info["region"] is None
    assert info["location"] == "file://%s/own/" % ctl.dir
    assert info["quota_bytes"] == 10 * 2**30
    assert info["quota_objects"] == 1024
    assert "k-123" not in ctl.ok("client", "add", "third", "--region",
                                 "test", "--attachment-key", "k-9").stdout

    lst = ctl.json("client", "list")
    assert [c["name"] for c in lst] == ["kufish", "own", "third"]
    table = ctl.ok("client", "list").stdout
    assert "kufish" in table and "active" in table
    # --json may come anywhere.
    r = subprocess.run([ASSETCTL, "--json", "-D", ctl.db, "client", "list"],
                       capture_output=True, text=True)
    assert json.loads(r.stdout) == lst


def test_client_s3_location_no_check(ctl):
    ctl.ok("region", "add", "s3r", "--assets", "s3://bucket-one/",
           "--endpoint", "http://127.0.0.1:1", "--s3-region", "us-east-1")
    ctl.ok("client", "add", "a", "--region", "s3r", "--no-check")
    info = ctl.json("client", "show", "a")
    assert info["location"] == "s3://bucket-one/a/"
    assert info["endpoint"] == "http://127.0.0.1:1"
    ctl.ok("client", "add", "b", "--location", "s3://their-bucket/x/",
           "--endpoint", "https://s3.example.org", "--s3-region",
           "eu-west-1", "--no-check")
    info = ctl.json("client", "show", "b")
    assert info["endpoint"] == "https://s3.example.org"
    assert info["s3_region"] == "eu-west-1"


def test_client_set_disable_enable(ctl):
    ctl.ok("client", "add", "kufish", "--region", "test")
    old = ctl.json("client", "show", "kufish")["attachment_key"]
    ctl.ok("client", "disable", "kufish")
    assert ctl.json("client", "show", "kufish")["disabled"] is True
    assert "disabled" in ctl.ok("client", "list").stdout
    ctl.ok("client", "enable", "kufish")
    assert ctl.json("client", "show", "kufish")["disabled"] is False
    ctl.ok("client", "set", "kufish", "--quota-bytes", "5M")
    info = ctl.json("client", "show", "kufish")
    assert info["quota_bytes"] == 5 * 2**20 and info["attachment_key"] == old
    r = ctl.ok("client", "set", "kufish", "--new-attachment-key")
    new = ctl.json("client", "show", "kufish")["attachment_key"]
    assert new != old and len(new) == 64 and new in r.stdout
    ctl.ok("client", "set", "kufish", "--attachment-key", "mine")
    assert ctl.json("client", "show", "kufish")["attachment_key"] == "mine"
    r = ctl.ok("client", "set", "kufish", "--location",
               ctl.assets_url + "moved/")
    assert "not moved" in r.stdout
    assert ctl.json("client", "show", "kufish")["location"] == \
        ctl.assets_url + "moved/"


def test_client_remove_refuses_files_never_deletes(ctl):
    ctl.ok("client", "add", "empty", "--region", "test")
    ctl.ok("client", "add", "full", "--region", "test")
    ctl.ok("collection", "add", "full", "Fish")
    f = ctl.assets / "full" / "originals" / "a.jpg"
    f.write_bytes(b"x" * 10)
    before = ctl.dump()
    r = ctl.run("client", "remove", "full")
    assert r.returncode == 1
    assert "still has files" in r.stderr and "--force" in r.stderr
    assert ctl.dump() == before
    ctl.ok("client", "remove", "full", "--force")
    assert f.read_bytes() == b"x" * 10
    assert ctl.run("client", "show", "full").returncode == 1
    assert ctl.json("collection", "list") == []
    ctl.ok("client", "remove", "empty")
    assert ctl.json("client", "list") == []


# ---- collections ---------------------------------------------------------

def test_collection_verbs(ctl):
    ctl.ok("client", "add", "a", "--region", "test")
    ctl.ok("client", "add", "b", "--region", "test")
    ctl.ok("collection", "add", "a", "KU Fish \"Tissue\" é")
    ctl.ok("collection", "add", "a", "Herps", "--subfolder", "herps/")
    ctl.ok("collection", "add", "b", "Plants")
    got = ctl.json("collection", "list")
    assert got == [
        {"client": "a", "name": "Herps", "subfolder": "herps"},
        {"client": "a", "name": "KU Fish \"Tissue\" é", "subfolder": ""},
        {"client": "b", "name": "Plants", "subfolder": ""},
    ]
    assert [c["name"] for c in ctl.json("collection", "list", "b")] == \
        ["Plants"]
    assert [c["name"] for c in ctl.json("client", "show", "a")
            ["collections"]] == ["Herps", "KU Fish \"Tissue\" é"]
    assert "Plants" in ctl.ok("collection", "list").stdout
    ctl.ok("collection", "remove", "a", "Herps")
    assert len(ctl.json("collection", "list", "a")) == 1
    r = ctl.run("collection", "remove", "a", "Herps")
    assert r.returncode == 1 and "Herps" in r.stderr


# ---- keys ----------------------------------------------------------------

def test_key_add_file_stdin_line(ctl, tmp_path):
    ctl.ok("client", "add", "kufish", "--region", "test")
    ed = keygen(tmp_path, "id_ed", comment="alice@lab")
    rsa = keygen(tmp_path, "id_rsa", "rsa", comment="bob rsa")
    ec = keygen(tmp_path, "id_ec", "ecdsa", comment="carol")

    r = ctl.ok("key", "add", "kufish", ed)
    assert r.stdout.strip().splitlines() == keygen_l(ed)

    both = tmp_path / "authorized_keys"
    both.write_text("# team keys\n\n" + open(rsa).read() +
                    "restrict,no-pty " + open(ec).read())
    r = ctl.ok("key", "add", "kufish", str(both))
    assert r.stdout.strip().splitlines() == keygen_l(rsa) + keygen_l(ec)

    ctl.ok("client", "add", "other", "--region", "test")
    r = ctl.ok("key", "add", "other", "-", input=open(ed).read())
    assert r.stdout.strip().splitlines() == keygen_l(ed)
    line = open(rsa).read().strip()
    r = ctl.ok("key", "add", "other", "--line", line)
    assert r.stdout.strip().splitlines() == keygen_l(rsa)

    keys = ctl.json("key", "list", "kufish")
    assert [k["type"] for k in keys] == \
        ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]
    assert [k["comment"] for k in keys] == ["alice@lab", "bob rsa", "carol"]
    fps = [l.split()[1] for l in keygen_l(ed) + keygen_l(rsa) + keygen_l(ec)]
    assert [k["fingerprint"] for k in keys] == fps
    for k in keys:
        assert k["added"] > 0 and k["last_used"] == 0
    table = ctl.ok("key", "list").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "CLIENT", "TYPE", "FINGERPRINT"]
    assert "LAST USED" in table[0] and "never" in table[1]
    assert len(table) == 1 + 5
    assert len(ctl.json("key", "list")) == 5
    assert ctl.json("client", "show", "kufish")["keys"] == 3

    # Remove by fingerprint and by id.
    ctl.ok("key", "remove", "kufish", fps[0])
    ctl.ok("key", "remove", "kufish", str(keys[1]["id"]))
    assert [k["fingerprint"] for k in ctl.json("key", "list", "kufish")] == \
        [fps[2]]
    r = ctl.run("key", "remove", "kufish", fps[0])
    assert r.returncode == 1
    # The other client's copy of the same key is untouched.
    assert fps[0] in [k["fingerprint"] for k in ctl.json("key", "list",
                                                          "other")]


def test_key_refusals_leave_catalog_unchanged(ctl, tmp_path):
    ctl.ok("client", "add", "kufish", "--region", "test")
    ed = keygen(tmp_path, "id_ed")
    ctl.ok("key", "add", "kufish", ed)
    good2 = keygen(tmp_path, "id_ed2")
    before = ctl.dump()
    mixed = tmp_path / "mixed"
    # A good new key and a duplicate: neither is added.
    mixed.write_text(open(good2).read() + open(ed).read())
    bad_files = {
        "dup": (ed, "already registered"),
        "mixed": (str(mixed), "already registered"),
        "private": (ed[:-4], "private key"),
        "missing": (str(tmp_path / "nope.pub"), "No such file"),
    }
    for name, (path, msg) in bad_files.items():
        r = ctl.run("key", "add", "kufish", path)
        assert r.returncode == 1, name
        assert msg in r.stderr, (name, r.stderr)
    for line, msg in [
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDEADBEEF", "invalid"),
            ("from=\"10.0.0.1\" " + open(good2).read(), "from"),
            ("hello world", "not an SSH public key"),
            ("", "no key found")]:
        r = ctl.run("key", "add", "kufish", "--line", line)
        assert r.returncode == 1, line
        assert msg in r.stderr, (line, r.stderr)
    r = ctl.run("key", "add", "nobody", good2)
    assert r.returncode == 1 and "nobody" in r.stderr
    assert ctl.dump() == before


# ---- bad input leaves the catalog unchanged --------------------------------

def test_bad_input_leaves_catalog_unchanged(ctl):
    ctl.ok("client", "add", "kufish", "--region", "test")
    ctl.ok("collection", "add", "kufish", "Fish")
    before = ctl.dump()
    cases = [
        (["region", "add", "test", "--assets", "s3://other-bucket/"],
         "already exists"),
        (["region", "add", "bad name", "--assets", "s3://bkt-x/"],
         "invalid region name"),
        (["region", "add", "x", "--assets", "http://nope/"],
         "invalid location"),
        (["region", "add", "x", "--assets", "s3://ok-bucket/",
          "--snapshot", "s3://Bad_Bucket/"], "bucket"),
        (["region", "add", "x", "--assets", "file://relative/path"],
         "invalid location"),
        (["region", "add", "x", "--assets", "s3://bkt-x/",
          "--endpoint", "ftp://x"], "endpoint"),
        (["region", "remove", "test"], "in use"),
        (["region", "set", "nowhere", "--assets", "s3://bkt-x/"],
         "nowhere"),
        (["client", "add", "kufish", "--region", "test"], "already exists"),
        (["client", "add", "Bad", "--region", "test"], "invalid client name"),
        (["client", "add", "x", "--region", "nowhere"], "nowhere"),
        (["client", "add", "x", "--location", "s3://../x/", "--no-check"],
         "invalid location"),
        (["client", "add", "x", "--location", ctl.assets_url + "kufish/sub",
          "--no-check"], "overlaps"),
        (["client", "add", "x", "--region", "test", "--quota-bytes", "lots"],
         "quota"),
        (["client", "add", "x", "--region", "test",
          "--attachment-key", "a b"], "attachment key"),
        (["client", "add", "x", "--location", "file:///nonexistent/a/b/"],
         "cannot create"),
        (["client", "set", "nobody", "--quota-bytes", "1"], "nobody"),
        (["client", "set", "kufish", "--region", "nowhere"], "nowhere"),
        (["client", "set", "kufish", "--location", "bogus"],
         "invalid location"),
        (["client", "disable", "nobody"], "nobody"),
        (["client", "remove", "nobody"], "nobody"),
        (["collection", "add", "kufish", "Fish"], "already has"),
        (["collection", "add", "nobody", "Fish"], "nobody"),
        (["collection", "add", "kufish", "X", "--subfolder", "../up"],
         "subfolder"),
        (["collection", "remove", "kufish", "Nope"], "Nope"),
        (["key", "remove", "kufish", "SHA256:nothing"], "no key"),
    ]
    for args, msg in cases:
        r = ctl.run(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
        assert ctl.dump() == before, args
    # The failed add left no folder behind.
    assert not os.path.exists(ctl.assets / "x")


# ---- where the catalog is ------------------------------------------------------

def test_catalog_from_config_and_default(tmp_path):
    var = tmp_path / "data"
    var.mkdir()
    conf = tmp_path / "assetd.conf"
    conf.write_text("DataDir %s\n" % var)
    r = subprocess.run([ASSETCTL, "-f", str(conf), "region", "add", "r1",
                        "--assets", "s3://bkt-one/"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(var / "assetd.db")
    assert os.stat(var / "assetd.db").st_mode & 0o777 == 0o600
    # A bad config is an error naming file:line.
    bad = tmp_path / "bad.conf"
    bad.write_text("DataDir /x\nNoSuchKeyword 1\n")
    r = subprocess.run([ASSETCTL, "-f", str(bad), "region", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "bad.conf:2" in r.stderr
    # Without -f or -D (and no /etc/assetd/assetd.conf): ./var/assetd.db.
    if not os.path.exists("/etc/assetd/assetd.conf"):
        (tmp_path / "var").mkdir()
        r = subprocess.run([ASSETCTL, "region", "add", "r2", "--assets",
                            "s3://bkt-two/"], capture_output=True, text=True,
                           cwd=str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert os.path.exists(tmp_path / "var" / "assetd.db")
    # Looking at a catalog that does not exist creates nothing.
    r = subprocess.run([ASSETCTL, "-D", str(tmp_path / "typo.db"), "client",
                        "list"], capture_output=True, text=True)
    assert r.returncode == 1 and "typo.db" in r.stderr
    assert not os.path.exists(tmp_path / "typo.db")


def test_newer_catalog_refused(ctl):
    con = sqlite3.connect(ctl.db)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    r = ctl.run("region", "list")
    assert r.returncode == 1
    assert "newer" in r.stderr and "99" in r.stderr


@pytest.mark.parametrize("kind", FOLDER_BACKENDS)
def test_against_running_daemon_harness(make_daemon, kind):
    """The harness's own path: Daemon.ctl and add_client work."""
    d = make_daemon(kind)
    c = d.add_client("kufish", collections=("KU Fish",))
    assert c.location == d.assets + "kufish/"
    assert len(c.attachment_key) == 64
    keys = d.ctl("key", "list", "kufish", json_out=True)
    assert keys[0]["fingerprint"] == \
        keygen_l(c.key_path + ".pub")[0].split()[1]


def test_parallel_assetctl_processes(ctl, tmp_path):
    """Several assetctl processes writing at once: every one succeeds, no
    "database is locked" reaches the user."""
    procs = []
    for i in range(6):
        script = "; ".join(
            "%s -D %s client add p%d-%d --region test --no-check" % (
                ASSETCTL, ctl.db, i, j) for j in range(8))
        procs.append(subprocess.Popen(["sh", "-ec", script],
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "locked" not in err
    assert len(ctl.json("client", "list")) == 48


def test_json_escapes_every_string(ctl, tmp_path):
    """Comments and names come from outside: quotes, backslashes, control
    characters and bytes that are not UTF-8 still give valid JSON."""
    ctl.ok("client", "add", "kufish", "--region", "test")
    pub = open(keygen(tmp_path, "id_j")).read().split()
    line = ("%s %s caf\xe9 \"q\" \\ end\tx\n" % (pub[0], pub[1])).encode(
        "latin-1")
    r = subprocess.run([ASSETCTL, "-D", ctl.db, "key", "add", "kufish", "-"],
                       input=line, capture_output=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([ASSETCTL, "-D", ctl.db, "--json", "key", "list"],
                       capture_output=True)
    keys = json.loads(r.stdout.decode("utf-8"))
    assert keys[0]["comment"] == "caf\ufffd \"q\" \\ end x"
    ctl.ok("collection", "add", "kufish", "Ünïcode ✓ \\ \"")
    got = ctl.json("collection", "list")
    assert got[0]["name"] == "Ünïcode ✓ \\ \""


def put_object(d, url, data):
    if url.startswith("file://"):
        os.makedirs(os.path.dirname(url[7:]), exist_ok=True)
        with open(url[7:], "wb") as f:
            f.write(data)
    else:
        bucket, key = d._split(url)
        d.s3.boto3().put_object(Bucket=bucket, Key=key, Body=data)


@pytest.mark.parametrize("kind", FOLDER_BACKENDS)
def test_client_folder_on_backend(make_daemon, kind):
    d = make_daemon(kind)
    c = d.add_client("kufish", ssh_key=False)
    assert c.location == d.assets + "kufish/"
    if kind == "fs":
        for sub in ("originals", "thumbnails"):
            assert os.path.isdir(c.location[7:] + sub)
    else:
        assert d.backend_list(c.location) == ["originals/", "thumbnails/"]
    # Only markers: the client counts as empty and may go.
    d.ctl("client", "add", "empty", "--region", "test")
    d.ctl("client", "remove", "empty")
    put_object(d, c.location + "originals/ab/x.jpg", b"jpeg")
    r = d.ctl("client", "remove", "kufish", check=False)
    assert r.returncode == 1 and "still has files" in r.stderr
    assert d.ctl("client", "show", "kufish", json_out=True)["name"] == \
        "kufish"
    d.ctl("client", "remove", "kufish", "--force")
    assert d.backend_read(c.location + "originals/ab/x.jpg") == b"jpeg"
    assert d.ctl("client", "list", json_out=True) == []
