"""
Live Python kademlia 2.2.3 nodes for the Kademlia tests (__test__/helpers/kademlia-python.ts)
and the benchmark: any number of kademlia.network.Server instances in one asyncio
loop, each on its own UDP port on 127.0.0.1 (or the interface `start` names, e.g. ::1),
driven over stdin/stdout.

Control protocol: one JSON object per line.
  stdout, first line:  {"event": "ready"}
  stdin:               {"id": <n>, "cmd": "<name>", ...arguments}
  stdout:              {"id": <n>, "ok": true, "result": ...} | {"id": <n>, "ok": false, "error": "..."}
Commands (run concurrently):
  start {count, ksize?, alpha?, interface?} -> [{"node": i, "port": p, "id": hex}, ...]
  bootstrap {node, addrs: [[ip, port]]} -> [[id hex, ip, port], ...] (what Server.bootstrap returned)
  set {node, key, value}               -> bool (Server.set's own answer)
  get {node, key}                      -> the value, or null
  neighbors {node}                     -> Server.bootstrappable_neighbors()
  stop {node}                          -> null (Server.stop())
  dump {node, key: hex}                -> what the node's storage holds under the raw 20-byte key, or null
Values are JSON; bytes are {"$base64": "..."} both ways.

The process exits when stdin closes and after a hard deadline (argv[1] seconds,
default 120) whatever happens.
"""

import asyncio
import base64
import json
import logging
import sys

from kademlia.network import Server

servers = []


def from_json(v):
    if isinstance(v, dict) and list(v) == ["$base64"]:
        return base64.b64decode(v["$base64"])
    return v


def to_json(v):
    if isinstance(v, bytes):
        return {"$base64": base64.b64encode(v).decode()}
    return v


async def start(count, ksize=20, alpha=3, interface="127.0.0.1"):
    out = []
    for _ in range(count):
        server = Server(ksize=ksize, alpha=alpha)
        await server.listen(0, interface)
        servers.append(server)
        port = server.transport.get_extra_info("sockname")[1]
        out.append({"node": len(servers) - 1, "port": port, "id": server.node.id.hex()})
    return out


async def bootstrap(node, addrs):
    found = await servers[node].bootstrap([tuple(a) for a in addrs])
    return [[n.id.hex(), n.ip, n.port] for n in found]


async def run(msg):
    cmd = msg["cmd"]
    if cmd == "start":
        return await start(msg["count"], msg.get("ksize", 20), msg.get("alpha", 3), msg.get("interface", "127.0.0.1"))
    if cmd == "bootstrap":
        return await bootstrap(msg["node"], msg["addrs"])
    if cmd == "set":
        return await servers[msg["node"]].set(msg["key"], from_json(msg["value"]))
    if cmd == "get":
        return to_json(await servers[msg["node"]].get(msg["key"]))
    if cmd == "neighbors":
        return [list(a) for a in servers[msg["node"]].bootstrappable_neighbors()]
    if cmd == "dump":
        return to_json(servers[msg["node"]].storage.get(bytes.fromhex(msg["key"])))
    if cmd == "stop":
        servers[msg["node"]].stop()
        return None
    raise ValueError(f"unknown command {cmd!r}")


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def handle(msg):
    try:
        reply({"id": msg["id"], "ok": True, "result": await run(msg)})
    except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
        reply({"id": msg["id"], "ok": False, "error": f"{type(err).__name__}: {err}"})


async def main(lifetime):
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    reply({"event": "ready"})
    tasks = set()

    async def read_commands():
        while line := await reader.readline():
            task = asyncio.ensure_future(handle(json.loads(line)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    try:
        await asyncio.wait_for(read_commands(), lifetime)
    except asyncio.TimeoutError:
        pass


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 120))
