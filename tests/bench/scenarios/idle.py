"""Idle: resident memory of a started daemon whose catalog holds 1,000
clients and 5,000 SSH keys (target: under 40 MiB)."""
import os
import subprocess
import time

from bench import Row, peak_rss_mib


def make_keys(path, n, seed):
    """N distinct ed25519 public keys as authorized_keys lines."""
    lines = []
    for i in range(n):
        k = path + ".%d" % i
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        "bench-%d-%d" % (seed, i), "-f", k], check=True)
        with open(k + ".pub") as f:
            lines.append(f.read().strip())
        os.unlink(k)
        os.unlink(k + ".pub")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def run(ctx):
    clients = 50 if ctx.quick else 1000
    keys_per = 5
    d = ctx.daemon("fs")
    keyfile = ctx.path("keys", "k")
    for c in range(clients):
        name = "c%04d" % c
        d.ctl("client", "add", name, "--region", "test")
        d.ctl("collection", "add", name, "Coll%d" % c)
        make_keys(keyfile, keys_per, c)
        d.ctl("key", "add", name, keyfile)
    d.start()
    time.sleep(2.0)
    # One request on each side so the listeners have done real work once.
    subprocess.run(["curl", "-s", "-o", "/dev/null", d.http + "/web_asset_store.xml"])
    time.sleep(0.5)
    rss = peak_rss_mib(d.proc.pid)
    return [Row("idle RSS, %d clients / %d keys" % (clients, clients * keys_per),
                rss, unit="MiB", target="< 40 MiB", rss_mib=rss,
                note="no peer; VmHWM after start and one request",
                higher=False)]
