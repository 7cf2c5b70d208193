"""Test media made at test time: PNG written here, other formats converted
with libvips' CLI (libvips-tools), EXIF written with exiftool, PDF written
here (ImageMagick's policy forbids writing PDF on Debian)."""
import os
import re
import struct
import subprocess
import zlib


def png_bytes(w, h, alpha=False):
    """An RGB(A) gradient, so that thumbnails have real content."""
    bpp = 4 if alpha else 3
    raw = bytearray()
    for y in range(h):
        raw.append(0)
        for x in range(w):
            px = [x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), 128]
            if alpha:
                px.append(255 if x < w // 2 else 0)
            raw.extend(px)

    def chunk(t, d):
        c = t + d
        return struct.pack(">I", len(d)) + c + struct.pack(
            ">I", zlib.crc32(c) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6 if alpha else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b""))


def pdf_bytes(pages=2, w=300, h=400):
    """A PDF whose pages are W x H points, each with a blue rectangle on a
    transparent (unpainted) page."""
    objs = []
    kids = " ".join("%d 0 R" % (3 + 2 * i) for i in range(pages))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(("<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages)).encode())
    for i in range(pages):
        content = ("0 0 1 rg %d %d %d %d re f" % (40, 40 + i, w // 2, h // 3)).encode()
        objs.append(("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
                     "/Contents %d 0 R >>" % (w, h, 4 + 2 * i)).encode())
        objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content +
                    b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objs) + 1, xref)
    return bytes(out)


def convert(tmpdir, png, ext, name="img"):
    """PNG bytes -> bytes of the same picture as EXT (.jpg .gif .tif .heic)."""
    src = os.path.join(str(tmpdir), name + ".png")
    dst = os.path.join(str(tmpdir), name + ext)
    with open(src, "wb") as f:
        f.write(png)
    subprocess.run(["vips", "copy", src, dst], check=True,
                   capture_output=True)
    with open(dst, "rb") as f:
        return f.read()


def jpeg_with_exif(tmpdir, w=640, h=480):
    """A JPEG with known EXIF tags (exiftool)."""
    data = convert(tmpdir, png_bytes(w, h), ".jpg", "exif")
    path = os.path.join(str(tmpdir), "exif.jpg")
    with open(path, "wb") as f:
        f.write(data)
    subprocess.run(["exiftool", "-q", "-overwrite_original",
                    "-Make=AssetTestCam", "-Model=Model 7",
                    "-DateTimeOriginal=2021:06:15 10:20:30",
                    "-GPSLatitude=38.95", "-GPSLatitudeRef=N",
                    "-GPSLongitude=95.26", "-GPSLongitudeRef=W", path],
                   check=True, capture_output=True)
    with open(path, "rb") as f:
        return f.read()


def image_info(tmpdir, data, name="probe"):
    """(width, height, bands, loader) of image bytes, decoded by libvips."""
    path = os.path.join(str(tmpdir), name)
    with open(path, "wb") as f:
        f.write(data)
    out = subprocess.run(["vipsheader", path], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r": (\d+)x(\d+) \S+, (\d+) bands?, \S+, (\w+)", out)
    assert m, out
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)


def pixel(tmpdir, data, x, y, name="pixel"):
    path = os.path.join(str(tmpdir), name)
    with open(path, "wb") as f:
        f.write(data)
    out = subprocess.run(["vips", "getpoint", path, str(x), str(y)],
                         check=True, capture_output=True, text=True).stdout
    return [float(v) for v in out.split()]
