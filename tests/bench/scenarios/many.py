"""Many sessions (issue 9): assetd under many concurrent clients, beside
the same load on its peers.

- SFTP: 200 concurrent sessions (QUICK: 20), each uploading then
  downloading 10 MiB (QUICK: 2 MiB) with OpenSSH's `sftp -b`, against
  assetd (fs backend) and against OpenSSH's sshd + sftp-server on the same
  disk. Reported: total throughput, per-session time p50/p99, failed
  sessions (target: none), assetd's peak RSS (target: under 512 MiB).
  The clients are OpenSSH's own, one process each: the cheapest real
  client there is (paramiko in threads would be the bottleneck), and the
  same for both servers; they share the 2 cores with the server, so the
  absolute rates are the machine's, the ratio is the figure.
- HTTP: 1,000 concurrent keep-alive connections (QUICK: 200) fetching
  cached thumbnails (S = 123) of 50 different JPEGs, round-robin, with wrk
  and a Lua script, against nginx serving the same thumbnail bytes as
  static files. Reported: requests/s, latency p50/p99, errors (target:
  none), assetd's peak RSS.
"""
import os
import re
import subprocess
import threading
import time

from bench import Row, alternate, median, peak_rss_mib
from peers import SSH_OPTS, Nginx, OpenSSH, keypair

CIPHER = "aes128-gcm@openssh.com"


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


# ---- SFTP ------------------------------------------------------------------

def sftp_storm(argv_for, n, src, remote_dir):
    """N sftp processes at once, session i putting SRC to REMOTE_DIR/s<i>
    then getting it back to /dev/null. Returns (wall seconds, per-session
    seconds, failures)."""
    times = [None] * n
    fails = [0]
    lock = threading.Lock()

    def one(i):
        t0 = time.monotonic()
        cmds = "put %s %s/s%03d.bin\nget %s/s%03d.bin /dev/null\n" % (
            src, remote_dir, i, remote_dir, i)
        r = subprocess.run(argv_for(), input=cmds, text=True,
                           capture_output=True)
        times[i] = time.monotonic() - t0
        if r.returncode != 0:
            with lock:
                fails[0] += 1

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0, times, fails[0]


def sftp_rows(ctx):
    n = 10 if ctx.quick else 200
    each_mib = 2 if ctx.quick else 10
    src = ctx.path("data", "each.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(each_mib << 20))
    d = ctx.daemon("fs", conf_extra="LogLevel info\nPerSourceMaxStartups %d\n"
                   "MaxStartups %d\nMaxConnections %d\n"
                   % (n + 50, n + 50, n + 50))
    d.start()
    c = d.add_client("bench")
    key = keypair(ctx.path("keys", "id_bench"))
    peer = OpenSSH(ctx.workdir, key, cipher=CIPHER)
    ctx.on_exit(peer.stop)
    peer_dir = os.path.dirname(ctx.path("openssh-files", "x"))
    base = ["sftp", "-q", "-b", "-", "-o", "Ciphers=" + CIPHER]
    ours_argv = base + ["-P", str(d.ssh_port)] + c.ssh_opts() + \
        ["bench@127.0.0.1"]
    peer_argv = base + ["-P", str(peer.port), "-i", key] + SSH_OPTS + \
        [peer.target()]
    stats = {"ours": [], "peer": []}
    fails = {"ours": 0, "peer": 0}
    total_mib = 2.0 * n * each_mib

    def measure(side, argv, remote):
        wall, times, f = sftp_storm(lambda: argv, n, src, remote)
        stats[side].append(times)
        fails[side] += f
        return total_mib / wall

    o, p, r = alternate(lambda: measure("ours", ours_argv, "attachments"),
                        lambda: measure("peer", peer_argv, peer_dir),
                        ctx.runs)
    rss = peak_rss_mib(d.proc.pid)
    lat = {}
    for side in ("ours", "peer"):
        lat[side] = (median([pct(t, 50) for t in stats[side]]),
                     median([pct(t, 99) for t in stats[side]]))
    note = ("per-session time p50/p99: ours %.1f/%.1f s, OpenSSH %.1f/%.1f s;"
            " failed sessions: ours %d, OpenSSH %d; %s" % (
                lat["ours"][0], lat["ours"][1], lat["peer"][0],
                lat["peer"][1], fails["ours"], fails["peer"], CIPHER))
    return [Row("%d concurrent sftp sessions, %d MiB put + get each (fs)" %
                (n, each_mib), o, p, unit="MiB/s total", ratio=r,
                target="no errors, RSS < 512 MiB", rss_mib=rss,
                peer_name="OpenSSH sftp-server", note=note)]


# ---- HTTP ------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_run(base_url, paths, conns, secs, script_path):
    """wrk with CONNS keep-alive connections cycling through PATHS.
    Returns (requests/s, p50 ms, p99 ms, errors)."""
    with open(script_path, "w") as f:
        f.write("local paths = {%s}\n" % ", ".join('"%s"' % p
                                                   for p in paths))
        f.write("local i = 0\n"
                "request = function()\n"
                "  i = i + 1\n"
                "  return wrk.format(\"GET\", paths[(i % #paths) + 1])\n"
                "end\n")
    p = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d",
                        "%ds" % secs, "--timeout", "10s", "--latency",
                        "-s", script_path, base_url],
                       check=True, capture_output=True, text=True)
    if p.stderr.strip():   # e.g. a script error: wrk would GET / instead
        raise RuntimeError("wrk: %s" % p.stderr.strip()[:300])
    out = p.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(p):
        m = re.search(r"^\s+%d%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, out, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else None
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    if errors:
        print("    wrk saw %d errors against %s:\n%s" % (errors, base_url, out),
              flush=True)
    return rps, lat(50), lat(99), errors


def http_rows(ctx):
    conns = 200 if ctx.quick else 1000
    secs = 2 if ctx.quick else 10
    n_images = 50
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                    "integration"))
    from specify_client import SpecifyClient
    # every wrk connection comes from 127.0.0.1: lift the per-address cap
    d = ctx.daemon("fs", conf_extra="LogLevel info\n"
                   "HTTPMaxConnectionsPerSource 0\n")
    d.start()
    cl = d.add_client("thumbs", collections=("T",), ssh_key=False)
    c = SpecifyClient(d.http + "/web_asset_store.xml", cl.attachment_key, "T")
    c.start()
    # 50 different 800x600 JPEGs (noise, so each is a real decode).
    v = ctx.path("media", "noise.v")
    subprocess.run(["vips", "gaussnoise", v, "800", "600"], check=True)
    nginx_root = os.path.dirname(ctx.path("nginx-root", "x"))
    ours_paths, peer_paths = [], []
    for i in range(n_images):
        jpg = ctx.path("media", "im%02d.jpg" % i)
        subprocess.run(["vips", "linear", v, jpg + "[Q=85]", "1",
                        str(i * 3)], check=True)
        with open(jpg, "rb") as f:
            data = f.read()
        name = c.new_name(".jpg")
        assert c.upload(data, name).status == 200
        r = c.thumbnail(name, 123)       # the first request fills the cache
        assert r.status == 200, r
        url = c.fileget_url(name, "T", 123, with_token=False)
        ours_paths.append(url[len(d.http):])
        with open(os.path.join(nginx_root, "t%02d.jpg" % i), "wb") as f:
            f.write(r.body)
        peer_paths.append("/t%02d.jpg" % i)
    ngx = Nginx(ctx.workdir, nginx_root)
    ctx.on_exit(ngx.stop)
    peer_base = "http://127.0.0.1:%d" % ngx.port
    for base, path in ((d.http, ours_paths[0]), (peer_base, peer_paths[0])):
        got = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                              "%{http_code}", base + path],
                             capture_output=True, text=True).stdout
        if got != "200":
            raise RuntimeError("GET %s%s answered %s" % (base, path, got))
    script = ctx.path("wrk", "paths.lua")
    res = {"ours": [], "peer": []}

    def measure(side, base, paths):
        got = wrk_run(base, paths, conns, secs, script)
        res[side].append(got)
        return got[0]

    o, p, r = alternate(lambda: measure("ours", d.http, ours_paths),
                        lambda: measure("peer", peer_base, peer_paths),
                        ctx.runs)

    def summary(side):
        xs = res[side]
        return (median([x[1] for x in xs if x[1] is not None]),
                median([x[2] for x in xs if x[2] is not None]),
                sum(x[3] for x in xs))
    so, sp = summary("ours"), summary("peer")
    note = ("wrk -t2 -c%d %ds, %d thumbnails round-robin; latency p50/p99: "
            "ours %.1f/%.1f ms, nginx %.1f/%.1f ms; errors: ours %d, "
            "nginx %d" % (conns, secs, n_images, so[0], so[1], sp[0], sp[1],
                          so[2], sp[2]))
    return [Row("%d keep-alive connections fetching cached thumbnails" %
                conns, o, p, unit="requests/s", ratio=r,
                target="no errors", rss_mib=peak_rss_mib(d.proc.pid),
                peer_name="nginx, static files", note=note)]


def run(ctx):
    return sftp_rows(ctx) + http_rows(ctx)
