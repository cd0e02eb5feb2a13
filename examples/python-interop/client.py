"""
Calls the TypeScript example server's rpc_sayhi with Python rpcudp 5.0.1.

    npx tsx examples/server.ts &                        # TypeScript server on 127.0.0.1:1234
    .venv/bin/python examples/python-interop/client.py  # this client

Usage: client.py [name] [host] [port]
"""

import asyncio
import sys

from rpcudp.protocol import RPCProtocol


async def main(name, host, port):
    loop = asyncio.get_running_loop()
    # A client needs a socket of its own to receive the answer on.
    transport, client = await loop.create_datagram_endpoint(
        lambda: RPCProtocol(wait_timeout=2), local_addr=("127.0.0.1", 0)
    )
    try:
        ok, result = await client.sayhi((host, port), name)
    finally:
        transport.close()
    if not ok:
        print("No response from %s:%d within 2 seconds" % (host, port), file=sys.stderr)
        return 1
    print(result)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    name = args[0] if len(args) > 0 else "Snake Plissken"
    host = args[1] if len(args) > 1 else "127.0.0.1"
    port = int(args[2]) if len(args) > 2 else 1234
    sys.exit(asyncio.run(main(name, host, port)))
