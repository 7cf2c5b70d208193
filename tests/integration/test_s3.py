"""The S3 backend against the real test S3 server: faults injected by a
proxy in front of it (cut uploads, 503s, stalls, cut downloads, errors in a
200), credentials from the environment, the shared credentials file and an
IMDSv2 stand-in, multipart and copy details, metadata, and the memory bound
of a streamed object.

The tools: store_pipe (one store operation, stdin/stdout; a typed error is
"store_pipe: ENAME: text" and exit status 2) and store_cli stream (write
and read back N bytes, report VmHWM).
"""
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import S3_KEY, S3_REGION, S3_SECRET, TOOLS, clean_env
from faultproxy import FaultProxy
from imds import IMDS

PIPE = os.path.join(TOOLS, "store_pipe")
STORE_CLI = os.path.join(TOOLS, "store_cli")
MiB = 1024 * 1024


def env_for(**extra):
    """clean_env with short backoffs so retry tests stay quick."""
    e = clean_env(ASSETD_S3_RETRY_BASE_MS="10")
    e.update(extra)
    return e


def pipe(endpoint, url, *args, data=None, env=None, opts=(), timeout=120):
    argv = [PIPE, "--endpoint", endpoint, "--region", S3_REGION] + \
        list(opts) + [url] + [str(a) for a in args]
    return subprocess.run(argv, input=data, capture_output=True,
                          env=env or env_for(), timeout=timeout)


def err(r):
    """The typed error name store_pipe printed ("ENOENT"), or None."""
    if r.returncode == 0:
        return None
    line = r.stderr.decode().strip().splitlines()[-1]
    assert line.startswith("store_pipe: "), r.stderr
    return line.split(":")[1].strip()


def ok(r):
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


@pytest.fixture
def bucket(s3server):
    return s3server.create_bucket()


@pytest.fixture
def proxy(s3server):
    p = FaultProxy(s3server.port)
    yield p
    p.close()


def blob(n, seed=1):
    return (uuid.UUID(int=seed).bytes * (n // 16 + 1))[:n] if n < 64 else \
        os.urandom(n)


# ---- uploads cut midway ---------------------------------------------------

def test_single_put_cut_leaves_old_object(s3server, bucket, proxy):
    url = "s3://%s/p/" % bucket
    old = blob(1000)
    ok(pipe(s3server.endpoint, url, "put", "obj.bin", data=old))
    proxy.add("cut", method="PUT", path="obj.bin", after=200 * 1024)
    r = pipe(proxy.endpoint, url, "put", "obj.bin", data=os.urandom(MiB),
             opts=["--retries", "3"])
    assert err(r) == "EUNAVAIL"
    assert len(proxy.requests("PUT")) == 3          # bounded tries
    assert s3server.get(bucket, "p/obj.bin") == old  # old one untouched
    assert list(s3server.keys(bucket, "p/")) == ["p/obj.bin"]


def test_multipart_cut_leaves_nothing(s3server, bucket, proxy):
    url = "s3://%s/p/" % bucket
    proxy.add("cut", method="PUT", query="partNumber=2", after=100 * 1024)
    r = pipe(proxy.endpoint, url, "put", "big.bin",
             data=os.urandom(3 * MiB + 500),
             env=env_for(ASSETD_S3_PART_SIZE=str(MiB)),
             opts=["--retries", "2"])
    assert err(r) == "EUNAVAIL"
    assert len(proxy.requests("PUT")) >= 3  # part 1, part 2 twice
    # no completion was sent; the upload was aborted (the test server
    # answers AbortMultipartUpload with 405, which is tolerated)
    assert not [e for e in proxy.requests("POST") if "uploadId" in e[2]]
    assert [e for e in proxy.requests("DELETE") if "uploadId" in e[2]]
    assert s3server.keys(bucket, "p/") == {}


def test_killed_writer_leaves_nothing(s3server, bucket, proxy):
    """A writer whose process dies midway, parts already sent: nothing is
    visible (the upload is never completed)."""
    url = "s3://%s/p/" % bucket
    r = pipe(proxy.endpoint, url, "put-cut", "dead.bin", int(2.5 * MiB),
             data=os.urandom(4 * MiB),
             env=env_for(ASSETD_S3_PART_SIZE=str(MiB)))
    assert r.returncode == 3
    assert len([e for e in proxy.requests("PUT")
                if "partNumber" in e[2]]) >= 1
    assert not [e for e in proxy.requests("POST") if "uploadId" in e[2]]
    assert s3server.keys(bucket, "p/") == {}


def test_complete_with_embedded_error_is_a_failure(s3server, bucket, proxy):
    """CompleteMultipartUpload answered 200 with an <Error> body: never
    reported as written."""
    url = "s3://%s/p/" % bucket
    proxy.add("200_error", method="POST", query="uploadId")
    r = pipe(proxy.endpoint, url, "put", "c.bin",
             data=os.urandom(2 * MiB + 1),
             env=env_for(ASSETD_S3_PART_SIZE=str(MiB)),
             opts=["--retries", "2"])
    assert err(r) == "EUNAVAIL"
    assert len([e for e in proxy.requests("POST")
                if "uploadId" in e[2]]) == 2
    assert s3server.keys(bucket, "p/") == {}


def test_single_put_sends_the_md5_it_was_given(s3server, bucket, proxy):
    """A writer told the MD5 of its bytes (store_writer_set_md5, as rsync's
    receiver tells it the one it checked against the client's) sends that
    as Content-MD5 instead of hashing the bytes again; bytes that do not
    match it are refused (BadDigest: the proxy checks it as S3 does, the
    test server does not), the commit fails with EIO after one try, and
    the old object stays."""
    import base64
    import hashlib
    url = "s3://%s/p/" % bucket
    proxy.add("check_md5", method="PUT")
    data = os.urandom(5000)
    ok(pipe(proxy.endpoint, url, "put-md5", "m.bin",
            hashlib.md5(data).hexdigest(), data=data))
    sent = proxy.requests("PUT", path="m.bin")[-1][4]["content-md5"]
    assert sent == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert s3server.get(bucket, "p/m.bin") == data
    other = os.urandom(5000)
    r = pipe(proxy.endpoint, url, "put-md5", "m.bin",
             hashlib.md5(data).hexdigest(), data=other)
    assert err(r) == "EIO"
    assert len(proxy.requests("PUT", path="m.bin")) == 2  # not retried
    assert s3server.get(bucket, "p/m.bin") == data
    # without a given MD5 the writer hashes its own bytes
    ok(pipe(proxy.endpoint, url, "put", "m.bin", data=other))
    assert s3server.get(bucket, "p/m.bin") == other


# ---- throttling and unavailability -----------------------------------------

def test_503_twice_then_ok(s3server, bucket, proxy):
    url = "s3://%s/p/" % bucket
    data = os.urandom(300 * 1024)
    proxy.add("503", method="PUT", times=2)
    ok(pipe(proxy.endpoint, url, "put", "t.bin", data=data))
    assert [e[3] for e in proxy.requests("PUT")] == ["503", "503", "pass"]
    assert s3server.get(bucket, "p/t.bin") == data
    proxy.add("503", method="GET", times=2)
    assert ok(pipe(proxy.endpoint, url, "get", "t.bin")) == data
    assert [e[3] for e in proxy.requests("GET")] == ["503", "503", "pass"]


def test_always_503_fails_after_bounded_retries(s3server, bucket, proxy):
    url = "s3://%s/p/" % bucket
    proxy.add("503")
    t0 = time.monotonic()
    r = pipe(proxy.endpoint, url, "put", "t.bin", data=b"x" * 1000,
             opts=["--retries", "4"])
    assert err(r) == "ETHROTTLED"
    assert len(proxy.requests("PUT")) == 4
    assert time.monotonic() - t0 < 30
    assert s3server.keys(bucket, "p/") == {}
    proxy.clear()
    proxy.add("500")
    r = pipe(proxy.endpoint, url, "stat", "t.bin", opts=["--retries", "3"])
    assert err(r) == "EUNAVAIL"
    assert len(proxy.requests("HEAD")) == 3


def test_stall_times_out_cleanly(s3server, bucket, proxy):
    url = "s3://%s/p/" % bucket
    ok(pipe(s3server.endpoint, url, "put", "s.bin", data=b"abc"))
    proxy.add("stall", method="GET")
    t0 = time.monotonic()
    r = pipe(proxy.endpoint, url, "get", "s.bin",
             opts=["--retries", "2", "--timeout", "2"])
    took = time.monotonic() - t0
    assert err(r) == "EUNAVAIL"
    assert len(proxy.requests("GET")) == 2
    assert took < 20, took


def test_download_cut_resumes(s3server, bucket, proxy):
    url = "s3://%s/p/" % bucket
    data = os.urandom(2 * MiB)
    ok(pipe(s3server.endpoint, url, "put", "d.bin", data=data))
    proxy.add("cut_reply", method="GET", times=1, after=700 * 1024)
    assert ok(pipe(proxy.endpoint, url, "get", "d.bin")) == data
    gets = proxy.requests("GET")
    assert len(gets) == 2
    # the second GET resumes from a byte offset, for the same object
    rng = gets[1][4].get("range", "")
    assert rng.startswith("bytes=") and rng.endswith("-"), rng
    assert 0 < int(rng[6:-1]) <= 700 * 1024
    assert gets[1][4].get("if-match", "").strip('"')


# ---- requests as sent --------------------------------------------------------

def test_multipart_upload_shape(s3server, bucket, proxy):
    url = "s3://%s/p/" % bucket
    data = os.urandom(2 * MiB + 123)
    ok(pipe(proxy.endpoint, url, "put", "m.bin", data=data,
            env=env_for(ASSETD_S3_PART_SIZE=str(MiB))))
    posts = proxy.requests("POST")
    assert posts[0][2] == "uploads"
    parts = [e for e in proxy.requests("PUT") if "partNumber" in e[2]]
    assert sorted(e[2].split("&")[0] for e in parts) == \
        ["partNumber=1", "partNumber=2", "partNumber=3"]
    for e in parts:
        assert e[4].get("content-md5")             # S3 checks each part
        assert e[4]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "uploadId=" in posts[-1][2]
    assert s3server.get(bucket, "p/m.bin") == data
    # a small object is one PUT with its real payload hash
    proxy.clear()
    ok(pipe(proxy.endpoint, url, "put", "s.txt", data=b"small"))
    (put,) = proxy.requests("PUT")
    assert put[2] == "" and len(put[4]["x-amz-content-sha256"]) == 64
    assert put[4]["content-type"] == "text/plain"


# ---- metadata, copy, rename ----------------------------------------------------

def test_mtime_and_content_type(s3server, bucket):
    url = "s3://%s/p/" % bucket
    ok(pipe(s3server.endpoint, url, "put", "img.jpg", data=b"\xff\xd8jpeg"))
    ok(pipe(s3server.endpoint, url, "mtime", "img.jpg", 1234567890))
    head = s3server.boto3().head_object(Bucket=bucket, Key="p/img.jpg")
    assert head["Metadata"]["mtime"] == "1234567890"
    assert head["ContentType"] == "image/jpeg"
    st = ok(pipe(s3server.endpoint, url, "stat", "img.jpg")).split()
    assert st[0] == b"6" and st[1] == b"1234567890" and st[4] == b"image/jpeg"
    assert s3server.get(bucket, "p/img.jpg") == b"\xff\xd8jpeg"


def test_large_copy_uses_upload_part_copy(s3server, bucket, proxy):
    url = "s3://%s/p/" % bucket
    data = os.urandom(int(2.5 * MiB))
    env = env_for(ASSETD_S3_PART_SIZE=str(MiB),
                  ASSETD_S3_COPY_THRESHOLD=str(MiB))
    ok(pipe(s3server.endpoint, url, "put", "src.pdf", data=data, env=env))
    ok(pipe(s3server.endpoint, url, "mtime", "src.pdf", 1500000000, env=env))
    ok(pipe(proxy.endpoint, url, "cp", "src.pdf", "dst.pdf", env=env))
    ranges = [e[4].get("x-amz-copy-source-range") for e in
              proxy.requests("PUT")]
    assert ranges == ["bytes=0-1048575", "bytes=1048576-2097151",
                      "bytes=2097152-2621439"]
    assert s3server.get(bucket, "p/dst.pdf") == data
    head = s3server.boto3().head_object(Bucket=bucket, Key="p/dst.pdf")
    assert head["Metadata"]["mtime"] == "1500000000"
    assert head["ContentType"] == "application/pdf"
    # rename above the threshold: copy in parts, then delete
    ok(pipe(s3server.endpoint, url, "mv", "dst.pdf", "moved.pdf", env=env))
    assert sorted(s3server.keys(bucket, "p/")) == ["p/moved.pdf", "p/src.pdf"]
    assert s3server.get(bucket, "p/moved.pdf") == data


def test_copy_between_endpoints_streams(s3server, bucket, tmp_path):
    """Different endpoints cannot copy server-side: the store streams."""
    url = "s3://%s/p/" % bucket
    ok(pipe(s3server.endpoint, url, "put", "a.bin", data=b"0123456789"))
    fs = tmp_path / "fs"
    fs.mkdir()
    ok(pipe(s3server.endpoint, url, "cp", "a.bin", "b.bin",
            "file://%s/" % fs))
    assert (fs / "b.bin").read_bytes() == b"0123456789"


def test_directory_rename_recursive(s3server, bucket):
    url = "s3://%s/p/" % bucket
    for n in ("d/a.txt", "d/sub/b.txt", "d/sub/deeper/c.txt",
              "d/p+q,r;s=t$u.txt"):
        ok(pipe(s3server.endpoint, url, "put", n, data=n.encode()))
    ok(pipe(s3server.endpoint, url, "mkdir", "d/empty"))
    ok(pipe(s3server.endpoint, url, "mv", "d", "e"))
    assert sorted(s3server.keys(bucket, "p/")) == [
        "p/e/a.txt", "p/e/empty/", "p/e/p+q,r;s=t$u.txt", "p/e/sub/b.txt",
        "p/e/sub/deeper/c.txt"]
    assert s3server.get(bucket, "p/e/sub/deeper/c.txt") == \
        b"d/sub/deeper/c.txt"
    ls = ok(pipe(s3server.endpoint, url, "ls", "e/", "/")).decode()
    assert ls.split("\n") == ["e/a.txt 7 0", "e/empty/ 0 1",
                              "e/p+q,r;s=t$u.txt 17 0", "e/sub/ 0 1", ""]


# ---- credentials ------------------------------------------------------------

def no_key_env(**extra):
    e = env_for(**extra)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "AWS_SESSION_TOKEN"):
        e.pop(k, None)
    return e


def test_wrong_secret_is_denied(s3server, bucket):
    url = "s3://%s/p/" % bucket
    env = env_for(AWS_SECRET_ACCESS_KEY="not-the-secret")
    r = pipe(s3server.endpoint, url, "put", "x.txt", data=b"x", env=env)
    assert err(r) == "EAUTH"
    ok(pipe(s3server.endpoint, url, "put", "y.txt", data=b"y"))
    assert err(pipe(s3server.endpoint, url, "get", "y.txt", env=env)) == \
        "EAUTH"
    # HEAD replies carry no body, so no S3 code: plain "denied"
    assert err(pipe(s3server.endpoint, url, "stat", "y.txt", env=env)) == \
        "EACCES"
    assert s3server.keys(bucket, "p/") == {"p/y.txt": 1}


def test_shared_credentials_file_and_profile(s3server, bucket, tmp_path):
    url = "s3://%s/p/" % bucket
    cred = tmp_path / "credentials"
    cred.write_text(
        "# the default profile has a wrong secret\n"
        "[default]\naws_access_key_id = %s\naws_secret_access_key = bad\n\n"
        "[assetd-test]\n aws_access_key_id=%s\naws_secret_access_key = %s\n"
        % (S3_KEY, S3_KEY, S3_SECRET))
    base = dict(AWS_SHARED_CREDENTIALS_FILE=str(cred))
    # AWS_PROFILE picks the profile
    ok(pipe(s3server.endpoint, url, "put", "a.txt", data=b"a",
            env=no_key_env(AWS_PROFILE="assetd-test", **base)))
    # the location's configured profile, whatever AWS_PROFILE says
    ok(pipe(s3server.endpoint, url, "put", "b.txt", data=b"b",
            env=no_key_env(**base), opts=["--profile", "assetd-test"]))
    # the default profile (wrong secret) is refused with the typed error
    r = pipe(s3server.endpoint, url, "put", "c.txt", data=b"c",
             env=no_key_env(**base))
    assert err(r) == "EAUTH"
    # a configured profile that does not exist: no silent fallback
    r = pipe(s3server.endpoint, url, "put", "c.txt", data=b"c",
             env=env_for(**base), opts=["--profile", "missing"])
    assert err(r) == "EAUTH"
    # the environment comes before the file
    ok(pipe(s3server.endpoint, url, "put", "d.txt", data=b"d",
            env=env_for(**base)))
    assert sorted(s3server.keys(bucket, "p/")) == ["p/a.txt", "p/b.txt",
                                                   "p/d.txt"]


@pytest.fixture
def imds():
    m = IMDS(S3_KEY, S3_SECRET)
    yield m
    m.close()


def imds_env(imds, **extra):
    e = no_key_env(AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.endpoint)
    e.pop("AWS_EC2_METADATA_DISABLED")
    e.update(extra)
    return e


def test_imds_v2_credentials(s3server, bucket, imds, proxy):
    url = "s3://%s/p/" % bucket
    ok(pipe(proxy.endpoint, url, "put", "i.txt", data=b"from imds",
            env=imds_env(imds)))
    assert s3server.get(bucket, "p/i.txt") == b"from imds"
    # token first, then the role, then its credentials, all with the token
    assert [(m, p) for m, p, _ in imds.log] == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", "/latest/meta-data/iam/security-credentials/" + imds.role)]
    assert imds.log[0][2]["X-aws-ec2-metadata-token-ttl-seconds"]
    assert all(h.get("X-aws-ec2-metadata-token") for _, _, h in imds.log[1:])
    # the session token is sent and signed
    (put,) = proxy.requests("PUT")
    assert put[4]["x-amz-security-token"] == imds.session_token
    assert "x-amz-security-token" in put[4]["authorization"]


def test_imds_credentials_refreshed_before_expiry(s3server, bucket, imds):
    url = "s3://%s/p/" % bucket
    ok(pipe(s3server.endpoint, url, "put", "r.txt", data=b"r",
            env=imds_env(imds)))
    # a rename is several requests: long-lived credentials are fetched once
    imds.log.clear()
    ok(pipe(s3server.endpoint, url, "mv", "r.txt", "r2.txt",
            env=imds_env(imds)))
    assert imds.fetches() == 1
    # credentials within five minutes of expiry are fetched again
    imds.lifetime = 120
    imds.log.clear()
    ok(pipe(s3server.endpoint, url, "mv", "r2.txt", "r3.txt",
            env=imds_env(imds)))
    assert imds.fetches() >= 3
    assert s3server.get(bucket, "p/r3.txt") == b"r"


def test_imds_disabled(s3server, bucket, imds):
    url = "s3://%s/p/" % bucket
    env = imds_env(imds, AWS_EC2_METADATA_DISABLED="true")
    r = pipe(s3server.endpoint, url, "put", "n.txt", data=b"n", env=env)
    assert err(r) == "EAUTH"
    assert imds.log == []


# ---- memory ------------------------------------------------------------------

def test_memory_bound_streaming(s3server, bucket):
    """Stream an object of unknown size up (multipart) and down through the
    S3 backend: peak RSS stays within the documented bound, 2 x part size
    (2 x 8 MiB for an unknown size) for the writer plus the reader's 256 KiB, whatever the object's size.
    (The 1 GiB run is the benchmark, tests/bench/scenarios/store_s3.py.)"""
    url = "s3://%s/m/" % bucket
    args = [STORE_CLI, "--endpoint", s3server.endpoint, "--region",
            S3_REGION, url, "stream"]
    # Under AddressSanitizer, freed memory waits in a quarantine: turn it
    # off so RSS is the program's own.
    env = env_for(ASAN_OPTIONS="quarantine_size_mb=0:"
                  "thread_local_quarantine_size_kb=0")
    small = json.loads(subprocess.run(args + ["s.bin", str(MiB)], check=True,
                                      capture_output=True, env=env,
                                      timeout=300).stdout)
    big = json.loads(subprocess.run(args + ["b.bin", str(96 * MiB)],
                                    check=True, capture_output=True, env=env,
                                    timeout=300).stdout)
    assert big["bytes"] == big["read"] == 96 * MiB
    part = 8 * MiB
    grown_kb = big["vmhwm_kb"] - small["vmhwm_kb"]
    # the writer's two part buffers are the growth; allow 4 MiB of slack
    assert grown_kb < (2 * part + 4 * MiB) // 1024, (small, big)
    assert s3server.keys(bucket, "m/") == {}
