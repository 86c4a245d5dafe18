#!/usr/bin/env python3
"""A local stand-in for the notification services the daemon talks to (Telegram Bot API,
Discord and Slack incoming webhooks, ntfy, signed webhooks), for the integration tests.

It answers the way each real service documents, records every request it receives, and can be
told to fail, rate-limit (429 with the service's own wait hint), delay or hang. WEBHOOK
signatures are verified here with Python's own `hmac` — an implementation independent of the
daemon's.

Usage: notify_receiver.py            prints "LISTENING <port>" and serves on 127.0.0.1.

Control endpoints (JSON):
  GET  /__requests                  every recorded request, oldest first
  POST /__reset                     forget requests and behaviours
  POST /__behave {prefix: {...}}    for paths starting with prefix: mode ok|fail|429|hang|delay,
                                    "times" (apply to the next N requests, then back to ok),
                                    "delay" / "retry_after" (seconds), "secret" (WEBHOOK HMAC key)
  POST /__verify {secret, timestamp, body, signature}  -> {valid}
"""

import hashlib
import hmac
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
REQUESTS = []
BEHAVIOURS = {}
COUNTER = [0]


def verify(secret, timestamp, body, signature):
    """X-WAIaaS-Signature: sha256=hex(HMAC-SHA256(secret, "<timestamp>.<raw body>"))."""
    if not signature or not signature.startswith("sha256="):
        return False
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, signature[len("sha256="):])


def behaviour(path):
    """The behaviour for a path (longest matching prefix), consuming one use of a limited one."""
    with LOCK:
        best = None
        for prefix in BEHAVIOURS:
            if path.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        if best is None:
            return {}
        b = dict(BEHAVIOURS[best])
        if "times" in BEHAVIOURS[best]:
            BEHAVIOURS[best]["times"] -= 1
            if BEHAVIOURS[best]["times"] < 0:
                keep = {k: v for k, v in BEHAVIOURS[best].items() if k == "secret"}
                BEHAVIOURS[best] = keep
                b = dict(keep)
        return b


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if body or status != 204:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def handle_any(self, method):
        body = self.read_body()
        path = self.path.split("?")[0]
        if path.startswith("/__"):
            return self.control(method, path, body)
        b = behaviour(path)
        record = {
            "t": time.time(),
            "method": method,
            "path": path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        try:
            record["json"] = json.loads(body) if body else None
        except ValueError:
            record["json"] = None
        if path.startswith("/hooks/") and "secret" in b:
            ts = self.headers.get("X-WAIaaS-Timestamp", "")
            fresh = ts.isdigit() and abs(time.time() - int(ts)) <= 300
            record["signature_valid"] = fresh and verify(b["secret"], ts, body, self.headers.get("X-WAIaaS-Signature"))
        with LOCK:
            REQUESTS.append(record)
        mode = b.get("mode", "ok")
        if mode == "hang":
            time.sleep(60)
            return self.reply(504, {"error": "hung"})
        if mode == "delay":
            time.sleep(float(b.get("delay", 1)))
            mode = "ok"
        wait = b.get("retry_after", 1)
        if path.startswith("/bot"):
            return self.telegram(path, mode, wait, record)
        if path.startswith("/api/webhooks/"):
            return self.discord(method, mode, wait)
        if path.startswith("/services/"):
            return self.slack(mode, wait, record)
        if path.startswith("/hooks/"):
            return self.webhook(mode, wait, record)
        return self.ntfy(method, path, mode, wait, body)

    def telegram(self, path, mode, wait, record):
        m = re.match(r"^/bot([^/]+)/(sendMessage|getMe)$", path)
        if not m:
            return self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if m.group(1) == "bad-token" or mode == "unauthorized":
            return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if mode == "429":
            return self.reply(429, {"ok": False, "error_code": 429,
                                    "description": f"Too Many Requests: retry after {wait}",
                                    "parameters": {"retry_after": wait}})
        if mode == "fail":
            return self.reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        if m.group(2) == "getMe":
            return self.reply(200, {"ok": True, "result": {"id": 42, "is_bot": True, "first_name": "waiaas-test",
                                                           "username": "waiaas_test_bot"}})
        j = record["json"] or {}
        if not all(k in j for k in ("chat_id", "text")):
            return self.reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"})
        COUNTER[0] += 1
        return self.reply(200, {"ok": True, "result": {"message_id": COUNTER[0], "chat": {"id": j["chat_id"]},
                                                       "date": int(time.time()), "text": j["text"]}})

    def discord(self, method, mode, wait):
        if mode == "429":
            return self.reply(429, {"message": "You are being rate limited.", "retry_after": wait, "global": False})
        if mode == "fail":
            return self.reply(404, {"message": "Unknown Webhook", "code": 10015})
        if method == "GET":
            return self.reply(200, {"type": 1, "id": "1", "name": "waiaas", "channel_id": "2", "guild_id": "3"})
        return self.reply(204)

    def slack(self, mode, wait, record):
        if mode == "429":
            return self.reply(429, "rate_limited", "text/plain", {"Retry-After": str(wait)})
        if mode == "fail":
            return self.reply(404, "no_service", "text/plain")
        if not (record["json"] or {}).get("text"):
            return self.reply(400, "no_text", "text/plain")
        return self.reply(200, "ok", "text/plain")

    def ntfy(self, method, path, mode, wait, body):
        if mode == "429":
            return self.reply(429, {"code": 42901, "http": 429, "error": "limit reached: too many requests"},
                              headers={"Retry-After": str(wait)})
        if mode == "fail":
            return self.reply(500, {"code": 50001, "http": 500, "error": "internal server error"})
        if method == "GET" and path == "/v1/health":
            return self.reply(200, {"healthy": True})
        topic = path.strip("/")
        return self.reply(200, {"id": f"m{COUNTER[0]}", "time": int(time.time()), "expires": int(time.time()) + 43200,
                                "event": "message", "topic": topic, "message": body.decode("utf-8", "replace")})

    def webhook(self, mode, wait, record):
        if mode == "429":
            return self.reply(429, {"error": "slow down"}, headers={"Retry-After": str(wait)})
        if mode == "fail" or record.get("signature_valid") is False:
            return self.reply(500 if mode == "fail" else 401, {"error": "refused"})
        return self.reply(200, {"received": True})

    def control(self, method, path, body):
        global REQUESTS
        if path == "/__requests":
            with LOCK:
                return self.reply(200, REQUESTS)
        if path == "/__reset":
            with LOCK:
                REQUESTS = []
                BEHAVIOURS.clear()
            return self.reply(200, {"reset": True})
        if path == "/__behave":
            with LOCK:
                BEHAVIOURS.update(json.loads(body or b"{}"))
            return self.reply(200, {"ok": True})
        if path == "/__verify":
            j = json.loads(body)
            ok = verify(j["secret"], j["timestamp"], j["body"].encode(), j["signature"])
            return self.reply(200, {"valid": ok})
        return self.reply(404, {"error": "unknown control"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
