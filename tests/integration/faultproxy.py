"""A small fault-injecting HTTP/1.1 proxy, put in front of the real test S3
server to test how the S3 backend behaves when S3 misbehaves.

The client talks to the proxy as if it were the S3 endpoint (path-style;
the Host header is forwarded untouched, so signatures still check). Each
request is matched against the rules in order; the first rule that matches
and still has uses left acts:

    Rule(action, method=None, path=None, query=None, times=None, after=0)

  action   "503"        answer 503 SlowDown (an S3 error body)
           "500"        answer 500 InternalError
           "cut"        read AFTER bytes of the request body, then reset
                        the connection (an upload cut midway)
           "cut_reply"  forward the request, send AFTER bytes of the reply
                        body, then reset (a download cut midway)
           "truncate"   forward the request, send only the first AFTER
                        bytes of the whole reply (status line, headers and
                        body), then close cleanly (a reply cut short)
           "stall"      read the request, then say nothing until the client
                        gives up (a hung server)
           "200_error"  answer 200 with an <Error> body, without forwarding
                        (as S3 may answer CompleteMultipartUpload)
           "check_md5"  what S3 does and the test server does not: answer
                        400 BadDigest when the request's Content-MD5 is not
                        the MD5 of its body; forward it otherwise
  method   "PUT", "GET", ... or None for any
  path     a regular expression searched in the path, or None
  query    a regular expression searched in the query string, or None
  times    how many requests the rule applies to (None = always)

Every request is recorded in .log as (method, path, query, action or
"pass", headers) so tests can count tries and look at what was sent;
.connections counts the TCP connections clients opened.
"""
import base64
import hashlib
import http.client
import re
import socket
import struct
import threading
import time
import urllib.parse


class Rule:
    def __init__(self, action, method=None, path=None, query=None,
                 times=None, after=0):
        self.action = action
        self.method = method
        self.path = re.compile(path) if path else None
        self.query = re.compile(query) if query else None
        self.times = times
        self.after = after
        self.used = 0

    def matches(self, method, path, query):
        if self.times is not None and self.used >= self.times:
            return False
        if self.method and self.method != method:
            return False
        if self.path and not self.path.search(path):
            return False
        if self.query and not self.query.search(query):
            return False
        return True


ERROR_BODY = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
              '<Message>%s</Message><RequestId>fault</RequestId></Error>')


def reset(sock):
    """Close with a TCP reset, as a dropped connection looks."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.rules = []
        self.log = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    # -- control ------------------------------------------------------
    def add(self, *args, **kw):
        r = Rule(*args, **kw)
        with self.lock:
            self.rules.append(r)
        return r

    def clear(self):
        with self.lock:
            self.rules = []
            self.log = []

    def requests(self, method=None, path=None):
        with self.lock:
            return [e for e in self.log
                    if (method is None or e[0] == method)
                    and (path is None or re.search(path, e[1]))]

    def close(self):
        self.stopping.set()
        self.sock.close()

    # -- serving ------------------------------------------------------
    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _pick(self, method, path, query):
        with self.lock:
            for r in self.rules:
                if r.matches(method, path, query):
                    r.used += 1
                    return r
        return None

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while self._one(c, f):
                pass
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            try:
                f.close()
                c.close()
            except OSError:
                pass

    def _one(self, c, f):
        line = f.readline(65536)
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = []
        while True:
            h = f.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        hmap = {k.lower(): v for k, v in headers}
        u = urllib.parse.urlsplit(target)
        path, query = u.path, u.query
        rule = self._pick(method, path, query)
        action = rule.action if rule else "pass"
        with self.lock:
            self.log.append((method, path, query, action, hmap))
        length = int(hmap.get("content-length", "0") or 0)

        if action == "cut":
            f.read(min(rule.after, length))
            reset(c)
            return False
        body = f.read(length) if length else b""
        if action == "stall":
            # Hold the connection, say nothing; end when the client does.
            while not self.stopping.is_set():
                time.sleep(0.2)
                try:
                    c.setblocking(False)
                    if c.recv(1, socket.MSG_PEEK) == b"":
                        break
                except BlockingIOError:
                    pass
                finally:
                    c.setblocking(True)
            return False
        if action == "200_error":
            msg = ERROR_BODY % ("InternalError", "injected fault")
            self._reply(c, 200, [("Content-Type", "application/xml")],
                        msg.encode(), method)
            return True
        if action == "check_md5" and "content-md5" in hmap and \
                base64.b64encode(hashlib.md5(body).digest()).decode() != \
                hmap["content-md5"]:
            msg = ERROR_BODY % ("BadDigest", "The Content-MD5 you specified "
                                "did not match what we received.")
            self._reply(c, 400, [("Content-Type", "application/xml")],
                        msg.encode(), method)
            return True
        if action in ("503", "500"):
            code = "SlowDown" if action == "503" else "InternalError"
            msg = ERROR_BODY % (code, "injected fault")
            self._reply(c, int(action), [("Content-Type", "application/xml")],
                        msg.encode(), method)
            return True

        # Forward to the real server.
        up = http.client.HTTPConnection("127.0.0.1", self.upstream_port,
                                        timeout=120)
        up.putrequest(method, target, skip_host=True,
                      skip_accept_encoding=True)
        for k, v in headers:
            if k.lower() in ("connection", "keep-alive"):
                continue
            up.putheader(k, v)
        up.endheaders(body if body else None)
        resp = up.getresponse()
        data = resp.read() if method != "HEAD" else b""
        rheaders = [(k, v) for k, v in resp.getheaders()
                    if k.lower() not in ("connection", "keep-alive",
                                         "transfer-encoding",
                                         "content-length")]
        status = resp.status
        up.close()
        if action == "truncate":
            head = "HTTP/1.1 %d %s\r\n" % (status, resp.reason)
            for k, v in rheaders:
                head += "%s: %s\r\n" % (k, v)
            clen = resp.getheader("Content-Length") if method == "HEAD" \
                else len(data)
            head += "Content-Length: %s\r\n\r\n" % clen
            raw = head.encode("latin-1") + (b"" if method == "HEAD" else data)
            c.sendall(raw[:rule.after])
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return False
        if action == "cut_reply":
            head = "HTTP/1.1 %d %s\r\n" % (status, resp.reason)
            for k, v in rheaders:
                head += "%s: %s\r\n" % (k, v)
            head += "Content-Length: %d\r\n\r\n" % len(data)
            c.sendall(head.encode("latin-1") + data[:rule.after])
            time.sleep(0.05)
            reset(c)
            return False
        clen = None
        if method == "HEAD":
            clen = resp.getheader("Content-Length")
        self._reply(c, status, rheaders, data, method, resp.reason, clen)
        return True

    def _reply(self, c, status, headers, data, method, reason="", clen=None):
        head = "HTTP/1.1 %d %s\r\n" % (status, reason or "Fault")
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        head += "Content-Length: %s\r\n" % (clen if clen is not None
                                             else len(data))
        head += "Connection: keep-alive\r\n\r\n"
        c.sendall(head.encode("latin-1") + (b"" if method == "HEAD"
                                            else data))


class ProxiedS3:
    """The test S3 server as a daemon sees it through PROXY: give it to
    conftest's Daemon in place of the s3server fixture. Only the endpoint
    differs; everything else (buckets, reading objects back) goes to the
    real server."""

    def __init__(self, real, proxy):
        self.real = real
        self.endpoint = proxy.endpoint

    def __getattr__(self, name):
        return getattr(self.real, name)
