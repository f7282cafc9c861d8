"""Values as the other tools write them, turned into lbroute's: durations, label
selectors, address pools, names; and a small reader of foreign objects that reports
every field it does not know.

Each function either returns lbroute's value or reports, on the :class:`Report`, the
object and field it could not convert and what would be valid; none guesses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lbroute.convert.report import Report, q
from lbroute.model.fields import IPAddress, IPNetwork

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: Any) -> float | None:
    """A Go/Kubernetes duration (``"90s"``, ``"1m30s"``, ``"300ms"``) or a number of
    seconds, in seconds; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos else None


class Source:
    """One foreign object's fields, read once each; :meth:`leftover` reports the ones no
    rule read (they have no lbroute equivalent)."""

    def __init__(
        self, obj: Mapping[str, Any], report: Report, base: str = "spec", data: Any = None
    ) -> None:
        """``data``: the fields at ``base`` when they are not ``obj[base]`` (a list item)."""
        self.obj = obj
        self.report = report
        self.base = base
        if data is None:
            data = obj.get(base) if "." not in base else _at(obj, base)
        self.data: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        self.read: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.base}.{key}" if self.base else key

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        value = self.data.get(key, default)
        return default if value is None else value

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def error(self, key: str, message: str) -> None:
        self.report.error(self.obj, self.path(key), message)

    def warning(self, key: str, message: str) -> None:
        self.report.warning(self.obj, self.path(key), message)

    def info(self, key: str, message: str) -> None:
        self.report.info(self.obj, self.path(key), message)

    def refuse(self, key: str, why: str, *, unless: Any = None) -> None:
        """``key`` has no lbroute equivalent: an error when it is set to anything but
        ``unless`` (its harmless default)."""
        value = self.get(key)
        if value is not None and value != unless and value != [] and value != {}:
            self.error(key, f"{q(value)}: {why}")

    def leftover(self, why: str = "no lbroute equivalent; not converted") -> None:
        for key in sorted(set(self.data) - self.read, key=str):
            if self.data[key] is not None:
                self.error(str(key), f"{q(self.data[key])}: {why}")

    def int_(self, key: str, low: int, high: int) -> int | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(key, f"{q(value)} is not valid; expected an integer from {low} to {high}")
            return None
        return value

    def seconds(self, key: str, low: int, high: int) -> int | None:
        """A duration field in whole seconds (``"90s"`` -> 90)."""
        value = self.get(key)
        if value is None:
            return None
        seconds = duration_seconds(value)
        if seconds is None or seconds != int(seconds) or not low <= seconds <= high:
            self.error(
                key,
                f"{q(value)} is not valid for lbroute; expected a whole number of seconds from "
                f"{low} to {high} (such as '90s')",
            )
            return None
        return int(seconds)


def _at(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


# -- label selectors ------------------------------------------------------------------------


def selector(value: Any) -> dict[str, Any] | None:
    """A Kubernetes label selector as lbroute writes it (empty parts left out); None for
    the empty selector (everything)."""
    if not isinstance(value, Mapping):
        return None
    out: dict[str, Any] = {}
    labels = value.get("matchLabels")
    if isinstance(labels, Mapping) and labels:
        out["matchLabels"] = {str(k): v for k, v in sorted(labels.items(), key=lambda i: str(i[0]))}
    expressions = value.get("matchExpressions")
    if isinstance(expressions, list) and expressions:
        out["matchExpressions"] = [
            {k: e[k] for k in ("key", "operator", "values") if isinstance(e, Mapping) and k in e}
            for e in expressions
        ]
    return out or None


def merge_selectors(selectors: list[dict[str, Any] | None]) -> tuple[dict[str, Any] | None, bool]:
    """One selector that matches what any of ``selectors`` matches (they are ORed), and
    whether that was possible: any empty one -> everything; several that each require
    one value of the same key -> that key In the values."""
    if not selectors or any(s is None for s in selectors):
        return None, True
    unique = [s for i, s in enumerate(selectors) if s not in selectors[:i]]
    if len(unique) == 1:
        return unique[0], True
    key: str | None = None
    values: list[str] = []
    for s in unique:
        assert s is not None
        single = _single_requirement(s)
        if single is None or (key is not None and single[0] != key):
            return None, False
        key = single[0]
        values += [v for v in single[1] if v not in values]
    assert key is not None
    return {"matchExpressions": [{"key": key, "operator": "In", "values": values}]}, True


def _single_requirement(s: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    labels = s.get("matchLabels") or {}
    expressions = s.get("matchExpressions") or []
    if len(labels) == 1 and not expressions:
        [(k, v)] = labels.items()
        return str(k), [v]
    if not labels and len(expressions) == 1 and expressions[0].get("operator") == "In":
        return str(expressions[0].get("key")), list(expressions[0].get("values") or [])
    return None


# -- address pools --------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Addresses ``first``..``last`` of one pool entry as the other tool hands them out."""

    first: IPAddress
    last: IPAddress

    @property
    def version(self) -> int:
        return self.first.version


def parse_block(value: Any) -> Block | None:
    """A CIDR (host bits allowed, as MetalLB and PureLB take them) or ``a-b`` range."""
    if not isinstance(value, str):
        return None
    try:
        if "-" in value:
            a, b = (ipaddress.ip_address(x.strip()) for x in value.split("-", 1))
            if a.version != b.version or int(b) < int(a):
                return None
            return Block(a, b)
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None
    return Block(net.network_address, net.broadcast_address)


def _address(version: int, n: int) -> IPAddress:
    return ipaddress.IPv4Address(n) if version == 4 else ipaddress.IPv6Address(n)


def without_buggy(block: Block) -> list[Block]:
    """An IPv4 block without the addresses ending in .0 or .255 (MetalLB's
    avoidBuggyIPs), as the runs of addresses left."""
    if block.version != 4:
        return [block]
    runs: list[Block] = []
    n, last = int(block.first), int(block.last)
    while n <= last:
        if n & 0xFF in (0, 0xFF):
            n += 1
            continue
        end = min(last, (n | 0xFF) - 1)
        runs.append(Block(_address(4, n), _address(4, end)))
        n = end + 1
    return runs


def covering(block: Block, length: int) -> IPNetwork:
    """The network of prefix ``length`` that holds ``block.first``."""
    return ipaddress.ip_network(f"{block.first}/{length}", strict=False)


def networks(block: Block) -> list[IPNetwork]:
    """The fewest networks that hold exactly ``block``."""
    found: list[IPNetwork] = []
    for net in ipaddress.summarize_address_range(block.first, block.last):
        found.append(ipaddress.ip_network(str(net)))
    return found


def exact_network(block: Block) -> IPNetwork | None:
    nets = networks(block)
    return nets[0] if len(nets) == 1 else None


def lbroute_pool(
    block: Block, *, subnet: IPNetwork | None = None, aggregation: int | None = None
) -> dict[str, Any]:
    """lbroute's pool handing out exactly ``block``: a cidr when it is one, else a range;
    with ``subnet`` and ``aggregation`` (a prefix length) when given, and
    allowNetworkAndBroadcast when lbroute would otherwise keep back an address of it
    (the other tool hands out every address of its pool)."""
    pool: dict[str, Any] = {}
    net = exact_network(block)
    if net is not None:
        pool["cidr"] = str(net)
    else:
        pool["range"] = f"{block.first}-{block.last}"
    if subnet is not None and subnet != net:
        pool["subnet"] = str(subnet)
    network = subnet or net
    if aggregation is not None:
        pool["aggregation"] = f"/{aggregation}"
    if network is not None and network.prefixlen < network.max_prefixlen - 1:
        ends = [network.network_address]
        if network.version == 4:
            ends.append(network.broadcast_address)
        if any(int(block.first) <= int(e) <= int(block.last) for e in ends):
            pool["allowNetworkAndBroadcast"] = True
    return pool


def split_at(block: Block, networks: Iterable[IPNetwork]) -> list[tuple[Block, IPNetwork]]:
    """The parts of ``block`` inside each of ``networks`` (which do not overlap)."""
    parts = []
    for net in networks:
        lo = max(int(block.first), int(net.network_address))
        hi = min(int(block.last), int(net.broadcast_address))
        if lo <= hi:
            parts.append((Block(_address(block.version, lo), _address(block.version, hi)), net))
    return parts


# -- names ----------------------------------------------------------------------------------

_NAME_OK = re.compile(r"[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?")


def object_name(name: str, suffix: str = "") -> str:
    """``name`` + ``suffix`` as a valid object name (lowercase, at most 253 characters)."""
    base = re.sub(r"[^a-z0-9.\-]", "-", name.lower()).strip("-.") or "converted"
    text = (base[: 253 - len(suffix)] + suffix).strip("-.")
    return text if _NAME_OK.fullmatch(text) else "converted" + suffix


def meta_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) else ""


def meta_namespace(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    ns = meta.get("namespace") if isinstance(meta, Mapping) else None
    return ns if isinstance(ns, str) else ""


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def matches(sel: Any, labels: Mapping[str, str]) -> bool:
    """Whether a label selector (as written) matches ``labels``; the empty one matches."""
    if not isinstance(sel, Mapping):
        return True
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(str(k)) != str(v):
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), [str(v) for v in e.get("values") or []]
        have = key in labels
        if op == "In" and not (have and labels[key] in values):
            return False
        if op == "NotIn" and have and labels[key] in values:
            return False
        if op == "Exists" and not have:
            return False
        if op == "DoesNotExist" and have:
            return False
    return True
