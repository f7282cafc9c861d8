#!/usr/bin/env bash
# The demo: install what is needed, then run the lab on the built-in example
# (examples/lab): two nodes running the agent with BIRD and FRR, an upstream router,
# the example Services announced, the upstream's view printed, a local ServiceGroup
# held by one node and handed over, everything removed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
exec $SUDO .venv/bin/lbroute demo --example examples/lab
