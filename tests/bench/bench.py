"""bench.py - run every benchmark scenario beside its peer, in one run.

    /usr/bin/python3 tests/bench/bench.py [--only NAME] [--quick] [--runs N]

Each scenario lives in tests/bench/scenarios/<name>.py and defines
    def run(ctx): -> list of Row
It measures ours and the peer alternately, ctx.runs times, and reports the
median of each and the median of the pairwise ratios (on a noisy machine,
the ratio within one run is the figure that counts). Results go to
docs/BENCHMARKS.md with the machine they ran on; nothing here asserts speed.

The table is merged, not rewritten: each row records which scenario made it,
at which size (full or QUICK), from how many runs and when, so
`--only NAME` replaces NAME's rows and keeps every other row with its own
date and note. A QUICK run never overwrites rows measured at full size.
Hand-written sections below the table ("## Profiles") are kept as they are;
`--fresh` starts the table over.

The scenarios reuse the integration harness (tests/integration/conftest.py):
the real daemon, the real test S3 server, real clients and real peers, all on
loopback, with data generated from a fixed seed.
"""
import argparse
import datetime
import importlib.util
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

import conftest  # noqa: E402  (the integration harness: Daemon, S3Server)


class Row:
    """One line of the results table.

    ours/peer are in UNIT; for throughputs higher is better, for times lower
    is better (HIGHER says which). ratio is ours/peer for throughputs and
    peer/ours for times, so a ratio above 1 always means we are ahead."""

    def __init__(self, scenario, ours, peer=None, unit="", ratio=None,
                 target="", rss_mib=None, cpu_s=None, peer_name="",
                 note="", higher=True, runs=None):
        self.scenario = scenario
        self.runs = runs        # when not ctx.runs (a figure taken once)
        self.ours = ours
        self.peer = peer
        self.unit = unit
        self.ratio = ratio
        self.target = target
        self.rss_mib = rss_mib
        self.cpu_s = cpu_s
        self.peer_name = peer_name
        self.note = note
        self.higher = higher


def median(xs):
    return statistics.median(xs) if xs else None


def alternate(ours, peer, runs, higher=True):
    """Call ours() and peer() alternately RUNS times; each returns a figure
    (a throughput if HIGHER, else a time). Returns (median ours, median
    peer, median of pairwise ratios, where > 1 means ours is ahead)."""
    o, p, r = [], [], []
    for i in range(runs):
        if i % 2 == 0:
            a = ours()
            b = peer()
        else:
            b = peer()
            a = ours()
        o.append(a)
        p.append(b)
        if a and b:
            r.append(a / b if higher else b / a)
    return median(o), median(p), median(r)


def peak_rss_mib(pid):
    """VmHWM of a live process, in MiB."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    """User + system CPU seconds of a live process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return None


def timed(argv, **kw):
    """Run a command; return its wall time in seconds. Fails loudly."""
    t0 = time.monotonic()
    subprocess.run(argv, check=True, **kw)
    return time.monotonic() - t0


def child_peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


class Context:
    def __init__(self, workdir, quick, runs):
        self.workdir = workdir
        self.quick = quick
        self.runs = runs
        self._s3 = None
        self._daemons = []
        # Rows a scenario adds as it goes (ctx.rows.append): kept if a later
        # part of the same scenario fails.
        self.rows = []
        self._cleanups = []

    def path(self, *parts):
        p = os.path.join(self.workdir, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    @property
    def s3(self):
        if self._s3 is None:
            d = os.path.join(self.workdir, "s3")
            os.makedirs(d, exist_ok=True)
            self._s3 = conftest.S3Server(d)
            self._s3.start()
        return self._s3

    def daemon(self, backend, conf_extra=""):
        """A started assetd on BACKEND ("fs" or "s3")."""
        sub = os.path.join(self.workdir, "assetd-%d" % len(self._daemons))
        d = conftest.Daemon(sub, backend, self.s3 if backend == "s3" else None,
                            conf_extra)
        self._daemons.append(d)
        return d

    def on_exit(self, fn):
        self._cleanups.append(fn)

    def close(self):
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception:
                traceback.print_exc()
        for d in self._daemons:
            d.stop()
        if self._s3:
            self._s3.stop()


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, Linux %s" % (cpu, os.cpu_count() or 0,
                                        platform.release())


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return "%.0f" % x
    return ("%%.%df" % digits) % x


HEADER = ("| scenario | assetd | peer | unit | ratio | target | assetd RSS MiB"
          " | CPU s | note | run |")
RULE = "|---|---|---|---|---|---|---|---|---|---|"


def row_line(r, run):
    """One table line; RUN says where the row came from (scenario file,
    full or QUICK size, number of alternating runs, UTC date)."""
    peer = fmt(r.peer)
    if r.peer_name and r.peer is not None:
        peer = "%s (%s)" % (peer, r.peer_name)
    return "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r.scenario, fmt(r.ours), peer, r.unit, fmt(r.ratio), r.target,
        fmt(r.rss_mib, 1), fmt(r.cpu_s, 1), r.note, run)


def run_label(module, quick, runs, when):
    return "%s, %s, %d run%s, %s" % (module, "QUICK" if quick else "full",
                                      runs, "" if runs == 1 else "s",
                                      when.strftime("%Y-%m-%d %H:%M"))


def parse_run(line):
    """(module, is_full) of a table line written by row_line, else None."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 10:
        return None
    parts = [p.strip() for p in cells[-1].split(",")]
    if len(parts) < 2:
        return None
    return parts[0], parts[1] == "full"


def read_report(path):
    """The parts of an existing BENCHMARKS.md a partial run keeps: its table
    lines, its failure lines, and any hand-written sections after them (a
    "## " heading and everything below, e.g. the profiles)."""
    lines, failures, tail = [], [], ""
    if not os.path.exists(path):
        return lines, failures, tail
    with open(path) as f:
        text = f.read()
    i = text.find("\n## ")
    if i >= 0:
        tail = text[i + 1:]
        text = text[:i + 1]
    in_fail = False
    for l in text.splitlines():
        if l.startswith("| ") and not l.startswith("| scenario"):
            lines.append(l)
        elif l.startswith("Scenarios that failed"):
            in_fail = True
        elif in_fail and l.startswith("- "):
            failures.append(l)
    return lines, failures, tail


def merge_rows(old_lines, new_lines, ran, quick):
    """Rows of the scenarios just run replace theirs; every other row keeps
    its own figures, date and note. A QUICK run never replaces rows measured
    at full size (its figures are printed, not written over them)."""
    full_modules = set()
    for l in old_lines:
        pr = parse_run(l)
        if pr and pr[1]:
            full_modules.add(pr[0])
    add = [(m, l) for m, l in new_lines
           if not (quick and m in full_modules)]
    new_names = {l.split("|")[1].strip() for _, l in new_lines}
    keep_old = []
    for l in old_lines:
        pr = parse_run(l)
        if pr is None:
            # A row written without the run column (by hand, or by an
            # older bench.py): kept, marked, until a row of the same name
            # replaces it.
            if l.split("|")[1].strip() not in new_names:
                if len(l.strip().strip("|").split("|")) < 10:
                    l = l.rstrip() + " - |"
                keep_old.append(("~", l))
            continue
        mod, full = pr
        if mod in ran and (not quick or not full):
            continue
        keep_old.append((mod, l))
    rows = keep_old + add
    rows.sort(key=lambda ml: ml[0])   # stable: a scenario's own order stays
    return [l for _, l in rows]


def write_report(path, lines, failures, tail):
    now = datetime.datetime.now(datetime.timezone.utc)
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (tests/bench/bench.py); last updated %s UTC."
        " Each row says in its *run* column which scenario file made it, at"
        " full size or QUICK (small sizes, not the targets' sizes), from how"
        " many alternating runs, and when: `make bench ONLY=name` replaces"
        " only that scenario's rows." % now.strftime("%Y-%m-%d %H:%M"),
        "",
        "Machine: %s. It is shared with other work and noisy: absolute"
        " figures move from run to run; the ratios, taken within one run from"
        " alternating measurements of ours and the peer, are the figures that"
        " count." % machine(),
        "",
        "Each figure is the median of alternating runs of ours and the peer in"
        " the same run; *ratio* is the median of the pairwise ratios, oriented"
        " so that above 1 means assetd is ahead (throughput ours/peer, time"
        " peer/ours). RSS is assetd's peak resident memory (VmHWM).",
        "",
        HEADER,
        RULE,
    ] + lines
    if failures:
        out += ["", "Scenarios that failed to run:", ""] + failures
    out.append("")
    text = "\n".join(out)
    if tail:
        text += "\n" + tail
    with open(path, "w") as f:
        f.write(text)


def load_scenarios(only):
    d = os.path.join(HERE, "scenarios")
    names = sorted(n[:-3] for n in os.listdir(d)
                   if n.endswith(".py") and not n.startswith("_"))
    if only:
        wanted = set(only.split(","))
        names = [n for n in names if n in wanted]
    mods = []
    for n in names:
        spec = importlib.util.spec_from_file_location(n, os.path.join(d, n + ".py"))
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        mods.append((n, m))
    return mods


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=os.environ.get("ONLY", ""))
    ap.add_argument("--quick", action="store_true",
                    default=os.environ.get("QUICK", "") not in ("", "0"))
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--fresh", action="store_true",
                    help="start the table afresh instead of merging rows")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    new_lines, failures, ran = [], [], set()
    for name, mod in load_scenarios(args.only):
        workdir = tempfile.mkdtemp(prefix="assetd-bench-%s-" % name)
        ctx = Context(workdir, args.quick, runs)
        print("bench %s ..." % name, flush=True)
        t0 = time.monotonic()
        ran.add(name)
        started = datetime.datetime.now(datetime.timezone.utc)
        try:
            got = mod.run(ctx)
            for r in got:
                label = run_label(name, args.quick, r.runs or runs, started)
                new_lines.append((name, row_line(r, label)))
                print("  %s: ours %s, peer %s %s, ratio %s (target %s)" % (
                    r.scenario, fmt(r.ours), fmt(r.peer), r.unit,
                    fmt(r.ratio), r.target), flush=True)
        except Exception as e:
            traceback.print_exc()
            for r in ctx.rows:
                label = run_label(name, args.quick, r.runs or runs, started)
                new_lines.append((name, row_line(r, label)))
            failures.append("- %s: %s: %s (%s)" % (
                name, type(e).__name__, str(e)[:200],
                run_label(name, args.quick, runs, started)))
        finally:
            ctx.close()
            shutil.rmtree(workdir, ignore_errors=True)
        print("  (%.0f s)" % (time.monotonic() - t0), flush=True)
    old_lines, old_fail, tail = ([], [], "")
    if not args.fresh:
        old_lines, old_fail, tail = read_report(args.out)
    lines = merge_rows(old_lines, new_lines, ran, args.quick)
    failures = [f for f in old_fail
                if f[2:].split(":", 1)[0] not in ran] + failures
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_report(args.out, lines, failures, tail)
    print("wrote %s" % os.path.relpath(args.out, ROOT))
    return 1 if any(f[2:].split(":", 1)[0] in ran for f in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
