#!/usr/bin/env python3
"""faultline client (protocol 1) for etcd v3 through its JSON gateway.

Written from docs/your-system.md only. Standard library only.
Set ETCD_CLIENT_BUG=stale-cache to plant a bug: reads answer from a local
cache of this process's own writes when it has one.
"""
import base64
import json
import os
import sys
import urllib.error
import urllib.request

HTTP_TIMEOUT = float(os.environ.get("ETCD_CLIENT_TIMEOUT", "2.0"))
BUG = os.environ.get("ETCD_CLIENT_BUG", "")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


class Unsent(Exception):
    """The request certainly never reached etcd."""


class Indefinite(Exception):
    """The request may have been applied."""


class Etcd:
    """The preferred node first; another node only when a request certainly
    never left (connection refused), so no operation can apply twice."""

    def __init__(self, addrs):
        self.addrs = addrs

    def call(self, path, body):
        errors = []
        for addr in self.addrs:
            try:
                return self.call_one(addr, path, body)
            except Unsent as e:
                errors.append("%s: %s" % (addr, e))
        raise Unsent("; ".join(errors))

    def call_one(self, addr, path, body):
        data = json.dumps(body).encode()
        req = urllib.request.Request(
            "http://" + addr + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")[:200]
            raise Indefinite("http %d: %s" % (e.code, text))
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, ConnectionRefusedError):
                raise Unsent("connection refused")
            raise Indefinite(str(reason))
        except (TimeoutError, OSError, ValueError) as e:
            raise Indefinite("%s: %s" % (type(e).__name__, e))


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def main():
    etcd = None
    cache = {}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        t = msg.get("type")
        if t == "init":
            addrs = {n["name"]: n["addresses"]["client"] for n in msg["nodes"]}
            first = [addrs[msg["node"]]] if msg.get("node") in addrs else []
            etcd = Etcd(first + [a for n, a in addrs.items() if n != msg.get("node")])
            send({"type": "init_ok", "protocol": 1})
        elif t in ("setup", "teardown"):
            send({"type": t + "_ok"})
        elif t == "invoke":
            send(invoke(etcd, cache, msg))
        else:
            send({"type": "error", "error": "unknown message type %r" % t})


def invoke(etcd, cache, msg):
    f, key, value = msg["f"], str(msg.get("key")), msg.get("value")
    k = b64(key)
    try:
        if f == "read":
            if BUG == "stale-cache" and key in cache:
                return {"type": "ok", "value": cache[key]}
            r = etcd.call("/v3/kv/range", {"key": k})
            kvs = r.get("kvs") or []
            v = json.loads(unb64(kvs[0]["value"])) if kvs else None
            return {"type": "ok", "value": v}
        if f == "write":
            etcd.call("/v3/kv/put", {"key": k, "value": b64(json.dumps(value))})
            cache[key] = value
            return {"type": "ok", "value": None}
        if f == "cas":
            old, new = value
            r = etcd.call(
                "/v3/kv/txn",
                {
                    "compare": [
                        {"key": k, "target": "VALUE", "result": "EQUAL",
                         "value": b64(json.dumps(old))}
                    ],
                    "success": [{"request_put": {"key": k, "value": b64(json.dumps(new))}}],
                },
            )
            if r.get("succeeded"):
                cache[key] = new
                return {"type": "ok", "value": None}
            return {"type": "fail", "error": "cas-mismatch"}
        return {"type": "fail", "error": "unknown f %r" % f}
    except Unsent as e:
        return {"type": "fail", "error": str(e)}
    except Indefinite as e:
        if f == "read":
            # a read has no effect: it certainly changed nothing
            return {"type": "fail", "error": str(e)}
        return {"type": "info", "error": str(e)}


if __name__ == "__main__":
    main()
