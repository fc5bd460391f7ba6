#!/usr/bin/env python3
"""A token server for the test registry's bearer auth (the distribution
registry's `auth: token`): GET /token with the right basic credentials returns a
JWT, signed ES256 with KEY and carrying CERT in x5c, granting the scope asked
for. Anything else is 401. Loopback only.

    token-server.py PORTFILE KEY CERT ISSUER USER PASS
"""
import base64, json, os, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography import x509

portfile, keyfile, certfile, issuer, user, password = sys.argv[1:7]
key = serialization.load_pem_private_key(open(keyfile, "rb").read(), None)
cert = x509.load_pem_x509_certificate(open(certfile, "rb").read())
cert_der = cert.public_bytes(serialization.Encoding.DER)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(service, scopes):
    access = []
    for s in scopes:
        kind, name, actions = s.split(":", 2) if s.count(":") >= 2 else (s, "", "")
        # A repository name may contain ':' (host:port); actions are after the last ':'.
        if kind == "repository":
            name, actions = s[len("repository:"):].rsplit(":", 1)
        access.append({"type": kind, "name": name, "actions": actions.split(",")})
    now = int(time.time())
    header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(cert_der).decode()]}
    claims = {"iss": issuer, "sub": user, "aud": service, "exp": now + 600,
              "nbf": now - 10, "iat": now, "jti": b64(os.urandom(12)), "access": access}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
    return signing + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if u.path != "/token" or self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"details":"incorrect username or password"}')
            return
        t = token(q.get("service", [""])[0], q.get("scope", []))
        body = json.dumps({"token": t, "access_token": t, "expires_in": 600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
