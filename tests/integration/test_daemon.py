"""The daemon's skeleton: options, configuration checks, start-up, signals,
reload, the pid file, systemd notifications and what reaches the log.

These tests start the real assetd on a configuration of their own and follow
it through the sd_notify datagrams it sends to $NOTIFY_SOCKET (READY=1,
RELOADING=1, STOPPING=1), so they need neither assetctl nor the listeners.
"""
import os
import re
import signal
import socket
import stat
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import ASSETD, ROOT, free_port, stop_process

GRACE = 3


class Notify:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, path=None):
        """At PATH, or (None) in the abstract namespace, as "@name"."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            name = "assetd-test-" + uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.path = "@" + name
        else:
            self.sock.bind(path)
            self.path = path
        self.sock.settimeout(0.2)

    def wait(self, field, timeout=15.0, proc=None):
        """Wait for a datagram holding the line FIELD; return the message."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                if proc is not None and proc.poll() is not None:
                    raise AssertionError("assetd exited with %d before %s"
                                         % (proc.returncode, field))
                continue
            if field in msg.split("\n"):
                return msg
        raise AssertionError("no %s from assetd in %.0f s" % (field, timeout))

    def close(self):
        self.sock.close()


class Proc:
    """One assetd process in a temp dir, with its log file."""

    def __init__(self, tmp_path, extra="", debug=False, notify_path=None):
        self.dir = str(tmp_path)
        os.makedirs(self.dir, exist_ok=True)
        self.var = os.path.join(self.dir, "var")
        self.conf = os.path.join(self.dir, "assetd.conf")
        self.pid_file = os.path.join(self.dir, "assetd.pid")
        self.log_path = os.path.join(self.dir, "assetd.log")
        self.attachment_key = "ak-" + uuid.uuid4().hex
        self.debug = debug
        self.proc = None
        self.notify = Notify(notify_path)
        self.write(extra=extra)

    def write(self, log_level="info", extra=""):
        with open(self.conf, "w") as f:
            f.write("# test configuration\n")
            f.write("DataDir %s\n" % self.var)
            f.write("ListenHTTP 127.0.0.1:%d\n" % free_port())
            f.write("ListenSSH 127.0.0.1:%d\n" % free_port())
            self.admin_port = free_port()
            f.write("ListenAdmin 127.0.0.1:%d\n" % self.admin_port)
            f.write("PidFile %s\n" % self.pid_file)
            f.write("AttachmentKey %s\n" % self.attachment_key)
            f.write("ShutdownGrace %d\n" % GRACE)
            f.write("LogLevel %s\n" % log_level)
            f.write(extra)

    def set(self, keyword, value):
        """Rewrite one keyword's line in the config file."""
        with open(self.conf) as f:
            lines = f.read().splitlines()
        out = [l for l in lines if not l.startswith(keyword + " ")]
        out.append("%s %s" % (keyword, value))
        with open(self.conf, "w") as f:
            f.write("\n".join(out) + "\n")

    def start(self):
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path)
        argv = [ASSETD, "-f", self.conf] + (["-d"] if self.debug else [])
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env,
                                     cwd=self.dir)
        self.ready = self.notify.wait("READY=1", proc=self.proc)
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_log(self, pattern, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError("no %r in the log:\n%s" % (pattern, self.log()))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        stop_process(self.proc, timeout=GRACE + 15)
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        self.notify.close()


@pytest.fixture
def proc(tmp_path):
    made = []

    def make(extra="", debug=False, notify_path=None):
        p = Proc(tmp_path / ("p%d" % len(made)), extra, debug, notify_path)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def run(*args, cwd=None):
    return subprocess.run([ASSETD] + list(args), capture_output=True,
                          text=True, timeout=30, cwd=cwd)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


# ---- options --------------------------------------------------------------

def test_version_matches_the_version_file():
    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    r = run("-V")
    assert r.returncode == 0
    assert r.stdout.strip() == "assetd " + version


def test_help_and_bad_usage():
    r = run("-h")
    assert r.returncode == 0
    for opt in ("-f", "-t", "-d", "-V"):
        assert opt in r.stdout
    r = run("-x")
    assert r.returncode == 2
    assert "usage:" in r.stderr
    r = run("stray")
    assert r.returncode == 2
    assert "stray" in r.stderr


# ---- -t ---------------------------------------------------------------------

def test_check_good_config(tmp_path):
    conf = write(tmp_path / "a.conf", "DataDir %s\nLogLevel warn\n"
                 % (tmp_path / "var"))
    r = run("-t", "-f", conf)
    assert r.returncode == 0, r.stderr
    assert "configuration %s: ok" % conf in r.stderr
    assert "check ok" in r.stderr
    # A check creates nothing: the catalog is made at the first start.
    assert not os.path.exists(tmp_path / "var")


@pytest.mark.parametrize("lines,lineno,reason", [
    (["DataDir /tmp/x", "# fine", "TimeTolerance soon"], 3,
     "TimeTolerance: 'soon' is not a number"),
    (["LogLevel info", "ListenSSH host:99999"], 2, "ListenSSH"),
    (["RequireKeyForGet maybe"], 1, "RequireKeyForGet"),
    (["", "  NoSuchKeyword 12"], 2, "unknown keyword 'NoSuchKeyword'"),
])
def test_check_bad_config_names_file_and_line(tmp_path, lines, lineno,
                                              reason):
    conf = write(tmp_path / "bad.conf", "\n".join(lines) + "\n")
    r = run("-t", "-f", conf)
    assert r.returncode == 1
    assert "%s:%d: " % (conf, lineno) in r.stderr
    assert reason in r.stderr
    assert "check failed" in r.stderr


def test_missing_config_file_is_an_error(tmp_path):
    missing = str(tmp_path / "nope.conf")
    for args in (["-t", "-f", missing], ["-f", missing]):
        r = run(*args)
        assert r.returncode == 1
        assert missing in r.stderr and "No such file" in r.stderr


def test_check_without_f_reads_the_system_file_or_the_defaults(tmp_path):
    r = run("-t", cwd=str(tmp_path))
    if os.path.exists("/etc/assetd/assetd.conf"):
        assert "configuration /etc/assetd/assetd.conf" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert "built-in defaults" in r.stderr
        assert "var/assetd.db" in r.stderr
        assert not os.path.exists(tmp_path / "var")


def test_check_opens_the_catalog_and_refuses_a_corrupt_one(proc):
    p = proc()
    p.start()
    p.stop()
    db = os.path.join(p.var, "assetd.db")
    assert os.path.exists(db)
    r = run("-t", "-f", p.conf)
    assert r.returncode == 0, r.stderr
    assert "catalog %s: ok" % db in r.stderr
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)
    with open(db, "wb") as f:
        f.write(b"this is not a SQLite database" * 100)
    r = run("-t", "-f", p.conf)
    assert r.returncode == 1
    assert "catalog %s" % db in r.stderr


# ---- start-up -----------------------------------------------------------------

def test_unknown_keyword_refused_at_start_and_nothing_started(tmp_path):
    var = tmp_path / "var"
    conf = write(tmp_path / "x.conf", "DataDir %s\nPidFile %s\nFrobnicate yes\n"
                 % (var, tmp_path / "pid"))
    r = subprocess.run([ASSETD, "-f", conf], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "%s:3: unknown keyword 'Frobnicate'" % conf in r.stderr
    assert "event=config_invalid" in r.stderr
    assert "event=started" not in r.stderr
    assert not var.exists()
    assert not (tmp_path / "pid").exists()


def test_unusable_data_dir_fails_start(tmp_path):
    blocker = write(tmp_path / "file", "x")
    conf = write(tmp_path / "x.conf", "DataDir %s/sub\n" % blocker)
    r = subprocess.run([ASSETD, "-f", conf], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "event=start_failed what=DataDir" in r.stderr


def test_start_ready_pidfile_and_sigterm(proc):
    # A notify socket on the filesystem, as systemd's /run/systemd/notify
    # (the other tests use the abstract namespace).
    sockdir = tempfile.mkdtemp(prefix="assetd-notify-")
    p = proc(notify_path=os.path.join(sockdir, "notify"))
    p.start()
    assert "STATUS=serving" in p.ready
    st = os.stat(p.var)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert os.path.isdir(os.path.join(p.var, "spool"))
    assert os.path.exists(os.path.join(p.var, "assetd.db"))
    with open(p.pid_file) as f:
        assert int(f.read().strip()) == p.proc.pid
    started = p.wait_log(r"event=started version=\S+ pid=(\d+)[^\n]*")
    assert int(started.group(1)) == p.proc.pid
    # The start line names the ports actually bound.
    assert "admin=127.0.0.1:%d" % p.admin_port in started.group(0)
    t0 = time.time()
    p.signal(signal.SIGTERM)
    p.notify.wait("STOPPING=1", proc=None)
    assert p.proc.wait(GRACE + 10) == 0
    assert time.time() - t0 < GRACE + 2
    assert not os.path.exists(p.pid_file)
    log = p.log()
    assert "event=stopping signal=TERM grace=%d" % GRACE in log
    assert "event=stopped clean=yes" in log
    shutil.rmtree(sockdir)


def test_sigint_stops_too(proc):
    p = proc()
    p.start()
    p.signal(signal.SIGINT)
    assert p.proc.wait(GRACE + 10) == 0
    assert "event=stopping signal=INT" in p.log()


def test_pid_file_of_another_instance_is_left_alone(proc):
    p = proc()
    p.start()
    with open(p.pid_file, "w") as f:
        f.write("1\n")  # as if another instance had taken the file over
    p.signal(signal.SIGTERM)
    assert p.proc.wait(GRACE + 10) == 0
    with open(p.pid_file) as f:
        assert f.read() == "1\n"


# ---- reload ---------------------------------------------------------------------

def test_sighup_with_a_bad_config_keeps_running(proc):
    p = proc()
    p.start()
    with open(p.conf, "a") as f:
        f.write("LogLevel shouting\n")
    lineno = sum(1 for _ in open(p.conf))
    p.signal(signal.SIGHUP)
    p.notify.wait("RELOADING=1", proc=p.proc)
    p.notify.wait("READY=1", proc=p.proc)
    m = p.wait_log(r"event=reload_refused error=(\"[^\n]*)")
    assert "%s:%d: LogLevel" % (p.conf, lineno) in m.group(1)
    assert p.proc.poll() is None
    # Still the old configuration: a SIGTERM stops it within ITS grace.
    p.signal(signal.SIGTERM)
    assert p.proc.wait(GRACE + 10) == 0


def test_sighup_with_a_good_config_changes_the_log_level(proc):
    p = proc()
    p.start()
    assert "event=config " not in p.log()  # info: no debug lines
    p.set("LogLevel", "debug")
    p.signal(signal.SIGHUP)
    msg = p.notify.wait("RELOADING=1", proc=p.proc)
    assert re.search(r"MONOTONIC_USEC=\d+", msg)
    p.notify.wait("READY=1", proc=p.proc)
    p.wait_log(r"event=reloaded config=\S+ log_level=debug")
    p.wait_log(r"level=debug event=config ")
    # To warn: the info line "reloaded" of that very reload is dropped.
    p.set("LogLevel", "warn")
    p.signal(signal.SIGHUP)
    p.notify.wait("READY=1", proc=p.proc)
    assert "log_level=warn" not in p.log()
    assert p.proc.poll() is None


def test_debug_flag_survives_reload(proc):
    p = proc(debug=True)
    p.start()
    p.wait_log(r"level=debug event=config ")
    p.set("LogLevel", "error")
    p.signal(signal.SIGHUP)
    p.notify.wait("READY=1", proc=p.proc)
    p.wait_log(r"event=reloaded config=\S+ log_level=debug")


def test_changed_listener_needs_a_restart(proc):
    p = proc()
    p.start()
    p.set("ListenSSH", "127.0.0.1:%d" % free_port())
    p.set("TimeTolerance", "600")
    p.signal(signal.SIGHUP)
    p.notify.wait("READY=1", proc=p.proc)
    p.wait_log(r"level=warn event=reload_needs_restart keyword=ListenSSH")
    p.wait_log(r"event=reloaded")
    assert "keyword=ListenHTTP" not in p.log()
    assert p.proc.poll() is None


def test_no_secret_in_the_log(proc):
    p = proc(debug=True)
    p.start()
    p.signal(signal.SIGHUP)
    p.notify.wait("READY=1", proc=p.proc)
    p.set("LogLevel", "nonsense")
    p.signal(signal.SIGHUP)
    p.wait_log("event=reload_refused")
    p.stop()
    log = p.log()
    assert "attachment_key=set" in log
    assert p.attachment_key not in log
    r = run("-t", "-f", p.conf)
    assert p.attachment_key not in r.stderr + r.stdout
