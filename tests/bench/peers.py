"""peers.py - the peers the benchmarks measure us against, each started on a
spare loopback port with a throw-away configuration under the bench's work
directory: OpenSSH's sshd with sftp-server (also the transport for stock
rsync), nginx, and rclone serving SFTP in front of the test S3 server."""
import os
import subprocess
import time

import conftest

SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]


def keypair(path):
    if not os.path.exists(path):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path],
                       check=True)
    return path


class OpenSSH:
    """sshd + sftp-server as the current user, keys only, on 127.0.0.1."""

    def __init__(self, workdir, client_key, cipher=None):
        self.dir = os.path.join(workdir, "openssh")
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        self.port = conftest.free_port()
        self.user = os.environ.get("USER") or "root"
        hostkey = keypair(os.path.join(self.dir, "host_ed25519"))
        auth = os.path.join(self.dir, "authorized_keys")
        with open(client_key + ".pub") as f, open(auth, "w") as g:
            g.write(f.read())
        os.chmod(auth, 0o600)
        self.conf = os.path.join(self.dir, "sshd_config")
        with open(self.conf, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\n" % (self.port, hostkey))
            f.write("AuthorizedKeysFile %s\nPasswordAuthentication no\n" % auth)
            f.write("KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
            f.write("PermitRootLogin prohibit-password\nPidFile %s/sshd.pid\n" % self.dir)
            f.write("Subsystem sftp /usr/lib/openssh/sftp-server\n")
            f.write("MaxStartups 1000:30:1000\nMaxSessions 1000\n")
            # sshd runs every command and subsystem through the user's
            # shell. bash, started by sshd, sources ~/.bashrc, and the
            # bench user's (root's) may do slow work unrelated to OpenSSH
            # (seen: a version manager's init, ~0.3 s per login, charged to
            # every rsync run and sftp session). With SHLVL already 1, bash
            # counts itself nested and skips it, as for a stock account.
            f.write("SetEnv SHLVL=1\n")
            if cipher:
                f.write("Ciphers %s\n" % cipher)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "log"), "wb"))
        conftest.wait_port(self.port, 10, self.proc)
        self.client_key = client_key

    def ssh_args(self):
        return ["-p", str(self.port), "-i", self.client_key] + SSH_OPTS

    def target(self):
        return "%s@127.0.0.1" % self.user

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Nginx:
    """nginx serving ROOT on a spare port, as a plain static file server.
    It writes an access log line per request, as nginx does by default and
    as assetd does (its http_request log line): both pay for it."""

    def __init__(self, workdir, root, workers=2):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.port = conftest.free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            if os.getuid() == 0:
                f.write("user root root;\n")  # read the bench's own files
            f.write("""daemon off;
worker_processes %d;
pid %s/nginx.pid;
error_log %s/logs/error.log;
events { worker_connections 4096; }
http {
  access_log %s/logs/access.log;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp; fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp; scgi_temp_path %s/tmp;
  server { listen 127.0.0.1:%d; root %s; }
}
""" % (workers, self.dir, self.dir, self.dir, self.dir, self.dir, self.dir,
                self.dir, self.dir, self.port, root))
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-p", self.dir, "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conftest.wait_port(self.port, 10, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class RcloneSFTP:
    """rclone serve sftp over a bucket of the test S3 server."""

    def __init__(self, workdir, s3, bucket, client_key):
        self.dir = os.path.join(workdir, "rclone")
        os.makedirs(self.dir, exist_ok=True)
        self.port = conftest.free_port()
        auth = os.path.join(self.dir, "authorized_keys")
        with open(client_key + ".pub") as f, open(auth, "w") as g:
            g.write(f.read())
        env = conftest.clean_env(
            RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=s3.endpoint,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=conftest.S3_KEY,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=conftest.S3_SECRET,
            RCLONE_CONFIG_BENCH_REGION=conftest.S3_REGION,
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true")
        self.proc = subprocess.Popen(
            ["rclone", "serve", "sftp", "bench:%s" % bucket, "--addr",
             "127.0.0.1:%d" % self.port, "--authorized-keys", auth,
             "--vfs-cache-mode", "writes", "--cache-dir", os.path.join(self.dir, "cache"),
             "--user", "bench"],
            env=env, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "log"), "wb"))
        conftest.wait_port(self.port, 20, self.proc)
        self.client_key = client_key

    def ssh_args(self):
        return ["-P", str(self.port), "-i", self.client_key] + SSH_OPTS

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def wait_until(pred, timeout=60, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False
