"""The admin listener: /metrics in Prometheus' text format and /healthz,
which answers 503 while a region's store is down and 200 once it is back."""
import time
import urllib.error
import urllib.request

import conftest


def get(d, path):
    url = "http://127.0.0.1:%d%s" % (d.admin_port, path)
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type")


def test_metrics_text_format(daemon):
    status, body, ctype = get(daemon, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    for family, kind in (("assetd_requests_total", "counter"),
                         ("assetd_s3_request_seconds", "histogram"),
                         ("assetd_sessions_active", "gauge")):
        assert "# TYPE %s %s\n" % (family, kind) in body
        assert "# HELP %s " % family in body
    assert get(daemon, "/nothing")[0] == 404


def healthz_becomes(d, want, timeout=60):
    """Poll /healthz until it answers WANT (the store's state is probed in
    the background); the last (status, body)."""
    deadline = time.time() + timeout
    while True:
        status, body, _ = get(d, "/healthz")
        if status == want or time.time() > deadline:
            return status, body
        time.sleep(0.5)


def test_healthz_follows_the_store(tmp_path):
    s3 = conftest.S3Server(str(tmp_path / "s3"))
    s3.start()
    d = conftest.Daemon(tmp_path / "d", "s3", s3)
    try:
        d.start()
        status, body, _ = get(d, "/healthz")
        assert status == 200, body
        assert "catalog: ok" in body and "region test: ok" in body
        s3.stop()
        status, body = healthz_becomes(d, 503)
        assert status == 503, body
        assert "region test: " in body and "region test: ok" not in body
        s3.start()  # same port, same data
        status, body = healthz_becomes(d, 200)
        assert status == 200, body
    finally:
        d.stop()
        s3.stop()
