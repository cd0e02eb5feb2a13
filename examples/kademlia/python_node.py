"""
A Python kademlia 2.2.3 node for examples/kademlia (see README.md).

    .venv/bin/python examples/kademlia/python_node.py [PORT] [BOOTSTRAP_PORT]

Listens on 127.0.0.1:PORT (default 8468), joins through 127.0.0.1:BOOTSTRAP_PORT
if given, prints "ready", then waits (up to 60 s) for the key "from-typescript",
prints it, stores "from-python", and keeps serving until it is stopped.
"""

import asyncio
import logging
import sys

from kademlia.network import Server


async def main(port, bootstrap_port):
    logging.basicConfig(level=logging.ERROR)  # Python warns "no known neighbors" until the TypeScript node joins
    server = Server()
    await server.listen(port, "127.0.0.1")
    if bootstrap_port:
        await server.bootstrap([("127.0.0.1", bootstrap_port)])
    print(f"python: node {server.node.id.hex()[:8]}… ready on 127.0.0.1:{port}", flush=True)
    for _ in range(120):
        value = await server.get("from-typescript")
        if value is not None:
            print(f"python: get('from-typescript') -> {value!r}", flush=True)
            break
        await asyncio.sleep(0.5)
    else:
        print("python: no value for 'from-typescript' within 60 s", flush=True)
    stored = await server.set("from-python", "hello from Python")
    print(f"python: set('from-python') -> {stored}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8468
    bootstrap = int(sys.argv[2]) if len(sys.argv) > 2 else None
    try:
        asyncio.run(main(port, bootstrap))
    except KeyboardInterrupt:
        pass
