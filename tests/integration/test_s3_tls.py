"""HTTPS and AWS-style addressing of the S3 backend, against the real test S3
server running with TLS (s3rver's --key/--cert).

A throw-away CA and a server certificate for 127.0.0.1,
s3.us-east-1.amazonaws.com and *.s3.us-east-1.amazonaws.com are made with the
openssl CLI. AWS_CA_BUNDLE points the backend at that CA; without it the
certificate is untrusted and every request fails with a typed error and a
log line that says why. AWS names reach the loopback server through the test
knob ASSETD_S3_CONNECT_TO (curl's CONNECT_TO): the Host header, SNI and the
certificate check keep the AWS name, and the server finds the bucket in the
Host header, as S3 does.

The virtual-hosted tests run against a second server started with
--allow-mismatched-signatures: s3rver 4 checks a virtual-hosted request's
SigV4 signature over "/bucket/key" where S3 signs "/key" (its check follows
the old JS SDK), so it would refuse a correct signature. Our signer's
canonical requests are checked against AWS's published SigV4 vectors (unit
tests) and against the strict server in every other test.
"""
import os
import subprocess
import uuid

import pytest

from conftest import (S3_REGION, S3RVER_DIR, TOOLS, clean_env, free_port,
                      stop_process, wait_port)

PIPE = os.path.join(TOOLS, "store_pipe")
MiB = 1024 * 1024
AWS_HOST = "s3.%s.amazonaws.com" % S3_REGION


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


class TlsS3:
    """An s3rver with TLS on a free loopback port."""

    def __init__(self, workdir, certdir, lenient):
        self.port = free_port()
        data = os.path.join(workdir, "data")
        os.makedirs(data)
        argv = ["node", "--openssl-legacy-provider",
                os.path.join(S3RVER_DIR, "start.js"), "-d", data,
                "-a", "127.0.0.1", "-p", str(self.port), "--silent",
                "--key", os.path.join(certdir, "srv.key"),
                "--cert", os.path.join(certdir, "srv.pem")]
        if lenient:
            argv.append("--allow-mismatched-signatures")
        self.log = open(os.path.join(workdir, "s3rver.log"), "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, 30, self.proc)
        self.endpoint = "https://127.0.0.1:%d" % self.port

    def stop(self):
        stop_process(self.proc, timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=assetd test CA",
            cwd=d)
    # a second CA that signed nothing of ours: a wrong bundle
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", "other.key",
            "-out", "other.pem", "-days", "2", "-subj", "/CN=other CA",
            cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj",
            "/CN=test S3", cwd=d)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:*.%s,DNS:%s,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n" % (AWS_HOST, AWS_HOST))
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "ext",
            "-out", "srv.pem", cwd=d)
    strict = TlsS3(os.path.join(d, "strict"), d, lenient=False)
    vhost = TlsS3(os.path.join(d, "vhost"), d, lenient=True)
    yield {"dir": d, "ca": os.path.join(d, "ca.pem"),
           "other": os.path.join(d, "other.pem"), "strict": strict,
           "vhost": vhost}
    strict.stop()
    vhost.stop()


def pipe(url, *args, endpoint=None, data=None, **env):
    argv = [PIPE, "--region", S3_REGION, "--retries", "2"]
    if endpoint:
        argv += ["--endpoint", endpoint]
    argv += [url] + [str(a) for a in args]
    e = clean_env(ASSETD_S3_RETRY_BASE_MS="10")
    e.update(env)
    return subprocess.run(argv, input=data, capture_output=True, env=e,
                          timeout=120)


def ok(r):
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def typed_error(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    last = r.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("store_pipe: "), r.stderr
    return last.split(":")[1].strip()


@pytest.fixture
def buckets(tls):
    import boto3
    from botocore.config import Config
    from conftest import S3_KEY, S3_SECRET
    made = {}
    for kind in ("strict", "vhost"):
        c = boto3.client("s3", endpoint_url=tls[kind].endpoint,
                         aws_access_key_id=S3_KEY,
                         aws_secret_access_key=S3_SECRET,
                         region_name=S3_REGION, verify=tls["ca"],
                         config=Config(s3={"addressing_style": "path"}))
        names = ["tls-" + uuid.uuid4().hex[:10] for _ in range(2)]
        for n in names:
            c.create_bucket(Bucket=n)
        made[kind] = (c, names)
    return made


def keys(client, bucket):
    r = client.list_objects_v2(Bucket=bucket)
    return {o["Key"]: o["Size"] for o in r.get("Contents", [])}


def test_https_with_aws_ca_bundle(tls, buckets):
    """Path-style HTTPS to a custom endpoint, the certificate checked
    against AWS_CA_BUNDLE: a multipart upload, a ranged and a whole read,
    a listing, all with signatures checked."""
    c, (b, _) = buckets["strict"]
    url = "s3://%s/tls/" % b
    data = os.urandom(3 * MiB + 77)
    srv = tls["strict"].endpoint
    ok(pipe(url, "put", "big.bin", data=data, endpoint=srv,
            AWS_CA_BUNDLE=tls["ca"], ASSETD_S3_PART_SIZE=str(MiB)))
    assert ok(pipe(url, "get", "big.bin", endpoint=srv,
                   AWS_CA_BUNDLE=tls["ca"])) == data
    assert ok(pipe(url, "get", "big.bin", MiB - 5, 10, endpoint=srv,
                   AWS_CA_BUNDLE=tls["ca"])) == data[MiB - 5:MiB + 5]
    assert ok(pipe(url, "ls", endpoint=srv, AWS_CA_BUNDLE=tls["ca"])) == \
        b"big.bin %d 0\n" % len(data)
    assert keys(c, b) == {"tls/big.bin": len(data)}


@pytest.mark.parametrize("bundle", [None, "other"])
def test_untrusted_certificate_is_a_clear_typed_error(tls, buckets, bundle):
    """No AWS_CA_BUNDLE (the system CAs do not know the test CA), or a
    bundle of another CA: writes and reads fail with EUNAVAIL at once, not
    after retries, the log says the certificate is not trusted and names
    AWS_CA_BUNDLE, and nothing is written."""
    c, (b, _) = buckets["strict"]
    url = "s3://%s/untrusted/" % b
    srv = tls["strict"].endpoint
    env = {"AWS_CA_BUNDLE": tls["other"]} if bundle else {}
    for args, data in ((("put", "x.bin"), b"secret"),
                       (("get", "x.bin"), None), (("ls",), None)):
        r = pipe(url, *args, endpoint=srv, data=data, **env)
        assert typed_error(r) == "EUNAVAIL"
        log = r.stderr.decode()
        assert "event=s3_tls_untrusted" in log, log
        assert "AWS_CA_BUNDLE" in log
        assert "retry=1" not in log  # a bad certificate is not retried
    assert keys(c, b) == {}


def test_virtual_hosted_addressing_reaches_the_bucket(tls, buckets):
    """No endpoint: AWS's virtual-hosted names (BUCKET.s3.REGION.amazonaws
    .com, HTTPS on 443) routed to the loopback server. Each object lands in
    the bucket its location names, found by the server from the Host
    header alone (the request path holds only the key)."""
    c, (b1, b2) = buckets["vhost"]
    env = {"AWS_CA_BUNDLE": tls["ca"],
           "ASSETD_S3_CONNECT_TO": "::127.0.0.1:%d" % tls["vhost"].port,
           "ASSETD_S3_PART_SIZE": str(MiB)}
    one, two = os.urandom(1000), os.urandom(2 * MiB + 3)
    ok(pipe("s3://%s/v/" % b1, "put", "one.bin", data=one, **env))
    ok(pipe("s3://%s/v/" % b2, "put", "two.bin", data=two, **env))
    assert keys(c, b1) == {"v/one.bin": len(one)}
    assert keys(c, b2) == {"v/two.bin": len(two)}
    assert ok(pipe("s3://%s/v/" % b2, "get", "two.bin", **env)) == two
    assert ok(pipe("s3://%s/" % b1, "ls", "v/", **env)) == \
        b"v/one.bin 1000 0\n"
    ok(pipe("s3://%s/v/" % b1, "cp", "one.bin", "copy.bin", **env))
    assert keys(c, b1) == {"v/one.bin": len(one), "v/copy.bin": len(one)}
    # without the CA the AWS name is refused like any other
    env.pop("AWS_CA_BUNDLE")
    assert typed_error(pipe("s3://%s/v/" % b1, "get", "one.bin",
                            **env)) == "EUNAVAIL"


def test_dotted_bucket_falls_back_to_path_style(tls):
    """A bucket name with a dot cannot use the *.s3 wildcard certificate:
    AWS addressing goes path-style on s3.REGION.amazonaws.com."""
    import boto3
    from botocore.config import Config
    from conftest import S3_KEY, S3_SECRET
    c = boto3.client("s3", endpoint_url=tls["vhost"].endpoint,
                     aws_access_key_id=S3_KEY,
                     aws_secret_access_key=S3_SECRET, region_name=S3_REGION,
                     verify=tls["ca"],
                     config=Config(s3={"addressing_style": "path"}))
    b = "tls.%s" % uuid.uuid4().hex[:8]
    c.create_bucket(Bucket=b)
    env = {"AWS_CA_BUNDLE": tls["ca"],
           "ASSETD_S3_CONNECT_TO": "::127.0.0.1:%d" % tls["vhost"].port}
    ok(pipe("s3://%s/" % b, "put", "d.txt", data=b"dotted", **env))
    assert keys(c, b) == {"d.txt": 6}
    assert ok(pipe("s3://%s/" % b, "get", "d.txt", **env)) == b"dotted"
