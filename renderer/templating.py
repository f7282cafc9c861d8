"""Template sets and the sandboxed Jinja environment that renders them.

A :class:`TemplateSet` is plain data: template name -> source text, plus where each
came from (for error messages). The built-in set ships in ``templates/bird`` and
``templates/frr`` (installed as the renderer's package data: ``renderer/templates`` is a
link to the repository's ``templates/`` folder); a user's directory (kept in Git)
overrides any file by name.
Loading files happens in :func:`load_template_set`, outside :func:`render_view`.

Every template, built-in or user, runs in an immutable sandbox with StrictUndefined,
and every value it prints passes :func:`_finalize`: only integers, IP addresses,
networks and strings made of characters that are inert in BIRD and FRR syntax can
reach the output. A template can therefore neither run code nor print a value that
adds a statement, whatever a CR contains.
"""

from __future__ import annotations

import ipaddress
import re
import traceback
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.runtime
import jinja2.sandbox
from jinja2.exceptions import SecurityError

from lbroute.model.api import Router
from lbroute.model.errors import RenderError

ENTRY = {Router.BIRD: "bird.conf.j2", Router.FRR: "frr.conf.j2"}
INCLUDE_ENTRY = {Router.BIRD: "include.conf.j2", Router.FRR: "include.conf.j2"}

# What a printed string may contain: names, numbers, addresses, passwords (which are
# validated against a narrower set), never whitespace, quotes, braces, ';' or '#'.
_INERT = re.compile(r"[A-Za-z0-9_.:/\-+=@%^*!~,()\[\]<>?&$|]*")


@dataclass(frozen=True, kw_only=True)
class TemplateSet:
    router: Router
    sources: tuple[tuple[str, str], ...]
    """(template name, source text), sorted by name."""
    origins: tuple[tuple[str, str], ...]
    """(template name, file it came from) for error messages."""
    trusted: bool = False
    """Only lbroute's own templates: rendered without the sandbox (but with the same
    checks on every printed value). Any user template makes the whole set sandboxed."""

    def origin(self, name: str) -> str:
        return dict(self.origins).get(name, name)


def builtin_template_set(router: Router) -> TemplateSet:
    package = resources.files("renderer").joinpath("templates", router.value)
    sources = {}
    origins = {}
    for entry in package.iterdir():
        if entry.name.endswith(".j2"):
            sources[entry.name] = entry.read_text(encoding="utf-8")
            origins[entry.name] = f"templates/{router.value}/{entry.name}"
    return TemplateSet(
        router=router,
        sources=tuple(sorted(sources.items())),
        origins=tuple(sorted(origins.items())),
        trusted=True,
    )


def load_template_set(router: Router, user_dir: Path | None = None) -> TemplateSet:
    """The built-in templates of ``router``, each overridden by a file of the same name in
    ``user_dir`` (or in ``user_dir/<router>/`` when that exists)."""
    base = builtin_template_set(router)
    if user_dir is None:
        return base
    if not user_dir.is_dir():
        raise RenderError(f"templates directory {user_dir} does not exist")
    sub = user_dir / router.value
    directory = sub if sub.is_dir() else user_dir
    sources = dict(base.sources)
    origins = dict(base.origins)
    for path in sorted(directory.glob("*.j2")):
        try:
            sources[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RenderError(f"cannot read template: {exc}", template=str(path)) from exc
        origins[path.name] = str(path)
    return TemplateSet(
        router=router, sources=tuple(sorted(sources.items())), origins=tuple(origins.items())
    )


class _Rendered(str):
    """Output of a template macro: template text whose values were each finalized."""


class _Environment(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """For user templates: no code, no mutation, no private attributes."""

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(obj, jinja2.runtime.Macro) and isinstance(result, str):
            return _Rendered(result)
        return result


class _TrustedContext(jinja2.runtime.Context):
    def call(self, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        result = super().call(obj, *args, **kwargs)
        if isinstance(obj, jinja2.runtime.Macro) and isinstance(result, str):
            return _Rendered(result)
        return result


class _TrustedEnvironment(jinja2.Environment):
    """For lbroute's own templates: the sandbox's attribute checks cost about half of
    the render time, and these templates are part of the code."""

    context_class = _TrustedContext


def _finalize(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, _Rendered):
        return value
    if isinstance(value, bool) or value is None:
        raise _UnsafeValue(f"refusing to print {value!r}; print a field's value, not a test")
    if isinstance(value, int):
        return value
    if isinstance(
        value,
        ipaddress.IPv4Address
        | ipaddress.IPv6Address
        | ipaddress.IPv4Network
        | ipaddress.IPv6Network,
    ):
        value = str(value)
    if isinstance(value, str):
        if not _INERT.fullmatch(value):
            raise _UnsafeValue(
                f"refusing to print {value!r}: it contains characters that "
                "could change the configuration's structure"
            )
        return value
    raise _UnsafeValue(f"refusing to print a {type(value).__name__}; print one of its fields")


class _UnsafeValue(Exception):
    pass


def _source(templates: TemplateSet, name: str) -> tuple[str, str, Any] | None:
    # The template's name doubles as its file name, so tracebacks point at it.
    source = dict(templates.sources).get(name)
    return None if source is None else (source, name, lambda: True)


def _environment(templates: TemplateSet) -> jinja2.Environment:
    cls = _TrustedEnvironment if templates.trusted else _Environment
    env = cls(
        loader=jinja2.FunctionLoader(lambda name: _source(templates, name)),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    return env


def render_template(templates: TemplateSet, entry: str, context: dict[str, Any]) -> str:
    """Render ``entry`` of ``templates``. Any failure is a RenderError naming the
    template file and line."""
    env = _environment(templates)
    try:
        template = env.get_template(entry)
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:
        name = exc.name or entry
        raise RenderError(
            exc.message or "syntax error", template=templates.origin(name), line=exc.lineno
        ) from exc
    except jinja2.TemplateNotFound as exc:
        frame, line = _template_frame(exc, templates)
        raise RenderError(
            f"template {exc.name} not found", template=templates.origin(frame or entry), line=line
        ) from exc
    except (
        jinja2.UndefinedError,
        SecurityError,
        _UnsafeValue,
        TypeError,
        ValueError,
        ArithmeticError,
        LookupError,
        AttributeError,
    ) as exc:
        frame, line = _template_frame(exc, templates)
        message = str(exc) or type(exc).__name__
        raise RenderError(message, template=templates.origin(frame or entry), line=line) from exc


def _template_frame(exc: BaseException, templates: TemplateSet) -> tuple[str | None, int | None]:
    """The innermost template file and line in the traceback of ``exc``."""
    names = dict(templates.sources)
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in names:
            found = (frame.filename, frame.lineno)
    return found
