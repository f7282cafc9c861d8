"""Which Peer objects each of the node's routing sessions is for.

The router names its sessions its own way (BIRD: a protocol per Peer, named after it;
FRR: the neighbor's address or interface, or ``neighbor@interface`` for an IGP). The
NodeState (``status.peers[].peerNames``) and the ``peer`` label of
``lbroute_session_up`` name the Peers instead, so that an operator reads the same names
whichever router the node runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lbroute.model import api
from lbroute.model.common import Router
from lbroute.model.errors import InvalidObject
from lbroute.model.vocabulary import API_VERSION, PEER
from renderer.view.names import Names, ident

_PROTOCOL_OF_SESSION = {"ospf6": "ospf", "ospfv3": "ospf", "ripng": "rip"}


@dataclass(frozen=True)
class SessionOwners:
    """Which Peer objects each routing session of this node is for: NodeState
    ``status.peers[].peerNames``. A BGP session is one Peer's: BIRD names its protocol
    after the Peer (renderer.view.names), FRR after the neighbor's address or interface.
    An IGP session (FRR's ``neighbor@interface``) is for the Peers of its protocol that
    run on that interface; BIRD's one instance per protocol is for all of them. Only
    Peers that select this node count."""

    peers: tuple[api.Peer, ...] = ()
    router: str = ""

    @classmethod
    def of(cls, objects: Iterable[Mapping[str, Any]], *, node: str, router: str) -> SessionOwners:
        labels: Mapping[str, str] | None = None
        raw: list[Mapping[str, Any]] = []
        for obj in objects:
            meta = obj.get("metadata") or {}
            if obj.get("kind") == "Node" and meta.get("name") == node:
                labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
            elif obj.get("kind") == PEER and obj.get("apiVersion") == API_VERSION:
                raw.append(obj)
        peers = []
        for obj in raw:
            try:
                parsed = api.parse_object(obj)
            except InvalidObject:
                continue  # reported on the Peer (Valid)
            if isinstance(parsed, api.Peer) and (
                labels is None or parsed.node_selector.matches(labels)
            ):
                peers.append(parsed)
        return cls(tuple(sorted(peers, key=lambda p: p.name)), router)

    def of_session(self, name: str, protocol: str) -> tuple[str, ...]:
        """The names of the Peers the session ``name`` of ``protocol`` is for."""
        proto = _PROTOCOL_OF_SESSION.get(protocol, protocol)
        found = []
        for p in self.peers:
            if p.protocol.value != proto:
                continue
            if p.bgp is not None:
                keys = {str(p.bgp.address or ""), str(p.bgp.interface or "")} - {""}
                if self.router in ("bird", "frr"):
                    keys.add(Names(Router(self.router)).bgp_protocol(ident(p.name)))
                if name in keys:
                    found.append(p.name)
            elif "@" not in name or name.rpartition("@")[2] in _interfaces(p):
                found.append(p.name)
        return tuple(found)


def _interfaces(p: api.Peer) -> set[str]:
    if p.ospf is not None:
        return {i.name for i in p.ospf.interfaces}
    if p.isis is not None:
        return {i.name for i in p.isis.interfaces}
    if p.rip is not None:
        return set(p.rip.interfaces)
    return set()
