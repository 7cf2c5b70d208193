"""Helpers shared by the rsync tests: trees of files on local disk, and
the figures of rsync's --stats output."""
import os

MiB = 1024 * 1024


def stat_of(out, label):
    """An integer from rsync's --stats output ("Literal data: 1,234 bytes")."""
    for line in out.splitlines():
        if line.startswith(label + ":"):
            return int(line.split(":", 1)[1].split()[0].replace(",", ""))
    raise AssertionError("no %r in:\n%s" % (label, out))


def write_tree(root, files):
    """Write FILES (relative name -> bytes) below ROOT; returns FILES."""
    for name, data in files.items():
        p = os.path.join(str(root), name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data)
    return files


def read_tree(root):
    """Relative name -> bytes of every file below ROOT."""
    out = {}
    for d, _, files in os.walk(str(root)):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, str(root))] = fh.read()
    return out
