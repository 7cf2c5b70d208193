"""A loopback stand-in for the EC2 instance metadata service (IMDSv2), as
AWS documents it, serving instance-role credentials:

  PUT /latest/api/token                    needs X-aws-ec2-metadata-token-
                                           ttl-seconds (1..21600); answers
                                           a session token
  GET /latest/meta-data/iam/security-credentials/
                                           the role name (needs the token)
  GET /latest/meta-data/iam/security-credentials/ROLE
                                           {"Code": "Success", "AccessKeyId",
                                            "SecretAccessKey", "Token",
                                            "Expiration", ...}

Requests without a valid token get 401, as IMDSv2 answers. Every request
is recorded in .log as (method, path, headers).
"""
import datetime
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class IMDS:
    def __init__(self, key, secret, role="assetd-test-role",
                 session_token="imds-session-token", lifetime=3600):
        self.key = key
        self.secret = secret
        self.role = role
        self.session_token = session_token
        self.lifetime = lifetime      # seconds until Expiration
        self.tokens = set()
        self.log = []
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body, ctype="text/plain"):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                imds.log.append(("PUT", self.path, dict(self.headers)))
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                if self.path != "/latest/api/token":
                    return self._send(404, "not found")
                if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                    return self._send(400, "bad ttl")
                tok = secrets.token_urlsafe(32)
                imds.tokens.add(tok)
                self._send(200, tok)

            def do_GET(self):
                imds.log.append(("GET", self.path, dict(self.headers)))
                if self.headers.get("X-aws-ec2-metadata-token") not in \
                        imds.tokens:
                    return self._send(401, "unauthorized")
                base = "/latest/meta-data/iam/security-credentials/"
                if self.path == base:
                    return self._send(200, imds.role)
                if self.path == base + imds.role:
                    now = datetime.datetime.now(datetime.timezone.utc)
                    exp = now + datetime.timedelta(seconds=imds.lifetime)
                    fmt = "%Y-%m-%dT%H:%M:%SZ"
                    doc = {
                        "Code": "Success",
                        "LastUpdated": now.strftime(fmt),
                        "Type": "AWS-HMAC",
                        "AccessKeyId": imds.key,
                        "SecretAccessKey": imds.secret,
                        "Token": imds.session_token,
                        "Expiration": exp.strftime(fmt),
                    }
                    return self._send(200, json.dumps(doc, indent=2),
                                      "application/json")
                self._send(404, "not found")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def fetches(self):
        """How many times the role's credentials were fetched."""
        return sum(1 for m, p, _ in self.log
                   if m == "GET" and p.endswith("/" + self.role))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
