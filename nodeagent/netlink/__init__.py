"""kube-lb0 and the local addresses on the node's NIC through netlink: the one place
lbroute changes the kernel's addresses and routes.

Ownership is kept in the kernel itself: every address lbroute adds carries the address
protocol :data:`~lbroute.model.vocabulary.ROUTE_PROTO` (``IFA_PROTO``), so after a
restart the agent knows exactly which addresses are its own and never touches one an
operator added by hand. Reconciling is a diff: add what is missing, delete what is no
longer wanted, nothing else; ``EEXIST`` on add and ``EADDRNOTAVAIL``/``ENOENT`` on
delete count as done.

Why a route of its own per prefix (see docs/shared-prefix-notes.md): Services share an
aggregate (192.0.2.7/24 and 192.0.2.8/24). The kernel's prefix route, and BIRD's
``protocol direct``, are tied to individual addresses, so removing one Service's
address can withdraw (BIRD) or briefly replace (kernel) the route every other Service
of that aggregate relies on. Instead, addresses are added with ``noprefixroute``, and
lbroute keeps exactly one route per announced prefix in its own kernel table
(:data:`~lbroute.model.vocabulary.ROUTE_TABLE_DEFAULT`, protocol ``ROUTE_PROTO``): added
before it is needed, deleted before the prefix's last address goes. BIRD learns these
routes (``protocol kernel``); FRR announces the interface's connected prefixes, which
zebra keeps stable as long as ``promote_secondaries`` is on.

Local addresses (``announce: local``) are marked the same way, on the node's LAN
interface, with a valid lifetime the agent renews (docs/local-nic-notes.md). There an
``EEXIST`` on add is a failure, not done: the address is someone else's.

Inside, one module per concern::

    kubelb   Kubelb: the interface (through pyroute2), and carrying out a plan
    plan     the reconcile plan: current + desired -> what to add and delete, in order
             (pure)
    nic      local addresses: which interface and prefix length, the subnets a node
             serves, the reconcile plan (pure)
    lan      Lan: the snapshot those are decided on, and carrying out a local plan
    ipvs     kube-ipvs0 against ARP strictness: the finding (pure) and the sysctls
    rtnl     a plain rtnetlink socket for requests and dumps in bulk
    wire     the bytes: message and attribute formats, requests, dump parsers (pure)

Only this package imports pyroute2.
"""

from __future__ import annotations

from nodeagent.netlink.kubelb import Kubelb

__all__ = ["Kubelb"]
