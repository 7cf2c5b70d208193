"""SSH sessions and authentication: key -> client mapping from the catalog,
changes applied without a restart, algorithms, limits, host keys.
Authentication does not depend on the storage backend: these run on fs."""
import os
import socket
import stat
import subprocess
import time

import paramiko
import pytest

from sshtools import (make_file, new_client, paramiko_sftp, sftp_batch,
                      shared_daemon, ssh)


@pytest.fixture
def fsd(make_daemon):
    d = make_daemon("fs")
    d.premade_host_keys = False  # this module tests their creation
    d.start()
    return d


@pytest.fixture(scope="module", params=["fs"])
def shared(request, tmp_path_factory, s3server):
    d = shared_daemon(request, tmp_path_factory, s3server)
    yield d
    d.stop()


def keygen(path, kind="ed25519"):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)],
                   check=True)
    return str(path)


def fingerprint(pub):
    out = subprocess.run(["ssh-keygen", "-l", "-f", pub], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[1]


def can_login(d, c, key=None, user=None, opts=()):
    r = ssh(d, c, "scp -f attachments/nothing-here", key=key, user=user,
            opts=opts, input=b"\0")
    # 255: ssh itself failed (authentication); anything else: we got in
    return r.returncode != 255, r


def test_login_logged_and_key_touched(shared):
    fsd = shared
    c = new_client(fsd)
    sftp_batch(fsd, c, ["ls attachments"])
    fp = fingerprint(c.key_path + ".pub")
    log = fsd.log()
    line = [ln for ln in log.splitlines() if "event=ssh_login " in ln and
            "client=%s " % c.name in ln][0]
    assert "fingerprint=%s" % fp in line
    assert "addr=127.0.0.1" in line
    keys = fsd.ctl("key", "list", c.name, json_out=True)
    assert keys[0]["last_used"] > 0


def test_unknown_and_foreign_keys_refused(shared, tmp_path):
    fsd = shared
    a = new_client(fsd)
    b = new_client(fsd, "o")
    stranger = keygen(tmp_path / "stranger")
    ok, r = can_login(fsd, a, key=stranger)
    assert not ok
    # b's key is registered, but not for kufish
    ok, r = can_login(fsd, a, key=b.key_path)
    assert not ok
    # an unknown client name
    ok, r = can_login(fsd, a, user="nobody")
    assert not ok
    ok, r = can_login(fsd, a, user="../" + a.name)
    assert not ok
    log = fsd.log()
    assert "reason=\"key not registered for this client\"" in log
    assert "fingerprint=%s" % fingerprint(stranger + ".pub") in log
    # paramiko sees a plain authentication failure too
    with pytest.raises(paramiko.AuthenticationException):
        paramiko_sftp(fsd, a, key_path=b.key_path)
    # and the right key still works
    assert can_login(fsd, a)[0]


def test_disable_and_key_removal_apply_without_restart(shared):
    fsd = shared
    c = new_client(fsd)
    assert can_login(fsd, c)[0]
    fsd.ctl("client", "disable", c.name)
    deadline = time.time() + 15
    while can_login(fsd, c)[0]:
        assert time.time() < deadline, "disabled client still accepted"
        time.sleep(0.5)
    assert "reason=\"client disabled\"" in fsd.log()
    fsd.ctl("client", "enable", c.name)
    deadline = time.time() + 15
    while not can_login(fsd, c)[0]:
        assert time.time() < deadline, "enabled client still refused"
        time.sleep(0.5)
    fp = fingerprint(c.key_path + ".pub")
    fsd.ctl("key", "remove", c.name, fp)
    ok, _ = can_login(fsd, c)  # keys are never cached
    assert not ok


def test_host_keys_created_0600_and_modern_algorithms(fsd, tmp_path):
    c = fsd.add_client("kufish")
    for name in ("ssh_host_ed25519_key", "ssh_host_rsa_key"):
        p = os.path.join(fsd.var, name)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert b"ssh-rsa" in open(os.path.join(fsd.var,
                                           "ssh_host_rsa_key.pub"), "rb").read()
    # the RSA host key with SHA-2 signatures works
    assert can_login(fsd, c, opts=["-o", "HostKeyAlgorithms=rsa-sha2-512"])[0]
    assert can_login(fsd, c, opts=["-o", "HostKeyAlgorithms=ssh-ed25519"])[0]
    for cipher in ("chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com",
                   "aes128-ctr"):
        assert can_login(fsd, c, opts=["-o", "Ciphers=" + cipher])[0], cipher
    # nothing SHA-1, no CBC
    weak = [["-o", "HostKeyAlgorithms=ssh-rsa"],
            ["-o", "Ciphers=aes128-cbc"],
            ["-o", "KexAlgorithms=diffie-hellman-group14-sha1"],
            ["-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha1"],
            ["-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256"]]
    for o in weak:
        assert not can_login(fsd, c, opts=o)[0], o
    # keys survive a restart unchanged
    before = open(os.path.join(fsd.var, "ssh_host_ed25519_key"), "rb").read()
    fsd.stop()
    fsd.start()
    after = open(os.path.join(fsd.var, "ssh_host_ed25519_key"), "rb").read()
    assert before == after


def test_rsa_client_key(shared, tmp_path):
    fsd = shared
    c = shared.add_client("r%d" % os.getpid(), ssh_key=False)
    k = keygen(tmp_path / "id_rsa", "rsa")
    fsd.ctl("key", "add", c.name, k + ".pub")
    c.key_path = k
    assert can_login(fsd, c)[0]


def test_max_auth_tries(make_daemon, tmp_path):
    d = make_daemon("fs", conf_extra="MaxAuthTries 2\n")
    d.start()
    c = d.add_client("kufish")
    wrong = [keygen(tmp_path / ("w%d" % i)) for i in range(3)]
    argv = ["ssh", "-p", str(d.ssh_port), "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-T"]
    for k in wrong + [c.key_path]:
        argv += ["-i", k]
    r = subprocess.run(argv + ["kufish@127.0.0.1", "scp -f x"], input=b"\0",
                       capture_output=True, timeout=30)
    assert r.returncode == 255
    assert "event=ssh_too_many_auth_tries" in d.log()
    # one wrong key then the right one is within the limit
    argv2 = argv[:argv.index("-i")] + ["-i", wrong[0], "-i", c.key_path]
    r = subprocess.run(argv2 + ["kufish@127.0.0.1", "scp -f x"], input=b"\0",
                       capture_output=True, timeout=30)
    assert r.returncode != 255


def test_login_grace_and_per_source_limit(make_daemon):
    d = make_daemon("fs", conf_extra="LoginGraceTime 2\nPerSourceMaxStartups 3\n")
    d.start()
    c = d.add_client("kufish")
    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", d.ssh_port))
        s.settimeout(5)
        assert s.recv(64).startswith(b"SSH-2.0-")
        socks.append(s)
    # a fourth unauthenticated connection from the same address is dropped
    s4 = socket.create_connection(("127.0.0.1", d.ssh_port))
    s4.settimeout(5)
    assert s4.recv(64) == b""
    s4.close()
    # the idle ones are closed after LoginGraceTime
    t0 = time.time()
    for s in socks:
        s.settimeout(20)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        s.close()
    assert time.time() - t0 < 12  # 2 s, and a busy machine's slack
    # and then logins work again
    assert can_login(d, c)[0]


def test_idle_timeout(make_daemon):
    d = make_daemon("fs", conf_extra="IdleTimeout 2\n")
    d.start()
    c = d.add_client("kufish")
    sftp, t = paramiko_sftp(d, c)
    try:
        sftp.listdir("/attachments")
        time.sleep(4)
        with pytest.raises((EOFError, OSError, paramiko.SSHException)):
            sftp.listdir("/attachments")
    finally:
        t.close()
    assert "event=ssh_idle_timeout" in d.log()


def test_two_hundred_concurrent_sessions(make_daemon, tmp_path):
    """200 short sftp sessions at once (one thread each): every one logs
    in, uploads and lists; every file lands byte for byte. (Sessions do
    not depend on the backend: fs keeps it quick.)"""
    d = make_daemon("fs", "PerSourceMaxStartups 250\nMaxStartups 250\n")
    d.start()
    c = d.add_client("many")
    procs = []
    files = {}
    for i in range(200):
        p = tmp_path / ("s%03d" % i)
        files[i] = make_file(p, 4096 + i, seed=1000 + i)
        argv = ["sftp", "-b", "-", "-P", str(d.ssh_port)] + c.ssh_opts() + \
            ["%s@127.0.0.1" % c.name]
        procs.append(subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    for i, p in enumerate(procs):
        p.stdin.write("put %s attachments/s%03d\nls attachments\n" % (
            tmp_path / ("s%03d" % i), i))
        p.stdin.close()
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    for i in range(200):
        assert c.read("s%03d" % i) == files[i]
def test_multiplexed_sessions_up_to_max_sessions(make_daemon, tmp_path):
    """OpenSSH's ControlMaster: one connection carries several sessions at
    once (two sftp and an scp -O upload side by side, then rsync, each its
    own channel and thread), up to MaxSessions; one more channel is refused
    while the others go on; the master ends cleanly."""
    d = make_daemon("fs", "MaxSessions 3\n")
    d.start()
    c = d.add_client("mux")
    sock = str(tmp_path / "mux.sock")
    ssh_base = ["ssh", "-p", str(d.ssh_port)] + c.ssh_opts()
    mux = ["-o", "ControlMaster=no", "-o", "ControlPath=" + sock]
    master = subprocess.Popen(ssh_base + ["-o", "ControlMaster=yes", "-o",
                                          "ControlPath=" + sock, "-N",
                                          "mux@127.0.0.1"])
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        assert os.path.exists(sock)
        data = {}
        for name in ("a", "b", "s", "r"):
            data[name] = os.urandom(6 * 1024 * 1024 + ord(name))
            (tmp_path / name).write_bytes(data[name])
        sftp = ["sftp", "-b", "-", "-P", str(d.ssh_port)] + c.ssh_opts() + \
            mux + ["mux@127.0.0.1"]
        procs = []
        for name in ("a", "b"):
            p = subprocess.Popen(sftp, stdin=subprocess.PIPE, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            p.stdin.write("put %s attachments/%s\n" % (tmp_path / name, name))
            p.stdin.close()
            procs.append(p)
        procs.append(subprocess.Popen(
            ["scp", "-O", "-q", "-P", str(d.ssh_port)] + c.ssh_opts() + mux +
            [str(tmp_path / "s"), "mux@127.0.0.1:attachments/s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            assert p.wait(60) == 0, p.stderr.read()
        r = subprocess.run(["rsync", "-e", " ".join(ssh_base + mux),
                            str(tmp_path / "r"), "mux@127.0.0.1:attachments/r"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        for name in data:
            assert c.read(name) == data[name]
        assert d.log().count("event=ssh_login ") == 1   # one connection
        # three sessions held open at once: a fourth channel is refused
        held = []
        for _ in range(3):
            p = subprocess.Popen(sftp, stdin=subprocess.PIPE, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            p.stdin.write("pwd\n")
            p.stdin.flush()
            held.append(p)
        for _ in range(100):
            if d.log().count("request=sftp") >= 5:
                break
            time.sleep(0.1)
        assert d.log().count("request=sftp") == 5
        # (OpenSSH's client then falls back to a connection of its own)
        r = subprocess.run(sftp, input="pwd\n", capture_output=True,
                           text=True, timeout=30)
        assert "Session open refused by peer" in r.stderr
        assert "event=ssh_channel_refused" in d.log()
        assert d.log().count("event=ssh_login ") == 2
        for p in held:
            p.stdin.close()
            assert p.wait(30) == 0, p.stderr.read()
        # and once they ended, the connection takes a new session
        r = subprocess.run(sftp, input="ls attachments\n", capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert "refused" not in r.stderr
        assert d.log().count("event=ssh_login ") == 2
    finally:
        subprocess.run(["ssh", "-O", "exit"] + mux + ["mux@127.0.0.1"],
                       capture_output=True, timeout=30)
        master.wait(30)   # (a -N master's own status is 255 by design)
