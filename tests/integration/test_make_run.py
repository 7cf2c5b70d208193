"""The README's first command: `make run` in a fresh copy of the sources.

The copy holds the tracked files plus the objects already built (with their
times kept, so make has little or nothing to redo). `make run` runs on free
ports (ASSETD_HTTP_PORT, ASSETD_SSH_PORT, ASSETD_ADMIN_PORT); the test reads
what it prints, checks the demo region, client, collection and key in the
catalog with assetctl, checks that the printed commands are well formed and
that they work against the listeners that are built (a front end that is not
built yet says so in the log with event=http_not_built / sshd_not_built),
stops the daemon, runs `make run` again and checks that nothing changed.
"""
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest

from conftest import BUILD, ROOT, free_port

MARKER = "Starting assetd in the foreground"


def copy_tree(dst):
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"],
                           capture_output=True, check=True).stdout
    for rel in files.decode().split("\0"):
        if not rel or not os.path.exists(os.path.join(ROOT, rel)):
            continue
        os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(dst, rel),
                     follow_symlinks=False)
    build_rel = os.path.relpath(BUILD, ROOT)
    shutil.copytree(BUILD, os.path.join(dst, build_rel), symlinks=True,
                    ignore=shutil.ignore_patterns("tests", "tools", "fuzz"))


class MakeRun:
    """One `make run` in DIR, followed until the daemon is ready."""

    def __init__(self, top, ports):
        self.top = top
        self.ports = ports
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = "assetd-make-run-" + uuid.uuid4().hex
        self.notify.bind("\0" + name)
        self.notify.settimeout(0.5)
        env = dict(os.environ, NOTIFY_SOCKET="@" + name,
                   ASSETD_HTTP_PORT=str(ports["http"]),
                   ASSETD_SSH_PORT=str(ports["ssh"]),
                   ASSETD_ADMIN_PORT=str(ports["admin"]))
        args = ["make", "--no-print-directory", "run"]
        if os.path.basename(BUILD.rstrip("/")) == "san":
            args.append("SANITIZE=1")
        self.out_path = os.path.join(top, "make-run.out")
        self.err_path = os.path.join(top, "make-run.err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(args, cwd=top, env=env, stdout=self.out,
                                     stderr=self.err, start_new_session=True)
        self.wait_ready()

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                msg = self.notify.recv(4096).decode()
                if "READY=1" in msg.split("\n"):
                    assert MARKER in self.stdout()
                    return
            except socket.timeout:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("make run exited %d\n%s\n%s" % (
                    self.proc.returncode, self.stdout(), self.log()))
        raise AssertionError("make run: not ready\n" + self.stdout())

    def daemon_pid(self):
        m = re.search(r"event=started version=\S+ pid=(\d+)", self.log())
        assert m, self.log()
        return int(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.daemon_pid(), signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()
        self.err.close()
        self.notify.close()
        return self.proc.returncode

    def printed(self):
        """The lines to paste, by label."""
        text = self.stdout()
        lines = {}
        for label in ("sftp", "scp", "rsync", "curl"):
            m = re.search(r"^  %s: +(.+)$" % label, text, re.M)
            assert m, "no %s line in:\n%s" % (label, text)
            lines[label] = m.group(1)
        for var in ("ASSET_SERVER_URL", "ASSET_SERVER_KEY", "attachment.url",
                    "attachment.key"):
            m = re.search(r"^  %s=(\S+)$" % re.escape(var), text, re.M)
            assert m, "no %s in:\n%s" % (var, text)
            lines[var] = m.group(1)
        return lines


def ctl(top, *args):
    r = subprocess.run(["./assetctl", "-f", "var/assetd.conf", "--json"]
                       + list(args), cwd=top, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def catalog_state(top):
    return {
        "regions": ctl(top, "region", "list"),
        "clients": ctl(top, "client", "list"),
        "collections": ctl(top, "collection", "list", "demo"),
        "keys": ctl(top, "key", "list", "demo"),
    }


def files_state(top):
    out = {}
    for rel in ("var/assetd.conf", "var/demo_ed25519", "var/demo_ed25519.pub"):
        path = os.path.join(top, rel)
        st = os.stat(path)
        with open(path, "rb") as f:
            out[rel] = (f.read(), st.st_mtime_ns, st.st_mode)
    return out


def fingerprint(pub):
    r = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub],
                       capture_output=True, text=True, check=True)
    return r.stdout.split()[1]


def check_http(run, lines):
    if "event=http_not_built" in run.log():
        return False
    argv = shlex.split(lines["curl"])
    url = argv[-1]
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["X-Timestamp"]
        body = r.read().decode()
    assert "<urls>" in body and "fileget" in body
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "<urls>" in r.stdout
    return True


def check_ssh(run, lines, top):
    if "event=sshd_not_built" in run.log():
        return False
    name = "hello-%s.txt" % uuid.uuid4().hex[:8]
    local = os.path.join(top, name)
    with open(local, "w") as f:
        f.write("hello from make run\n")
    argv = shlex.split(lines["sftp"])
    batch = os.path.join(top, "batch")
    with open(batch, "w") as f:
        f.write("put %s /attachments/%s\nls /attachments\n" % (local, name))
    cmd = [argv[0], "-b", batch, "-o", "BatchMode=yes"] + argv[1:]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    stored = os.path.join(top, "var", "assets", "demo", name)
    with open(stored) as f:
        assert f.read() == "hello from make run\n"
    return True


def test_make_run_sets_up_the_demo_and_a_second_run_changes_nothing(tmp_path):
    top = str(tmp_path / "src")
    copy_tree(top)
    ports = {"http": free_port(), "ssh": free_port(), "admin": free_port()}

    run = MakeRun(top, ports)
    try:
        out = run.stdout()
        assert "run-demo: wrote %s/var/assetd.conf" % top in out
        lines = run.printed()

        # The catalog holds the demo.
        region = ctl(top, "region", "show", "local")
        assert region["assets"] == "file://%s/var/assets/" % top
        client = ctl(top, "client", "show", "demo")
        assert client["region"] == "local"
        assert client["location"].startswith("file://%s/var/assets/" % top)
        assert client["attachment_key"]
        assert lines["ASSET_SERVER_KEY"] == client["attachment_key"]
        assert lines["attachment.key"] == client["attachment_key"]
        colls = ctl(top, "collection", "list", "demo")
        assert [c["name"] for c in colls] == ["Demo"]
        keys = ctl(top, "key", "list", "demo")
        fp = fingerprint(os.path.join(top, "var", "demo_ed25519.pub"))
        assert [k["fingerprint"] for k in keys] == [fp]
        assert os.stat(os.path.join(top, "var")).st_mode & 0o777 == 0o700
        assert os.stat(os.path.join(top, "var", "demo_ed25519")).st_mode \
            & 0o077 == 0

        # The printed commands are well formed.
        key = os.path.join(top, "var", "demo_ed25519")
        sftp = shlex.split(lines["sftp"])
        assert sftp[:3] == ["sftp", "-P", str(ports["ssh"])]
        assert sftp[sftp.index("-i") + 1] == key
        assert sftp[-1] == "demo@127.0.0.1"
        scp = shlex.split(lines["scp"])
        assert scp[:3] == ["scp", "-P", str(ports["ssh"])]
        assert scp[-1] == "demo@127.0.0.1:/attachments/"
        rsync = shlex.split(lines["rsync"])
        assert rsync[0] == "rsync" and rsync[-1] == "demo@127.0.0.1:/attachments/"
        e = shlex.split(rsync[rsync.index("-e") + 1])
        assert e[:3] == ["ssh", "-p", str(ports["ssh"])]
        assert e[e.index("-i") + 1] == key
        url = "http://127.0.0.1:%d/c/demo/web_asset_store.xml" % ports["http"]
        assert shlex.split(lines["curl"]) == ["curl", "-i", url]
        assert lines["ASSET_SERVER_URL"] == url
        assert lines["attachment.url"] == url

        # What the listeners that exist do with them.
        check_http(run, lines)
        check_ssh(run, lines, top)

        # Secrets stay out of the daemon's log.
        assert client["attachment_key"] not in run.log()
        before_files = files_state(top)
        before_catalog = catalog_state(top)
    finally:
        rc = run.stop()
    assert rc == 0, run.log()

    again = MakeRun(top, ports)
    try:
        assert "run-demo: wrote" not in again.stdout()
        assert again.printed() == lines
        assert files_state(top) == before_files
        assert catalog_state(top) == before_catalog
    finally:
        rc = again.stop()
    assert rc == 0, again.log()


def test_make_deps_prints_the_apt_line_when_not_root():
    """As a user who cannot install, `make deps` names the one apt-get line
    to run and fails. A dpkg-query stand-in reports libexif-dev missing."""
    # Where the user "nobody" can reach it (pytest's tmp_path is 0700).
    tmp = tempfile.mkdtemp(prefix="assetd-deps-")
    os.chmod(tmp, 0o755)
    fake = pathlib.Path(tmp) / "bin"
    fake.mkdir()
    (fake / "dpkg-query").write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"
        "[ \"$last\" = libexif-dev ] && exit 1\n"
        "exec /usr/bin/dpkg-query \"$@\"\n")
    (fake / "dpkg-query").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"]))
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup",
                        "--clear-groups", "make", "--no-print-directory",
                        "-C", ROOT, "deps"], capture_output=True, text=True,
                       env=env, timeout=120)
    shutil.rmtree(tmp)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    apt = [l.strip() for l in out.splitlines() if "apt-get install" in l]
    assert apt == ["apt-get install -y libexif-dev"], out
