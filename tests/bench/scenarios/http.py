"""HTTP (the Specify endpoint), beside its peers:

- fileget of 1 MiB originals at concurrency 1 and 32 (fs backend) against
  nginx serving the same files (wrk, keep-alive). Target: >= 0.8 of nginx.
- first thumbnail (S = 123) of a 24-megapixel JPEG and of a 20-page PDF
  against ImageMagick `convert FILE -resize '123x123>' OUT` (the reference
  server's method). Target: >= 5 times faster.
- a 2 GiB upload through fileupload to each backend: assetd's peak RSS
  growth. Target: < 64 MiB.
"""
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import uuid

from bench import Row, alternate, cpu_seconds, peak_rss_mib, median
from peers import Nginx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "integration"))
from media import pdf_bytes  # noqa: E402
from specify_client import SpecifyClient  # noqa: E402

CONVERT = "/usr/bin/convert"
GS = "/usr/bin/gs"


def wrk_rps(url, conns, seconds):
    out = subprocess.run(["wrk", "-t", str(min(conns, 2)), "-c", str(conns),
                          "-d", "%ds" % seconds, url], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errs:
        raise RuntimeError("wrk saw %s errors: %s" % (errs.group(1), url))
    return float(m.group(1))


def fileget_rows(ctx):
    d = ctx.daemon("fs")
    d.start()
    cl = d.add_client("bench", collections=("Bench",), ssh_key=False)
    root = cl.location[len("file://"):]
    os.makedirs(os.path.join(root, "originals"), exist_ok=True)
    name = str(uuid.uuid4()) + ".jpg"
    with open(os.path.join(root, "originals", name), "wb") as f:
        f.write(os.urandom(1 << 20))
    ngx = Nginx(ctx.workdir, root)
    ctx.on_exit(ngx.stop)
    ours_url = "%s/fileget?coll=Bench&type=O&filename=%s" % (d.http, name)
    peer_url = "http://127.0.0.1:%d/originals/%s" % (ngx.port, name)
    secs = 2 if ctx.quick else 5
    rows = []
    for conns in (1, 32):
        o, p, r = alternate(lambda: wrk_rps(ours_url, conns, secs),
                            lambda: wrk_rps(peer_url, conns, secs), ctx.runs)
        rows.append(Row("fileget 1 MiB, concurrency %d (fs)" % conns, o, p,
                        unit="MiB/s", ratio=r, target=">= 0.8",
                        rss_mib=peak_rss_mib(d.proc.pid), peer_name="nginx",
                        note="wrk, keep-alive, page cache warm"))
    return rows


def make_jpeg(ctx, w, h):
    path = ctx.path("media", "big.jpg")
    if not os.path.exists(path):
        v = ctx.path("media", "noise.v")
        subprocess.run(["vips", "gaussnoise", v, str(w), str(h)], check=True)
        subprocess.run(["vips", "colourspace", v, ctx.path("media", "c.v"),
                        "srgb"], check=True)
        subprocess.run(["vips", "bandjoin", "%s %s %s" % ((ctx.path("media", "c.v"),) * 3),
                        ctx.path("media", "rgb.v")], check=True)
        subprocess.run(["vips", "copy", ctx.path("media", "rgb.v"),
                        path + "[Q=90]"], check=True)
    return path


def thumbnail_rows(ctx):
    d = ctx.daemon("fs")
    d.start()
    cl = d.add_client("thumbs", collections=("T",), ssh_key=False)
    c = SpecifyClient(d.http + "/web_asset_store.xml", cl.attachment_key, "T")
    c.start()
    w, h = (1200, 800) if ctx.quick else (6000, 4000)
    jpg = make_jpeg(ctx, w, h)
    pdf = ctx.path("media", "doc.pdf")
    with open(pdf, "wb") as f:
        f.write(pdf_bytes(pages=20, w=612, h=792))
    rows = []
    for label, path, ext in (("%.1f MP JPEG" % (w * h / 1e6), jpg, ".jpg"),
                             ("20-page PDF", pdf, ".pdf")):
        with open(path, "rb") as f:
            data = f.read()

        # CPU seconds too: on a loaded machine both sides wait for a CPU,
        # and the CPU each spent is the steadier figure.
        cpu = {"ours": [], "peer": []}
        gs_used = [False]

        def ours():
            n = c.new_name(ext)
            assert c.upload(data, n).status == 200
            c0 = cpu_seconds(d.proc.pid)
            t0 = time.monotonic()
            r = c.thumbnail(n, 123)
            dt = time.monotonic() - t0
            cpu["ours"].append(cpu_seconds(d.proc.pid) - c0)
            assert r.status == 200, r
            return dt

        def peer():
            out = ctx.path("media", "im_out" + (".png" if ext == ".pdf" else ".jpg"))
            u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            p = subprocess.run([CONVERT, path, "-resize", "123x123>", out],
                               capture_output=True)
            if p.returncode != 0 and ext == ".pdf":
                # Debian's ImageMagick reads its policy only from
                # /etc/ImageMagick-6 (MAGICK_CONFIGURE_PATH is ignored for
                # policy.xml) and that policy forbids PDF. Run what
                # convert runs for a PDF itself: its ghostscript delegate
                # (every page at 72 dpi, pngalpha), then the resize.
                pages = ctx.path("media", "gs", "page-%03d.png")
                for f in os.listdir(os.path.dirname(pages)):
                    os.unlink(os.path.join(os.path.dirname(pages), f))
                p = subprocess.run(
                    [GS, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE",
                     "-dNOPROMPT", "-dMaxBitmap=500000000",
                     "-dAlignToPixels=0", "-dGridFitTT=2",
                     "-sDEVICE=pngalpha", "-dTextAlphaBits=4",
                     "-dGraphicsAlphaBits=4", "-r72x72",
                     "-sOutputFile=" + pages, path], capture_output=True)
                if p.returncode == 0:
                    p = subprocess.run(
                        [CONVERT, pages.replace("%03d", "*"), "-resize",
                         "123x123>", out], capture_output=True)
                gs_used[0] = True
            if p.returncode != 0:
                return None
            dt = time.monotonic() - t0
            u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu["peer"].append(u1.ru_utime + u1.ru_stime - u0.ru_utime -
                               u0.ru_stime)
            return dt

        o, p, r = alternate(ours, peer, ctx.runs, higher=False)
        note = "first request, cache empty"
        co, cp = median(cpu["ours"]), median(cpu["peer"])
        if co and cp:
            note += "; CPU s: ours %.2f, convert %.2f (%.1fx)" % (co, cp,
                                                                cp / co)
        if gs_used[0]:
            note += "; peer: convert's own ghostscript delegate + convert" \
                    " -resize (Debian's policy forbids PDF in convert)"
        if p is None:
            note += "; convert refused the file (Debian's ImageMagick policy" \
                    " forbids PDF)"
        rows.append(Row("first thumbnail S=123, %s" % label, o, p, unit="s",
                        ratio=r, target=">= 5x faster", peer_name="convert",
                        rss_mib=peak_rss_mib(d.proc.pid), note=note,
                        higher=False))
    return rows


def upload_rows(ctx, backend):
    total = (256 << 20) if ctx.quick else (2 << 30)
    d = ctx.daemon(backend)
    d.start()
    cl = d.add_client("up" + backend, collections=("U",), ssh_key=False)
    c = SpecifyClient(d.http + "/web_asset_store.xml", cl.attachment_key, "U")
    c.start()
    time.sleep(0.5)
    before = peak_rss_mib(d.proc.pid)
    block = os.urandom(1 << 20)

    def chunks():
        for _ in range(total >> 20):
            yield block
    name = c.new_name(".bin")
    t0 = time.monotonic()
    r = c.upload(chunks(), name, extra_headers={})
    secs = time.monotonic() - t0
    assert r.status == 200, r
    after = peak_rss_mib(d.proc.pid)
    return [Row("upload %d MiB via fileupload (%s)" % (total >> 20, backend),
                after - before, unit="MiB RSS growth", target="< 64 MiB",
                rss_mib=after, note="%.0f MiB/s; file part first (staged in the store)"
                % ((total >> 20) / secs), higher=False)]


def run(ctx):
    rows = []
    rows += fileget_rows(ctx)
    rows += thumbnail_rows(ctx)
    for backend in ("fs", "s3"):
        try:
            rows += upload_rows(ctx, backend)
        except Exception as e:  # report the row as failed, keep the rest
            rows.append(Row("upload via fileupload (%s)" % backend, None,
                            note="failed: %s" % str(e)[:100]))
    return rows
