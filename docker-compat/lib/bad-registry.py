#!/usr/bin/env python3
"""A registry that misbehaves on purpose, for the bad-input tests (a real
registry refuses to store such content). Loopback only.

    bad-registry.py OCI_LAYOUT_DIR PORTFILE

  library/notjson:latest    a manifest that is not JSON
  library/truncated:latest  busybox, but the layer download stops halfway
                            (Content-Length says the full size)
  anything else             404 MANIFEST_UNKNOWN / BLOB_UNKNOWN, as a registry
                            that lacks the image answers (a mirror that misses)
"""
import hashlib, json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

layout, portfile = sys.argv[1], sys.argv[2]
MEDIA = "application/vnd.docker.distribution.manifest.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"


def blob(digest):
    path = os.path.join(layout, "busybox", "blobs", "sha256", digest.split(":", 1)[1])
    with open(path, "rb") as f:
        return f.read()


index = json.load(open(os.path.join(layout, "busybox", "index.json")))
manifest_digest = index["manifests"][0]["digest"]
manifest = blob(manifest_digest)
layer_digest = json.loads(manifest)["layers"][0]["digest"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body, ctype="application/json", length=None, send=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        if ctype in (MEDIA, OCI) and code == 200:
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body if send is None else send)
            self.wfile.flush()

    def missing(self, code):
        err = {"errors": [{"code": code, "message": code.lower().replace("_", " "), "detail": {}}]}
        self.reply(404, json.dumps(err).encode())

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        p = self.path.split("?")[0]
        if p in ("/v2/", "/v2"):
            return self.reply(200, b"{}")
        if p.startswith("/v2/library/notjson/manifests/"):
            return self.reply(200, b"<html>this is not a manifest</html>", ctype=MEDIA)
        if p.startswith("/v2/library/truncated/manifests/"):
            return self.reply(200, manifest, ctype=json.loads(manifest).get("mediaType", OCI))
        if p.startswith("/v2/library/truncated/blobs/"):
            digest = p.rsplit("/", 1)[1]
            try:
                data = blob(digest)
            except (OSError, IndexError):
                return self.missing("BLOB_UNKNOWN")
            if digest != layer_digest:
                return self.reply(200, data, ctype="application/octet-stream")
            self.reply(200, data, ctype="application/octet-stream", length=len(data),
                       send=data[: len(data) // 2])
            self.close_connection = True
            return
        if "/manifests/" in p:
            return self.missing("MANIFEST_UNKNOWN")
        return self.missing("BLOB_UNKNOWN")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
