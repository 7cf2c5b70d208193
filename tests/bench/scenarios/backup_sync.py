"""Snapshot sync, S3 -> S3 on the test S3 server: 10,000 objects of which
10 % are missing or changed in size at the destination, `assetctl sync SRC
DST` beside `/usr/bin/aws s3 sync SRC DST --size-only` (the old cron's
command) against the same server. Before each timed run the same 10 % is
taken away from that tool's destination again, so both start from the same
state. Target: at least 2 times faster."""
import os
import random
import subprocess
import time

from bench import Row, alternate, cpu_seconds, median
import conftest


def run(ctx):
    n = 200 if ctx.quick else 10000
    changed = n // 10
    s3 = ctx.s3
    d = ctx.daemon("s3")
    c = s3.boto3()
    src = d.bucket
    dst_ours = s3.create_bucket()
    dst_peer = s3.create_bucket()
    # Ours syncs the region, as the daemon's schedule does: the region's
    # snapshot location is where its endpoint and credentials come from.
    d.ctl("region", "set", "test", "--snapshot", "s3://%s/" % dst_ours)
    rnd = random.Random(7)
    keys = ["coll%d/originals/%08x.jpg" % (i % 7, rnd.getrandbits(32))
            for i in range(n)]
    body = os.urandom(4096)
    for k in keys:
        c.put_object(Bucket=src, Key="assets/" + k, Body=body)
    env = conftest.clean_env()
    srcurl = "s3://%s/assets/" % src

    def aws(*args):
        subprocess.run(["/usr/bin/aws", "--endpoint-url", s3.endpoint,
                        "s3"] + list(args), check=True, env=env,
                       stdout=subprocess.DEVNULL)

    # both destinations start as full copies
    aws("sync", srcurl, "s3://%s/" % dst_ours, "--only-show-errors")
    aws("sync", srcurl, "s3://%s/" % dst_peer, "--only-show-errors")
    victims = rnd.sample(keys, changed)

    def damage(bucket):
        """Half of the victims go missing, half change size."""
        half = len(victims) // 2
        for i in range(0, half, 1000):
            c.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in victims[i:min(i + 1000,
                                                              half)]]})
        for k in victims[half:]:
            c.put_object(Bucket=bucket, Key=k, Body=b"short")

    # The test server's CPU seconds over each timed run: both tools wait on
    # that one Node process, so this is the figure the machine's load does
    # not move (wall time does).
    server_cpu = {"ours": [], "peer": []}

    def server_timed(who, fn):
        c0 = cpu_seconds(s3.proc.pid)
        t0 = time.monotonic()
        fn()
        wall = time.monotonic() - t0
        server_cpu[who].append(cpu_seconds(s3.proc.pid) - c0)
        return wall

    def ours():
        damage(dst_ours)
        return server_timed("ours", lambda: subprocess.run(
            [conftest.ASSETCTL, "-f", d.conf_path, "sync", "test"],
            check=True, env=env, stdout=subprocess.DEVNULL))

    def peer():
        damage(dst_peer)
        return server_timed("peer", lambda: aws(
            "sync", srcurl, "s3://%s/" % dst_peer, "--size-only",
            "--only-show-errors"))

    o, p, r = alternate(ours, peer, ctx.runs, higher=False)
    return [Row("sync S3->S3 %d objects, %d changed" % (n, changed), o, p,
                unit="s", ratio=r, target=">= 2x aws s3 sync",
                peer_name="aws s3 sync --size-only", higher=False,
                note="SyncConcurrency 32, server-side copies; test server "
                "CPU %.2f s (ours) vs %.2f s (aws), medians"
                % (median(server_cpu["ours"]), median(server_cpu["peer"])))]
