"""Storage, S3 backend: a 1 GiB file uploaded (multipart, 5 MiB parts) and
downloaded (one streamed GET) through the store interface with store_pipe,
beside /usr/bin/aws s3 cp of the same file to and from the same test S3
server in the same run. Reports both throughputs and both peak RSS (the
process's maxrss). Target (issue 3): at least the AWS CLI's throughput at
under a quarter of its peak memory. The documented bound for our side:
2 x part size for a writer (10 MiB) + 256 KiB for a reader, over the
process's baseline."""
import os
import subprocess
import time

from bench import ROOT, Row, alternate

BUILD = os.path.join(ROOT, os.environ.get("ASSETD_BUILD", "build/rel"))
PIPE = os.path.join(BUILD, "tools", "store_pipe")
AWS = "/usr/bin/aws"


def run_measured(argv, stdin=None, stdout=None, env=None):
    """Run ARGV; return (seconds, peak RSS in MiB) of that process. The RSS
    comes from /usr/bin/time (a small C parent): a child forked straight
    from this Python process would count Python's own pages as its peak."""
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "assetd-bench-rss %M"] + argv,
                       stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                       env=env)
    took = time.monotonic() - t0
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (argv[0], err[-500:]))
    kb = [l for l in err.splitlines() if l.startswith("assetd-bench-rss ")]
    return took, int(kb[-1].split()[1]) / 1024.0


def run(ctx):
    import conftest
    size_mib = 64 if ctx.quick else 1024
    s3 = ctx.s3
    bucket = s3.create_bucket()
    src = ctx.path("s3", "src.bin")
    with open(src, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    env = conftest.clean_env()
    url = "s3://%s/bench/" % bucket
    base = [PIPE, "--endpoint", s3.endpoint, "--region", conftest.S3_REGION,
            url]
    aws = [AWS, "--endpoint-url", s3.endpoint, "--region",
           conftest.S3_REGION, "--no-progress", "--only-show-errors", "s3",
           "cp"]
    rss = {"ours_up": 0.0, "ours_down": 0.0, "aws_up": 0.0, "aws_down": 0.0}

    def ours_up():
        with open(src, "rb") as f:
            t, m = run_measured(base + ["put", "ours.bin",
                                        str(size_mib << 20)], stdin=f,
                                env=env)
        rss["ours_up"] = max(rss["ours_up"], m)
        return size_mib / t

    def ours_down():
        with open(os.devnull, "wb") as f:
            t, m = run_measured(base + ["get", "ours.bin"], stdout=f, env=env)
        rss["ours_down"] = max(rss["ours_down"], m)
        return size_mib / t

    def aws_up():
        t, m = run_measured(aws + [src, "s3://%s/bench/aws.bin" % bucket],
                            env=env)
        rss["aws_up"] = max(rss["aws_up"], m)
        return size_mib / t

    dst = ctx.path("s3", "aws-down.bin")

    def aws_down():
        t, m = run_measured(aws + ["s3://%s/bench/aws.bin" % bucket, dst],
                            env=env)
        os.unlink(dst)
        rss["aws_down"] = max(rss["aws_down"], m)
        return size_mib / t

    up = alternate(ours_up, aws_up, ctx.runs)
    down = alternate(ours_down, aws_down, ctx.runs)
    os.unlink(src)
    return [
        Row("s3 store upload %d MiB" % size_mib, up[0], up[1], unit="MiB/s",
            ratio=up[2], target=">= aws s3 cp, RSS < 1/4",
            rss_mib=rss["ours_up"], peer_name="aws s3 cp",
            note="peak RSS ours %.0f MiB, aws %.0f MiB" % (
                rss["ours_up"], rss["aws_up"])),
        Row("s3 store download %d MiB" % size_mib, down[0], down[1],
            unit="MiB/s", ratio=down[2], target=">= aws s3 cp, RSS < 1/4",
            rss_mib=rss["ours_down"], peer_name="aws s3 cp",
            note="peak RSS ours %.0f MiB, aws %.0f MiB (aws writes a file, "
            "ours /dev/null)" % (rss["ours_down"], rss["aws_down"])),
    ]
