"""Storage, fs backend: a 1 GiB object of unknown size streamed through a
store_writer (1 MiB writes, temp file + fsync + rename) and back through a
store_reader, beside dd writing (conv=fsync) and reading the same amount on
the same disk. Reports both throughputs and our peak RSS (VmHWM), which
must not grow with the object: the fs backend buffers nothing itself."""
import json
import os
import subprocess
import time

from bench import ROOT, Row, alternate

BUILD = os.path.join(ROOT, os.environ.get("ASSETD_BUILD", "build/rel"))
STORE_CLI = os.path.join(BUILD, "tools", "store_cli")


def run(ctx):
    size_mib = 64 if ctx.quick else 1024
    size = size_mib << 20
    loc = ctx.path("fs", "loc", "x")
    loc = os.path.dirname(loc)
    url = "file://%s/" % loc
    last = {}

    def ours_stream():
        r = subprocess.run([STORE_CLI, url, "stream", "big.bin", str(size)],
                           check=True, capture_output=True, text=True)
        last.update(json.loads(r.stdout))
        return last

    peer_file = ctx.path("fs", "dd.bin")
    peer = {}

    def peer_stream():
        t0 = time.monotonic()
        subprocess.run(["dd", "if=/dev/zero", "of=" + peer_file, "bs=1M",
                        "count=%d" % size_mib, "conv=fsync", "status=none"],
                       check=True)
        t1 = time.monotonic()
        subprocess.run(["dd", "if=" + peer_file, "of=/dev/null", "bs=1M",
                        "status=none"], check=True)
        t2 = time.monotonic()
        os.unlink(peer_file)
        peer["write_seconds"] = t1 - t0
        peer["read_seconds"] = t2 - t1
        return peer

    rows = []
    w = alternate(lambda: size_mib / ours_stream()["write_seconds"],
                  lambda: size_mib / peer_stream()["write_seconds"],
                  ctx.runs)
    rss = last["vmhwm_kb"] / 1024.0
    rows.append(Row("fs store write %d MiB (unknown size)" % size_mib,
                    w[0], w[1], unit="MiB/s", ratio=w[2],
                    target="~ dd conv=fsync", rss_mib=rss,
                    peer_name="dd conv=fsync",
                    note="RSS of the store_cli process"))
    r = alternate(lambda: size_mib / ours_stream()["read_seconds"],
                  lambda: size_mib / peer_stream()["read_seconds"],
                  ctx.runs)
    rows.append(Row("fs store read %d MiB" % size_mib, r[0], r[1],
                    unit="MiB/s", ratio=r[2], target="~ dd",
                    rss_mib=last["vmhwm_kb"] / 1024.0, peer_name="dd",
                    note="page cache warm for both"))
    return rows
