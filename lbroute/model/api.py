"""The lbroute API (group ``lbroute.io``, version ``v1alpha1``) as frozen, typed dataclasses.

Objects arrive as plain dicts (from YAML or the Kubernetes API) and are converted once,
by :func:`parse_object`. Everything downstream works on these types only. Each parse
collects every problem of one object and raises
:class:`~lbroute.model.errors.InvalidObject` with all of them; :func:`load` turns a batch
of dicts into a :class:`Model` and skips the invalid objects so that the valid ones
still render.

This module is the model's public surface, for the packages that stand on it
(``from lbroute.model import api``; ``api.ServiceGroup``). The model itself lives in one
module per kind, as ``deploy/crds/`` has one file per kind: :mod:`~lbroute.model.common`
(enums, label selectors, the envelope), :mod:`~lbroute.model.servicegroup`,
:mod:`~lbroute.model.peer`, :mod:`~lbroute.model.agentconfig` (NodeAgent),
:mod:`~lbroute.model.nodes`, :mod:`~lbroute.model.secrets`, and
:mod:`~lbroute.model.model` (the batch and the checks across objects).
"""

from __future__ import annotations

from lbroute.model.agentconfig import DEFAULT_LOCAL_ASN, NodeAgent, parse_node_agent
from lbroute.model.common import (
    EVERYTHING,
    Announce,
    Family,
    IsisLevel,
    LabelSelector,
    Mode,
    Protocol,
    Requirement,
    Router,
)
from lbroute.model.model import KINDS, Model, Parsed, load, parse_object
from lbroute.model.nodes import Node, parse_node
from lbroute.model.peer import (
    Bfd,
    BgpPeer,
    IsisInterface,
    IsisNetworkType,
    IsisPeer,
    OspfInterface,
    OspfNetworkType,
    OspfPeer,
    Peer,
    RipPeer,
    RipTimers,
    parse_peer,
)
from lbroute.model.secrets import Secret, SecretRef, parse_secret
from lbroute.model.servicegroup import (
    CLASS_STRIDE,
    MAX_CLASSES,
    MAX_WEIGHT,
    RESERVED_ASN,
    BgpClass,
    BgpPolicy,
    Community,
    ExportPrefix,
    IsisPolicy,
    LargeCommunity,
    OspfPolicy,
    Pool,
    RipPolicy,
    ServiceGroup,
    parse_service_group,
    route_mark,
)
from lbroute.model.vocabulary import (
    API_VERSION,
    DEFAULT_INTERFACE,
    GROUP,
    LOADBALANCER_CLASS,
    ROUTE_PROTO,
    ROUTE_TABLE_DEFAULT,
    VERSION,
)

__all__ = [
    "API_VERSION",
    "CLASS_STRIDE",
    "DEFAULT_INTERFACE",
    "DEFAULT_LOCAL_ASN",
    "EVERYTHING",
    "GROUP",
    "KINDS",
    "LOADBALANCER_CLASS",
    "MAX_CLASSES",
    "MAX_WEIGHT",
    "RESERVED_ASN",
    "ROUTE_PROTO",
    "ROUTE_TABLE_DEFAULT",
    "VERSION",
    "Announce",
    "Bfd",
    "BgpClass",
    "BgpPeer",
    "BgpPolicy",
    "Community",
    "ExportPrefix",
    "Family",
    "IsisInterface",
    "IsisLevel",
    "IsisNetworkType",
    "IsisPeer",
    "IsisPolicy",
    "LabelSelector",
    "LargeCommunity",
    "Mode",
    "Model",
    "Node",
    "NodeAgent",
    "OspfInterface",
    "OspfNetworkType",
    "OspfPeer",
    "OspfPolicy",
    "Parsed",
    "Peer",
    "Pool",
    "Protocol",
    "Requirement",
    "RipPeer",
    "RipPolicy",
    "RipTimers",
    "Router",
    "Secret",
    "SecretRef",
    "ServiceGroup",
    "load",
    "parse_node",
    "parse_node_agent",
    "parse_object",
    "parse_peer",
    "parse_secret",
    "parse_service_group",
    "route_mark",
]
