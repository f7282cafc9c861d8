"""The FRR text delta: what to send vtysh instead of a whole ``frr-reload.py`` run.

Pure functions on configuration text in FRR's canonical form (what lbroute renders and
``show running-config`` prints): :func:`frr_stanzas` splits a configuration into its
top-level statements; :func:`frr_policy_delta` turns one configuration into another by
vtysh commands when only prefix-lists and route-maps (and the outbound route-map a BGP
neighbor uses) differ; :func:`frr_is_empty` tells daemons that run nothing yet;
:func:`frr_commands` is a whole configuration as commands for one ``vtysh -f``;
:func:`frr_hostnames` the hostnames it names (FRR prints one per name its daemons have).
No process, file or router here: :class:`~nodeagent.routers.frr.FrrDriver` sends the
commands and has ``frr-reload.py --test`` confirm the result, and the table-driven
tests (tests/test_frr_delta.py) need no FRR.
"""

from __future__ import annotations

import re

_POLICY = ("route-map ", "ip prefix-list ", "ipv6 prefix-list ")
"""Top-level statements :func:`frr_policy_delta` changes by itself: a prefix-list
entry (one line) or a route-map entry (a header and its match/set lines)."""


def frr_stanzas(text: str) -> dict[str, tuple[str, ...]]:
    """A configuration in FRR's canonical form (what lbroute renders) as its top-level
    statements: the first line of each, with its indented lines. ``!``, ``exit`` and
    ``end`` only close statements."""
    stanzas: dict[str, list[str]] = {}
    body: list[str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("!") or line in ("exit", "end"):
            body = None
        elif line[0].isspace():
            if body is None:
                raise ValueError(f"indented line outside a statement: {line!r}")
            body.append(line)
        else:
            if line in stanzas:
                raise ValueError(f"statement twice: {line!r}")
            body = stanzas[line] = []
    return {head: tuple(lines) for head, lines in stanzas.items()}


def frr_policy_delta(old: str, new: str) -> str | None:
    """The vtysh commands that turn FRR running ``old`` into FRR running ``new``, when
    the two differ only in prefix-list and route-map entries; ``None`` for any other
    difference (a neighbor, an interface, a router block): then frr-reload.py decides.

    Order: new prefix-list entries, then route-map entries, then removed route-map
    entries, then removed prefix-list entries, so a route-map never refers to a
    prefix-list entry that is not there yet. An entry whose sequence number stays
    (a prefix-list entry's ``le`` changes, a route-map entry's action) is replaced by
    setting it again, never removed: FRR keys entries by sequence number, so ``no`` of
    the old line would remove the new one and withdraw its routes. Inside a route-map
    entry a changed line is simply set again (FRR keeps one rule per ``match``/``set``
    kind and replaces it); only a kind that is gone is removed with ``no``. No ``exit``
    lines: vtysh leaves a statement by itself when the next one starts, and FRR's
    daemons commit the whole file at once instead of once per ``exit``.
    """
    try:
        before, after = frr_stanzas(old), frr_stanzas(new)
    except ValueError:
        return None
    changed = {h for h in after.keys() | before.keys() if before.get(h) != after.get(h)}
    repoint: list[str] = []
    for head in sorted(changed):
        if head.startswith(_POLICY):
            continue
        lines = _repointed(head, before.get(head), after.get(head))
        if lines is None:
            return None
        repoint += lines
    heads = [h for h in after if h in changed] + [h for h in before if h not in after]
    heads = [h for h in heads if h.startswith(_POLICY)]
    kept = {_entry_key(h) for h in after}
    replaced = {_entry_key(h): h for h in before if h not in after}
    out: list[str] = []
    for head in heads:
        if head.startswith("route-map ") or head not in after:
            continue
        out.append(head)
    for head in heads:
        if not head.startswith("route-map ") or head not in after:
            continue
        was = head if head in before else replaced.get(_entry_key(head), "")
        had, has = before.get(was, ()), after[head]
        rules = {_rule(line) for line in has}
        out.append(head)
        out += [line for line in has if line not in had]
        out += [f" no {_rule(line)}" for line in had if _rule(line) not in rules]
    out += repoint  # after the route-maps they name exist, before old ones go
    removed = [h for h in heads if h not in after and _entry_key(h) not in kept]
    out += [f"no {h}" for h in removed if h.startswith("route-map ")]
    out += [f"no {h}" for h in removed if not h.startswith("route-map ")]
    return "".join(f"{line}\n" for line in out)


_EMPTY = (
    "frr version ",
    "frr defaults ",
    "hostname ",
    "service integrated-vtysh-config",
    "no ip forwarding",
    "no ipv6 forwarding",
)
"""What FRR's running configuration shows when its daemons run no configuration."""


def frr_is_empty(running: str) -> bool:
    """``show running-config`` holds nothing but what daemons started without a
    configuration show (version, defaults, hostname, forwarding)."""
    body = running.partition("Current configuration:")[2]
    try:
        stanzas = frr_stanzas(body)
    except ValueError:
        return False
    return bool(body) and all(not lines and h.startswith(_EMPTY) for h, lines in stanzas.items())


def frr_hostnames(text: str) -> tuple[str, ...]:
    """The hostnames a configuration names, in order. ``show running-config`` prints one
    line for each name among vtysh's own and its daemons'; a file normally has one."""
    return tuple(
        words[1]
        for words in (line.split() for line in text.splitlines())
        if words[:1] == ["hostname"] and len(words) == 2
    )


def frr_commands(text: str) -> str:
    """A configuration in FRR's canonical form as vtysh commands without comments and
    the lines that only close a statement (``!``, ``exit``, ``end``): vtysh leaves a
    statement by itself when a command belongs to an enclosing one, and FRR's daemons
    commit once."""
    return "".join(f"{line}\n" for line in text.splitlines() if _command(line.strip()))


def _command(line: str) -> bool:
    return bool(line) and not line.startswith("!") and line not in ("exit", "end")


_OUT_MAP = re.compile(r"^  neighbor \S+ route-map \S+ out$")


def _repointed(
    head: str, old: tuple[str, ...] | None, new: tuple[str, ...] | None
) -> list[str] | None:
    """The commands for a ``router bgp`` statement whose only change is the outbound
    route-map some neighbors use (neighbors that share a route-map move to another one
    when the set of neighbors sharing it changes); None for any other change."""
    if not head.startswith("router bgp ") or old is None or new is None or len(old) != len(new):
        return None
    out: list[str] = []
    family = ""
    for was, now in zip(old, new, strict=True):
        if was.startswith(" address-family "):
            family = was
        if was == now:
            continue
        neighbor = was.split()[:2]
        if not (_OUT_MAP.match(was) and _OUT_MAP.match(now) and now.split()[:2] == neighbor):
            return None
        if not family:
            return None
        out += [head, family, now]
    return out


def _entry_key(head: str) -> str:
    """What FRR keys a policy entry by: a route-map's name and sequence number (not its
    action), a prefix-list entry's list and sequence number (not its prefix)."""
    words = head.split()
    if words[0] == "route-map" and len(words) == 4:
        return f"route-map {words[1]} {words[3]}"
    if words[1:2] == ["prefix-list"] and words[3:4] == ["seq"] and len(words) > 4:
        return " ".join(words[:5])
    return head


def _rule(line: str) -> str:
    """The kind of a route-map line, without its values: ``set community``,
    ``match ip address prefix-list``, ``set as-path prepend``."""
    words = line.split()
    size = 4 if words[1:2] in (["ip"], ["ipv6"]) else 3 if words[1:2] == ["as-path"] else 2
    return " ".join(words[:size])
