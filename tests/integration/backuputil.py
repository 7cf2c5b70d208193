"""Helpers for the backup tests: a location (a directory or an S3 prefix)
that the tests fill and read straight on the backend, and the parsing of
assetctl sync's summary line."""
import os
import re
import uuid


class Loc:
    """A location URL with direct access to its objects."""

    def __init__(self, url, s3=None):
        assert url.endswith("/")
        self.url = url
        self.s3 = s3
        if url.startswith("file://"):
            self.path = url[7:]
            os.makedirs(self.path, exist_ok=True)
        else:
            rest = url[5:]
            self.bucket, _, self.prefix = rest.partition("/")
            self.client = s3.boto3()  # one client: making one is slow

    @classmethod
    def new(cls, backend, workdir, s3, name, bucket=None):
        """A fresh location on BACKEND: a directory under WORKDIR, or a
        prefix NAME/ in BUCKET (a new bucket if None)."""
        if backend == "fs":
            return cls("file://%s/" % os.path.join(str(workdir), name))
        bucket = bucket or s3.create_bucket()
        return cls("s3://%s/%s/" % (bucket, name), s3)

    def put(self, name, data, mtime=None):
        if self.s3 is None:
            path = os.path.join(self.path, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            if mtime is not None:
                os.utime(path, (mtime, mtime))
        else:
            kw = {}
            if mtime is not None:
                kw["Metadata"] = {"mtime": str(int(mtime))}
            self.client.put_object(Bucket=self.bucket,
                                       Key=self.prefix + name, Body=data,
                                       **kw)

    def get(self, name):
        """The object's bytes, or None if it does not exist."""
        if self.s3 is None:
            try:
                with open(os.path.join(self.path, name), "rb") as f:
                    return f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
        try:
            return self.client.get_object(Bucket=self.bucket,
                                          Key=self.prefix + name)[
                                              "Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def names(self):
        """Every object name below the location (no directory markers, no
        fs temp files)."""
        if self.s3 is None:
            out = []
            for dirpath, _, files in os.walk(self.path):
                for fn in files:
                    if fn.startswith(".assetd-tmp."):
                        continue
                    out.append(os.path.relpath(os.path.join(dirpath, fn),
                                               self.path))
            return sorted(out)
        out = []
        tok = None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": self.prefix}
            if tok:
                kw["ContinuationToken"] = tok
            r = self.client.list_objects_v2(**kw)
            out += [o["Key"][len(self.prefix):] for o in r.get("Contents", [])
                    if not o["Key"].endswith("/")]
            if not r.get("IsTruncated"):
                return sorted(out)
            tok = r["NextContinuationToken"]

    def contents(self):
        return {n: self.get(n) for n in self.names()}


SUMMARY = re.compile(
    r"listed (\d+) \(dst (\d+)\), copied (\d+) \([^)]*\), skipped (\d+), "
    r"deleted (\d+), failed (\d+) in [0-9.]+ s")


def summary(text):
    """The numbers of the summary line in TEXT as a dict."""
    m = SUMMARY.search(text)
    assert m, "no summary line in %r" % text
    keys = ("listed", "listed_dst", "copied", "skipped", "deleted", "failed")
    return dict(zip(keys, (int(x) for x in m.groups())))


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])
