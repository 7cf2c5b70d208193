"""A Python client that talks to a web asset server exactly as Specify does.

Specify 7 (specifyweb/attachment_gw and the front end's attachments code),
in its order:
  1. GET web_asset_store.xml, learn the URLs and the clock offset from the
     X-Timestamp header (Specify 7 fails without it);
  2. GET testkey?random=R&token=T;
  3. POST fileupload as multipart/form-data with the parts in the browser's
     FormData order: file FIRST, then token, store, type, coll;
  4. GET fileget?coll&type=T&filename&scale (123 in the app, 200 and 600 in
     the web portal) and type=O with downloadname, Range for media, and the
     "download all" loop of sequential fetches;
  5. POST filedelete with filename, coll, token form-urlencoded (the
     backend's requests.post(data=...)); 200 and 404 both mean done.
Specify 6 also uploads thumbnails itself (type=T) and names its files
"sp6<digits>...att.<ext>".

Tokens: "<hex>:<ts>", hex = HMAC-MD5(key, str(ts) + name), ts = local time
corrected by the learnt offset. Standard library only.
"""
import hashlib
import hmac
import http.client
import os
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET


def make_token(key, name, ts):
    msg = str(ts).encode() + name.encode("utf-8")
    mac = hmac.new(key.encode(), msg, hashlib.md5).hexdigest()
    return "%s:%d" % (mac, ts)


def for_client(daemon, client, coll="Demo", prefixed=True, key=None):
    """A started SpecifyClient for CLIENT (conftest's Client) of DAEMON: on
    the client's own prefix /c/NAME/, or on the unprefixed routes when not
    PREFIXED; with the client's attachment key unless KEY."""
    base = daemon.http + ("/c/%s" % client.name if prefixed else "")
    c = SpecifyClient(base + "/web_asset_store.xml",
                      key or client.attachment_key, coll)
    c.start()
    return c


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # dict, lower-case names
        self.body = body

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:80])


class SpecifyClient:
    def __init__(self, xml_url, key, coll):
        self.xml_url = xml_url
        self.key = key
        self.coll = coll
        self.urls = {}
        self.offset = 0

    # -- plumbing -------------------------------------------------------
    @staticmethod
    def request(method, url, body=None, headers=None, chunks=None,
                chunk_delay=0.0, timeout=120):
        """One HTTP request; BODY bytes, or CHUNKS an iterable of bytes sent
        one after another (with CHUNK_DELAY seconds between)."""
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        path = u.path + ("?" + u.query if u.query else "")
        headers = dict(headers or {})
        try:
            if chunks is None:
                conn.request(method, path, body=body, headers=headers)
            else:
                conn.putrequest(method, path)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                for c in chunks:
                    conn.send(c)
                    if chunk_delay:
                        time.sleep(chunk_delay)
            r = conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            return Response(r.status, hdrs, data)
        finally:
            conn.close()

    def now(self):
        return int(time.time()) + self.offset

    def token(self, name, ts=None):
        return make_token(self.key, name, self.now() if ts is None else ts)

    # -- 1. discovery ---------------------------------------------------
    def start(self):
        r = self.request("GET", self.xml_url)
        assert r.status == 200, r
        # Specify 7: int(X-Timestamp) - int(time.time()); a KeyError here
        # is the crash the contract warns about.
        self.offset = int(r.headers["x-timestamp"]) - int(time.time())
        root = ET.fromstring(r.body)
        for u in root.findall("url"):
            self.urls[u.get("type")] = u.text
        return r

    # -- 2. key test ----------------------------------------------------
    def testkey(self, key=None):
        rnd = str(uuid.uuid4())
        tok = make_token(key or self.key, rnd, self.now())
        q = urllib.parse.urlencode({"random": rnd, "token": tok})
        return self.request("GET", self.urls["testkey"] + "?" + q)

    # -- 3. upload ------------------------------------------------------
    @staticmethod
    def new_name(ext):
        """Specify 7's attachmentLocation: uuid4 + the original extension."""
        return str(uuid.uuid4()) + ext

    def multipart(self, fields, file_part, file_first=True, boundary=None):
        """(content_type, list of byte chunks). FILE_PART = (field, filename,
        bytes or an iterable of chunks)."""
        b = boundary or "----WebKitFormBoundary" + uuid.uuid4().hex[:16]
        out = []
        def field(n, v):
            out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\""
                        "\r\n\r\n" % (b, n)).encode() + v.encode("utf-8")
                       + b"\r\n")
        def filep():
            fname, fn, content = file_part
            out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\";"
                        " filename=\"%s\"\r\nContent-Type: "
                        "application/octet-stream\r\n\r\n" % (b, fname, fn))
                       .encode("utf-8"))
            if isinstance(content, (bytes, bytearray)):
                out.append(bytes(content))
            else:
                out.extend(content)
            out.append(b"\r\n")
        if file_part and file_first:
            filep()
        for n, v in fields:
            field(n, v)
        if file_part and not file_first:
            filep()
        out.append(("--%s--\r\n" % b).encode())
        return "multipart/form-data; boundary=" + b, out

    def upload(self, data, name, type_="O", coll=None, token=None,
               file_first=True, original_name="photo.jpg", chunk_delay=0.0,
               extra_headers=None):
        tok = self.token(name) if token is None else token
        fields = [("token", tok), ("store", name), ("type", type_),
                  ("coll", self.coll if coll is None else coll)]
        ctype, chunks = self.multipart(fields, ("file", original_name, data),
                                       file_first)
        length = sum(len(c) for c in chunks)
        headers = {"Content-Type": ctype, "Content-Length": str(length),
                   "Origin": "http://specify.example.org"}
        headers.update(extra_headers or {})
        return self.request("POST", self.urls["write"], headers=headers,
                            chunks=chunks, chunk_delay=chunk_delay)

    def upload_sp6_thumbnail(self, data, name):
        """Specify 6 uploads its own thumbnail, fields first, type=T."""
        return self.upload(data, name, type_="T", file_first=False)

    # -- 4. reading ------------------------------------------------------
    def fileget_url(self, name, type_="O", scale=None, downloadname=None,
                    with_token=True, coll=None):
        q = {"coll": self.coll if coll is None else coll, "type": type_,
             "filename": name}
        if scale is not None:
            q["scale"] = str(scale)
        if downloadname is not None:
            q["downloadname"] = downloadname
        if with_token:
            q["token"] = self.token(name)
        return self.urls["read"] + "?" + urllib.parse.urlencode(q)

    def fileget(self, name, type_="O", scale=None, downloadname=None,
                headers=None, method="GET", with_token=True, coll=None):
        return self.request(method, self.fileget_url(
            name, type_, scale, downloadname, with_token, coll),
            headers=headers)

    def thumbnail(self, name, scale=123):
        return self.fileget(name, "T", scale)

    def download_all(self, names):
        """The "download all" button: one plain GET per attachment, one
        after the other; only 200s go into the zip."""
        got = {}
        for n in names:
            r = self.fileget(n, "O", downloadname=n)
            if r.status == 200:
                got[n] = r.body
        return got

    def metadata(self, name, dt=None):
        q = {"coll": self.coll, "filename": name, "token": self.token(name)}
        if dt:
            q["dt"] = dt
        return self.request("GET", self.urls["getmetadata"] + "?" +
                            urllib.parse.urlencode(q))

    # -- 5. delete -------------------------------------------------------
    def delete(self, name, token=None, coll=None):
        body = urllib.parse.urlencode({
            "filename": name, "coll": self.coll if coll is None else coll,
            "token": self.token(name) if token is None else token}).encode()
        return self.request("POST", self.urls["delete"], body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
