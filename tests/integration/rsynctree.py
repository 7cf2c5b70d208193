"""Helpers shared by the rsync tests: running Debian's rsync, trees of
files on local disk, and the figures of rsync's --stats output."""
import os
import subprocess

MiB = 1024 * 1024
RSYNC = "/usr/bin/rsync"


def run_rsync(shell, args, check=True, timeout=120, env=None):
    """Run rsync with SHELL as its remote shell (-e) and ARGS. Returns
    (returncode, stdout, stderr) as text; with CHECK a failure raises
    AssertionError with both outputs."""
    p = subprocess.run([RSYNC, "-e", shell] + list(args), env=env,
                       capture_output=True, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise AssertionError("rsync %s failed (%d):\n%s\n%s" %
                             (tuple(args), p.returncode, out, err))
    return p.returncode, out, err


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
