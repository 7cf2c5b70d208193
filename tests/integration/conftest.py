"""The integration harness: the real assetd, real clients, a real S3 server.

Fixtures:
  s3server  one signature-checking S3 server (@20minutes/s3rver) per session,
            on a free loopback port; .endpoint, .boto3(), .create_bucket().
  backend   "fs" or "s3": every test that takes it runs on both.
  daemon    a started assetd in a temp dir, with a region "test" whose assets
            live on the backend; .ctl(...) runs assetctl against its catalog,
            .add_client(...) makes a client with a collection and an SSH key.

Everything runs on 127.0.0.1. Debian's python3 runs this (paramiko, boto3).
"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("ASSETD_BUILD", "build/rel"))
ASSETD = os.path.join(BUILD, "assetd")
ASSETCTL = os.path.join(BUILD, "assetctl")
TOOLS = os.path.join(BUILD, "tools")
S3RVER_DIR = os.path.join(ROOT, "tests", ".deps", "s3rver")

S3_KEY = "S3RVER"
S3_SECRET = "S3RVER"
S3_REGION = "us-east-1"

sys.path.insert(0, os.path.dirname(__file__))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %d" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def wait_for(pred, timeout=20, what="condition", interval=0.1):
    """Poll PRED until it returns something true, and return that; it is
    asked once more at the deadline. Past TIMEOUT seconds, AssertionError
    naming WHAT."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def stop_process(proc, sig=signal.SIGTERM, timeout=20):
    """Send SIG to PROC if it still runs and wait TIMEOUT seconds for it;
    past that, kill it. Returns its exit status (None without a PROC)."""
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode if proc else None


def files_below(root):
    """The relative names of every file below ROOT, sorted."""
    out = []
    for dirpath, _, names in os.walk(str(root)):
        for n in names:
            out.append(os.path.relpath(os.path.join(dirpath, n), str(root)))
    return sorted(out)


@contextlib.contextmanager
def tmpfs(size, path=None):
    """A tmpfs of SIZE ("1m") mounted at PATH, or at a new temporary
    directory (removed afterwards): a real small disk. Mounting needs
    root: the test is skipped, and says why, without it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    made = path is None
    if made:
        path = tempfile.mkdtemp(prefix="assetd-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size,
                    "assetd-test", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        if made:
            os.rmdir(path)


METRIC_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
METRIC_LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def metrics_text(d):
    """The text of daemon D's /metrics, from its admin listener."""
    url = "http://127.0.0.1:%d/metrics" % d.admin_port
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def scrape(d):
    """{(family, frozenset(labels)): value} of every sample in D's
    /metrics; every line must be a Prometheus sample or a comment."""
    out = {}
    for line in metrics_text(d).splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_SAMPLE.match(line)
        assert m, "not a Prometheus sample: %r" % line
        labels = frozenset(METRIC_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(d, family, **labels):
    """The value of one series of D's /metrics (0 if absent)."""
    return scrape(d).get((family, frozenset(labels.items())), 0.0)


def read_to_eof(sock, size=65536):
    """Everything SOCK sends until the peer closes it (bytes)."""
    data = b""
    while True:
        got = sock.recv(size)
        if not got:
            return data
        data += got


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   ": runtime error: ")


def _sanitized():
    try:
        with open(ASSETD, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# True when the programs under test are built with ASan (make SANITIZE=1):
# its redzones and its quarantine of freed memory make peak-RSS bounds
# meaningless, so memory-bound tests check their figures only without it.
SANITIZED = _sanitized()


def sanitizer_check(what, text):
    """Under `make check SANITIZE=1` a report of ASan, LSan or UBSan in a
    program's output fails the test that ran it (UBSan reports and goes
    on, and LSan speaks only at exit, so neither shows in a status)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for mark in SANITIZER_MARKS:
        i = text.find(mark)
        if i >= 0:
            raise AssertionError("%s: sanitizer report:\n%s" % (
                what, text[max(0, i - 200):i + 3000]))


def clean_env(**extra):
    """The environment for our programs and for tools that talk to the test
    S3 server: its credentials, no CA bundle override, no IMDS, no profile."""
    env = dict(os.environ)
    for k in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
              "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        env.pop(k, None)
    env.update({
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_REGION": S3_REGION,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/assetd-tests",
        # The test S3 server's delimiter listings miss prefixes that hold
        # no object directly and come in filesystem order: the S3 backend
        # then rolls prefixes up itself (see store/s3.c).
        "ASSETD_S3_CLIENT_DELIMITER": "1",
    })
    env.update(extra)
    return env


class S3Server:
    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.proc = None
        self.log = None

    def start(self):
        data = os.path.join(self.workdir, "s3data")
        os.makedirs(data, exist_ok=True)
        self.log = open(os.path.join(self.workdir, "s3rver.log"), "wb")
        self.proc = subprocess.Popen(
            ["node", "--openssl-legacy-provider",
             os.path.join(S3RVER_DIR, "start.js"), "-d", data,
             "-a", "127.0.0.1", "-p", str(self.port), "--silent"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, 30, self.proc)

    def stop(self):
        stop_process(self.proc, timeout=10)
        if self.log:
            self.log.close()

    def boto3(self):
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET, region_name=S3_REGION,
            config=Config(s3={"addressing_style": "path"},
                          retries={"max_attempts": 1}))

    def create_bucket(self, name=None):
        name = name or "b-" + uuid.uuid4().hex[:12]
        self.boto3().create_bucket(Bucket=name)
        return name

    def keys(self, bucket, prefix=""):
        """Every key under PREFIX, as a dict key -> size."""
        out = {}
        c = self.boto3()
        tok = None
        while True:
            kw = {"Bucket": bucket, "Prefix": prefix}
            if tok:
                kw["ContinuationToken"] = tok
            r = c.list_objects_v2(**kw)
            for o in r.get("Contents", []):
                out[o["Key"]] = o["Size"]
            if not r.get("IsTruncated"):
                return out
            tok = r["NextContinuationToken"]

    def get(self, bucket, key):
        return self.boto3().get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3server(tmp_path_factory):
    srv = S3Server(str(tmp_path_factory.mktemp("s3")))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(params=["fs", "s3"])
def backend(request):
    return request.param


class Client:
    """A client made by Daemon.add_client."""

    def __init__(self, daemon, name, location, attachment_key, key_path):
        self.daemon = daemon
        self.name = name
        self.location = location
        self.attachment_key = attachment_key
        self.key_path = key_path

    def read(self, rel):
        """Bytes of the object REL under the client's location, read straight
        from the backend (not through assetd)."""
        return self.daemon.backend_read(self.location + rel)

    def list(self, rel=""):
        """Every object name under REL (recursive), from the backend."""
        return self.daemon.backend_list(self.location + rel)

    def ssh_opts(self):
        return ["-i", self.key_path, "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]


class Daemon:
    def __init__(self, workdir, backend, s3=None, conf_extra=""):
        self.workdir = str(workdir)
        self.backend = backend
        self.s3 = s3
        self.var = os.path.join(self.workdir, "var")
        os.makedirs(self.var, exist_ok=True)
        self.http_port = free_port()
        self.ssh_port = free_port()
        self.admin_port = free_port()
        self.attachment_key = "test_attachment_key"
        self.conf_path = os.path.join(self.workdir, "assetd.conf")
        self.log_path = os.path.join(self.workdir, "assetd.log")
        self.proc = None
        self.bucket = None
        self.conf_extra = conf_extra
        self.write_conf()
        self.env = clean_env()
        if backend == "fs":
            self.assets = "file://" + os.path.join(self.workdir, "assets") + "/"
            os.makedirs(os.path.join(self.workdir, "assets"), exist_ok=True)
            self.ctl("region", "add", "test", "--assets", self.assets)
        else:
            self.bucket = s3.create_bucket()
            self.assets = "s3://%s/assets/" % self.bucket
            self.ctl("region", "add", "test", "--assets", self.assets,
                     "--endpoint", s3.endpoint, "--s3-region", S3_REGION)

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            f.write("DataDir %s\n" % self.var)
            f.write("ListenHTTP 127.0.0.1:%d\n" % self.http_port)
            f.write("ListenSSH 127.0.0.1:%d\n" % self.ssh_port)
            f.write("ListenAdmin 127.0.0.1:%d\n" % self.admin_port)
            f.write("AttachmentKey %s\n" % self.attachment_key)
            f.write("LogLevel debug\n")
            f.write("ShutdownGrace 5\n")
            # Tests fail logins and tokens on purpose, all from loopback:
            # only the penalty tests (which clear this list) penalise it.
            f.write("PerSourcePenaltyExemptList 127.0.0.0/8,::1\n")
            f.write(self.conf_extra)

    # -- assetctl -----------------------------------------------------
    def ctl(self, *args, check=True, input=None, json_out=False):
        argv = [ASSETCTL, "-f", self.conf_path]
        if json_out:
            argv.append("--json")
        argv += list(args)
        r = subprocess.run(argv, input=input, capture_output=True,
                           env=self.env, timeout=120,
                           text=not isinstance(input, bytes))
        if check and r.returncode != 0:
            raise AssertionError("assetctl %s failed (%d): %s %s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        sanitizer_check("assetctl", r.stderr)
        if json_out and r.returncode == 0:
            return json.loads(r.stdout)
        return r

    def add_client(self, name, collections=("Demo",), ssh_key=True,
                   attachment_key=None, location=None):
        args = ["client", "add", name]
        if location:
            args += ["--location", location, "--no-check"]
        else:
            args += ["--region", "test"]
        if attachment_key:
            args += ["--attachment-key", attachment_key]
        self.ctl(*args)
        info = self.ctl("client", "show", name, json_out=True)
        for coll in collections:
            self.ctl("collection", "add", name, coll)
        key_path = None
        if ssh_key:
            key_path = os.path.join(self.workdir, "id_%s" % name)
            if not os.path.exists(key_path):
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                                "-C", "%s@test" % name, "-f", key_path],
                               check=True)
            self.ctl("key", "add", name, key_path + ".pub")
        return Client(self, name, info["location"],
                      info.get("attachment_key") or attachment_key,
                      key_path)

    # -- the process --------------------------------------------------
    # Host keys made once per test process and copied into each daemon's
    # DataDir: generating an RSA 3072 key costs a second or two per start.
    # A test of key creation sets premade_host_keys = False.
    premade_host_keys = True
    _host_key_cache = None

    @classmethod
    def _host_keys(cls):
        if cls._host_key_cache is None:
            import atexit
            import tempfile
            d = tempfile.mkdtemp(prefix="assetd-hostkeys-")
            atexit.register(shutil.rmtree, d, True)
            for kind, bits in (("ed25519", []), ("rsa", ["-b", "3072"])):
                subprocess.run(["ssh-keygen", "-q", "-t", kind] + bits +
                               ["-N", "", "-C", "", "-f",
                                os.path.join(d, "ssh_host_%s_key" % kind)],
                               check=True)
            cls._host_key_cache = d
        return cls._host_key_cache

    def start(self, wait=True):
        if self.premade_host_keys:
            src = self._host_keys()
            for name in os.listdir(src):
                dst = os.path.join(self.var, name)
                if not os.path.exists(dst):
                    shutil.copyfile(os.path.join(src, name), dst)
                    os.chmod(dst, 0o600 if not name.endswith(".pub") else 0o644)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([ASSETD, "-f", self.conf_path, "-d"],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=self.workdir)
        if wait:
            wait_port(self.http_port, 20, self.proc)
            wait_port(self.ssh_port, 20, self.proc)
            # the admin listener opens last: /metrics is there once it is
            wait_port(self.admin_port, 20, self.proc)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        stop_process(self.proc, sig, timeout)
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
            sanitizer_check("assetd", self.log())
        return self.proc.returncode if self.proc else None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    @property
    def http(self):
        return "http://127.0.0.1:%d" % self.http_port

    # -- reading the backend directly ---------------------------------
    def _split(self, url):
        assert url.startswith("s3://")
        rest = url[5:]
        bucket, _, key = rest.partition("/")
        return bucket, key

    def backend_read(self, url):
        if url.startswith("file://"):
            with open(url[7:], "rb") as f:
                return f.read()
        bucket, key = self._split(url)
        return self.s3.get(bucket, key)

    def backend_list(self, url):
        """Object names (relative to URL) below URL, recursively; directory
        markers ("x/") and fs temp files are reported as they are."""
        if url.startswith("file://"):
            base = url[7:]
            out = []
            for dirpath, dirnames, filenames in os.walk(base):
                for fn in filenames:
                    out.append(os.path.relpath(os.path.join(dirpath, fn), base))
            return sorted(out)
        bucket, prefix = self._split(url)
        return sorted(k[len(prefix):] for k in self.s3.keys(bucket, prefix))


@pytest.fixture
def make_daemon(tmp_path, s3server):
    """Factory: make_daemon(backend, conf_extra="") -> Daemon (not started)."""
    made = []

    def make(backend, conf_extra="", sub=None):
        d = Daemon(tmp_path / (sub or "d%d" % len(made)), backend,
                   s3server if backend == "s3" else None, conf_extra)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture
def daemon(make_daemon, backend):
    """A started daemon on BACKEND, with no clients yet."""
    d = make_daemon(backend)
    d.start()
    return d
