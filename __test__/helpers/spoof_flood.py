"""Sends COUNT copies of a request datagram to 127.0.0.1:PORT, each from a
different spoofed source address in 127.0.0.0/8 (127.1.0.0 upwards), or all
from the one source SRC_IP:SRC_PORT when given (a reflection victim), through
a raw socket (needs root; loopback only). Prints how many were sent and how
long it took, as JSON.

usage: spoof_flood.py PORT COUNT PAYLOAD_HEX [SRC_IP:SRC_PORT]"""
import json
import socket
import struct
import sys
import time

port, count = int(sys.argv[1]), int(sys.argv[2])
payload = bytes.fromhex(sys.argv[3])
victim = sys.argv[4].rsplit(":", 1) if len(sys.argv) > 4 else None
src_port = int(victim[1]) if victim else 40000
dst = socket.inet_aton("127.0.0.1")
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
udp_len = 8 + len(payload)
# UDP checksum 0: "none" is allowed over IPv4.
udp = struct.pack("!HHHH", src_port, port, udp_len, 0) + payload
ip_tail = struct.pack("!BBH", 64, socket.IPPROTO_UDP, 0)
first = 1 << 16  # 127.1.0.0: clear of the 127.0.0.x addresses the tests bind
start = time.monotonic()
sent = 0
for i in range(count):
    src = socket.inet_aton(victim[0]) if victim else struct.pack("!I", (127 << 24) | (first + i))
    # version/IHL, TOS, total length, id, flags/fragment, TTL, protocol, checksum (the kernel fills it), src, dst
    header = struct.pack("!BBHHH", 0x45, 0, 20 + udp_len, i & 0xFFFF, 0) + ip_tail + src + dst
    try:
        s.sendto(header + udp, ("127.0.0.1", 0))
        sent += 1
    except OSError:
        pass  # ENOBUFS under load: counted as not sent
print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - start, 3)}))
