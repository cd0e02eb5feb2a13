"""
A Python rpcudp 5.0.1 server exposing rpc_sayhi, for TypeScript clients.

    .venv/bin/python examples/python-interop/server.py [port]   # default 1234

Then, from TypeScript:

    const [ok, greeting] = await proto.call.sayhi(['127.0.0.1', 1234], 'Snake Plissken')
"""

import asyncio
import sys

from rpcudp.protocol import RPCProtocol


class RPCServer(RPCProtocol):
    # Any method starting with "rpc_" can be called by peers; sender is (host, port).
    def rpc_sayhi(self, sender, name):
        return "Hello %s you live at %s:%i" % (name, sender[0], sender[1])


async def main(port):
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(RPCServer, local_addr=("127.0.0.1", port))
    print("Python rpcudp server listening on 127.0.0.1:%d" % port, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 1234
    try:
        asyncio.run(main(port))
    except KeyboardInterrupt:
        pass
