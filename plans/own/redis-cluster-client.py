#!/usr/bin/env python3
"""A faultline client (protocol 1, docs/your-system.md) for Redis Cluster, Python standard
library only: RESP over a socket, following MOVED and ASK redirects. The register workload's
`read` is GET, `write` is SET. Cluster nodes redirect to the addresses they announce (their
container addresses), which this machine reaches directly.

fail only when Redis certainly did not act (a refused connection, CLUSTERDOWN, which a node
answers before executing); info for anything that may have reached a node.
"""
import json
import socket
import sys

TIMEOUT_S = 1.5
REDIRECTS_MAX = 4


class Definite(Exception):
    """The command certainly had no effect."""


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        return RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    raise ConnectionError(f"unexpected reply {line!r}")


def call(addr, *args):
    """One command, following redirects; returns the reply or raises."""
    asking = False
    for _ in range(REDIRECTS_MAX):
        host, port = addr.rsplit(":", 1)
        try:
            s = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
        except ConnectionRefusedError as e:
            raise Definite(f"connection-refused {addr}") from e
        except OSError as e:  # nothing was sent yet
            raise Definite(f"cannot connect to {addr}: {e}") from e
        with s:
            s.settimeout(TIMEOUT_S)
            f = s.makefile("rb")
            if asking:
                s.sendall(resp_command("ASKING"))
                read_reply(f)
            s.sendall(resp_command(*args))
            reply = read_reply(f)
        if isinstance(reply, RuntimeError):
            msg = str(reply)
            if msg.startswith("MOVED ") or msg.startswith("ASK "):
                asking = msg.startswith("ASK ")
                addr = msg.split()[2]
                continue
            if msg.startswith("CLUSTERDOWN") or msg.startswith("TRYAGAIN"):
                raise Definite(msg)
            raise reply
        return reply
    raise Definite("too many redirects")


def invoke(base, op):
    key = "fl:" + str(op.get("key"))
    try:
        if op["f"] == "read":
            v = call(base, "GET", key)
            return {"type": "ok", "value": None if v is None else int(v)}
        if op["f"] == "write":
            call(base, "SET", key, op["value"])
            return {"type": "ok", "value": None}
        return {"type": "fail", "error": f"unsupported operation {op['f']}"}
    except Definite as e:
        return {"type": "fail", "error": str(e)}
    except Exception as e:  # timeouts, resets, errors after sending: may have happened
        return {"type": "info", "error": f"{type(e).__name__}: {e}"}


def main():
    base = None
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["type"] == "init":
            node = next(n for n in msg["nodes"] if n["name"] == msg["node"])
            base = node["addresses"]["client"]
            reply = {"type": "init_ok", "protocol": 1}
        elif msg["type"] in ("setup", "teardown"):
            reply = {"type": msg["type"] + "_ok"}
        elif msg["type"] == "invoke":
            reply = invoke(base, msg)
        else:
            reply = {"type": "error", "error": "unknown message " + msg["type"]}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
