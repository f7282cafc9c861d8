"""lbroute's renderer: API objects in, BIRD 2 or FRR configuration text out.

Pure by design: it never touches files, clocks, the network, Kubernetes or netlink.
"""

from lbroute.model.api import Mode, Model, Router, load
from lbroute.model.errors import InvalidObject, LbrouteError, Problem, RenderError, RouterError
from renderer.render import render, render_view
from renderer.templating import TemplateSet, builtin_template_set, load_template_set
from renderer.view import NodeView, build_view

__all__ = [
    "InvalidObject",
    "LbrouteError",
    "Mode",
    "Model",
    "NodeView",
    "Problem",
    "RenderError",
    "Router",
    "RouterError",
    "TemplateSet",
    "build_view",
    "builtin_template_set",
    "load",
    "load_template_set",
    "render",
    "render_view",
]
