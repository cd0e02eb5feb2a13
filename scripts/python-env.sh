#!/usr/bin/env bash
# Creates .venv with the real Python rpcudp and kademlia from PyPI, pinned (the
# interop and Kademlia tests and the benchmark use them). Debian's
# python3-u-msgpack is too old for Python 3.11. kademlia 2.2.3 depends on
# rpcudp>=5.0.0 only, which the rpcudp pin already satisfies. prometheus-client
# is the independent parser the metrics tests read the /metrics text with.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import rpcudp, umsgpack, kademlia, prometheus_client' 2>/dev/null; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check rpcudp==5.0.1 u-msgpack-python==2.8.0 kademlia==2.2.3 prometheus-client==0.26.0
fi
.venv/bin/python -c 'import rpcudp, umsgpack, kademlia, prometheus_client; v = __import__("importlib.metadata").metadata.version; print("python peer: rpcudp", v("rpcudp"), "umsgpack", umsgpack.version, "kademlia", v("kademlia"), "prometheus-client", v("prometheus-client"))'
