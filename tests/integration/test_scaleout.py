"""Two nodes serving one region (docs/SCALING.md): each daemon has its own
catalog, set up with the same assetctl commands (same clients, attachment
keys, collections and SSH keys) and the same host keys, and both share one
S3 bucket. What one node stores, the other serves, over HTTP and SFTP, and
an SSH client sees one host key whichever node it reaches."""
import os
import shutil
import subprocess

import sshtools
from specify_client import for_client


def host_key_fingerprints(port):
    """The SHA256 fingerprints of the host keys a node offers."""
    r = subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"],
                       capture_output=True, text=True, timeout=30)
    keys = [l for l in r.stdout.splitlines() if l and not l.startswith("#")]
    assert keys, r.stderr
    out = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input="\n".join(
        keys) + "\n", capture_output=True, text=True, check=True).stdout
    return sorted(l.split()[1] for l in out.splitlines())


def test_two_nodes_share_one_bucket(make_daemon, tmp_path):
    a = make_daemon("s3", sub="node-a")
    b = make_daemon("s3", sub="node-b")
    # B's region points at A's bucket: one store for the region
    b.ctl("region", "set", "test", "--assets", a.assets)
    # the same catalog changes, run against each node's catalog
    ca = a.add_client("shared", attachment_key="k-shared-0123456789")
    for node in (b,):
        node.ctl("client", "add", "shared", "--region", "test",
                 "--attachment-key", "k-shared-0123456789")
        node.ctl("collection", "add", "shared", "Demo")
        node.ctl("key", "add", "shared", ca.key_path + ".pub")
    cb_info = b.ctl("client", "show", "shared", json_out=True)
    assert cb_info["location"] == ca.location
    # A gets a host key of its own (not the one the harness shares
    # between daemons), and B a copy of A's keys before it first starts
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "",
                    "-f", os.path.join(a.var, "ssh_host_ed25519_key")],
                   check=True)
    a.start()
    for kind in ("ed25519", "rsa"):
        for suffix in ("", ".pub"):
            name = "ssh_host_%s_key%s" % (kind, suffix)
            shutil.copyfile(os.path.join(a.var, name),
                            os.path.join(b.var, name))
            os.chmod(os.path.join(b.var, name),
                     0o644 if suffix else 0o600)
    b.start()
    fa = host_key_fingerprints(a.ssh_port)
    assert fa == host_key_fingerprints(b.ssh_port)
    shared = subprocess.run(
        ["ssh-keygen", "-l", "-f", os.path.join(
            a._host_keys(), "ssh_host_ed25519_key.pub")],
        capture_output=True, text=True, check=True).stdout.split()[1]
    assert shared not in fa  # A's own key, so the copy is what matched

    data = os.urandom(300000)
    # upload over HTTP to A; read over HTTP and SFTP from B
    assert for_client(a, ca).upload(data, "from-a.bin").status == 200
    got = for_client(b, ca).fileget("from-a.bin")
    assert got.status == 200 and got.body == data
    back = tmp_path / "back.bin"
    sshtools.sftp_batch(b, ca, ["get attachments/originals/from-a.bin %s"
                                % back])
    assert back.read_bytes() == data
    # upload over SFTP to B; A sees it over HTTP and SFTP
    src = tmp_path / "b.bin"
    src.write_bytes(data[::-1])
    sshtools.sftp_batch(b, ca, ["put %s attachments/originals/from-b.bin"
                                % src])
    got = for_client(a, ca).fileget("from-b.bin")
    assert got.status == 200 and got.body == data[::-1]
    r = sshtools.sftp_batch(a, ca, ["ls attachments/originals"])
    assert "from-b.bin" in r.stdout and "from-a.bin" in r.stdout
    # a catalog change made on one node only reaches that node: removing
    # the key on A refuses it on A at once, B still takes it until the
    # same command runs there
    fp = a.ctl("key", "list", "shared", json_out=True)[0]["fingerprint"]
    a.ctl("key", "remove", "shared", fp)
    assert sshtools.ssh(a, ca, "true").returncode == 255
    assert sshtools.sftp_batch(b, ca, ["ls"], check=False).returncode == 0
    b.ctl("key", "remove", "shared", fp)
    assert sshtools.sftp_batch(b, ca, ["ls"], check=False).returncode != 0
