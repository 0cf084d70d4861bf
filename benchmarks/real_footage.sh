#!/usr/bin/env bash
# The real-footage benchmark from a fresh clone in one command: installs the project, the peer trackers
# (with --no-deps: their dependencies would replace opencv-python-headless with opencv-python 5) and
# motmetrics, fetches vtest.avi from Debian's opencv-doc package (apt-get download, no root), runs
# every section. Extra arguments go to benchmarks/real_footage.py (e.g. --engine ENGINE for the proxy).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[train]" "motmetrics>=1.4" "requests>=2.28"
python3 -m pip install -q --no-deps -r tests/requirements-nodeps.txt
python3 benchmarks/real_footage.py "$@"
