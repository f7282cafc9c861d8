"""kube-lb0 through netlink: the one place lbroute touches the kernel.

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

Inside, one module per concern::

    kubelb   Kubelb: the interface (through pyroute2), and carrying out a plan
    plan     the reconcile plan: current + desired -> what to add and delete, in order
             (pure)
    rtnl     a plain rtnetlink socket for requests and dumps in bulk
    wire     the bytes: message and attribute formats, requests, dump parsers (pure)

Only this package imports pyroute2.
"""

from __future__ import annotations

from nodeagent.netlink.kubelb import Kubelb

__all__ = ["Kubelb"]
