#!/usr/bin/env bash
# Install what lbroute's tests and demo need on a fresh Debian machine: the routing
# daemons (BIRD 2, FRR with frr-reload.py), iproute2, the LAN probes (arping, ping,
# ndisc6), PostgreSQL and Redis for the NetBox tests, and a virtualenv with lbroute.
# With --python-only, only the virtualenv (what `make lint` needs).
set -euo pipefail
cd "$(dirname "$0")/.."

python_only=false
[ "${1:-}" = "--python-only" ] && python_only=true

need_pkgs=()
command -v bird >/dev/null 2>&1 || need_pkgs+=(bird2)
command -v vtysh >/dev/null 2>&1 || need_pkgs+=(frr)
[ -x /usr/lib/frr/frr-reload.py ] || need_pkgs+=(frr-pythontools)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
# The local-address tests: a client on the LAN probes with arping, ping and ndisc6.
command -v arping >/dev/null 2>&1 || need_pkgs+=(iputils-arping)
command -v ping >/dev/null 2>&1 || need_pkgs+=(iputils-ping)
command -v ndisc6 >/dev/null 2>&1 || need_pkgs+=(ndisc6)
# The NetBox tests (tests/netbox/) start their own PostgreSQL cluster and Redis server.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_pkgs+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
PYTHON=${PYTHON:-python3}
# A stock Debian 12 has python3 without ensurepip, which `python3 -m venv` needs: it is
# in the python3-venv package (needed for --python-only too).
venv_pkgs=()
if [ ! -x .venv/bin/python ] && ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
    venv_pkgs+=(python3-venv)
fi
$python_only && need_pkgs=()
need_pkgs+=("${venv_pkgs[@]}")
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "install-deps: installing Debian packages: ${need_pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    # Keep the packages' own services from starting: lbroute (and the NetBox tests) start
    # their daemons themselves.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${need_pkgs[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "install-deps: creating the virtualenv .venv"
    if ! "$PYTHON" -m venv .venv; then
        echo "install-deps: $PYTHON -m venv failed; on Debian it needs the python3-venv package" >&2
        exit 1
    fi
fi
# Install again only when what pip would install changed (pyproject.toml).
stamp=.venv/.lbroute-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "install-deps: installing lbroute and its Python dependencies into .venv"
    log=.venv/pip-install.log
    if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]'; } >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
fi
