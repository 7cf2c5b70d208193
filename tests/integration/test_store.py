"""The storage interface's conformance suite, on every backend, plus the
filesystem backend's faults (full disk, a writer killed midway), its
containment under both path resolvers, and its memory bounds (a streamed
object, a big directory).

The cases themselves are C (tests/tools/store_conformance.c): each runs
against a fresh folder of a location, the same code for file:// and s3://.
"""
import json
import os
import shutil
import signal
import subprocess
import uuid

import pytest

from conftest import (S3_REGION, SANITIZED, TOOLS, clean_env, files_below,
                      tmpfs)

CONFORMANCE = os.path.join(TOOLS, "store_conformance")
STORE_CLI = os.path.join(TOOLS, "store_cli")

# The S3 part size the conformance sizes are built around (S3's minimum
# part size): the S3 backend honours ASSETD_S3_PART_SIZE as its part size
# and single-PUT threshold, so "3-part" objects are really three parts.
PART_SIZE = 5 * 1024 * 1024

CASES = [
    "roundtrip", "overwrite", "ranges", "list_pages", "delimiters",
    "directories", "list_tree", "copy", "rename", "metadata", "errors", "denied",
    "atomic", "exclusive", "names", "statfs", "staged",
]
FS_CASES = ["fs_symlinks", "fs_temp", "fs_files"]

# Backends the conformance suite runs on.
STORE_BACKENDS = ["fs", "s3"]

# On S3 the paging case uses 100-key ListObjectsV2 pages (the backend's
# ASSETD_S3_MAX_KEYS) so 300 keys make three pages without thousands of
# requests against the (slow) test server.
S3_ENV = {"ASSETD_S3_MAX_KEYS": "100", "ASSETD_CONFORMANCE_KEYS": "300"}


class Location:
    def __init__(self, url, args, other):
        self.url = url
        self.args = args      # --endpoint/--region for S3
        self.other = other    # a second location for copies between stores


@pytest.fixture(params=STORE_BACKENDS)
def location(request, tmp_path):
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    if request.param == "fs":
        loc = tmp_path / "loc"
        loc.mkdir()
        # the denied case drops to "nobody" after opening the location;
        # from then on only the location's own modes count
        os.chmod(loc, 0o755)
        return Location("file://%s/" % loc, [], "file://%s/" % other_dir)
    s3 = request.getfixturevalue("s3server")
    bucket = s3.create_bucket()
    return Location("s3://%s/conf/" % bucket,
                    ["--endpoint", s3.endpoint, "--region", S3_REGION],
                    "file://%s/" % other_dir)


def run_conformance(loc, cases, extra_env=None):
    env = clean_env(ASSETD_S3_PART_SIZE=str(PART_SIZE))
    if loc.url.startswith("s3://"):
        env.update(S3_ENV)
    env.update(extra_env or {})
    r = subprocess.run([CONFORMANCE] + loc.args + ["--other", loc.other,
                        loc.url] + cases,
                       capture_output=True, text=True, env=env, timeout=600)
    return r


def test_case_list_is_complete():
    r = subprocess.run([CONFORMANCE, "--list"], capture_output=True,
                       text=True, check=True)
    assert r.stdout.split() == CASES + FS_CASES


@pytest.mark.parametrize("case", CASES)
def test_conformance(location, case):
    r = run_conformance(location, [case])
    assert r.returncode == 0 and r.stdout.strip() == "ok " + case, \
        r.stdout + r.stderr


def test_streamed_copy(location):
    """The copy case again with server-side/in-backend copies disabled:
    the generic streamed copy of store.c, on every backend."""
    r = run_conformance(location, ["copy"],
                        {"ASSETD_STORE_STREAMED_COPY": "1"})
    assert r.returncode == 0 and r.stdout.strip() == "ok copy", \
        r.stdout + r.stderr


@pytest.mark.parametrize("case", FS_CASES + ["errors", "denied", "rename"])
@pytest.mark.parametrize("resolution", ["openat2", "walk"])
def test_fs_containment(tmp_path, case, resolution):
    """The fs cases, with openat2 and with the component-by-component walk
    used on kernels without it."""
    loc = tmp_path / "loc"
    loc.mkdir()
    os.chmod(loc, 0o755)
    other = tmp_path / "other"
    other.mkdir()
    env = {"ASSETD_FS_NO_OPENAT2": "1"} if resolution == "walk" else {}
    r = run_conformance(Location("file://%s/" % loc, [],
                                 "file://%s/" % other), [case], env)
    assert r.returncode == 0 and r.stdout.strip() == "ok " + case, \
        r.stdout + r.stderr


def cli(url, *args, check=True, **kw):
    r = subprocess.run([STORE_CLI, url] + [str(a) for a in args],
                       capture_output=True, text=True, env=clean_env(),
                       timeout=300, **kw)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture
def small_tmpfs():
    """A 1 MiB tmpfs: a real full disk (we run as root in the test VM)."""
    with tmpfs("1m") as d:
        yield d


def test_fs_enospc(small_tmpfs):
    url = "file://%s/" % small_tmpfs
    cli(url, "put", "keep.bin", 300 * 1024, 7)
    # a new object that does not fit
    r = cli(url, "put", "big.bin", 2 * 1024 * 1024, 8, check=False)
    assert r.returncode == 1
    assert r.stdout.startswith("error -5 "), r.stdout   # STORE_ENOSPC
    # replacing the old object with one that does not fit
    r = cli(url, "put", "keep.bin", 2 * 1024 * 1024, 9, check=False)
    assert r.stdout.startswith("error -5 "), r.stdout
    # nothing partial anywhere, not even a temp file; the old one intact
    assert files_below(small_tmpfs) == ["keep.bin"]
    cli(url, "check", "keep.bin", 300 * 1024, 7)
    # and the space came back: a fitting object still goes in
    cli(url, "put", "after.bin", 500 * 1024, 10)
    cli(url, "check", "after.bin", 500 * 1024, 10)


@pytest.mark.parametrize("replace", [False, True])
def test_fs_killed_writer(tmp_path, replace):
    root = tmp_path / "loc"
    root.mkdir()
    url = "file://%s/" % root
    if replace:
        cli(url, "put", "dir/obj.bin", 1000, 3)
    p = subprocess.Popen([STORE_CLI, url, "put", "dir/obj.bin",
                          str(8 << 20), "4", str(3 << 20)],
                         stdout=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert p.stdout.readline().strip() == "paused"
        # midway: 3 MiB are on disk in a temp file, invisible
        tmp = [f for f in files_below(root) if ".assetd-tmp." in f]
        assert len(tmp) == 1 and os.path.getsize(root / tmp[0]) == 3 << 20
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
        p.stdout.close()
    listed = cli(url, "ls").stdout.split("\n")
    if replace:
        assert listed[0] == "dir/obj.bin\t1000" and listed[1:] == [""]
        cli(url, "check", "dir/obj.bin", 1000, 3)
    else:
        assert listed == [""]
        assert cli(url, "check", "dir/obj.bin", 0, check=False) \
            .stdout.startswith("error -1 ")
    # the start-up cleanup removes the leftover
    assert cli(url, "cleanup", 0).stdout.strip() == "1"
    assert files_below(root) == (["dir/obj.bin"] if replace else [])


def test_fs_memory_stream(tmp_path):
    """Stream 256 MiB (unknown size, 1 MiB writes) through the fs backend
    and back: the peak RSS does not grow with the size (the fs backend
    buffers nothing; the caller's 1 MiB buffer is all). The 1 GiB run, with
    dd beside it, is in make bench (tests/bench/scenarios/store_fs.py)."""
    root = tmp_path / "loc"
    root.mkdir()
    url = "file://%s/" % root
    small = json.loads(cli(url, "stream", "s.bin", 1 << 20).stdout)
    big = json.loads(cli(url, "stream", "b.bin", 256 << 20).stdout)
    assert big["bytes"] == big["read"] == 256 << 20
    assert files_below(root) == []
    if SANITIZED:
        return  # ASan's redzones and quarantine: no memory figure holds
    assert big["vmhwm_kb"] - small["vmhwm_kb"] < 2048, (small, big)
    assert big["vmhwm_kb"] < 16 * 1024, big


def test_fs_big_directory_listing():
    """A big directory lists in byte order with the memory of one
    directory's names (store/fs.c: ~12 bytes + the name per entry, the
    arena at most doubled), alone or inside a recursive walk. 30,000 files
    on a tmpfs keep it quick; the bound is per entry."""
    with tmpfs("64m") as root:
        big = os.path.join(root, "big")
        os.mkdir(big)
        n = 30000
        for i in range(n):
            # 40-byte names, created in an order unlike byte order
            open(os.path.join(big, "%08x-specimen-image-original.jpg"
                              % ((i * 7919) % n)), "wb").close()
        os.mkdir(os.path.join(root, "small"))
        open(os.path.join(root, "small", "a"), "wb").close()
        url = "file://%s/" % root
        flat = json.loads(cli(url, "lsmem", "big/", "/").stdout)
        deep = json.loads(cli(url, "lsmem", "", "").stdout)
        empty = json.loads(cli(url, "lsmem", "small/", "/").stdout)
    assert flat["entries"] == n and flat["sorted"] == 1
    assert deep["entries"] == n + 1 and deep["sorted"] == 1
    if SANITIZED:
        return  # ASan's redzones and quarantine: no memory figure holds
    bound_kb = (n * 2 * (12 + 41)) // 1024 + 1024
    assert flat["vmhwm_kb"] - empty["vmhwm_kb"] < bound_kb, (flat, empty)
    assert deep["vmhwm_kb"] - empty["vmhwm_kb"] < bound_kb, (deep, empty)
