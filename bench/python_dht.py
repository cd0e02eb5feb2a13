"""
Python kademlia 2.2.3 for bench/dht-peers.cjs: N kademlia.network.Server
instances in one asyncio loop on 127.0.0.1, joined in a seeded order (each
through a random node at least 16 places earlier, 16 joining at once), then
`warmup` unmeasured and `lookups` measured Server.get()s of never-stored keys
(each a full ValueSpiderCrawl) from random nodes, `concurrency` in flight.
Prints one JSON line: the same fields as the JavaScript children.

Requests are counted where every node receives one (RPCProtocol._accept_request):
on loopback with every node alive, that is every request sent.

    .venv/bin/python bench/python_dht.py NODES LOOKUPS CONCURRENCY WARMUP SEED
"""

import asyncio
import json
import logging
import random
import sys
import time

from kademlia.network import Server
from rpcudp.protocol import RPCProtocol

requests = 0
accept_request = RPCProtocol._accept_request


def counting_accept_request(self, *args, **kwargs):
    global requests
    requests += 1
    return accept_request(self, *args, **kwargs)


RPCProtocol._accept_request = counting_accept_request


def rss_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def pool(n, width, fn):
    todo = iter(range(n))

    async def worker():
        for i in todo:
            await fn(i)

    await asyncio.gather(*(worker() for _ in range(min(width, n))))


async def main(nodes, lookups, concurrency, warmup, seed):
    logging.basicConfig(level=logging.CRITICAL)
    rnd = random.Random(seed)
    rss0 = rss_bytes()
    servers = []
    for _ in range(nodes):
        server = Server(node_id=rnd.randbytes(20))
        await server.listen(0, "127.0.0.1")
        servers.append(server)
    ports = [s.transport.get_extra_info("sockname")[1] for s in servers]

    async def join(j):
        via = rnd.randrange(max(1, j + 1 - 16))
        await servers[j + 1].bootstrap([("127.0.0.1", ports[via])])

    await pool(nodes - 1, 16, join)

    latencies = []
    ended = 0

    async def lookup(_):
        nonlocal ended
        server = servers[rnd.randrange(nodes)]
        t0 = time.perf_counter()
        if await server.get(rnd.randbytes(20).hex()) is None:
            ended += 1
        latencies.append((time.perf_counter() - t0) * 1000)

    await pool(warmup, concurrency, lookup)
    latencies.clear()
    ended = 0
    requests0 = requests
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await pool(lookups, concurrency, lookup)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    result = {
        "lookupsPerS": lookups / seconds,
        "cpuMs": cpu * 1000 / lookups,
        "requests": (requests - requests0) / lookups,
        "latencies": latencies,
        "ended": ended,
        "rssPerNode": (rss_bytes() - rss0) / nodes,
    }
    for s in servers:
        s.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*(int(a) for a in sys.argv[1:6])))
