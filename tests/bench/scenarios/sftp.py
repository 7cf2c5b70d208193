"""SFTP (issue 5): OpenSSH's sftp client against assetd, side by side with
its peers, the same cipher for both.

- fs backend: `sftp put` and `get` of one big file, against OpenSSH's own
  sshd + sftp-server writing to the same disk. Target: >= 0.9 of OpenSSH.
- S3 backend: `sftp put`, timed until the object is in S3, against
  `rclone serve sftp` in front of the same test S3 server. Target: >= 1.5x.
- Peak RSS of assetd with 50 concurrent uploads (200 MiB each; QUICK: 8).
"""
import os
import subprocess
import time

import conftest
from bench import Row, alternate, peak_rss_mib
from peers import SSH_OPTS, OpenSSH, RcloneSFTP, keypair, wait_until

CIPHER = "aes128-gcm@openssh.com"


def make_big(path, size_mib):
    if not os.path.exists(path) or os.path.getsize(path) != size_mib << 20:
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size_mib):
                f.write(block)
    return path


def sftp(port_args, target, commands):
    """Run sftp -b with COMMANDS; return the wall time."""
    t0 = time.monotonic()
    subprocess.run(["sftp", "-q", "-b", "-", "-o", "Ciphers=" + CIPHER] +
                   port_args + [target], input="\n".join(commands) + "\n",
                   text=True, check=True, capture_output=True)
    return time.monotonic() - t0


def run(ctx):
    size_mib = 64 if ctx.quick else 1024
    big = make_big(ctx.path("data", "big.bin"), size_mib)
    rows = []

    # ---- fs: assetd vs OpenSSH sshd + sftp-server ----------------------
    d = ctx.daemon("fs")
    d.start(wait=False)
    conftest.wait_port(d.ssh_port, 20, d.proc)
    c = d.add_client("bench")
    ours = (["-P", str(d.ssh_port)] + c.ssh_opts(), "bench@127.0.0.1")
    key = keypair(ctx.path("keys", "id_bench"))
    peer = OpenSSH(ctx.workdir, key, cipher=CIPHER)
    ctx.on_exit(peer.stop)
    peer_dir = ctx.path("openssh-files", "x")
    peer_dir = os.path.dirname(peer_dir)
    peer_args = (["-P", str(peer.port), "-i", key] + SSH_OPTS, peer.target())
    down = ctx.path("data", "down.bin")

    w = alternate(
        lambda: size_mib / sftp(*ours, ["put %s attachments/big.bin" % big]),
        lambda: size_mib / sftp(*peer_args, ["put %s %s/big.bin" % (
            big, peer_dir)]),
        ctx.runs)
    rows.append(Row("sftp put %d MiB, fs" % size_mib, w[0], w[1],
                    unit="MiB/s", ratio=w[2], target=">= 0.9",
                    rss_mib=peak_rss_mib(d.proc.pid),
                    peer_name="OpenSSH sftp-server", note=CIPHER))
    r = alternate(
        lambda: size_mib / sftp(*ours, ["get attachments/big.bin %s" % down]),
        lambda: size_mib / sftp(*peer_args, ["get %s/big.bin %s" % (
            peer_dir, down)]),
        ctx.runs)
    rows.append(Row("sftp get %d MiB, fs" % size_mib, r[0], r[1],
                    unit="MiB/s", ratio=r[2], target=">= 0.9",
                    rss_mib=peak_rss_mib(d.proc.pid),
                    peer_name="OpenSSH sftp-server", note=CIPHER))

    # ---- s3: assetd vs rclone serve sftp, until the object is in S3 ----
    d3 = ctx.daemon("s3")
    d3.start(wait=False)
    conftest.wait_port(d3.ssh_port, 20, d3.proc)
    c3 = d3.add_client("bench")
    ours3 = (["-P", str(d3.ssh_port)] + c3.ssh_opts(), "bench@127.0.0.1")
    bucket = ctx.s3.create_bucket()
    rc = RcloneSFTP(ctx.workdir, ctx.s3, bucket, key)
    ctx.on_exit(rc.stop)
    rc_args = (rc.ssh_args() + ["-o", "Ciphers=" + CIPHER], "bench@127.0.0.1")
    n = [0]

    def rclone_put():
        n[0] += 1
        name = "big%d.bin" % n[0]
        t0 = time.monotonic()
        subprocess.run(["sftp", "-q", "-b", "-"] + rc_args[0] + [rc_args[1]],
                       input="put %s %s\n" % (big, name), text=True,
                       check=True, capture_output=True)
        # rclone acknowledges the close before it uploads: wait for S3
        wait_until(lambda: ctx.s3.keys(bucket, name).get(name) ==
                   size_mib << 20, timeout=600, step=0.2)
        return size_mib / (time.monotonic() - t0)

    s = alternate(
        lambda: size_mib / sftp(*ours3, ["put %s attachments/big.bin" % big]),
        rclone_put, ctx.runs)
    rows.append(Row("sftp put %d MiB, S3 (until in S3)" % size_mib, s[0],
                    s[1], unit="MiB/s", ratio=s[2], target=">= 1.5",
                    rss_mib=peak_rss_mib(d3.proc.pid),
                    peer_name="rclone serve sftp", note=CIPHER))

    # ---- memory: 50 concurrent uploads ---------------------------------
    each = 8 if ctx.quick else 200
    part = make_big(ctx.path("data", "each.bin"), each)
    dm = ctx.daemon("fs", conf_extra="PerSourceMaxStartups 100\n"
                   "MaxStartups 100\n")
    dm.start(wait=False)
    conftest.wait_port(dm.ssh_port, 20, dm.proc)
    cm = dm.add_client("bench")
    t0 = time.monotonic()
    procs = [subprocess.Popen(
        ["sftp", "-q", "-b", "-", "-o", "Ciphers=" + CIPHER, "-P",
         str(dm.ssh_port)] + cm.ssh_opts() + ["bench@127.0.0.1"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, text=True) for _ in range(50)]
    for i, p in enumerate(procs):
        p.stdin.write("put %s attachments/u%02d.bin\n" % (part, i))
        p.stdin.close()
    for p in procs:
        p.wait()
    took = time.monotonic() - t0
    rows.append(Row("50 concurrent sftp puts of %d MiB, fs" % each,
                    50 * each / took, None, unit="MiB/s total",
                    target="bounded RSS", rss_mib=peak_rss_mib(dm.proc.pid),
                    note="peak RSS is the figure"))
    return rows
