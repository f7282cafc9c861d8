"""The FRR text delta: what to send vtysh instead of a whole ``frr-reload.py`` run.

Pure functions on configuration text in FRR's canonical form (what lbroute renders and
``show running-config`` prints): :func:`frr_stanzas` splits a configuration into its
top-level statements; :func:`frr_policy_delta` turns one configuration into another by
vtysh commands when only prefix-lists, BGP large-community lists and route-maps (and the
outbound route-map a BGP neighbor uses) differ; :func:`frr_is_empty` tells daemons that
run nothing yet; :func:`frr_commands` is a whole configuration as commands for one
``vtysh -f``; :func:`frr_hostnames` the hostnames it names (FRR prints one per name its
daemons have). No process, file or router here: :class:`~nodeagent.routers.frr.FrrDriver` sends the
commands and has ``frr-reload.py --test`` confirm the result, and the table-driven
tests (tests/test_frr_delta.py) need no FRR.
"""

from __future__ import annotations

import re

_LARGE_LIST = "bgp large-community-list "
_POLICY = ("route-map ", "ip prefix-list ", "ipv6 prefix-list ", _LARGE_LIST)
"""Top-level statements :func:`frr_policy_delta` changes by itself: a prefix-list or
large-community list entry (one line) or a route-map entry (a header and its
match/set lines)."""


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


_SHOW_HEADINGS = ("Building configuration...", "Current configuration:")
"""The lines ``show running-config`` prints before the configuration."""


def frr_statements(config: str) -> dict[str, tuple[str, ...]] | None:
    """``config`` (a file or what ``show running-config`` printed) as its statements
    (:func:`frr_stanzas`), without show's headings, the ``frr version`` line
    (:func:`frr_version_line`) and spaces at the ends of lines (ripngd prints its
    distribute-list with one); None when it is not in FRR's canonical form."""
    lines = (
        line.rstrip()
        for line in config.splitlines()
        if line.strip() not in _SHOW_HEADINGS and not frr_version_line(line)
    )
    try:
        return frr_stanzas("\n".join(lines))
    except ValueError:
        return None


def frr_runs(running: str, text: str) -> bool:
    """Whether FRR, whose ``show running-config`` printed ``running``, runs ``text`` (a
    configuration in FRR's canonical form, as lbroute renders it): the same
    :func:`frr_statements`, each with the same lines in the same order. It is the
    comparison ``frr-reload.py --test`` makes without its cost (its own parse and diff
    take most of an apply at 1,000 ServiceGroups). False only means "not shown the
    same": frr-reload.py decides then."""
    wanted = frr_statements(text)
    return wanted is not None and wanted == frr_statements(running)


def frr_policy_delta(old: str, new: str) -> str | None:
    """The vtysh commands that turn FRR running ``old`` into FRR running ``new``, when
    the two differ only in prefix-list, large-community list and route-map entries;
    ``None`` for any other difference (a neighbor, an interface, a router block): then
    frr-reload.py decides.

    Order: new list entries, then route-map entries, then removed route-map entries,
    then removed list entries, so a route-map never refers to a list entry that is not
    there yet. An entry whose sequence number stays (a prefix-list entry's ``le``
    changes, a large-community list entry's expression, a route-map entry's action) is
    replaced by setting it again, never removed: FRR keys entries by sequence number, so
    ``no`` of the old line would remove the new one and withdraw its routes. Inside a route-map
    entry a changed line is simply set again (FRR keeps one rule per ``match``/``set``
    kind and replaces it); only a kind that is gone is removed with ``no``. No ``exit``
    lines: vtysh leaves a statement by itself when the next one starts, and FRR's
    daemons commit the whole file at once instead of once per ``exit``.
    """
    try:
        before, after = frr_stanzas(old), frr_stanzas(new)
    except ValueError:
        return None
    repoint = _repoints(before, after)
    if repoint is None:
        return None
    return _lines(_policy_changes(_policy(before), _policy(after), repoint))


def _repoints(
    before: dict[str, tuple[str, ...]], after: dict[str, tuple[str, ...]]
) -> list[str] | None:
    """The commands for the statements other than policy that differ between two
    configurations: only the outbound route-map a BGP neighbor uses may
    (:func:`_repointed`); None for any other difference."""
    repoint: list[str] = []
    for head in sorted(after.keys() | before.keys()):
        if head.startswith(_POLICY) or before.get(head) == after.get(head):
            continue
        lines = _repointed(head, before.get(head), after.get(head))
        if lines is None:
            return None
        repoint += lines
    return repoint


def _policy(stanzas: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {head: lines for head, lines in stanzas.items() if head.startswith(_POLICY)}


def _policy_changes(
    before: dict[str, tuple[str, ...]], after: dict[str, tuple[str, ...]], repoint: list[str]
) -> list[str]:
    """The commands turning the policy statements ``before`` into ``after``, with the
    ``repoint`` commands after the new route-maps and before the removals (the order
    :func:`frr_policy_delta` explains)."""
    changed = {h for h in after.keys() | before.keys() if before.get(h) != after.get(h)}
    heads = [h for h in after if h in changed] + [h for h in before if h not in after]
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
    return out


def _lines(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


POLICY_DAEMONS = ("zebra", "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd")
"""The daemons vtysh sends every route-map and prefix-list command to that lbroute's
configurations can use (vtysh sends them to some others too, pimd or eigrpd, which
lbroute never runs, and prefix-lists to bfdd and staticd, which use none here)."""

_ROUTER_DAEMONS = (
    ("router bgp ", "bgpd"),
    ("router ospf6", "ospf6d"),
    ("router ospf", "ospfd"),
    ("router ripng", "ripngd"),
    ("router rip", "ripd"),
    ("router isis ", "isisd"),
)
"""Which daemon runs a router statement (``router ospf6`` before ``router ospf``)."""

Batches = list[tuple[str, str]]
"""vtysh commands with the daemon to send them to (``vtysh -d DAEMON``; FRR 8.4's vtysh
takes one) or "" for every daemon that knows each command, as vtysh decides."""


def frr_policy_users(
    stanzas: dict[str, tuple[str, ...]], daemons: tuple[str, ...] = POLICY_DAEMONS
) -> dict[str, tuple[str, ...]]:
    """For each prefix-list, large-community list and route-map entry of a
    configuration (its :func:`frr_stanzas`), the ``daemons`` that use it (bgpd alone
    for a large-community list, a BGP command): a router statement's daemon
    uses the route-maps and prefix-lists it names (a neighbor's, a redistribution's, a
    distribute-list's), and a route-map's users use what it calls or matches; a
    statement of another kind that names one, or nothing naming it, makes every one of
    ``daemons`` its user, as vtysh would send it (each of its lines to the daemons that
    know that command: ``set community`` to bgpd alone).

    Why (bench/README.md, "where FRR's time goes"): every daemon holding a route-map
    runs it again over its routes when any route-map changes, and vtysh sends every
    policy command to every daemon; at 1,000 ServiceGroups and 500 peers that made a
    first apply the sum of seven daemons' work on 28,802 commands. Daemons other than
    :data:`POLICY_DAEMONS` among ``daemons`` use none."""
    daemons = tuple(daemon for daemon in POLICY_DAEMONS if daemon in daemons)
    maps: dict[str, set[str]] = {}
    lists: dict[str, set[str]] = {}
    calls: dict[str, list[str]] = {}
    for head, lines in stanzas.items():
        if head.startswith("route-map "):
            calls.setdefault(head.split()[1], []).extend(lines)
            continue
        if head.startswith(_POLICY):
            continue
        daemon = next((d for prefix, d in _ROUTER_DAEMONS if head.startswith(prefix)), None)
        users = {daemon} if daemon in daemons else set(daemons)
        for line in (head, *lines):
            _name_users(line, users, maps, lists)
    pending = list(maps)
    while pending:
        name = pending.pop()
        for line in calls.get(name, ()):
            for callee in _name_users(line, maps[name], maps, lists):
                pending.append(callee)
    used: dict[str, tuple[str, ...]] = {}
    for head in stanzas:
        if not head.startswith(_POLICY):
            continue
        if head.startswith(_LARGE_LIST):  # a bgpd command: vtysh sends it nowhere else
            used[head] = ("bgpd",) if "bgpd" in daemons else daemons
            continue
        words = head.split()
        found = maps.get(words[1]) if words[0] == "route-map" else lists.get(words[2])
        used[head] = tuple(d for d in daemons if d in found) if found else daemons
    return used


def _name_users(
    line: str, users: set[str], maps: dict[str, set[str]], lists: dict[str, set[str]]
) -> list[str]:
    """Add ``users`` to the route-maps and prefix-lists ``line`` names (``route-map
    NAME``, ``call NAME``, ``prefix-list NAME``, ``distribute-list prefix NAME``); the
    route-maps that gained a user."""
    words = line.split()
    grown: list[str] = []
    for i, word in enumerate(words[:-1]):
        name = words[i + 1]
        if word in ("route-map", "call"):
            had = maps.setdefault(name, set())
            if not users <= had:
                had |= users
                grown.append(name)
        elif word == "prefix-list" or (word == "prefix" and "distribute-list" in words[:i]):
            lists.setdefault(name, set()).update(users)
    return grown


def frr_commands_by_daemon(text: str, daemons: tuple[str, ...] = POLICY_DAEMONS) -> Batches:
    """A whole configuration (:func:`frr_commands`) as vtysh batches, one for each of
    the running ``daemons``: the file
    without the prefix-lists and route-maps the daemon does not use
    (:func:`frr_policy_users`), in the file's order, which vtysh sends to that daemon
    as ``vtysh -b -d DAEMON`` does (the commands of other daemons stay in vtysh). One
    file to each daemon, its routers before its policy as in the file: isisd given its
    route-maps in a second file never applied them to its redistribution, and bgpd
    given 500 neighbors whose outbound route-maps already existed spent 378 s of CPU on
    them (9 s when the route-maps came after; 1,000 ServiceGroups). With no
    ``daemons`` named, the whole configuration to all."""
    if not daemons:
        return [("", frr_commands(text))]
    stanzas = frr_stanzas(text)
    users = frr_policy_users(stanzas, daemons)
    files: dict[str, list[str]] = {daemon: [] for daemon in daemons}
    for_them: tuple[str, ...] = daemons
    for line in text.splitlines():
        if not _command(line.strip()):
            continue
        if not line[0].isspace():
            for_them = users[line] if line.startswith(_POLICY) else daemons
        for daemon in for_them:
            files[daemon].append(line)
    return _batches({daemon: _lines(lines) for daemon, lines in files.items()})


def frr_policy_delta_by_daemon(
    old: str, new: str, daemons: tuple[str, ...] = POLICY_DAEMONS
) -> Batches | None:
    """:func:`frr_policy_delta` for FRR running ``old`` as :func:`frr_commands_by_daemon`
    loaded it: each daemon gets the changes to the policy it uses (an entry one daemon
    stops using is removed from that daemon only, one it starts using is added to it),
    so a change to one BGP neighbor's route-map reaches bgpd alone. The outbound
    route-maps BGP neighbors move to go with bgpd's. ``None`` when the configurations
    differ in more than policy (frr-reload.py decides), or bgpd is not among
    ``daemons`` when a neighbor moves."""
    try:
        before, after = frr_stanzas(old), frr_stanzas(new)
    except ValueError:
        return None
    repoint = _repoints(before, after)
    if repoint is None or (repoint and "bgpd" not in daemons):
        return None
    if not daemons:
        return [("", _lines(_policy_changes(_policy(before), _policy(after), repoint)))]
    had, has = frr_policy_users(before, daemons), frr_policy_users(after, daemons)
    changes: dict[str, str] = {}
    for daemon in daemons:
        was = {h: v for h, v in before.items() if daemon in had.get(h, ())}
        now = {h: v for h, v in after.items() if daemon in has.get(h, ())}
        moved = repoint if daemon == "bgpd" else []
        changes[daemon] = _lines(_policy_changes(was, now, moved))
    return _batches(changes)


def frr_policy_strays(
    held: dict[str, dict[str, tuple[str, ...]]], text: str, daemons: tuple[str, ...]
) -> Batches:
    """The ``no`` commands that leave each daemon holding only the policy it uses in
    ``text`` (:func:`frr_policy_users`), ``held`` being each daemon's own running
    configuration (its :func:`frr_statements`). frr-reload.py and a daemon started
    from the whole file give every daemon every entry; the policy deltas assume each
    has its own (frr-reload.py may even leave a daemon a route-map entry with one line
    of it). An entry is taken from a daemon only while the daemons that use it hold the
    entry and every line of it, so FRR as a whole still runs ``text``."""
    try:
        users = frr_policy_users(frr_stanzas(text), daemons)
    except ValueError:
        return []
    strays: dict[str, str] = {}
    for daemon in daemons:
        gone = []
        for head, lines in held.get(daemon, {}).items():
            if head not in users or daemon in users[head]:
                continue
            kept = [held[d][head] for d in users[head] if head in held.get(d, {})]
            if kept and set(lines) <= {line for entry in kept for line in entry}:
                gone.append(head)
        route_maps = [h for h in gone if h.startswith("route-map ")]
        lists = [h for h in gone if not h.startswith("route-map ")]
        strays[daemon] = _lines([f"no {h}" for h in route_maps + lists])
    return _batches(strays)


def _batches(commands: dict[str, str]) -> Batches:
    """A batch for each daemon given commands."""
    return [(daemon, text) for daemon, text in commands.items() if text]


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
    action), a prefix-list or large-community list entry's list and sequence number (not
    its prefix or expression)."""
    words = head.split()
    if words[0] == "route-map" and len(words) == 4:
        return f"route-map {words[1]} {words[3]}"
    if head.startswith(_LARGE_LIST) and words[4:5] == ["seq"] and len(words) > 5:
        return " ".join(words[:6])
    if words[1:2] == ["prefix-list"] and words[3:4] == ["seq"] and len(words) > 4:
        return " ".join(words[:5])
    return head


def _rule(line: str) -> str:
    """The kind of a route-map line, without its values: ``set community``,
    ``match ip address prefix-list``, ``set as-path prepend``."""
    words = line.split()
    size = 4 if words[1:2] in (["ip"], ["ipv6"]) else 3 if words[1:2] == ["as-path"] else 2
    return " ".join(words[:size])


_NOT_RELOADED = ("password ", "enable password ", "agentx", "line vty")
"""Top-level statements frr-reload.py never removes nor compares (it drops them from
its "Lines To Delete" as lines that "cannot be removed"), although FRR removes them
at runtime: ``no password``, ``no agentx``, ``no exec-timeout`` under ``line vty``...
(``enable password`` it does remove: listed for the comparison only). ``username`` is
not among them: FRR 8.4 has no such command, so no daemon runs one."""


def frr_not_reloaded(running: str, text: str) -> list[str]:
    """The lines of ``running`` (what ``show running-config`` prints) that frr-reload.py
    leaves in place although ``text`` does not have them: passwords, ``agentx``, the
    settings inside ``line vty``. Each as FRR prints it (``line vty`` settings indented
    under their statement); none when FRR runs what ``text`` says of them."""
    try:
        have = frr_stanzas(running.partition("Current configuration:")[2] or running)
        want = frr_stanzas(text)
    except ValueError:
        return []
    left: list[str] = []
    for head, lines in have.items():
        if not head.startswith(_NOT_RELOADED):
            continue
        extra = [line for line in lines if line not in want.get(head, ())]
        # An empty ``line vty`` (FRR may print one) is nothing.
        if extra or (head not in want and head != "line vty"):
            left += [head, *extra]
    return left


def frr_not_reloaded_commands(left: list[str]) -> str:
    """The vtysh commands that remove the lines :func:`frr_not_reloaded` found:
    ``no password``, ``no enable password``, ``no agentx``, and inside ``line vty``
    the ``no`` of each setting (``login`` for ``no login``, the default timeout for an
    ``exec-timeout``). An empty ``line vty`` statement (FRR prints one) needs nothing."""
    out: list[str] = []
    for line in left:
        words = line.split()
        if line.startswith("password "):
            out.append("no password")
        elif line.startswith("enable password "):
            out.append("no enable password")
        elif line == "agentx":
            out.append("no agentx")
        elif line == "line vty":
            out.append(line)
        elif words == ["no", "login"]:
            out.append(" login")
        elif words[:1] == ["exec-timeout"]:
            # FRR 8.4's ``no exec-timeout`` sets no timeout at all (``exec-timeout 0
            # 0``); the default, which FRR does not print, is 10 minutes.
            out.append(" exec-timeout 10 0")
        elif line.startswith(" "):
            out.append(f" no {line.strip()}")
    return "".join(f"{line}\n" for line in out)


_VERSION = re.compile(r"^frr version \S+$")


def frr_version_line(line: str) -> bool:
    """``frr version X``: the one line FRR cannot change at runtime. Every daemon prints
    the version it was built as, whatever file it loaded (``frr version`` in a file is
    read and ignored), so a rendered text for another FRR version keeps this line
    different forever: verification ignores exactly it."""
    return bool(_VERSION.match(line.strip()))


_BFD_DEFAULTS = {
    "detect-multiplier": "3",
    "transmit-interval": "300",
    "receive-interval": "300",
    "echo transmit-interval": "50",
    "echo receive-interval": "50",
}
"""BFD settings FRR 8.4 has no ``no`` form for (``no transmit-interval 900`` is an
unknown command inside a ``bfd`` profile or peer), with the defaults that remove them
from the running configuration."""

_NO_BFD_SETTING = re.compile(
    r"^(?P<indent>\s+)no (?P<setting>" + "|".join(_BFD_DEFAULTS) + r") \d+$"
)


def frr_bfd_defaults(pending: tuple[str, ...] | list[str]) -> str:
    """The vtysh commands for the BFD settings among what ``frr-reload.py --test``
    still wants to delete (``pending``, its report's lines), which frr-reload.py sends
    as ``no`` commands FRR does not have: each setting set back to its default inside
    its ``bfd`` profile or peer. "" when there is none."""
    out: list[str] = []
    context: list[str] = []
    deleting = False
    for line in pending:
        if line in ("Lines To Delete", "Lines To Add"):
            deleting = line == "Lines To Delete"
            continue
        if not deleting:
            continue
        if line == "bfd":
            context = [line]
        elif context and line.startswith(" ") and not line.startswith("  "):
            context = [context[0], line]
        elif len(context) == 2 and (found := _NO_BFD_SETTING.match(line)):
            setting = found["setting"]
            out += [*context, f"{found['indent']}{setting} {_BFD_DEFAULTS[setting]}"]
        else:
            context = []
    return "".join(f"{line}\n" for line in out)
