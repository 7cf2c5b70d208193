"""Cost as work grows (issue 9): listing a folder of 1k, 10k and 100k
objects over SFTP, and an rsync no-change pass over the same folder, with
the time and assetd's peak RSS at each size. Time should grow linearly with
the number of objects and RSS stay flat; each row's note gives the growth
over the size before it.

The folder is filled through assetd itself, by a first rsync push (its time
is reported), the way a client would. The peer is OpenSSH's sshd with
sftp-server and stock rsync on local disk, the same folder, the same
clients. assetd is restarted before each size so that its VmHWM is that
size's, and the listings run before any rsync pass of that process (whose
file list would be their peak otherwise); a first listing and a first
no-change pass warm it (and the page cache) before the measured,
alternating runs.

Backends: fs at every size. On the test S3 server only 1k objects: s3rver
answers each ListObjectsV2 page by reading every object of the bucket from
its own directories, so a listing of 10k objects costs it minutes of CPU
(seen: over 3 minutes per listing, with assetd idle) and measures it, not
us. The 100k fs size is measured once (a listing there takes minutes).
QUICK: 200 and 2,000 objects (S3: 200), one run.
"""
import os
import subprocess
import time

from bench import Row, alternate, peak_rss_mib
from peers import SSH_OPTS, OpenSSH, keypair

RSYNC = "/usr/bin/rsync"


def make_folder(root, n):
    """N small files (a few dozen bytes each, distinct) in one folder."""
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        with open(os.path.join(root, "sp6%07d.att.jpg" % i), "w") as f:
            f.write("object %d\n" % i)
    # One fixed mtime for all, so both destinations see identical trees.
    for name in os.listdir(root):
        os.utime(os.path.join(root, name), (1700000000, 1700000000))


def run(ctx):
    if ctx.quick:
        sizes = {"fs": [200, 2000], "s3": [200]}
        runs = 1
    else:
        sizes = {"fs": [1000, 10000, 100000], "s3": [1000]}
        runs = ctx.runs
    key = keypair(ctx.path("keys", "id_bench"))
    ossh = OpenSSH(ctx.workdir, key)
    ctx.on_exit(ossh.stop)
    peer_root = os.path.dirname(ctx.path("peer", "x"))
    peer_ssh = "ssh " + " ".join(ossh.ssh_args())
    peer_sftp = ["sftp", "-q", "-b", "-", "-P", str(ossh.port), "-i", key] + \
        SSH_OPTS + [ossh.target()]

    def sftp_ls(argv, folder, expect=None):
        t0 = time.monotonic()
        r = subprocess.run(argv, input="ls -l %s\n" % folder, text=True,
                           check=True, capture_output=True)
        took = time.monotonic() - t0
        if expect is not None:
            got = sum(1 for l in r.stdout.splitlines() if ".att.jpg" in l)
            if got != expect:
                raise RuntimeError("ls %s listed %d objects, not %d" % (
                    folder, got, expect))
        return took

    def rsync(ssh, src, dest):
        t0 = time.monotonic()
        r = subprocess.run([RSYNC, "-a", "--stats", "-e", ssh, src + "/",
                            dest], check=True, capture_output=True,
                           text=True)
        return time.monotonic() - t0, r.stdout

    srcs = {}
    rows = ctx.rows
    for backend in ("fs", "s3"):
        d = ctx.daemon(backend, conf_extra="LogLevel info\n")
        d.start()
        c = d.add_client("grow" + backend)
        ours_ssh = "ssh -p %d %s" % (d.ssh_port, " ".join(c.ssh_opts()))
        prev = None
        for n in sizes[backend]:
            if n not in srcs:
                srcs[n] = os.path.dirname(ctx.path("data", "f%d" % n, "x"))
                make_folder(srcs[n], n)
            src = srcs[n]
            folder = "g%d" % n
            ours_dest = "%s@127.0.0.1:attachments/%s/" % (c.name, folder)
            peer_dest = "%s:%s/%s/" % (ossh.target(), peer_root, folder)
            created, _ = rsync(ours_ssh, src, ours_dest)
            if backend == "fs":
                rsync(peer_ssh, src, peer_dest)
            # A fresh process for this size's peak RSS.
            d.stop()
            d.start()
            ours_sftp = ["sftp", "-q", "-b", "-", "-P", str(d.ssh_port)] + \
                c.ssh_opts() + ["%s@127.0.0.1" % c.name]
            n_runs = 1 if n >= 100000 else runs
            if n_runs > 1:
                sftp_ls(ours_sftp, "attachments/" + folder, n)
                sftp_ls(peer_sftp, peer_root + "/" + folder, n)
            ls = alternate(lambda: sftp_ls(ours_sftp, "attachments/" + folder,
                                           n),
                           lambda: sftp_ls(peer_sftp,
                                           peer_root + "/" + folder, n),
                           n_runs, higher=False)
            rss_ls = peak_rss_mib(d.proc.pid)
            # Warm the rsync passes only now: rsync's file list would
            # otherwise be the listing's peak RSS.
            rsync(ours_ssh, src, ours_dest)
            rsync(peer_ssh, src, peer_dest)
            rs = alternate(lambda: rsync(ours_ssh, src, ours_dest)[0],
                           lambda: rsync(peer_ssh, src, peer_dest)[0],
                           n_runs, higher=False)
            rss_rs = peak_rss_mib(d.proc.pid)
            here = {"ls": (ls[0], rss_ls), "rs": (rs[0], rss_rs)}

            def growth(kind):
                if prev is None:
                    return "first size"
                t0, r0 = prev[1][kind]
                t1, r1 = here[kind]
                return ("x%.1f the time of %d objects for x%.0f the objects;"
                        " RSS %+.1f MiB" % (t1 / t0, prev[0], n / prev[0],
                                            r1 - r0))
            rows.append(Row(
                "sftp ls -l of a folder of %d objects (%s)" % (n, backend),
                ls[0], ls[1], unit="s", ratio=ls[2],
                target="linear time, flat RSS", rss_mib=rss_ls,
                peer_name="OpenSSH sftp-server, local disk",
                note="%s; folder made by rsync through assetd in %.1f s" % (
                    growth("ls"), created), higher=False, runs=n_runs))
            rows.append(Row(
                "rsync no-change pass over %d objects (%s)" % (n, backend),
                rs[0], rs[1], unit="s", ratio=rs[2],
                target="linear time, flat RSS", rss_mib=rss_rs,
                peer_name="rsync over OpenSSH, local disk",
                note=growth("rs"), higher=False, runs=n_runs))
            prev = (n, here)
        d.stop()
    return rows
