"""S3 faults seen through every front end: a fault-injecting proxy sits
between assetd and the real test S3 server (503 SlowDown, 500, a connection
reset in the middle of an upload's body, a stall longer than the timeout,
replies cut short), and a file is uploaded over HTTP (fileupload, with
curl), SFTP (sftp put), scp (both modes) and rsync.

Under every fault, every front end either reports success and the object
holds exactly the new bytes, or reports a clear failure to its client (an
HTTP error status with a message; sftp, scp and rsync exit non-zero with a
message), and the object is then its complete old version or, where S3
stored it but its reply was lost, its complete new one: never a success for
data that is not stored, never a partial object, nothing else in the
bucket.

One daemon serves the module with short S3 timeouts and two tries
(ASSETD_S3_TIMEOUT, ASSETD_S3_MAX_TRIES) and 1 MiB parts, so the big file
is a three-part multipart upload and a stall costs seconds, not minutes
(libcurl's low-speed check needs about timeout + 6 s to see a stall). The
five front ends run each fault at once, each on a name of its own that the
fault's rules are scoped to.
"""
import concurrent.futures
import hashlib
import os
import re

import pytest

from conftest import Daemon
from faultproxy import FaultProxy, ProxiedS3
from sshtools import FRONTENDS, make_file, upload_via

MiB = 1024 * 1024
SMALL = 200 * 1024          # one PUT
BIG = 2 * MiB + 300 * 1024  # a three-part multipart upload

# name -> (rules, size, expected): expected "ok" = must succeed (a fault
# the retries absorb), "fail" = must fail, "either" = S3 may have stored
# the object although its reply was lost (then a failure is reported and
# the object is the complete new version).
FAULTS = {
    "503_once_retried": ([dict(action="503", method="PUT", times=1)],
                         BIG, "ok"),
    "503_always": ([dict(action="503")], SMALL, "fail"),
    "500_always": ([dict(action="500", method="PUT"),
                    dict(action="500", method="POST")], BIG, "fail"),
    "reset_mid_body": ([dict(action="cut", method="PUT", after=64 * 1024)],
                       SMALL, "fail"),
    # the second part cut; or, where the front end knows the size and
    # sends the object in one PUT (HTTP spools it first), cut past 1 MiB
    "reset_mid_part": ([dict(action="cut", method="PUT",
                             query="partNumber=2", after=100 * 1024),
                        dict(action="cut", method="PUT", query="^$",
                             after=1200 * 1024)],
                       BIG, "fail"),
    "stall": ([dict(action="stall", method="PUT")], SMALL, "fail"),
    "truncated_put_reply": ([dict(action="truncate", method="PUT",
                                  after=10)], SMALL, "either"),
    "truncated_complete_reply": ([dict(action="truncate", method="POST",
                                       query="uploadId", after=60),
                                  dict(action="truncate", method="PUT",
                                       query="^$", after=60)],
                                 BIG, "either"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, s3server):
    proxy = FaultProxy(s3server.port)
    d = Daemon(tmp_path_factory.mktemp("faults"), "s3",
               ProxiedS3(s3server, proxy))
    d.env.update(ASSETD_S3_RETRY_BASE_MS="10", ASSETD_S3_MAX_TRIES="2",
                 ASSETD_S3_TIMEOUT="2", ASSETD_S3_PART_SIZE=str(MiB))
    d.start()
    c = d.add_client("faulty")
    yield d, c, proxy
    d.stop()
    proxy.close()


def raw_objects(s3server, bucket, prefix):
    """{key: size} of the objects the test S3 server holds on its disk under
    PREFIX, read straight from its data directory, not through its API (it
    keeps key K's bytes in the file "K._S3rver_object")."""
    root = os.path.join(s3server.workdir, "s3data", bucket)
    suffix = "._S3rver_object"
    out = {}
    for dirpath, _, files in os.walk(os.path.join(root, prefix)):
        for f in files:
            if f.endswith(suffix):
                p = os.path.join(dirpath, f)
                key = os.path.relpath(p, root)[:-len(suffix)]
                out[key] = os.path.getsize(p)
    return out


def sha(b):
    return hashlib.sha256(b).hexdigest()


def one_upload(d, c, proxy, tmp_path, fault, frontend):
    """Upload under FAULT through FRONTEND; checks what it may, returns a
    list of problems (empty = good) and a line for the record."""
    rules, size, expect = FAULTS[fault]
    name = "%s-%s.bin" % (fault, frontend)
    old = make_file(str(tmp_path / ("old-" + name)), 3000 + len(name),
                    seed=1)
    new = make_file(str(tmp_path / name), size,
                    seed=FRONTENDS.index(frontend) + 7)
    bucket, prefix = d._split(c.location)
    d.s3.boto3().put_object(Bucket=bucket, Key=prefix + "originals/" + name,
                            Body=old)
    for r in rules:
        proxy.add(path=re.escape(name), **r)
    ok, msg = upload_via(d, c, frontend, str(tmp_path / name), name)
    hit = [e[3] for e in proxy.requests(path=re.escape(name))
           if e[3] != "pass"]
    got = c.read("originals/" + name)
    bad = []
    if not hit:
        bad.append("the fault was never triggered")
    if ok:
        if expect == "fail":
            bad.append("success reported under the fault")
        if sha(got) != sha(new):
            bad.append("success reported, wrong bytes stored")
    else:
        if expect == "ok":
            bad.append("failed: " + msg)
        if not msg:
            bad.append("a failure with no message to the client")
        if sha(got) not in (sha(old), sha(new)):
            bad.append("a partial object")
        elif expect == "fail" and sha(got) != sha(old):
            bad.append("the old version was lost")
    if not ok and frontend == "rsync" and "mkdir" in msg:
        bad.append("a storage fault reported as a failed mkdir: " + msg)
    line = "%s %s: %s %r" % (fault, frontend, "ok" if ok else "failed",
                             msg[-160:])
    return ["%s %s: %s" % (fault, frontend, b) for b in bad], line, name, new


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_s3_fault_through_every_front_end(world, tmp_path, fault):
    d, c, proxy = world
    proxy.clear()
    before = set(c.list())
    with concurrent.futures.ThreadPoolExecutor(len(FRONTENDS)) as ex:
        res = list(ex.map(lambda fe: one_upload(d, c, proxy, tmp_path,
                                                fault, fe), FRONTENDS))
    proxy.clear()
    for _, line, _, _ in res:
        print(line)
    problems = [p for r in res for p in r[0]]
    assert not problems, problems
    # nothing else appeared in the bucket (no temp, no partial object)
    names = {"originals/" + r[2] for r in res}
    assert set(c.list()) - before <= names
    assert set(c.list()) - names == before - names
    # and what is on the server's disk is what it lists, byte counts alike
    bucket, prefix = d._split(c.location)
    assert raw_objects(d.s3.real, bucket, prefix) == \
        d.s3.real.keys(bucket, prefix)
    # and the daemon takes the next upload, fault gone, on every front end
    with concurrent.futures.ThreadPoolExecutor(len(FRONTENDS)) as ex:
        again = list(ex.map(lambda fe_r: upload_via(
            d, c, fe_r[0], str(tmp_path / fe_r[1][2]), fe_r[1][2]),
            zip(FRONTENDS, res)))
    for (ok, msg), (_, _, name, new) in zip(again, res):
        assert ok, msg
        assert sha(c.read("originals/" + name)) == sha(new)
