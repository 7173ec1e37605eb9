#!/usr/bin/env python3
"""A faultline client, written by `faultline init`: it speaks faultline's client protocol 1
(docs/your-system.md) and talks to the example store (store.py) over HTTP. Replace `invoke`
with calls to your own system; keep the rules:

- answer "ok" only for what happened, with the system's own answer as the value;
- answer "fail" only when the operation certainly had no effect (a cas that found another
  value is {"type": "fail", "error": "cas-mismatch"});
- answer "info" for anything else (timeouts, connections lost after sending);
- write one line per message on stdout, and anything for people on stderr.
"""
import json
import sys
import urllib.error
import urllib.request

BASE = None
TIMEOUT_S = 1.5  # below the plan's op_timeout, so a slow node is our "info", not a kill


def invoke(op):
    body = json.dumps({"f": op["f"], "key": op.get("key"), "value": op.get("value")}).encode()
    req = urllib.request.Request(BASE + "/op", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        reply = json.loads(e.read() or b"{}")
    except urllib.error.URLError as e:
        if isinstance(e.reason, ConnectionRefusedError):
            return {"type": "fail", "error": "connection-refused"}  # never sent
        return {"type": "info", "error": f"transport: {e.reason}"}
    except OSError as e:  # timeouts, resets: it may have happened
        return {"type": "info", "error": f"transport: {e}"}
    if reply.get("ok"):
        return {"type": "ok", "value": reply.get("value")}
    kind = "fail" if reply.get("definite") else "info"
    return {"type": kind, "error": reply.get("error", "unknown error")}


def main():
    global BASE
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["type"] == "init":
            node = next(n for n in msg["nodes"] if n["name"] == msg["node"])
            BASE = "http://" + node["addresses"]["client"]
            print(f"process {msg['process']} talks to {msg['node']} at {BASE}", file=sys.stderr)
            reply = {"type": "init_ok", "protocol": 1}
        elif msg["type"] in ("setup", "teardown"):
            reply = {"type": msg["type"] + "_ok"}
        elif msg["type"] == "invoke":
            reply = invoke(msg)
        else:
            reply = {"type": "error", "error": f"unknown message {msg['type']}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
