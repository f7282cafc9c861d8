"""lbroute's renderer: API objects in, BIRD 2 or FRR configuration text out.

Pure by design: it never touches files, clocks, the network, Kubernetes or netlink.
The objects it renders come from :mod:`lbroute.model`; :mod:`renderer.view` turns them
into one node's view (passwords and keys as :mod:`renderer.secret` values),
:mod:`renderer.templating` holds the template sets and renders one, in the
environments of :mod:`renderer.sandbox` (user templates metered by
:mod:`renderer.budget`), printing through the checks of :mod:`renderer.printing`;
:mod:`renderer.render` joins the view and the templates.
"""

from renderer.render import render, render_view
from renderer.templating import TemplateSet, builtin_template_set, load_template_set
from renderer.view import NodeView, build_view

__all__ = [
    "NodeView",
    "TemplateSet",
    "build_view",
    "builtin_template_set",
    "load_template_set",
    "render",
    "render_view",
]
