"""Peer status: on how many nodes each Peer's session is established.

Every agent reports its node's sessions in its NodeState (``status.peers``, each with
``peerNames``: the Peer objects it is for, nodeagent.kubereport). A Peer's status needs
one writer, and the allocator's leader is already the one writer of the ServiceGroups'
status: from the NodeStates and Peers it watches it computes, per Peer,

- ``status.nodesConfigured``: the nodes whose NodeState lists a session of the Peer;
- ``status.nodesEstablished``: those where one of them carries routes (BGP
  Established, OSPF Full or 2-Way, RIP, IS-IS up),

and patches the Peer's status subresource (a merge patch of those two fields only, so
the agents' ``Valid`` condition is left as it is) only when the numbers differ from
what the Peer says: at most one write per Peer per change of its numbers, none at
rest and none when a new leader takes over. ``kubectl get peers`` prints them.

A NodeState from an agent that does not name the Peers of its sessions counts for no
Peer. A node whose agent stopped keeps its last NodeState, so it counts as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lbroute.kube.client import Api
from lbroute.kube.trim import JSON
from lbroute.model.errors import KubernetesError, NotFound, ObjectRef
from lbroute.model.vocabulary import API_VERSION, NODE_STATE, PEER

log = logging.getLogger(__name__)

UP_STATES = frozenset({"established", "full", "2-way", "up"})
"""Session states (lowercased) in which a session carries routes."""


@dataclass(frozen=True, kw_only=True)
class PeerCount:
    established: int = 0
    configured: int = 0

    def status(self) -> JSON:
        return {"nodesEstablished": self.established, "nodesConfigured": self.configured}


def peer_counts(
    peers: Iterable[Mapping[str, Any]], states: Iterable[Mapping[str, Any]]
) -> dict[str, PeerCount]:
    """Per Peer name (every Peer in ``peers``), its counts from the NodeStates."""
    configured: dict[str, set[str]] = {}
    established: dict[str, set[str]] = {}
    for state in states:
        meta = state.get("metadata") or {}
        node = str((state.get("spec") or {}).get("nodeName") or meta.get("name"))
        for session in (state.get("status") or {}).get("peers") or ():
            if not isinstance(session, Mapping):
                continue
            up = str(session.get("state", "")).lower() in UP_STATES
            for name in session.get("peerNames") or ():
                configured.setdefault(str(name), set()).add(node)
                if up:
                    established.setdefault(str(name), set()).add(node)
    out = {}
    for peer in peers:
        name = str((peer.get("metadata") or {}).get("name"))
        out[name] = PeerCount(
            established=len(established.get(name, ())), configured=len(configured.get(name, ()))
        )
    return out


def trim_peer(obj: Mapping[str, Any]) -> JSON:
    """What the allocator keeps of a Peer: its name and its counts."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": PEER,
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid")},
        "status": {k: status[k] for k in ("nodesEstablished", "nodesConfigured") if k in status},
    }


def trim_node_state(obj: Mapping[str, Any]) -> JSON:
    """What the allocator keeps of a NodeState: its node and its sessions' Peers and
    states."""
    meta = obj.get("metadata") or {}
    sessions = [
        {"state": s.get("state"), "peerNames": list(s.get("peerNames") or ())}
        for s in (obj.get("status") or {}).get("peers") or ()
        if isinstance(s, Mapping) and s.get("peerNames")
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": NODE_STATE,
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": {"nodeName": (obj.get("spec") or {}).get("nodeName")},
        "status": {"peers": sessions},
    }


class PeerStatusWriter:
    """Writes each Peer's counts when they differ from what the Peer says."""

    def __init__(self, kube: Api, *, namespace: str, leading: Callable[[], bool]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.leading = leading
        self.writes = 0
        """Peer status writes made (for tests and the write-load claim)."""
        self._written: dict[tuple[str, str], JSON] = {}
        """What this leader wrote, by Peer name and uid: the watch may not have brought
        the Peer back with it yet."""

    def forget(self) -> None:
        """Leadership changed: trust only what the Peers say."""
        self._written = {}

    def publish(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Write the counts of every Peer in ``objects`` whose status says otherwise.
        A write refused by the API is logged and tried on the next pass."""
        peers, states = [], []
        for obj in objects:
            if obj.get("kind") == PEER:
                peers.append(obj)
            elif obj.get("kind") == NODE_STATE:
                states.append(obj)
        said = {str((p.get("metadata") or {}).get("name")): p for p in peers}
        for name, count in sorted(peer_counts(peers, states).items()):
            want = count.status()
            status = said[name].get("status") or {}
            key = (name, str((said[name].get("metadata") or {}).get("uid") or ""))
            if all(status.get(k) == v for k, v in want.items()) or self._written.get(key) == want:
                continue
            if not self.leading():
                return
            ref = ObjectRef(kind=PEER, namespace=self.namespace, name=name)
            try:
                self.kube.patch(ref, {"status": want}, status=True)
            except NotFound:
                continue  # deleted meanwhile
            except KubernetesError as exc:
                log.warning("%s: cannot write its status: %s", ref, exc)
                continue
            self.writes += 1
            self._written[key] = want
            log.info(
                "%s: session established on %d of %d nodes",
                ref,
                count.established,
                count.configured,
            )
