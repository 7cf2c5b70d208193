"""Idle: resident memory of a started daemon whose catalog holds 1,000
clients and 5,000 SSH keys (target: under 40 MiB). QUICK: 20 and 100.

The catalog is filled with assetctl, as an admin would; the keys are real
ed25519 public keys made from a fixed seed. After start the daemon serves
one HTTP request and one SFTP login of the last client made (its key is
the last of 5,000 to match), so both listeners and the key lookup have done
real work once; the figure is the peak (VmHWM), not the resident size of
the moment.
"""
import os
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import \
    Ed25519PrivateKey

from bench import Row, peak_rss_mib

KEYS_PER_CLIENT = 5


def ed25519(rnd, comment, private_path=None):
    """An ed25519 key from RND: its authorized_keys line, and the private
    key in OpenSSH's format written to PRIVATE_PATH if given."""
    k = Ed25519PrivateKey.from_private_bytes(rnd.randbytes(32))
    pub = k.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                      serialization.PublicFormat.OpenSSH)
    if private_path:
        with open(private_path, "wb") as f:
            f.write(k.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption()))
    return pub.decode() + " " + comment


def run(ctx):
    clients = 20 if ctx.quick else 1000
    rnd = random.Random(9)
    d = ctx.daemon("fs", conf_extra="LogLevel info\n")
    keyfile = ctx.path("keys", "k.pub")
    login_key = ctx.path("keys", "id_last")
    # The keys first, in order, so they are the same whatever the pool does.
    keys = [[ed25519(rnd, "c%04d-%d" % (c, i),
                     login_key if c == clients - 1 and
                     i == KEYS_PER_CLIENT - 1 else None)
             for i in range(KEYS_PER_CLIENT)] for c in range(clients)]

    def add(c):
        name = "c%04d" % c
        d.ctl("client", "add", name, "--region", "test")
        d.ctl("collection", "add", name, "Coll%d" % c)
        path = "%s.%d" % (keyfile, c)
        with open(path, "w") as f:
            f.write("\n".join(keys[c]) + "\n")
        d.ctl("key", "add", name, path)

    # Each assetctl call waits mostly on the catalog's commit: a few at once.
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, range(clients)))
    made = time.monotonic() - t0
    os.chmod(login_key, 0o600)
    d.start()
    time.sleep(2.0)
    subprocess.run(["curl", "-s", "-o", "/dev/null",
                    d.http + "/web_asset_store.xml"], check=True)
    subprocess.run(["sftp", "-q", "-b", "/dev/null", "-P", str(d.ssh_port),
                    "-i", login_key, "-o", "IdentitiesOnly=yes",
                    "-o", "StrictHostKeyChecking=no",
                    "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "BatchMode=yes", "c%04d@127.0.0.1" % (clients - 1)],
                   check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    rss = peak_rss_mib(d.proc.pid)
    # What the resident pages are: the process's own (anonymous) memory,
    # and pages of mapped files, mostly shared libraries' code that every
    # process using them shares.
    parts = {}
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            k = line.split(":")[0]
            if k in ("RssAnon", "RssFile"):
                parts[k] = int(line.split()[1]) / 1024.0
    return [Row("idle RSS, %d clients / %d keys" % (
        clients, clients * KEYS_PER_CLIENT), rss, unit="MiB",
        target="< 40 MiB", rss_mib=rss,
        note="no peer; VmHWM after start, one HTTP request and one SFTP "
             "login by the last key; resident now: %.1f MiB anonymous, "
             "%.1f MiB file pages (shared libraries); catalog filled with "
             "assetctl in %.0f s" % (parts.get("RssAnon", 0),
                                     parts.get("RssFile", 0), made),
        higher=False, runs=1)]
