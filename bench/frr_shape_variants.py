#!/usr/bin/env python3
"""FRR's outbound policy in other shapes: an experiment, not the product.

The render benchmark's objects (1,000 ServiceGroups, 500 Peers), either as they are
("bench": 18 distinct Peer selections) or with every BGP Peer selecting its own three
teams ("worst": 475 distinct selections), are rendered for FRR by the product; the
outbound route-maps of the file are then rewritten into another shape, and the agent's
driver applies the result once onto FRR daemons that run nothing (a first apply, as in
``bench/apply_bench.py``), in a throw-away namespace. Shapes:

- ``cur``: the file as rendered (one route-map entry per group per distinct selection,
  each with the group's match and set lines).
- ``call``: one action route-map per session kind and family, an entry per group (its
  match and set lines); a selection's route-map is one entry that matches a prefix-list
  holding the prefixes of the selected groups and calls the action map.
- ``mark``: as ``call``, but the BGP redistribution entry of each group adds a marker
  large community (``4294967295:1:<group number>``); a selection's entry matches a
  standard large-community list, one line per selected group, and deletes the markers.
- ``markx``: as ``mark``, with one expanded list per selection (a regular expression of
  the selected numbers) instead.
- ``markr``: as ``mark``, with what a group's routes get towards every neighbor set once
  at redistribution (communities, large communities and the marker in one line, MED,
  local preference); the action maps keep only the eBGP prepends and the class calls.
- ``markrx``: ``markr`` with ``markx``'s expanded lists.
- ``plist``: no selection route-maps at all: a neighbor's selection is a prefix-list of
  its groups' prefixes applied as ``neighbor ... prefix-list ... out``, and its
  route-map is the action map of its session kind and family (``markr``'s common
  attributes at redistribution, no marker).

The rewritten files are checked by FRR's own parser only through the apply: routes were
not exchanged with a peer, so the shapes are compared on cost, not proven equivalent.

    sudo .venv/bin/python bench/frr_shape_variants.py SHAPE-WORKLOAD [--budget S]
        [--delay-timer N]    (SHAPE: cur, call, mark, markx; WORKLOAD: bench, worst)
"""

from __future__ import annotations

import argparse
import itertools
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from apply_bench import Node
from render_bench import NODE, _team, generate

from lbroute.model.api import Router, load
from renderer import build_view, builtin_template_set, render_view

MARK = "4294967295:1"


def objects(worst: bool, community: int | None = None) -> list[dict[str, Any]]:
    objs = generate(1000, 500, Router.FRR)
    if community is not None:  # the first group's communities (svc-00000 has some)
        group = next(o for o in objs if o["kind"] == "ServiceGroup")
        group["spec"]["bgp"]["communities"] = [f"64512:{community}"]
    if worst:
        combos = list(itertools.combinations(range(20), 3))
        for o in objs:
            if o["kind"] == "Peer" and "bgp" in o["spec"]:
                j = int(o["metadata"]["name"].split("-")[1])
                teams = sorted({_team(t) for t in combos[(j * 37) % len(combos)]})
                expr = {"key": "team", "operator": "In", "values": teams}
                o["spec"]["serviceGroupSelector"] = {"matchExpressions": [expr]}
    return objs


def rendered(worst: bool, community: int | None = None) -> tuple[Any, str]:
    model = load(objects(worst, community))
    if model.errors:
        raise SystemExit(f"generated objects do not load: {model.errors[0]}")
    view = build_view(model, Router.FRR, NODE, hostname=socket.gethostname())
    return view, render_view(view, builtin_template_set(Router.FRR))


def _keyword(family: Any) -> str:
    return "ip" if "4" in str(family) else "ipv6"


def _without_maps(text: str, names: set[str]) -> str:
    kept, skipping = [], False
    for line in text.splitlines():
        m = re.match(r"route-map (\S+) (permit|deny) \d+$", line)
        if m and m.group(1) in names:
            skipping = True
        if not skipping:
            kept.append(line)
        elif line == "!":
            skipping = False
    return "\n".join(kept)


def _set_lines(x: Any) -> list[str]:
    a = x.actions
    out = []
    if x.as_path_prepend:
        out.append(" set as-path prepend " + " ".join(map(str, x.as_path_prepend)))
    if a.communities:
        spelt = ("graceful-shutdown" if c.asn == 65535 and c.value == 0 else f"{c.asn}:{c.value}"
                 for c in a.communities)  # fmt: skip
        out.append(" set community " + " ".join(spelt))
    if a.large_communities:
        out.append(" set large-community " + " ".join(
            f"{c.global_admin}:{c.data1}:{c.data2}" for c in a.large_communities))  # fmt: skip
    if a.local_pref is not None:
        out.append(f" set local-preference {a.local_pref}")
    if a.med is not None:
        out.append(f" set metric {a.med}")
    return out


def _common_sets(
    actions: dict[tuple[str, str], dict[int, tuple[Any, Any]]], marker: bool = True
) -> dict[str, str]:
    """``markr``: what a group's routes get towards every neighbor (communities, large
    communities with the marker, MED, and the local preference, which eBGP neighbors
    never receive), set once where BGP takes the route from the kernel, by the group's
    number. Prepends stay in the eBGP action maps."""
    found: dict[int, list[str]] = {}
    for entries in actions.values():
        for seq, (x, _family) in entries.items():
            lines = found.setdefault(seq, [])
            for line in _set_lines(x):
                if "as-path" in line:
                    continue
                if marker and line.startswith(" set large-community"):
                    line = f"{line} {MARK}:{seq}"
                if line not in lines:
                    lines.append(line)
    out = {}
    for seq, lines in found.items():
        if marker and not any(line.startswith(" set large-community") for line in lines):
            lines.append(f" set large-community {MARK}:{seq}")
        out[str(seq)] = "".join(
            f"{line} additive\n" if "community" in line else f"{line}\n" for line in lines
        )
    return out


def reshape(view: Any, text: str, shape: str) -> str:
    if shape == "cur":
        return text
    body = _without_maps(text, {e.name for e in view.bgp_export_maps})
    actions: dict[tuple[str, str], dict[int, tuple[Any, Any]]] = {}
    selections: list[str] = []
    maps: list[str] = []
    bindings: dict[str, tuple[str, str, str]] = {}
    lean = shape.startswith("markr") or shape == "plist"
    """The selections' route-maps, after all lists: FRR commits a run of route-map lines
    at once, and a line of another kind (a community list) ends the run."""
    for e in view.bgp_export_maps:
        kw = _keyword(e.family)
        owner = f"{e.session.lower()}{e.local_asn if e.session.name == 'EBGP' else ''}"
        act = f"lbr-bgp-act-{owner}-{'v4' if kw == 'ip' else 'v6'}"
        for x in e.entries:
            actions.setdefault((act, kw), {}).setdefault(x.group.seq, (x, e.family))
        sel = f"{e.name}-sel"
        if shape in ("call", "plist"):
            n = 0
            for x in e.entries_by_seq:
                for p in x.group.prefixes[e.family]:
                    n += 1
                    ge = f" ge {p.ge}" if p.ge_printed else ""
                    le = f" le {p.le}" if p.le_printed else ""
                    selections.append(f"{kw} prefix-list {sel} seq {n} permit {p.network}{ge}{le}")
            match = f" match {kw} address prefix-list {sel}"
        else:
            if shape in ("markx", "markrx"):
                numbers = "|".join(str(x.group.seq) for x in e.entries_by_seq)
                selections.append(
                    f"bgp large-community-list expanded {sel} seq 5 permit _{MARK}:({numbers})_"
                )
            else:
                selections += [
                    f"bgp large-community-list standard {sel} seq {x.group.seq} "
                    f"permit {MARK}:{x.group.seq}"
                    for x in e.entries_by_seq
                ]
            match = f" match large-community {sel}\n set large-comm-list lbr-marks delete"
        if shape == "plist":
            bindings[e.name] = (sel, act, kw)
        else:
            maps.append(f"!\nroute-map {e.name} permit 10\n call {act}\n{match}\nexit\n!")
    common: dict[str, str] = {}
    if lean:
        common = _common_sets(actions, marker=shape != "plist")
    if shape == "plist":
        body = re.sub(
            r"^(route-map lbr-bgp-export-v[46] permit (\d+)\n)",
            lambda m: m.group(1) + common.get(m.group(2), ""),
            body,
            flags=re.M,
        )
        body = re.sub(
            r"^( +)neighbor (\S+) route-map (\S+) out$",
            lambda m: (
                f"{m.group(1)}neighbor {m.group(2)} prefix-list {bindings[m.group(3)][0]} out\n"
                f"{m.group(1)}neighbor {m.group(2)} route-map {bindings[m.group(3)][1]} out"
                if m.group(3) in bindings
                else m.group(0)
            ),
            body,
            flags=re.M,
        )
    elif shape != "call":
        selections.append(f"bgp large-community-list expanded lbr-marks seq 5 permit ^{MARK}:")
        body = re.sub(
            r"^(route-map lbr-bgp-export-v[46] permit (\d+)\n)",
            lambda m: (
                m.group(1)
                + (
                    common.get(m.group(2), f" set large-community {MARK}:{m.group(2)} additive\n")
                    if m.group(2) != "1"
                    else ""
                )
            ),
            body,
            flags=re.M,
        )
    lines = []
    for (act, kw), entries in actions.items():
        for seq, (x, family) in sorted(entries.items()):
            if lean and not (x.class_map or x.as_path_prepend):
                continue
            lines.append(f"route-map {act} permit {seq}")
            if x.class_map:
                lines.append(f" call {x.class_map.name}")
            lines.append(f" match {kw} address prefix-list {x.group.set_names[family]}")
            sets = _set_lines(x)
            if lean:
                sets = [line for line in sets if "as-path" in line]
            lines += [*sets, "exit", "!"]
        if lean:
            lines += [f"route-map {act} permit 65535", "exit", "!"]
    at = body.find("\nroute-map lbr-import-none") + 1
    return body[:at] + "\n".join(selections + maps + lines) + "\n" + body[at:] + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", help="SHAPE-WORKLOAD, e.g. mark-worst")
    parser.add_argument("--budget", type=float, default=600)
    parser.add_argument("--delay-timer", type=int, help="render this route-map delay-timer")
    parser.add_argument("--changes", type=int, default=0,
                        help="then change the first group's communities this many times, "
                        "each through the driver, and time each")  # fmt: skip
    args = parser.parse_args()
    shape, workload = args.variant.split("-")
    view, text = rendered(workload == "worst")
    text = reshape(view, text, shape)
    others = []
    for value in (901, 902):
        changed_view, changed = rendered(workload == "worst", value)
        others.append(reshape(changed_view, changed, shape))
    if others[0] == others[1]:
        raise SystemExit("the first group's communities do not reach the configuration")
    if args.delay_timer is not None:
        text = text.replace("bgp route-map delay-timer 1\n",
                            f"bgp route-map delay-timer {args.delay_timer}\n")  # fmt: skip
    entries = len(re.findall(r"^route-map ", text, re.M))
    plists = len(re.findall(r"^ipv?6? ?prefix-list ", text, re.M))
    clists = len(re.findall(r"^bgp large-community-list ", text, re.M))
    print(f"{args.variant}: {text.count(chr(10))} lines, {len(text)} bytes, {entries} route-map "
          f"entries, {plists} prefix-list lines, {clists} large-community-list lines",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        node = Node(Router.FRR, Path(d), timeout=args.budget)
        try:
            started = time.perf_counter()
            seconds = node.first(text)
            if seconds is None:
                print(f"first apply failed after {time.perf_counter() - started:.1f} s")
                return 1
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in node.cpu().items() if v >= 0.5)
            print(f"first apply {seconds:.1f} s; CPU s: {cpu}", flush=True)
            took = [node.apply(others[i % 2]) for i in range(args.changes)]
            if took:
                print("changes: " + ", ".join(f"{t:.2f}" for t in took) + " s")
        finally:
            node.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
