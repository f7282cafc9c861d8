#!/usr/bin/env bash
# The demo: render the built-in examples for BIRD 2 and FRR, check every result with the
# router's own parser, and show one configuration. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
LB=.venv/bin/lbroute

echo "== Rendering examples/ for every node and router, checked by bird -p / vtysh --dryrun"
for file in examples/*.yaml; do
    for router in bird frr; do
        if [ "$router" = bird ] && [ "$(basename "$file")" = isis.yaml ]; then
            continue  # IS-IS exists only in FRR
        fi
        for node in node-a node-b; do
            printf '%-22s %-5s %-7s ' "$file" "$router" "$node"
            "$LB" validate -f "$file" --node "$node" --router "$router"
        done
    done
done

echo
echo "== An invalid object is reported with its field; the valid ones still render"
"$LB" render -f examples/bgp.yaml -f examples/invalid/bad-cidr.yaml --node node-a \
    --router bird >/dev/null || true

echo
echo "== BIRD configuration of node-a for examples/bgp.yaml"
"$LB" render -f examples/bgp.yaml --node node-a --router bird
