#!/usr/bin/env python3
"""Render-time benchmark of lbroute: N ServiceGroups and M Peers, BIRD and FRR.

Generates the API objects deterministically (plain dicts, as from YAML), then times the
three steps of one render separately -- ``load()`` (parse + validate), ``build_view()``
and template rendering (``render_view()``, which includes compiling the templates) --
and their total. Every step runs ``--runs`` times after ``--warmup`` discarded runs;
the report gives the median and [min-max]. Peak memory (tracemalloc) comes from one
extra run. The floor is the router's own parser on the generated file, timed in the
same process run: ``bird -p -c FILE`` and ``vtysh --dryrun -f FILE``.

    .venv/bin/python bench/render_bench.py --runs 5 [--json out.json] [--profile]

The script refuses to report numbers when the generated objects do not load cleanly
(any error in ``model.errors`` or ``view.problems``) or when the router rejects the
rendered configuration: then it would be measuring the wrong thing.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from lbroute.model.api import Model, Router, load
from lbroute.model.errors import LbrouteError, Problem, Severity
from renderer import NodeView, build_view, builtin_template_set, render_view
from renderer.templating import ENTRY, TemplateSet

NODE = "node-1"
ROUTER_ID = "10.254.0.1"
LOCAL_ASN = 64512
PEER_NS = "lbroute"
API = "lbroute.io/v1alpha1"

# Fixed label cardinalities: a selector picks the same share of the groups at any scale
# (team: 1/20, tier: 1/4, region: 1/5), so the scale points grow the filters linearly.
TIERS = ("gold", "silver", "bronze", "edge")
TEAMS = 20
REGIONS = 5

Obj = dict[str, Any]


# -- object generation ------------------------------------------------------------------


def _obj(
    kind: str, name: str, spec: Obj, *, namespace: str = PEER_NS, labels: Obj | None = None
) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}


def _team(n: int) -> str:
    return f"team-{n % TEAMS:02d}"


def service_group(i: int, router: Router) -> Obj:
    """ServiceGroup ``i``: its own 10.a.b.0/24 and (2 in 3) fd00:a:b::/64, never overlapping."""
    a, b = i >> 8, i & 255
    v4, v6 = f"10.{a}.{b}.0/24", f"fd00:{a:x}:{b:x}::/64"
    pools: list[Obj] = []
    if i % 17 != 16:  # a few IPv6-only groups
        kind = i % 6
        if kind == 3:  # a range without subnet: summarized to /28, /27, /28
            pools.append({"range": f"10.{a}.{b}.16-10.{a}.{b}.79"})
        elif kind == 4:  # a range inside a subnet, host routes only
            pools.append(
                {"range": f"10.{a}.{b}.1-10.{a}.{b}.254", "subnet": v4, "aggregation": "/32"}
            )
        elif kind == 5:
            pools.append({"cidr": v4, "aggregation": 26})
        else:
            pools.append({"cidr": v4})
    if i % 3 != 2 or i % 17 == 16:
        pools.append({"cidr": v6, "aggregation": "/128"} if i % 2 else {"cidr": v6})
    tier = TIERS[i % len(TIERS)]
    labels = {"tier": tier, "team": _team(i), "region": f"r{i % REGIONS}"}
    bgp: Obj = {}
    if tier != "edge":
        bgp["communities"] = [f"{LOCAL_ASN}:{100 + i % 50}"] + (
            [f"{LOCAL_ASN}:1000"] if tier == "gold" else []
        )
    if i % 3 == 0:
        bgp["largeCommunities"] = [f"{LOCAL_ASN}:1:{i}"]
    if tier == "gold":
        bgp["localPref"] = 200
    if i % 5 == 0:
        bgp["med"] = i % 100
    if tier == "edge":
        bgp["asPathPrepend"] = 2
    spec: Obj = {
        "pools": pools,
        "bgp": bgp,
        "ospf": {"metric": 10 + i % 90, "metricType": 1 + i % 2}
        | ({"tag": i} if i % 4 == 1 else {}),
        "rip": {"metric": 1 + i % 15},
        "isis": {"metric": 10 + i % 50, "level": "level-2"},
    }
    if i == 0:
        spec["default"] = True
    if i % 50 == 25:
        spec["announce"] = "local"  # no routing: left out of the view
        for pool in pools:
            pool.pop("aggregation", None)  # a local address is never aggregated
    if i % 10 == 0:
        spec["protocols"] = ["bgp"]
    elif i % 10 == 5:
        spec["protocols"] = ["bgp", "isis" if router is Router.FRR else "ospf"]
    if i % 100 == 99:
        spec["nodeSelector"] = {"matchLabels": {"rack": "r9"}}  # not this node
    elif i % 20 == 19:
        spec["nodeSelector"] = {"matchLabels": {"rack": "r1"}}
    return _obj("ServiceGroup", f"svc-{i:05d}", spec, namespace=f"ns-{i % 8}", labels=labels)


def _families(k: int) -> list[str]:
    return [["ipv4", "ipv6"], ["ipv4"], ["ipv6"]][k % 3]


def _igp_selector(k: int) -> Obj:
    return [
        {},
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]},
        {"matchExpressions": [{"key": "region", "operator": "In", "values": ["r0", "r1", "r2"]}]},
    ][k % 3]


def _bgp_selector(j: int) -> Obj:
    """Most BGP peers take one team (5 %) or two (10 %); some a tier (25 %) or a
    region without the edge tier (15 %)."""
    s = (j * 7) % 20
    if s <= 10:
        return {"matchLabels": {"team": _team(j)}}
    if s <= 14:
        teams = sorted({_team(j), _team(j + 7)})
        return {"matchExpressions": [{"key": "team", "operator": "In", "values": teams}]}
    if s <= 17:
        return {"matchLabels": {"tier": TIERS[j % len(TIERS)]}}
    return {
        "matchLabels": {"region": f"r{j % REGIONS}"},
        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["edge"]}],
    }


def _bgp_peer(j: int) -> Obj:
    v6 = j % 5 in (3, 4)
    address = (
        f"2001:db8:{j >> 8:x}::{(j & 255) + 1:x}" if v6 else f"100.64.{j // 250}.{j % 250 + 1}"
    )
    ibgp = j % 10 == 0
    bgp: Obj = {
        "address": address,
        "asn": LOCAL_ASN if ibgp else (4200000000 + j if j % 9 == 4 else 65000 + j % 500),
        "families": ["ipv6" if v6 else "ipv4"],
    }
    if j % 3 == 0:
        bgp["bfd"] = {}
    elif j % 6 == 1:
        bgp["bfd"] = {"minRx": 100, "minTx": 100, "multiplier": 3}
    if j % 4 == 0:
        bgp |= {"holdTime": 9, "keepaliveTime": 3}
    if j % 7 == 0:
        bgp["passwordSecretRef"] = {"name": "bgp-auth"}
    if j % 11 == 0 and not ibgp:
        bgp["ebgpMultihop"] = 2
    if j % 2 == 0:
        bgp["gracefulRestart"] = True
    if j % 50 == 0:
        bgp["port"] = 1179
    if "bfd" in bgp and (ibgp or "ebgpMultihop" in bgp):
        # BIRD rejects a multihop session (iBGP is one) with BFD but no local address.
        bgp["sourceAddress"] = "fd00:ffff::1" if v6 else ROUTER_ID
    return {"bgp": bgp, "serviceGroupSelector": _bgp_selector(j)}


def peer(j: int, router: Router) -> Obj:
    """Peer ``j``: 1 in 20 OSPF, 1 in 20 RIP, 1 in 20 IS-IS (FRR; BGP on BIRD), the rest
    BGP with one distinct neighbor address each."""
    k = j // 20
    kind = j % 20
    spec: Obj
    if kind == 1:
        ospf: Obj = {
            "area": 0 if k % 2 else "0.0.0.1",
            "interfaces": [{"name": f"ospf{j}a", "cost": 10 + k % 50}, {"name": f"ospf{j}b"}],
            "families": _families(k),
        }
        if k % 2:
            ospf["networkType"] = "point-to-point"
        if k % 4 == 3:  # not with authentication: BIRD warns about replay below 5 s
            ospf |= {"helloInterval": 1, "deadInterval": 4}
        if k % 2 == 0:
            ospf["bfd"] = {}
        if k % 4 == 1:
            ospf["authSecretRef"] = {"name": "ospf-auth"}
        spec = {"ospf": ospf, "serviceGroupSelector": _igp_selector(k)}
    elif kind == 2:
        rip: Obj = {"interfaces": [f"rip{j}"], "families": _families(k)}
        if k % 4 == 1:
            rip["authSecretRef"] = {"name": "rip-auth"}
        spec = {"rip": rip, "serviceGroupSelector": _igp_selector(k)}
    elif kind == 3 and router is Router.FRR:
        isis: Obj = {
            "area": "49.0001",
            "level": "level-2",
            "interfaces": [{"name": f"isis{j}", "metric": 10, "networkType": "point-to-point"}],
            "families": _families(k),
        }
        if k % 2 == 0:
            isis["bfd"] = {}
        spec = {"isis": isis, "serviceGroupSelector": _igp_selector(k)}
    else:
        spec = _bgp_peer(j)
    if j % 2:
        spec["nodeSelector"] = {"matchLabels": {"rack": "r1"}}
    return _obj("Peer", f"peer-{j:05d}", spec)


def support_objects(router: Router) -> list[Obj]:
    """The node rendered for, its NodeAgent and the Secrets the Peers refer to."""
    node: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE, "labels": {"rack": "r1", "kubernetes.io/hostname": NODE}},
        "status": {"addresses": [{"type": "InternalIP", "address": ROUTER_ID}]},
    }
    agent = _obj(
        "NodeAgent", "agent", {"router": router.value, "routerID": ROUTER_ID, "localASN": LOCAL_ASN}
    )
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": PEER_NS},
            "stringData": {"password": value},
        }
        for name, value in (
            ("bgp-auth", "bgp-s3cret"),
            ("ospf-auth", "ospfkey1"),
            ("rip-auth", "ripkey1"),
        )
    ]
    return [node, agent, *secrets]


def generate(groups: int, peers: int, router: Router) -> list[Obj]:
    if not 0 < groups <= 65536 or not 0 < peers <= 65536:
        raise SystemExit("--groups and --peers must be between 1 and 65536")
    return [
        *support_objects(router),
        *(service_group(i, router) for i in range(groups)),
        *(peer(j, router) for j in range(peers)),
    ]


# -- measuring --------------------------------------------------------------------------


@dataclass
class Series:
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def summary(self) -> dict[str, float]:
        return {"median": self.median, "min": min(self.values), "max": max(self.values)}


@dataclass
class Result:
    router: Router
    groups: int
    peers: int
    load: Series = field(default_factory=Series)
    view: Series = field(default_factory=Series)
    render: Series = field(default_factory=Series)
    total: Series = field(default_factory=Series)
    parse: Series | None = None
    parse_error: str | None = None
    peak_bytes: int = 0
    config_bytes: int = 0
    config_lines: int = 0
    workload: dict[str, int] = field(default_factory=dict)
    warnings: int = 0


class BenchError(Exception):
    """The benchmark would measure the wrong thing (invalid objects, rejected config)."""


def run_once(
    objects: list[Obj], router: Router, templates: TemplateSet
) -> tuple[Model, NodeView, str, tuple[float, float, float, float]]:
    t0 = time.perf_counter()
    model = load(objects)
    t1 = time.perf_counter()
    view = build_view(model, router, NODE)
    t2 = time.perf_counter()
    text = render_view(view, templates)
    t3 = time.perf_counter()
    return model, view, text, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)


def check_clean(model: Model, view: NodeView, objects: list[Obj]) -> int:
    """Raise unless every generated object loaded and applies; return the warning count."""
    errors: list[Problem] = [*model.errors]
    errors += [p for p in view.problems if p.severity is Severity.ERROR]
    if errors:
        shown = "\n  ".join(str(p) for p in errors[:10])
        raise BenchError(f"{len(errors)} error(s) in the generated objects:\n  {shown}")
    parsed = len(model.service_groups) + len(model.peers) + len(model.node_agents)
    expected = sum(1 for o in objects if o["apiVersion"] == API)
    if parsed != expected:
        raise BenchError(f"{expected - parsed} generated object(s) were not loaded")
    return len(model.problems) + len(view.problems) - len(errors)


def workload(view: NodeView) -> dict[str, int]:
    exports = [e for n in view.bgp for e in n.exports]
    exports += [o.export for o in view.ospf] + [r.export for r in view.rip]
    exports += list(view.isis.exports) if view.isis is not None else []
    return {
        "groups_in_view": len(view.groups),
        "bgp_neighbors": len(view.bgp),
        "ospf_interfaces": sum(len(o.interfaces) for o in view.ospf),
        "rip_interfaces": sum(len(r.interfaces) for r in view.rip),
        "isis_interfaces": len(view.isis.interfaces) if view.isis is not None else 0,
        "export_filters": len(exports),
        "filter_entries": sum(len(e.groups) for e in exports),
    }


def parse_command(router: Router, path: Path) -> list[str] | None:
    if router is Router.BIRD:
        exe = shutil.which("bird")
        return None if exe is None else [exe, "-p", "-c", str(path)]
    exe = shutil.which("vtysh")
    return None if exe is None else [exe, "--dryrun", "-f", str(path)]


def time_parse(
    router: Router, text: str, runs: int, budget: float, timeout: float, result: Result
) -> None:
    """Run the router's parser up to ``runs`` times, stopping early once the parses
    have taken ``budget`` seconds (BIRD can take minutes on a large config)."""
    with tempfile.TemporaryDirectory(prefix="lbroute-bench-") as tmp:
        path = Path(tmp) / ENTRY[router].removesuffix(".j2")
        path.write_text(text, encoding="utf-8")
        cmd = parse_command(router, path)
        if cmd is None:
            result.parse_error = f"{'bird' if router is Router.BIRD else 'vtysh'} not installed"
            return
        series = Series()
        for _ in range(runs):
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, check=False, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                result.parse_error = f"{' '.join(cmd[:2])} took more than {timeout:g} s"
                return
            series.values.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                out = (proc.stderr + proc.stdout).strip().splitlines()
                result.parse_error = f"{' '.join(cmd[:2])} exit {proc.returncode}: " + (
                    " | ".join(out[:5]) or "no output"
                )
                return
            if sum(series.values) > budget:
                break
        result.parse = series


def measure(
    router: Router,
    groups: int,
    peers: int,
    templates: TemplateSet,
    *,
    runs: int,
    warmup: int,
    parse_budget: float,
    parse_timeout: float,
    save_dir: Path | None = None,
) -> Result:
    objects = generate(groups, peers, router)
    result = Result(router=router, groups=groups, peers=peers)
    model, view, text, _ = run_once(objects, router, templates)
    result.warnings = check_clean(model, view, objects)
    result.workload = workload(view)
    for _ in range(max(0, warmup - 1)):
        run_once(objects, router, templates)
    for _ in range(runs):
        del model, view
        gc.collect()
        model, view, again, times = run_once(objects, router, templates)
        if again != text:
            raise BenchError("two renders of the same objects differ: the output is not stable")
        for series, value in zip(
            (result.load, result.view, result.render, result.total), times, strict=True
        ):
            series.values.append(value)
    del model, view
    gc.collect()
    tracemalloc.start()
    run_once(objects, router, templates)
    result.peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result.config_bytes = len(text.encode())
    result.config_lines = text.count("\n")
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
        name = f"{router.value}-{groups}g-{peers}p.conf"
        (save_dir / name).write_text(text, encoding="utf-8")
    time_parse(router, text, runs, parse_budget, parse_timeout, result)
    return result


def profile(router: Router, groups: int, peers: int, templates: TemplateSet, top: int) -> str:
    objects = generate(groups, peers, router)
    run_once(objects, router, templates)  # warm caches like the timed runs
    prof = cProfile.Profile()
    prof.runcall(run_once, objects, router, templates)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# -- reporting --------------------------------------------------------------------------


def _ms(s: Series | None, runs: int = 0) -> str:
    if s is None:
        return "n/a"
    text = f"{s.median * 1e3:.1f} [{min(s.values) * 1e3:.1f}-{max(s.values) * 1e3:.1f}]"
    if runs and len(s.values) < runs:
        text += f" ({len(s.values)} run{'s' if len(s.values) > 1 else ''})"
    return text


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _ratio(a: float, b: Series | None) -> str:
    return "n/a" if b is None else f"{a / b.median:.2f}x"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "jinja2": jinja2.__version__}
    for name, cmd, pattern in (
        ("bird", ["bird", "--version"], r"version (\S+)"),
        ("frr", ["vtysh", "--help"], r"version (\S+?)\)"),
    ):
        exe = shutil.which(cmd[0])
        if exe is None:
            continue
        proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, check=False)
        m = re.search(pattern, proc.stdout + proc.stderr)
        found[name] = m.group(1) if m else "?"
    return found


def markdown(
    main: list[Result],
    scale: list[Result],
    skipped: dict[str, str],
    args: argparse.Namespace,
    env: dict[str, str],
) -> str:
    lines = [
        f"# lbroute render benchmark: {args.groups} ServiceGroups, {args.peers} Peers",
        "",
        ", ".join(f"{k} {v}" for k, v in env.items())
        + f"; {args.runs} runs after {args.warmup} warm-up, times in ms as median [min-max]",
        "",
        "| router | load() | build_view() | render | total | parser floor | total/parse "
        "| peak mem | config | < target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in main:
        ok = "yes" if r.total.median < args.target else f"**no** (> {args.target:g} s)"
        lines.append(
            f"| {r.router} | {_ms(r.load)} | {_ms(r.view)} | {_ms(r.render)} | {_ms(r.total)} "
            f"| {_ms(r.parse, args.runs)} | {_ratio(r.total.median, r.parse)} "
            f"| {_mib(r.peak_bytes)} "
            f"| {r.config_bytes / 1e6:.2f} MB, {r.config_lines} lines | {ok} |"
        )
    for router, why in skipped.items():
        lines.append(f"| {router} | skipped: {why} |||||||||")
    lines.append("")
    for r in main:
        w = ", ".join(f"{k} {v}" for k, v in r.workload.items())
        lines.append(f"- {r.router} view: {w}; {r.warnings} warnings, 0 errors")
        if r.parse_error:
            lines.append(f"- {r.router} parser: FAILED: {r.parse_error}")
    if scale:
        lines += [
            "",
            f"## Scale ({args.peers} Peers; median ms, growth vs. the smallest point)",
            "",
            "| router | groups | load() | build_view() | render | total | growth "
            "| parser floor | config lines |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        base: dict[Router, float] = {}
        for r in scale:
            base.setdefault(r.router, r.total.median)
            lines.append(
                f"| {r.router} | {r.groups} | {r.load.median * 1e3:.1f} "
                f"| {r.view.median * 1e3:.1f} | {r.render.median * 1e3:.1f} "
                f"| {r.total.median * 1e3:.1f} | {r.total.median / base[r.router]:.1f}x "
                f"| {'n/a' if r.parse is None else f'{r.parse.median * 1e3:.1f}'} "
                f"| {r.config_lines} |"
            )
    return "\n".join(lines) + "\n"


def to_json(r: Result) -> dict[str, Any]:
    return {
        "router": r.router.value,
        "groups": r.groups,
        "peers": r.peers,
        "seconds": {
            "load": r.load.summary(),
            "build_view": r.view.summary(),
            "render": r.render.summary(),
            "total": r.total.summary(),
            "parse": None if r.parse is None else r.parse.summary(),
        },
        "total_over_parse": None if r.parse is None else r.total.median / r.parse.median,
        "parse_runs": 0 if r.parse is None else len(r.parse.values),
        "parse_error": r.parse_error,
        "peak_memory_bytes": r.peak_bytes,
        "config_bytes": r.config_bytes,
        "config_lines": r.config_lines,
        "workload": r.workload,
        "warnings": r.warnings,
    }


# -- main -------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=5, help="timed runs per point (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="discarded runs first (default 1)")
    p.add_argument("--groups", type=int, default=1000, help="ServiceGroups (default 1000)")
    p.add_argument("--peers", type=int, default=500, help="Peers (default 500)")
    p.add_argument("--router", choices=("bird", "frr", "all"), default="all")
    p.add_argument(
        "--scale",
        type=_int_list,
        default=[10, 100, 1000],
        help="group counts of the scale points, '' for none (default 10,100,1000)",
    )
    p.add_argument("--target", type=float, default=1.0, help="seconds per render (default 1)")
    p.add_argument(
        "--fail-over-target", action="store_true", help="exit 3 when a total is over --target"
    )
    p.add_argument(
        "--parse-budget",
        type=float,
        default=60.0,
        help="stop repeating the router's parser once it took this many seconds (default 60)",
    )
    p.add_argument(
        "--parse-timeout", type=float, default=1800.0, help="seconds per parse (default 1800)"
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--save-configs", type=Path, metavar="DIR", help="keep the rendered configs")
    p.add_argument(
        "--profile",
        action="store_true",
        help="cProfile one run at the main size per router and print the hotspots",
    )
    p.add_argument("--profile-top", type=int, default=25, help="rows per profile listing")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    return args


def frr_templates_missing() -> str | None:
    entry = resources.files("renderer").joinpath("templates", "frr", ENTRY[Router.FRR])
    if not entry.is_file():
        return f"templates/frr/{ENTRY[Router.FRR]} not found (FRR templates not written yet)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    routers = [Router.BIRD, Router.FRR] if args.router == "all" else [Router(args.router)]
    skipped: dict[str, str] = {}
    main_results: list[Result] = []
    scale_results: list[Result] = []
    profiles: dict[str, str] = {}
    failed = False
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    for router in routers:
        why = frr_templates_missing() if router is Router.FRR else None
        if why is not None:
            log(f"{router}: skipped: {why}")
            skipped[router.value] = why
            continue
        templates = builtin_template_set(router)
        try:
            log(f"{router}: {args.groups} groups, {args.peers} peers ...")
            main_r = measure(
                router,
                args.groups,
                args.peers,
                templates,
                runs=args.runs,
                warmup=args.warmup,
                parse_budget=args.parse_budget,
                parse_timeout=args.parse_timeout,
                save_dir=args.save_configs,
            )
            main_results.append(main_r)
            for groups in sorted(set(args.scale)):
                if groups == args.groups:
                    scale_results.append(main_r)
                    continue
                log(f"{router}: scale point {groups} groups ...")
                scale_results.append(
                    measure(
                        router,
                        groups,
                        args.peers,
                        templates,
                        runs=args.runs,
                        warmup=args.warmup,
                        parse_budget=args.parse_budget,
                        parse_timeout=args.parse_timeout,
                    )
                )
            if args.profile:
                log(f"{router}: profiling one run ...")
                profiles[router.value] = profile(
                    router, args.groups, args.peers, templates, args.profile_top
                )
        except (BenchError, LbrouteError) as exc:
            log(f"{router}: FAILED: {exc}")
            skipped[router.value] = f"FAILED: {str(exc).splitlines()[0]}"
            failed = True
    failed = failed or any(r.parse_error for r in main_results + scale_results)
    env = versions()
    print(markdown(main_results, scale_results, skipped, args, env), end="")
    for router_name, text in profiles.items():
        print(f"\n## cProfile, {router_name}, one run\n\n```\n{text.strip()}\n```")
    if args.json is not None:
        data = {
            "environment": env,
            "runs": args.runs,
            "warmup": args.warmup,
            "target_seconds": args.target,
            "skipped": skipped,
            "main": [to_json(r) for r in main_results],
            "scale": [to_json(r) for r in scale_results],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if failed:
        return 1
    if args.fail_over_target and any(r.total.median >= args.target for r in main_results):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
