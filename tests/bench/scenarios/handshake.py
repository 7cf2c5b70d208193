"""Handshake cost (issue 9): SSH logins per second with key authentication
and no transfer, assetd against OpenSSH's sshd on the same machine, the same
client for both. Target: at least 0.8 of OpenSSH's rate.

The client is OpenSSH's `sftp -b /dev/null`: connect, key exchange,
public-key authentication, open the sftp subsystem, read an empty batch,
close. (assetd refuses arbitrary exec, so `ssh host true` is not a login it
would accept; the sftp subsystem is what every real login opens.) WORKERS
client loops run at once so that neither one client's start-up nor the
round trips of one login set the pace (OpenSSH leaves Nagle on for
non-interactive sessions, which costs it delayed-ACK waits of ~40 ms per
login; many loops overlap those waits); the same loops drive both servers.

Besides the rate, each side's server CPU time per login is reported: for
assetd the daemon's own utime + stime; for OpenSSH the listener's, with the
children it forks and reaps per connection (cutime + cstime), which holds
the privilege-separated pre-auth child, the session process and the
sftp-server it runs.
"""
import os
import subprocess
import threading
import time

from bench import Row, alternate, peak_rss_mib
from peers import SSH_OPTS, OpenSSH, keypair

WORKERS = 8
# OpenSSH 9.2's client prefers sntrup761x25519, which assetd (libssh 0.10)
# does not offer and whose key generation costs far more than the rest of a
# login: without this the peer would be doing other work. Both get
# curve25519, the key exchange assetd negotiates with every stock client.
KEX = "curve25519-sha256"


def proc_cpu(pid, children=False):
    """CPU seconds of PID (with its reaped children if CHILDREN)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, cutime field 16.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def logins(argv, n, workers=WORKERS):
    """N logins with ARGV spread over WORKERS loops; returns (seconds,
    failures)."""
    per = [n // workers + (1 if i < n % workers else 0)
           for i in range(workers)]
    fails = [0] * workers

    def loop(i):
        for _ in range(per[i]):
            r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode != 0:
                fails[i] += 1

    threads = [threading.Thread(target=loop, args=(i,))
               for i in range(workers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0, sum(fails)


def run(ctx):
    n = 40 if ctx.quick else 300
    d = ctx.daemon("fs", conf_extra="LogLevel info\n"
                   "PerSourceMaxStartups 100\nMaxStartups 100\n")
    d.start()
    c = d.add_client("bench")
    key = keypair(ctx.path("keys", "id_bench"))
    peer = OpenSSH(ctx.workdir, key)
    ctx.on_exit(peer.stop)
    base = ["sftp", "-q", "-b", "/dev/null", "-o", "KexAlgorithms=" + KEX]
    ours_argv = base + ["-P", str(d.ssh_port)] + c.ssh_opts() + \
        ["bench@127.0.0.1"]
    peer_argv = base + ["-P", str(peer.port), "-i", key] + SSH_OPTS + \
        [peer.target()]

    # One login each first: host keys, page cache, the catalog's first read.
    for argv in (ours_argv, peer_argv):
        subprocess.run(argv, stdin=subprocess.DEVNULL, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    cpu = {"ours": [], "peer": []}
    failures = {"ours": 0, "peer": 0}

    def measure(side, argv, pid, children):
        c0 = proc_cpu(pid, children)
        secs, fails = logins(argv, n)
        cpu[side].append((proc_cpu(pid, children) - c0) / n)
        failures[side] += fails
        return (n - fails) / secs

    o, p, r = alternate(
        lambda: measure("ours", ours_argv, d.proc.pid, False),
        lambda: measure("peer", peer_argv, peer.proc.pid, True),
        ctx.runs)
    cpu_o = sorted(cpu["ours"])[len(cpu["ours"]) // 2] * 1000
    cpu_p = sorted(cpu["peer"])[len(cpu["peer"]) // 2] * 1000
    note = ("%d logins x %d runs, %d client loops, `sftp -b /dev/null`, "
            "ed25519 keys, %s; server CPU per login %.1f ms ours, "
            "%.1f ms OpenSSH (sshd + its children)" % (
                n, ctx.runs, WORKERS, KEX, cpu_o, cpu_p))
    if failures["ours"] or failures["peer"]:
        note += "; failed logins: ours %d, OpenSSH %d" % (
            failures["ours"], failures["peer"])
    return [Row("SSH logins per second (key auth, no transfer)", o, p,
                unit="logins/s", ratio=r, target=">= 0.8",
                rss_mib=peak_rss_mib(d.proc.pid), cpu_s=None,
                peer_name="OpenSSH sshd", note=note)]
