"""rsync: Debian's rsync client against assetd's native rsync (fs backend
and the test S3 server), beside the same client running stock rsync over
OpenSSH's sshd to local disk on a spare port.

  - first push of 2,000 files of 100 KiB (target: >= 0.8 of the peer's
    throughput);
  - a no-change re-sync of 10,000 small files (target: <= 1.5 times the
    peer's time);
  - a 1 KiB change in the middle of a 200 MiB file (target: total bytes on
    the wire within 2 times the peer's).

The S3 push is followed by the test S3 server's own ceiling: the same
number of 100 KiB PUTs from tests/tools/s3_put_floor, a bare C client (16
keep-alive connections, requests signed and with the headers assetd
sends), and the CPU seconds the server spent on each. No client can push
faster than that server takes PUTs.

QUICK shrinks the sizes (200 files, 1,000 files, 20 MiB).
"""
import json
import os
import random
import shutil
import subprocess
import time

from bench import Row, alternate, cpu_seconds
import conftest
import peers

RSYNC = "/usr/bin/rsync"


def make_tree(root, files, size, seed):
    rnd = random.Random(seed)
    block = bytes(rnd.getrandbits(8) for _ in range(65536))
    per_dir = 100
    for i in range(files):
        d = os.path.join(root, "d%03d" % (i // per_dir))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%05d.jpg" % i), "wb") as f:
            f.write(i.to_bytes(8, "big"))
            left = size - 8
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n


def stats_of(out):
    """Sent + received bytes from rsync's --stats."""
    total = 0
    for line in out.splitlines():
        if line.startswith("Total bytes sent:") or \
           line.startswith("Total bytes received:"):
            total += int(line.split(":")[1].split()[0].replace(",", ""))
    return total


def s3_ceiling(ctx, n, peer_mibs):
    """N PUTs of 100 KiB into the test S3 server from the cheapest client
    (best of two runs), beside the peer's push."""
    tool = os.path.join(conftest.TOOLS, "s3_put_floor")
    bucket = ctx.s3.create_bucket()
    best = None
    cpu = None
    for i in range(2):
        c0 = cpu_seconds(ctx.s3.proc.pid)
        r = subprocess.run([tool, "127.0.0.1", str(ctx.s3.port), bucket,
                            "f%d/" % i, str(n), str(100 * 1024), "16",
                            "assetd"], check=True, capture_output=True,
                           text=True, env=conftest.clean_env())
        t = json.loads(r.stdout)["seconds"]
        if best is None or t < best:
            best = t
            cpu = cpu_seconds(ctx.s3.proc.pid) - c0
    mibs = n * 100 / 1024.0 / best
    return Row("test S3 server alone: %d PUTs of 100 KiB, bare client" % n,
               mibs, peer_mibs, unit="MiB/s",
               ratio=mibs / peer_mibs if peer_mibs else None,
               target="(ceiling)", peer_name="rsync over OpenSSH",
               note="tests/tools/s3_put_floor, 16 keep-alive connections, "
                    "signed as assetd's; %.2f s, server CPU %.2f s; the "
                    "ceiling of the S3 push row" % (best, cpu))


def run(ctx):
    quick = ctx.quick
    n_push = 200 if quick else 2000
    n_many = 1000 if quick else 10000
    big_mib = 20 if quick else 200

    key = peers.keypair(ctx.path("keys", "id_bench"))
    ossh = peers.OpenSSH(ctx.workdir, key)
    ctx.on_exit(ossh.stop)

    src_push = ctx.path("data", "push", "x")
    src_push = os.path.dirname(src_push)
    make_tree(src_push, n_push, 100 * 1024, 1)
    src_many = os.path.dirname(ctx.path("data", "many", "x"))
    make_tree(src_many, n_many, 200, 2)
    big = ctx.path("data", "big", "big.bin")
    rnd = random.Random(3)
    with open(big, "wb") as f:
        chunk = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
        for i in range(big_mib):
            f.write(i.to_bytes(8, "big") + chunk[8:])

    targets = []
    for backend in ("fs", "s3"):
        d = ctx.daemon(backend)
        d.start()
        c = d.add_client("bench%s" % backend)
        ssh = "ssh -p %d %s" % (d.ssh_port, " ".join(c.ssh_opts()))
        targets.append((backend, ssh, "%s@127.0.0.1:attachments/" % c.name))
    peer_ssh = "ssh " + " ".join(ossh.ssh_args())
    peer_root = ctx.path("peer", "x")
    peer_root = os.path.dirname(peer_root)
    peer_dest = "%s:%s/" % (ossh.target(), peer_root)

    def push(ssh, dest, src, extra=()):
        t0 = time.monotonic()
        r = subprocess.run([RSYNC, "-a", "--stats", "-e", ssh] + list(extra) +
                           [src + "/", dest], check=True,
                           capture_output=True, text=True)
        return time.monotonic() - t0, r.stdout

    rows = []
    mib = n_push * 100 / 1024.0
    counter = [0]

    for backend, ssh, dest in targets:
        s3cpu = []

        def ours():
            counter[0] += 1
            c0 = cpu_seconds(ctx.s3.proc.pid) if backend == "s3" else None
            t, _ = push(ssh, dest + "p%d" % counter[0], src_push)
            if c0 is not None:
                s3cpu.append(cpu_seconds(ctx.s3.proc.pid) - c0)
            return mib / t

        def peer():
            counter[0] += 1
            t, _ = push(peer_ssh, peer_dest + "p%d" % counter[0], src_push)
            return mib / t

        o, p, r = alternate(ours, peer, ctx.runs)
        note = ""
        if s3cpu:
            note = "test S3 server CPU %.2f s a push" % min(s3cpu)
        rows.append(Row("rsync first push %d x 100 KiB (%s)" % (n_push, backend),
                        o, p, unit="MiB/s", ratio=r, target=">= 0.8",
                        peer_name="rsync over OpenSSH", note=note))
        if backend == "s3":
            rows.append(s3_ceiling(ctx, n_push, p))

    for backend, ssh, dest in targets:
        push(ssh, dest + "many", src_many)
        push(peer_ssh, peer_dest + "many", src_many)
        o, p, r = alternate(lambda: push(ssh, dest + "many", src_many)[0],
                            lambda: push(peer_ssh, peer_dest + "many",
                                         src_many)[0],
                            ctx.runs, higher=False)
        rows.append(Row("rsync no-change re-sync of %d files (%s)" %
                        (n_many, backend), o, p, unit="s", ratio=r,
                        target="<= 1.5x the time", higher=False,
                        peer_name="rsync over OpenSSH",
                        note="the daemon's mtime cache is warm after the "
                             "first pass"))

    bigdir = os.path.dirname(big)
    for backend, ssh, dest in targets:
        push(ssh, dest + "big", bigdir)
        push(peer_ssh, peer_dest + "big", bigdir)
        flip = [0]

        def change():
            flip[0] += 1
            with open(big, "r+b") as f:
                f.seek(big_mib * (1 << 20) // 2)
                f.write(bytes([flip[0] % 256]) * 1024)
            st = os.stat(big)
            os.utime(big, (st.st_atime, st.st_mtime + 2))

        def ours_bytes():
            change()
            _, out = push(ssh, dest + "big", bigdir)
            push(peer_ssh, peer_dest + "big", bigdir)  # keep the peer level
            return stats_of(out)

        def peer_bytes():
            change()
            _, out = push(peer_ssh, peer_dest + "big", bigdir)
            push(ssh, dest + "big", bigdir)
            return stats_of(out)

        o, p, r = alternate(ours_bytes, peer_bytes, ctx.runs, higher=False)
        rows.append(Row("rsync 1 KiB change in %d MiB, bytes on the wire (%s)"
                        % (big_mib, backend), o, p, unit="bytes", ratio=r,
                        target="<= 2x the bytes", higher=False,
                        peer_name="rsync over OpenSSH"))
    shutil.rmtree(peer_root, ignore_errors=True)
    return rows
