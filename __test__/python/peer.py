"""
A live Python rpcudp 5.0.1 peer for the interop tests (__test__/helpers/python.ts).

It runs a real rpcudp.protocol.RPCProtocol server (sync and async rpc_*
handlers) and a second, plain RPCProtocol used as a client, both on 127.0.0.1.

Control protocol: one JSON object per line.
  stdout, first line:  {"event": "ready", "port": <server port>, "clientPort": <client port>}
  stdin:               {"id": <n>, "cmd": "<name>", ...arguments}
  stdout:              {"id": <n>, "ok": true, "result": ...} | {"id": <n>, "ok": false, "error": "..."}
Commands run concurrently. Python values are written as Python expressions
(evaluated here with a tiny namespace) because JSON cannot carry bytes, big
ints, NaN, tuples or non-string keys.

The process exits when stdin closes (the test ended or died) and after a hard
deadline (argv[1] seconds, default 120) whatever happens.
"""

import asyncio
import datetime
import json
import logging
import math
import os
import random
import socket
import sys

import umsgpack
from rpcudp.exceptions import MalformedMessage
from rpcudp.protocol import RPCProtocol

EVAL_NAMESPACE = {
    "__builtins__": {},
    "float": float,
    "bytes": bytes,
    "bytearray": bytearray,
    "tuple": tuple,
    "list": list,
    "dict": dict,
    "range": range,
    "str": str,
    "datetime": datetime,
    "Ext": umsgpack.Ext,
    "nest": None,  # filled below
}


def nest(depth, leaf=0):
    """`depth` nested lists around `leaf`: nest(2) == [[0]]."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


EVAL_NAMESPACE["nest"] = nest


def py(expr):
    return eval(expr, dict(EVAL_NAMESPACE))  # noqa: S307 - test-only, expressions come from the spec


def same(a, b):
    """Strict equality: same types (bool is not int, tuple is not list), NaN equals NaN, -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        items = list(b.items())
        for k, v in a.items():
            match = [i for i, (k2, _) in enumerate(items) if same(k, k2)]
            if len(match) != 1 or not same(v, items[match[0]][1]):
                return False
        return True
    return a == b


def describe(x):
    """A repr that shows every type, e.g. list[int(1), float(1.0)]."""
    if isinstance(x, (list, tuple)):
        return "%s[%s]" % (type(x).__name__, ", ".join(describe(e) for e in x))
    if isinstance(x, dict):
        return "dict{%s}" % ", ".join("%s: %s" % (describe(k), describe(v)) for k, v in x.items())
    if isinstance(x, bytes):
        return "bytes(%s)" % x.hex()
    if x is None:
        return "None"
    return "%s(%r)" % (type(x).__name__, x)


CASES = {}  # name -> (value Python sends / expects from TypeScript, value Python expects back after a round trip)


class PeerServer(RPCProtocol):
    """The Python server the TypeScript client calls."""

    def rpc_echo(self, sender, x):
        return x

    async def rpc_echo_async(self, sender, x):
        await asyncio.sleep(0)
        return x

    def rpc_check(self, sender, name, x):
        want = CASES[name][0]
        return [same(x, want), describe(x)]

    async def rpc_check_async(self, sender, name, x):
        await asyncio.sleep(0)
        return self.rpc_check(sender, name, x)

    def rpc_value(self, sender, name):
        return CASES[name][0]

    def rpc_describe(self, sender, x):
        return describe(x)

    def rpc_sender(self, sender):
        return [sender[0], sender[1]]

    def rpc_boom(self, sender):
        raise ValueError("boom")

    async def rpc_boom_async(self, sender):
        await asyncio.sleep(0)
        raise ValueError("boom")

    def rpc_blob(self, sender, n):
        return "x" * n

    def rpc_mul(self, sender, i, k):
        return [i, i * k]

    async def rpc_mul_async(self, sender, i, k):
        await asyncio.sleep(random.random() * 0.005)
        return [i, i * k]


class PeerClient(RPCProtocol):
    """A plain client: no attributes that could shadow a remote method name."""


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        try:
            self.lines.append(record.getMessage())
        except Exception:  # noqa: BLE001
            self.lines.append(str(record.msg))
        del self.lines[:-2000]


RECORDS = Records()


def enlarge(transport):
    sock = transport.get_extra_info("socket")
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        except OSError:
            pass


class Peer:
    def __init__(self, server, client, client_transport):
        self.server = server
        self.client = client
        self.client_transport = client_transport

    async def call(self, host, port, method, args, timeout=1.0, expect=None):
        """One call from the Python client; `args` are Python expressions."""
        values = [py(a) for a in args]
        body_len = len(umsgpack.packb([method, tuple(values)]))
        self.client._wait_timeout = timeout
        try:
            ok, value = await getattr(self.client, method)((host, port), *values)
        except MalformedMessage as err:
            return {"raised": "MalformedMessage", "message": str(err), "bodyLen": body_len}
        out = {"answered": ok, "describe": describe(value), "bodyLen": body_len}
        if isinstance(value, str) and len(value) > 200:
            out["describe"] = "str(len=%d)" % len(value)
        if expect is not None:
            out["same"] = same(value, py(expect))
        return out

    async def cmd_cases(self, cases):
        for name, (value, back) in cases.items():
            v = py(value)
            CASES[name] = (v, py(back) if back is not None else v)
        return len(CASES)

    async def cmd_call(self, host, port, method, args, timeout=1.0, expect=None):
        return await self.call(host, port, method, args, timeout, expect)

    async def cmd_rows(self, host, port, names, timeout=2.0):
        """Every row from Python: TypeScript checks what it got (rpc_check), then echoes it (sync and async)."""
        self.client._wait_timeout = timeout

        async def one(name):
            value, back = CASES[name]
            check = await self.client.check((host, port), name, value)
            echo = await self.client.echo((host, port), value)
            echo_async = await self.client.echo_async((host, port), value)
            return {
                "name": name,
                "check": check[1] if check[0] else "no answer",
                "echo": [echo[0], echo[0] and same(echo[1], back), describe(echo[1])],
                "echoAsync": [echo_async[0], echo_async[0] and same(echo_async[1], back), describe(echo_async[1])],
            }

        return await asyncio.gather(*(one(n) for n in names))

    async def cmd_burst(self, host, port, n, methods, window=200, timeout=5.0):
        """n interleaved calls (at most `window` in flight); every answer must be its own call's."""
        self.client._wait_timeout = timeout
        sem = asyncio.Semaphore(window)
        wrong, missing = [], 0

        async def one(i):
            nonlocal missing
            k = 3 + i % 7
            method = methods[i % len(methods)]
            async with sem:
                ok, value = await getattr(self.client, method)((host, port), i, k)
            if not ok:
                missing += 1
            elif value != [i, i * k]:
                wrong.append([i, repr(value)])

        await asyncio.gather(*(one(i) for i in range(n)))
        return {"n": n, "missing": missing, "wrong": wrong[:10], "wrongCount": len(wrong)}

    async def cmd_packb(self, exprs, precision=None):
        options = {"force_float_precision": precision} if precision else {}
        return [umsgpack.packb(py(e), **options).hex() for e in exprs]

    async def cmd_packrequest(self, name, args):
        """The exact body Python's call proxy sends: packb([name, args-tuple])."""
        return umsgpack.packb([name, tuple(py(a) for a in args)]).hex()

    async def cmd_unpackb(self, hex, expect=None):
        value = umsgpack.unpackb(bytes.fromhex(hex))
        out = {"describe": describe(value)}
        if expect is not None:
            out["same"] = same(value, py(expect))
        return out

    async def cmd_sendraw(self, host, port, hex):
        """A raw datagram from the client socket."""
        self.client_transport.sendto(bytes.fromhex(hex), (host, port))
        return True

    async def cmd_logs(self):
        lines = list(RECORDS.lines)
        RECORDS.lines.clear()
        return lines

    async def cmd_outstanding(self):
        return len(self.client._outstanding)


def write(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def handle(peer, line):
    msg_id = None
    try:
        msg = json.loads(line)
        msg_id = msg.pop("id")
        fn = getattr(peer, "cmd_" + msg.pop("cmd"))
        result = await fn(**msg)
        write({"id": msg_id, "ok": True, "result": result})
    except Exception as err:  # noqa: BLE001
        write({"id": msg_id, "ok": False, "error": "%s: %s" % (type(err).__name__, err)})


def exception_handler(loop, context):
    # rpcudp leaves handler failures and undecodable datagrams as unretrieved task
    # exceptions; record them so tests can see them, and keep running.
    exc = context.get("exception")
    RECORDS.lines.append("task exception: %s: %s" % (type(exc).__name__, exc) if exc else context.get("message"))


async def main():
    deadline = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(exception_handler)
    loop.call_later(deadline, os._exit, 3)
    logging.getLogger("rpcudp").addHandler(RECORDS)
    logging.getLogger("rpcudp").setLevel(logging.DEBUG)
    logging.getLogger("rpcudp").propagate = False

    server_transport, server = await loop.create_datagram_endpoint(PeerServer, local_addr=("127.0.0.1", 0))
    client_transport, client = await loop.create_datagram_endpoint(PeerClient, local_addr=("127.0.0.1", 0))
    enlarge(server_transport)
    enlarge(client_transport)
    peer = Peer(server, client, client_transport)

    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    write({
        "event": "ready",
        "port": server_transport.get_extra_info("sockname")[1],
        "clientPort": client_transport.get_extra_info("sockname")[1],
    })
    tasks = set()
    while True:
        line = await reader.readline()
        if not line:
            break
        task = asyncio.ensure_future(handle(peer, line))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
