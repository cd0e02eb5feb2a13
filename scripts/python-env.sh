#!/usr/bin/env bash
# Creates .venv with the real Python rpcudp from PyPI, pinned (interop tests and
# the benchmark use it). Debian's python3-u-msgpack is too old for Python 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import rpcudp, umsgpack' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check rpcudp==5.0.1 u-msgpack-python==2.8.0
fi
.venv/bin/python -c 'import rpcudp, umsgpack; print("python peer: rpcudp", __import__("importlib.metadata").metadata.version("rpcudp"), "umsgpack", umsgpack.version)'
