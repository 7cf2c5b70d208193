"""Usage accounting (issue 11): what keeping a client's usage in the
catalog costs each write. 10,000 objects of 1 KiB (QUICK: 1,000) put
through a client's metered store - the store every front end writes
through - beside the same puts through the same location opened without a
meter; with no quota and with one (a quota reads the figures at every
open). Also the bare catalog update, per call. fs backend, whose commit
(fsync + rename) is the cheapest a write gets, so the ratio is the worst
case; on S3 a PUT's round trip dwarfs the accounting further."""
import json
import os
import shutil
import subprocess

from bench import ROOT, Row, median

BUILD = os.path.join(ROOT, os.environ.get("ASSETD_BUILD", "build/rel"))
TOOL = os.path.join(BUILD, "tools", "usage_bench")


def run(ctx):
    n = 1000 if ctx.quick else 10000
    rows = []
    for quota in (0, 1 << 40):
        last = {}

        def one():
            d = ctx.path("usage", "run", "x")
            d = os.path.dirname(d)
            shutil.rmtree(d, True)
            os.makedirs(d)
            r = subprocess.run([TOOL, d, str(n), "1024", str(quota)],
                               check=True, capture_output=True, text=True)
            last.update(json.loads(r.stdout))
            shutil.rmtree(d, True)
            return last

        # each run times both, put by put in turn (usage_bench.c), so
        # the pair shares the disk's moods; no alternate() needed
        runs = [one() for _ in range(ctx.runs)]
        o = median([x["metered_us"] for x in runs])
        p = median([x["plain_us"] for x in runs])
        ratio = median([x["plain_us"] / x["metered_us"] for x in runs])
        rows.append(Row("%d puts of 1 KiB, usage kept%s" %
                        (n, ", with a quota" if quota else ""),
                        o, p, unit="us/put", ratio=ratio, higher=False,
                        target=">= 0.9 (accounting under 10%)",
                        peer_name="same store, no meter",
                        note="catalog update %.0f us per call" %
                        last["catalog_add_us"]))
    return rows
