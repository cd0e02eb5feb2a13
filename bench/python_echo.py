"""Python rpcudp 5.x (the reference implementation) as a bench/run.cjs child.

    python python_echo.py server            prints {"ev":"ready","port":N}
    python python_echo.py client HOST PORT  prints {"ev":"ready"}, then takes commands on stdin

Commands and events are those of bench/rust-echo (see its main.rs): `cpu`,
`run INFLIGHT WARMUP_MS DURATION_MS TIMEOUT_MS`, `quit`; JSON lines out.
Both sides ask for 4 MiB socket buffers, as rpcudp and the other systems do.
"""

import asyncio
import json
import logging
import os
import resource
import socket
import sys
import threading
import time

from rpcudp.protocol import RPCProtocol

# rpcudp logs one ERROR per timeout; the harness counts them itself.
logging.disable(logging.CRITICAL)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def cpu_us():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int(ru.ru_utime * 1e6), int(ru.ru_stime * 1e6)


def emit_cpu():
    u, s = cpu_us()
    emit({"ev": "cpu", "user": u, "system": s})


class Echo(RPCProtocol):
    def rpc_echo(self, sender, value):
        return value


def big_buffers(transport):
    sock = transport.get_extra_info("socket")
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        except OSError:
            pass


def read_commands(loop, queue):
    """stdin on a thread; `cpu` is answered there (getrusage covers every thread)."""

    def reader():
        for line in sys.stdin:
            line = line.strip()
            if line == "cpu":
                emit_cpu()
            elif line:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, "quit")

    threading.Thread(target=reader, daemon=True).start()


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = max(1, min(len(sorted_values), int(-(-p / 100.0 * len(sorted_values) // 1))))
    return sorted_values[i - 1]


async def server():
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    big_buffers(transport)
    emit({"ev": "ready", "port": transport.get_extra_info("sockname")[1]})
    queue = asyncio.Queue()
    read_commands(loop, queue)
    while await queue.get() != "quit":
        pass
    transport.close()


async def run(proto, addr, inflight, warmup_ms, duration_ms, timeout_ms):
    payload = os.urandom(32)
    state = {"running": True, "measuring": False, "calls": 0, "timeouts": 0, "errors": 0}
    lat = []
    perf = time.perf_counter

    async def worker():
        while state["running"]:
            t0 = perf()
            ok, value = await proto.echo(addr, payload)
            if state["measuring"]:
                if ok:
                    state["calls"] += 1
                    lat.append((perf() - t0) * 1e6)
                    if len(value) != 32:
                        state["errors"] += 1
                else:
                    state["timeouts"] += 1

    proto._wait_timeout = timeout_ms / 1000
    workers = [asyncio.ensure_future(worker()) for _ in range(inflight)]
    await asyncio.sleep(warmup_ms / 1000)
    state["measuring"] = True
    t_start = perf()
    c0 = cpu_us()
    emit({"ev": "start"})
    await asyncio.sleep(duration_ms / 1000)
    c1 = cpu_us()
    t_end = perf()
    state["measuring"] = False
    state["running"] = False
    emit({"ev": "end"})
    await asyncio.gather(*workers)
    lat.sort()
    emit(
        {
            "ev": "result",
            "calls": state["calls"],
            "elapsedMs": (t_end - t_start) * 1e3,
            "cpuUs": (c1[0] + c1[1]) - (c0[0] + c0[1]),
            "p50": percentile(lat, 50),
            "p99": percentile(lat, 99),
            "max": lat[-1] if lat else 0,
            "timeouts": state["timeouts"],
            "errors": state["errors"],
        }
    )


async def client(host, port):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: RPCProtocol(wait_timeout=5), local_addr=("127.0.0.1", 0))
    big_buffers(transport)
    emit({"ev": "ready"})
    queue = asyncio.Queue()
    read_commands(loop, queue)
    while True:
        parts = (await queue.get()).split()
        if parts[0] == "quit":
            break
        if parts[0] == "run" and len(parts) == 5:
            await run(proto, (host, port), *map(int, parts[1:]))
        else:
            emit({"ev": "error", "message": "bad command " + " ".join(parts)})
    transport.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        asyncio.run(server())
    elif sys.argv[1:2] == ["client"] and len(sys.argv) == 4:
        asyncio.run(client(sys.argv[2], int(sys.argv[3])))
    else:
        sys.exit("usage: python_echo.py server | client HOST PORT")
