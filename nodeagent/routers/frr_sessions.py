"""The parsers of what FRR's vtysh JSON commands report about sessions: BGP
(``show bgp neighbors json``, with the uptime of ``show bgp summary json``), OSPF,
OSPFv3, IS-IS and BFD, as :class:`~nodeagent.routers.driver.Session` values.

Pure functions on the parsed JSON, kept apart from :class:`~nodeagent.routers.frr.FrrDriver`
(which runs the commands) so that each module keeps to one concern. They read what FRR
8.4 prints and skip what they do not recognise: a daemon that is not running answers
nothing, and a field that is missing leaves its value empty.
"""

from __future__ import annotations

from typing import Any

from nodeagent.routers.driver import Session


def items(data: Any) -> list[tuple[str, Any]]:
    """The members of a JSON object; none for anything else."""
    return [(str(k), v) for k, v in data.items()] if isinstance(data, dict) else []


def bgp_uptimes(summary: Any) -> dict[str, str]:
    """Neighbor -> the Up/Down column of ``show bgp summary`` (``never``, ``00:01:02``)."""
    uptimes: dict[str, str] = {}
    for _, family in items(summary):
        for name, peer in items(family.get("peers") if isinstance(family, dict) else None):
            if isinstance(peer, dict) and "peerUptime" in peer:
                uptimes.setdefault(name, str(peer["peerUptime"]))
    return uptimes


def ospf_sessions(data: Any) -> list[Session]:
    found = []
    for router_id, adjacencies in items(data.get("neighbors") if isinstance(data, dict) else None):
        for adj in adjacencies if isinstance(adjacencies, list) else []:
            interface = str(adj.get("ifaceName", "")).split(":")[0]
            state = str(adj.get("converged") or adj.get("nbrState", "")).split("/")[0]
            found.append(
                Session(
                    name=f"{router_id}@{interface}",
                    protocol="ospf",
                    state=state,
                    since=str(adj.get("upTime", "")),
                )
            )
    return found


def ospf6_sessions(data: Any) -> list[Session]:
    neighbors = data.get("neighbors") if isinstance(data, dict) else None
    return [
        Session(
            name=f"{adj.get('neighborId', '')}@{adj.get('interfaceName', '')}",
            protocol="ospf6",
            state=str(adj.get("state", "")),
            since=str(adj.get("duration", "")),
        )
        for adj in (neighbors if isinstance(neighbors, list) else [])
        if isinstance(adj, dict)
    ]


def isis_sessions(data: Any) -> list[Session]:
    found = []
    areas = data.get("areas") if isinstance(data, dict) else None
    for area in areas if isinstance(areas, list) else []:
        for circuit in area.get("circuits", []) if isinstance(area, dict) else []:
            if not isinstance(circuit, dict) or "adj" not in circuit:
                continue
            interface = circuit.get("interface")
            detail = interface if isinstance(interface, dict) else {}
            ifname = detail.get("name", "") if detail else str(interface or "")
            found.append(
                Session(
                    name=f"{circuit['adj']}@{ifname}",
                    protocol="isis",
                    state=str(circuit.get("state") or detail.get("state", "")),
                    since=str(detail.get("last-ago", "")),
                )
            )
    return found


def bfd_sessions(data: Any) -> list[Session]:
    found = []
    for peer in data if isinstance(data, list) else []:
        if not isinstance(peer, dict) or "peer" not in peer:
            continue
        status = str(peer.get("status", ""))
        seconds = peer.get("uptime" if status == "up" else "downtime")
        name = str(peer["peer"])
        if peer.get("interface"):
            name = f"{name}@{peer['interface']}"
        found.append(
            Session(
                name=name,
                protocol="bfd",
                state=status,
                since=f"{seconds}s" if seconds is not None else "",
            )
        )
    return found
