#!/usr/bin/env python3
"""pykv: a small replicated key-value store, written for faultline's bring-your-own-system
example (examples/pykv/README.md). Python's standard library only.

One node is the primary (--primary, n1 by default); it owns the data. It applies every
operation under one lock, saves the whole state to its data folder (written, fsynced, renamed)
before it answers, and pushes a snapshot to the other nodes every --replicate-ms. The other
nodes are warm standbys: they forward every client operation to the primary and relay its
answer, so every read and write is served by the one copy that is always current.

--bug stale-read plants a classic mistake: standbys answer reads from their own copy, which
lags the primary by up to one replication interval (and by a whole partition when cut off).
A linearizability checker must flag it.

HTTP, on two ports: the client port serves clients (POST /op, GET /health, GET /leader); the
peer port serves other nodes (POST /op forwarded to the primary, POST /replicate).
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FORWARD_TIMEOUT_S = 1.0
REPLICATE_TIMEOUT_S = 0.5


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--primary", default="n1")
    p.add_argument("--peers", required=True, help="n1=host:port,... on the peer port")
    p.add_argument("--data", required=True)
    p.add_argument("--client-port", type=int, required=True)
    p.add_argument("--peer-port", type=int, required=True)
    p.add_argument("--replicate-ms", type=int, default=200)
    p.add_argument("--bug", default="none", choices=["none", "stale-read"])
    return p.parse_args()


ARGS = parse_args()
PEERS = dict(item.split("=", 1) for item in ARGS.peers.split(",") if item)
IS_PRIMARY = ARGS.name == ARGS.primary
STATE_FILE = os.path.join(ARGS.data, "state.json")
LOCK = threading.Lock()
STATE = {"version": 0, "data": {}}


def log(*parts):
    print(f"pykv {ARGS.name}:", *parts, file=sys.stderr, flush=True)


def load():
    if os.path.exists(STATE_FILE):
        with open(STATE_FILE) as f:
            STATE.update(json.load(f))
        log("loaded version", STATE["version"], "from", STATE_FILE)


def save():
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, STATE_FILE)


def apply(op):
    """Applies one operation on the primary; returns the reply body."""
    f, key, value = op.get("f"), op.get("key"), op.get("value")
    with LOCK:
        data = STATE["data"]
        if f == "read":
            return {"ok": True, "value": data.get(key)}
        if f == "write":
            data[key] = value
        elif f == "cas":
            old, new = value
            if data.get(key) != old:
                return {"ok": False, "error": "cas-mismatch", "definite": True}
            data[key] = new
        else:
            return {"ok": False, "error": f"unknown operation {f!r}", "definite": True}
        STATE["version"] += 1
        save()
        return {"ok": True, "value": None}


def forward(op):
    """Relays an operation to the primary's peer port."""
    host, port = PEERS[ARGS.primary].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=FORWARD_TIMEOUT_S)
    try:
        conn.request("POST", "/op", json.dumps(op), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    except ConnectionRefusedError as e:
        # Never reached the primary: certainly no effect.
        return 503, {"ok": False, "error": f"primary unreachable: {e}", "definite": True}
    except Exception as e:  # timeouts, resets: the primary may have applied it
        return 503, {"ok": False, "error": f"primary did not answer: {e}", "definite": False}
    finally:
        conn.close()


def serve_op(op):
    if IS_PRIMARY:
        return 200, apply(op)
    if ARGS.bug == "stale-read" and op.get("f") == "read":
        with LOCK:
            return 200, {"ok": True, "value": STATE["data"].get(op.get("key"))}
    return forward(op)


def replicate_forever():
    while True:
        time.sleep(ARGS.replicate_ms / 1000)
        with LOCK:
            snapshot = json.dumps(STATE)
        for name, addr in PEERS.items():
            if name == ARGS.name:
                continue
            host, port = addr.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=REPLICATE_TIMEOUT_S)
            try:
                conn.request("POST", "/replicate", snapshot)
                conn.getresponse().read()
            except Exception:
                pass  # a standby that is down or cut off catches up at a later push
            finally:
                conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, b"ok\n")
        elif self.path == "/leader":
            self.reply(200, (ARGS.primary + "\n").encode())
        else:
            self.reply(404, {"error": "no such path"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            msg = json.loads(body)
        except ValueError:
            return self.reply(400, {"ok": False, "error": "bad json", "definite": True})
        if self.path == "/op":
            status, out = serve_op(msg)
            return self.reply(status, out)
        if self.path == "/replicate" and self.server.peer_side:
            with LOCK:
                if not IS_PRIMARY and msg["version"] > STATE["version"]:
                    STATE["version"], STATE["data"] = msg["version"], msg["data"]
            return self.reply(200, {"ok": True})
        self.reply(404, {"error": "no such path"})


def serve(port, peer_side):
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.peer_side = peer_side
    server.daemon_threads = True
    server.serve_forever()


def main():
    os.makedirs(ARGS.data, exist_ok=True)
    load()
    log("starting", "primary" if IS_PRIMARY else "standby", "bug", ARGS.bug)
    threading.Thread(target=serve, args=(ARGS.peer_port, True), daemon=True).start()
    if IS_PRIMARY:
        threading.Thread(target=replicate_forever, daemon=True).start()
    serve(ARGS.client_port, False)


if __name__ == "__main__":
    main()
