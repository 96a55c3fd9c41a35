#!/usr/bin/env python3
"""A stand-in for the Kosli API on 127.0.0.1, for tests only.

Serves HTTPS with a certificate the test made, and implements the two calls the
credential helper makes:
  GET  /api/v2/environments/<org>                                   (is this key valid?)
  POST /api/v2/service-accounts/<org>/<sa>/api-keys/<key_id>/rotate (a new key, with grace)
  GET  /api/v2/service-accounts/<org>/<sa>/api-keys/<key_id>        (a key's metadata: its expiry)
  GET  /api/v2/service-accounts/<org>/<sa>/api-keys                 (every key of the account)
Every key expires, as on Kosli: one without "expires_at" (or 0) gets the maximum
lifetime (365 days from its "created_at", which defaults to when the stand-in
first saw it), and a later date is capped to it. Times in answers are epoch
seconds with a fraction, as Kosli sends them.
plus, for tests:
  GET  /_standin/state     what it holds and every request it saw (with the
                           key_id of the key that authenticated it, never a key)
  POST /_standin/set       merges a JSON object into the state
  POST /_standin/release   lets rotations held by "hold_rotate" answer
  POST /_standin/end_grace {"key_id": "k1"}: that key's grace period ends now
                           (as it would on Kosli once the hours given at rotation
                           have passed; a key never rotated is refused: 409)

The keys it accepts come from a JSON state file (never the command line):
  {"keys": [{"key": "...", "org": "acme", "service_account": "ci", "key_id": "k1",
             "expires_at": 0}],
   "key_field": "key",            # or "api_key": the rotate answer's field name
   "hold_rotate": false,          # true: a rotation waits for /_standin/release
   "fail_next": [503],            # statuses for the next API requests, in order
                                  # (not the api-keys reads, which the daemon makes on its own)
   "key_info_down": false}        # true: an api-keys read gets its connection closed, no answer
The server names clients send (SNI) are listed in the state's "sni" (null for
none). With --plain it speaks plain HTTP instead (for loopback-only http:// hosts).
Prints "ready <port>" on stdout once it listens.
"""
import argparse
import base64
import json
import re
import secrets
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
RELEASE = threading.Event()
STATE = {"keys": [], "key_field": "key", "requests": [], "hold_rotate": False, "held": 0,
         "fail_next": [], "sni": []}

ENVIRONMENTS = re.compile(r"^/api/v2/environments/([^/]+)$")
ROTATE = re.compile(r"^/api/v2/service-accounts/([^/]+)/([^/]+)/api-keys/([^/]+)/rotate$")
API_KEY = re.compile(r"^/api/v2/service-accounts/([^/]+)/([^/]+)/api-keys/([^/]+)$")
API_KEYS = re.compile(r"^/api/v2/service-accounts/([^/]+)/([^/]+)/api-keys$")
MAX_LIFETIME = 365 * 86400


def expiry(entry, asked=None):
    """The key's expiry, as Kosli keeps it: never none, never past the maximum lifetime."""
    created = entry.setdefault("created_at", time.time())
    latest = created + MAX_LIFETIME
    wanted = asked if asked is not None else entry.get("expires_at") or 0
    return min(float(wanted), latest) if wanted else latest


def metadata(entry):
    expires = expiry(entry)  # first: it fills in created_at
    return {"id": entry.get("key_id"), "description": entry.get("description", "a stand-in key"),
            "created_at": entry["created_at"], "expires_at": expires,
            "last_used_at": entry.get("last_used_at")}


def live(entry, now):
    if expiry(entry) < now:
        return False
    if entry.get("grace_until") and entry["grace_until"] < now:
        return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: tests read answers, not logs
        pass

    def answer(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def record(self, method, body=None):
        entry = self.caller()
        request = {"method": method, "path": self.path,
                   "key_id": entry.get("key_id") if entry else None}
        if body is not None:
            request["body"] = body
        STATE["requests"].append(request)

    def injected_failure(self):
        """Answers with the next status of "fail_next", if any; True when it did."""
        if not STATE["fail_next"]:
            return False
        status = STATE["fail_next"].pop(0)
        self.answer(status, {"message": "injected by the stand-in"}, {"Retry-After": "0"})
        return True

    def caller(self):
        # Kosli's rule: "Bearer <key>", or Basic whose username is the key and
        # whose password is anything (even empty; the colon must be there).
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer "):]
        elif auth.startswith("Basic "):
            try:
                user_pass = base64.b64decode(auth[len("Basic "):], validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
            if ":" not in user_pass:
                return None
            token = user_pass.split(":", 1)[0]
        else:
            return None
        now = time.time()
        for entry in STATE["keys"]:
            if secrets.compare_digest(entry["key"], token) and live(entry, now):
                return entry
        return None

    def do_GET(self):
        with LOCK:
            if self.path == "/_standin/state":
                return self.answer(200, STATE)
            self.record("GET")
            one, every = API_KEY.match(self.path), API_KEYS.match(self.path)
            if one or every:
                return self.api_keys(one or every, one is not None)
            if self.injected_failure():
                return None
            m = ENVIRONMENTS.match(self.path)
            if not m:
                return self.answer(404, {"message": "not found"})
            entry = self.caller()
            if entry is None:
                return self.answer(401, {"message": "Invalid API key"})
            if entry["org"] != m.group(1):
                return self.answer(403, {"message": "Forbidden"})
            return self.answer(200, [])

    def api_keys(self, m, one):
        if STATE.get("key_info_down"):
            self.close_connection = True
            return None
        entry = self.caller()
        if entry is None:
            return self.answer(401, {"message": "Invalid API key"})
        org, account = m.group(1), m.group(2)
        if entry["org"] != org:
            return self.answer(403, {"message": "Forbidden"})
        entry["last_used_at"] = time.time()
        keys = [k for k in STATE["keys"] if k.get("org") == org and k.get("service_account") == account]
        if not one:
            return self.answer(200, [metadata(k) for k in keys])
        found = next((k for k in keys if k.get("key_id") == m.group(3)), None)
        if found is None:
            return self.answer(404, {"message": "API key not found"})
        return self.answer(200, metadata(found))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/_standin/set":
            with LOCK:
                STATE.update(body)
            return self.answer(200, {})
        if self.path == "/_standin/release":
            RELEASE.set()
            return self.answer(200, {})
        if self.path == "/_standin/end_grace":
            with LOCK:
                old = next((k for k in STATE["keys"] if k.get("key_id") == body.get("key_id")), None)
                if old is None or not old.get("grace_until"):
                    return self.answer(409, {"message": "no rotated key with that key_id"})
                old["grace_until"] = time.time() - 1
            return self.answer(200, {})
        with LOCK:
            hold = STATE.get("hold_rotate") and ROTATE.match(self.path)
            if hold:
                STATE["held"] += 1
        if hold:
            RELEASE.wait(30)
        with LOCK:
            self.record("POST", body)
            if self.injected_failure():
                return None
            m = ROTATE.match(self.path)
            if not m:
                return self.answer(404, {"message": "not found"})
            org, account, key_id = m.groups()
            entry = self.caller()
            if entry is None:
                return self.answer(401, {"message": "Invalid API key"})
            if entry["org"] != org:
                return self.answer(403, {"message": "Forbidden"})
            grace = body.get("grace_period_hours", 24)
            if not isinstance(grace, int) or not 1 <= grace <= 720:
                return self.answer(400, {"message": "grace_period_hours must be 1-720"})
            old = next((k for k in STATE["keys"]
                        if k.get("key_id") == key_id and k.get("service_account") == account), None)
            if old is None:
                return self.answer(404, {"message": "no such key"})
            now = time.time()
            old["grace_until"] = int(now) + grace * 3600
            new = {"key": "rotated-" + secrets.token_urlsafe(24), "org": org,
                   "service_account": account, "key_id": "k" + secrets.token_hex(4), "created_at": now}
            # Without an expiry the new key keeps the current one's; any is capped to the maximum lifetime.
            new["expires_at"] = expiry(new, body.get("expires_at") or expiry(old))
            STATE["keys"].append(new)
            return self.answer(201, {
                "id": new["key_id"], STATE.get("key_field", "key"): new["key"],
                "description": "rotated by the stand-in", "created_at": now,
                "expires_at": new["expires_at"], "grace_period_expires_at": old["grace_until"]})


class Server(ThreadingHTTPServer):
    """Does each TLS handshake in the request's thread, so a client that never
    finishes one cannot stall the others."""
    daemon_threads = True

    def __init__(self, address, handler, context):
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request, client_address):
        if self.context is None:
            return super().finish_request(request, client_address)
        request.settimeout(20)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # a client that refused our certificate, or went away
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--plain", action="store_true", help="plain HTTP, no TLS")
    parser.add_argument("--state", required=True, help="JSON file with the accepted keys")
    args = parser.parse_args()
    with open(args.state) as f:
        STATE.update(json.load(f))
    context = None
    if not args.plain:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)

        def record_sni(_socket, name, _context):
            with LOCK:
                STATE["sni"].append(name)

        context.sni_callback = record_sni
    server = Server(("127.0.0.1", 0), Handler, context)
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
