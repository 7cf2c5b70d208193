"""Helpers for the SSH-side tests: run OpenSSH's sftp/scp/ssh against a
daemon, open paramiko sessions, make test files."""
import contextlib
import os
import subprocess

import paramiko

from rsynctree import run_rsync


def remote(client, arg):
    """ARG, or for "R:path" the remote path CLIENT@127.0.0.1:path."""
    if arg.startswith("R:"):
        return "%s@127.0.0.1:%s" % (client.name, arg[2:])
    return arg


def sftp_batch(daemon, client, commands, check=True, timeout=60, extra=()):
    """Run `sftp -b -` with COMMANDS (a list of lines). Returns the
    CompletedProcess (text)."""
    argv = ["sftp", "-b", "-", "-P", str(daemon.ssh_port)] + \
        client.ssh_opts() + list(extra) + ["%s@127.0.0.1" % client.name]
    r = subprocess.run(argv, input="\n".join(commands) + "\n",
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("sftp failed (%d): %s\n%s" % (
            r.returncode, r.stdout, r.stderr))
    return r


def scp(daemon, client, args, legacy=False, check=True, timeout=60):
    """Run scp with ARGS, where remote paths are written "R:path"."""
    argv = ["scp", "-q", "-P", str(daemon.ssh_port)] + client.ssh_opts()
    if legacy:
        argv.append("-O")
    argv += [remote(client, a) for a in args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("scp %s failed (%d): %s %s" % (
            args, r.returncode, r.stdout, r.stderr))
    return r


def rsync(daemon, client, *args, check=True, timeout=120):
    """Run rsync through OpenSSH's ssh as CLIENT; remote paths are written
    "R:path". Returns (returncode, stdout, stderr) as text; with CHECK a
    failure raises AssertionError."""
    shell = " ".join(["ssh", "-p", str(daemon.ssh_port)] + client.ssh_opts())
    return run_rsync(shell, [remote(client, a) for a in args], check,
                     timeout)


def ssh(daemon, client, command=None, key=None, user=None, opts=(),
        timeout=30, input=None):
    """Run `ssh host [command]`; returns the CompletedProcess (bytes)."""
    argv = ["ssh", "-p", str(daemon.ssh_port)]
    o = client.ssh_opts()
    if key:
        o[1] = key
    argv += o + list(opts) + ["-T", "%s@127.0.0.1" % (user or client.name)]
    if command is not None:
        argv.append(command)
    return subprocess.run(argv, capture_output=True, timeout=timeout,
                          input=input)


def paramiko_sftp(daemon, client, key_path=None, user=None):
    """An open paramiko SFTPClient (and its transport) for CLIENT."""
    key = paramiko.Ed25519Key.from_private_key_file(key_path or client.key_path)
    t = paramiko.Transport(("127.0.0.1", daemon.ssh_port))
    t.connect(username=user or client.name, pkey=key)
    return paramiko.SFTPClient.from_transport(t), t


@contextlib.contextmanager
def sftp_session(daemon, client, key_path=None, user=None):
    """paramiko_sftp() as a context: the SFTPClient, its transport closed
    on leaving."""
    sftp, t = paramiko_sftp(daemon, client, key_path, user)
    try:
        yield sftp
    finally:
        t.close()


def put_bytes(sftp, path, data):
    """Write DATA as the remote file PATH through SFTPClient SFTP."""
    with sftp.open(path, "wb") as f:
        f.write(data)


def make_file(path, size, seed=0):
    """A file of SIZE pseudo-random bytes (deterministic per SEED)."""
    import random
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(min(size, 65536)))
    out = bytearray()
    while len(out) < size:
        out += data
    out = bytes(out[:size])
    # make every 64 KiB block different, so misplaced blocks are caught
    blocks = bytearray(out)
    for i in range(0, size, 65536):
        blocks[i:i + 8] = (i // 65536).to_bytes(8, "big")[:min(8, size - i)]
    out = bytes(blocks)
    with open(path, "wb") as f:
        f.write(out)
    return out


def visible(client, rel=""):
    """Object names under the client's location, without directory markers
    (names ending in '/')."""
    return [n for n in client.list(rel) if not n.endswith("/")]


_names = iter(range(1, 1000000))


def shared_daemon(request, tmp_path_factory, s3server, conf_extra=""):
    """One started daemon per test module and backend (a daemon costs
    seconds to set up: host keys, catalog, bucket). Tests share it, each
    with clients of its own (new_client)."""
    from conftest import Daemon
    backend = request.param
    d = Daemon(tmp_path_factory.mktemp("sshd-" + backend), backend,
               s3server if backend == "s3" else None, conf_extra)
    d.start()
    return d


def new_client(d, prefix="c"):
    """A client with a name no other test of the module uses."""
    return d.add_client("%s%d" % (prefix, next(_names)))


FRONTENDS = ["http", "sftp", "scp", "scp_legacy", "rsync"]


def upload_via(daemon, client, frontend, local, name, timeout=90):
    """Upload the file LOCAL as originals/NAME of CLIENT through FRONTEND
    (one of FRONTENDS: fileupload with curl, sftp put, scp, scp -O, rsync).
    Returns (ok, message): for HTTP the message is "<status> <body>", for
    the others what the client printed on stderr."""
    import time
    from specify_client import make_token
    ssh = client.ssh_opts()
    host = "%s@127.0.0.1" % client.name
    if frontend == "http":
        tok = make_token(client.attachment_key, name, int(time.time()))
        r = subprocess.run(
            ["curl", "-sS", "--max-time", str(timeout - 10), "-o", "-", "-w",
             "\n%{http_code}", "-F", "file=@%s" % local, "-F", "token=" + tok,
             "-F", "store=" + name, "-F", "type=O", "-F", "coll=Demo",
             "%s/c/%s/fileupload" % (daemon.http, client.name)],
            capture_output=True, text=True, timeout=timeout)
        body, _, code = r.stdout.rpartition("\n")
        return code == "200", "%s %s" % (code, body.strip())
    inp = None
    if frontend == "sftp":
        argv = ["sftp", "-b", "-", "-P", str(daemon.ssh_port)] + ssh + \
            [host]
        inp = "put %s /attachments/originals/%s\n" % (local, name)
    elif frontend in ("scp", "scp_legacy"):
        argv = ["scp", "-q", "-P", str(daemon.ssh_port)] + ssh + \
            (["-O"] if frontend == "scp_legacy" else []) + \
            [local, "%s:/attachments/originals/%s" % (host, name)]
    else:
        rc, _, err = rsync(daemon, client, local,
                           "R:attachments/originals/" + name, check=False,
                           timeout=timeout)
        return rc == 0, err.strip()
    r = subprocess.run(argv, input=inp, capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode == 0, r.stderr.strip()
