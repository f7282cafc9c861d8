"""``render(model, router, node) -> str``: the router configuration of one node.

Pure: no file, clock, hostname or network access. Templates are passed in as a
:class:`~renderer.templating.TemplateSet` (the built-in set by default).
"""

from __future__ import annotations

import ipaddress

from lbroute.model.api import Family, Mode, Model, Router
from renderer.templating import (
    ENTRY,
    INCLUDE_ENTRY,
    TemplateSet,
    builtin_template_set,
    render_template,
)
from renderer.view import NodeView, build_view
from renderer.view.names import ExportView


def render_view(view: NodeView, templates: TemplateSet | None = None) -> str:
    """Render a node's view with ``templates`` (the built-in ones by default)."""
    templates = templates or builtin_template_set(view.router)
    if templates.router is not view.router:
        raise ValueError(f"{templates.router} templates cannot render a {view.router} view")
    entry = ENTRY[view.router] if view.mode is Mode.MANAGED else INCLUDE_ENTRY[view.router]
    context = {"view": view, "ipv4": Family.IPV4, "ipv6": Family.IPV6}
    return render_template(templates, entry, context, scale=view_scale(view))


def view_scale(view: NodeView) -> int:
    """How many items the view holds (groups, prefixes, neighbors, interfaces, filter
    entries): what a user template's budget grows with."""
    exports: list[ExportView] = [e for n in view.bgp for e in n.exports]
    exports += [o.export for o in view.ospf] + [r.export for r in view.rip]
    exports += list(view.isis.exports) if view.isis is not None else []
    return (
        sum(1 + len(g.prefixes.get(f, ())) for g in view.groups for f in Family)
        + sum(1 + len(e.groups) for e in exports)
        + sum(len(o.interfaces) for o in view.ospf)
        + sum(len(r.interfaces) for r in view.rip)
        + (len(view.isis.interfaces) if view.isis is not None else 0)
        + len(view.bgp)
    )


def render(
    model: Model,
    router: Router | None,
    node: str,
    *,
    mode: Mode | None = None,
    router_id: ipaddress.IPv4Address | None = None,
    templates: TemplateSet | None = None,
) -> str:
    """The configuration of ``router`` for ``node``. Objects that fail the per-node checks
    are left out; use :func:`renderer.view.build_view` to see those problems."""
    view = build_view(model, router, node, mode=mode, router_id=router_id)
    return render_view(view, templates)
