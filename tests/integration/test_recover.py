"""What a killed writer leaves behind is cleaned up when the daemon starts
(issues 3 and 10): S3 multipart uploads are journalled in DataDir/s3-uploads
and aborted at the next start; fs temp files whose writer died are removed.
A writer that is still alive (another process) is left alone in both cases.

The writers are store_pipe processes (the same store code as the daemon and
assetctl) journalling into the daemon's DataDir, killed with SIGKILL midway.
The test S3 server has no AbortMultipartUpload (it answers 405), so the
abort is seen where it is sent: in the fault proxy's request log, with the
journalled upload ID, and in the daemon's log.
"""
import os
import signal
import subprocess
import time

from conftest import S3_REGION, TOOLS, clean_env, wait_for
from faultproxy import FaultProxy

PIPE = os.path.join(TOOLS, "store_pipe")
MiB = 1024 * 1024


def writer(location, name, endpoint=None, journal=None, env=None):
    """A store_pipe put that reads its object from a pipe we hold."""
    argv = [PIPE]
    if endpoint:
        argv += ["--endpoint", endpoint, "--region", S3_REGION]
    if journal:
        argv += ["--journal", journal]
    argv += [location, "put", name]
    return subprocess.Popen(argv, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env or clean_env())


def entries(jdir):
    if not os.path.isdir(jdir):
        return []
    return sorted(n for n in os.listdir(jdir) if n.endswith(".upload"))


def entry_fields(path):
    with open(path) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f)


def test_s3_uploads_of_a_killed_writer_are_aborted_at_start(
        make_daemon, s3server):
    d = make_daemon("s3")
    proxy = FaultProxy(s3server.port)
    try:
        jdir = os.path.join(d.var, "s3-uploads")
        env = clean_env(ASSETD_S3_PART_SIZE=str(MiB))
        loc = "s3://%s/crash/" % d.bucket
        # one writer killed after two parts went out...
        dead = writer(loc, "dead.bin", proxy.endpoint, jdir, env)
        dead.stdin.write(os.urandom(2 * MiB + 100))
        dead.stdin.flush()
        first = wait_for(lambda: entries(jdir), what="a journal entry")
        dead_entry = entry_fields(os.path.join(jdir, first[0]))
        assert dead_entry["key"] == "crash/dead.bin"
        assert dead_entry["bucket"] == d.bucket
        wait_for(lambda: [e for e in proxy.requests("PUT")
                          if "partNumber=2" in e[2]], what="part 2")
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        # ...and one still alive, mid-upload
        live = writer(loc, "live.bin", proxy.endpoint, jdir, env)
        live_data = os.urandom(3 * MiB)
        live.stdin.write(live_data[:2 * MiB])
        live.stdin.flush()
        wait_for(lambda: len(entries(jdir)) == 2, what="the live entry")
        live_name = [n for n in entries(jdir) if n != first[0]][0]

        d.start()
        wait_for(lambda: "event=recovered" in d.log(), what="recovery")
        log = d.log()
        uid = dead_entry["upload_id"]
        # the abort went out for the dead upload, and only for it
        deletes = [e for e in proxy.requests("DELETE") if "uploadId" in e[2]]
        assert len(deletes) == 1, deletes
        assert deletes[0][1].endswith("/crash/dead.bin")
        assert uid.replace("=", "%3D") in deletes[0][2] or uid in deletes[0][2]
        # the test server cannot abort (405): the entry is settled anyway
        assert "event=s3_upload_abandoned" in log and uid in log
        assert "s3_uploads_settled=1" in log
        assert entries(jdir) == [live_name]
        # the live writer finishes normally; its entry goes with it
        live.stdin.write(live_data[2 * MiB:])
        live.stdin.close()
        assert live.wait(60) == 0, live.stderr.read()
        assert entries(jdir) == []
        assert s3server.get(d.bucket, "crash/live.bin") == live_data
        assert s3server.keys(d.bucket, "crash/") == {
            "crash/live.bin": len(live_data)}
    finally:
        proxy.close()


def temps(root):
    out = []
    for dirpath, _, files in os.walk(root):
        out += [os.path.join(dirpath, f) for f in files
                if f.startswith(".assetd-tmp.")]
    return sorted(out)


def test_fs_temp_files_of_a_killed_writer_are_removed_at_start(make_daemon):
    d = make_daemon("fs")
    c = d.add_client("kufish", ssh_key=False)
    root = c.location[len("file://"):]
    os.makedirs(os.path.join(root, "originals"), exist_ok=True)
    dead = writer(c.location, "originals/dead.jpg")
    dead.stdin.write(os.urandom(300 * 1024))
    dead.stdin.flush()
    wait_for(lambda: temps(root), what="the dead writer's temp file")
    time.sleep(0.2)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    dead_tmp = temps(root)
    live = writer(c.location, "originals/live.jpg")
    live.stdin.write(b"x" * 1000)
    live.stdin.flush()
    wait_for(lambda: len(temps(root)) == 2, what="the live temp file")
    live_tmp = sorted(set(temps(root)) - set(dead_tmp))

    d.start()
    wait_for(lambda: "event=recovered" in d.log(), what="recovery")
    assert "temp_files_removed=1" in d.log()
    assert temps(root) == live_tmp      # the live writer's file stays
    live.stdin.write(b"y" * 1000)
    live.stdin.close()
    assert live.wait(30) == 0, live.stderr.read()
    assert temps(root) == []
    with open(os.path.join(root, "originals", "live.jpg"), "rb") as f:
        assert f.read() == b"x" * 1000 + b"y" * 1000
    assert not os.path.exists(os.path.join(root, "originals", "dead.jpg"))
