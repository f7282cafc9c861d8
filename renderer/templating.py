"""Template sets, where they are read from, and rendering one with every check on.

A :class:`TemplateSet` is plain data: template name -> source text, plus where each
came from (for error messages). The built-in set ships in ``templates/bird`` and
``templates/frr`` (installed as the renderer's package data: ``renderer/templates`` is a
link to the repository's ``templates/`` folder); a user's directory (kept in Git, or a
mounted ConfigMap) overrides any file by name.
Loading files happens in :func:`load_template_set`, outside :func:`render_template`:
only regular files of at most :data:`MAX_TEMPLATE_BYTES`, and a link only when it
resolves inside the templates directory (a ConfigMap volume's ``..data`` links do), so
a link to ``/etc/passwd`` or a service-account token is refused, naming the file.

:func:`render_template` renders the built-in set in :class:`~renderer.sandbox.
TrustedEnvironment` and any set with a user template in the metered sandbox
(:mod:`renderer.sandbox`, :mod:`renderer.budget`); both print through
:mod:`renderer.printing`. A template can neither run code nor print a value that adds
a statement, whatever a CR contains, nor print a secret outside its password line, and
whatever it does ends, within its budget, as a string or a RenderError naming the
template file and line. Compiled templates are shared between renders, keyed by their
source text (:class:`_CompiledTemplates`).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import traceback
from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import CodeType
from typing import Any

import jinja2
from jinja2.bccache import Bucket

from lbroute.model.api import Router
from lbroute.model.errors import RenderError, escape, quote
from renderer.budget import Budget
from renderer.printing import Printer, current_template_line
from renderer.sandbox import SandboxedEnvironment, TrustedEnvironment

ENTRY = {Router.BIRD: "bird.conf.j2", Router.FRR: "frr.conf.j2"}
INCLUDE_ENTRY = {Router.BIRD: "include.conf.j2", Router.FRR: "include.conf.j2"}

MAX_TEMPLATE_BYTES = 1 << 20
"""The largest template file read from a user's directory."""

_MESSAGE_LIMIT = 400
"""How much of an error's own text a RenderError repeats."""


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
    root = user_dir.resolve()
    sub = user_dir / router.value
    directory = sub if sub.is_dir() else user_dir
    sources = dict(base.sources)
    origins = dict(base.origins)
    for path in sorted(directory.glob("*.j2")):
        sources[path.name] = _read_template(path, root)
        origins[path.name] = str(path)
    return TemplateSet(
        router=router, sources=tuple(sorted(sources.items())), origins=tuple(origins.items())
    )


def _read_template(path: Path, root: Path) -> str:
    """The text of the template file ``path``: a regular file inside ``root`` (after
    following links), at most MAX_TEMPLATE_BYTES of UTF-8."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of links
        raise RenderError(f"cannot read template: {exc}", template=str(path)) from exc
    if not target.is_relative_to(root):
        raise RenderError(
            f"is a link to {quote(str(target), 300)}, outside the templates directory {root}; "
            "a template may only link to a file inside that directory",
            template=str(path),
        )
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise RenderError("is not a regular file", template=str(path))
            data = file.read(MAX_TEMPLATE_BYTES + 1)
        if len(data) > MAX_TEMPLATE_BYTES:
            raise RenderError(
                f"is larger than {MAX_TEMPLATE_BYTES // 1024} KiB", template=str(path)
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"cannot read template: {exc}", template=str(path)) from exc


class _Loader(jinja2.BaseLoader):
    """Serves a TemplateSet's sources; a template that fails to compile for any reason
    but its syntax (nested too deeply for the parser) is reported as itself."""

    def __init__(self, templates: TemplateSet) -> None:
        self._sources = dict(templates.sources)

    def get_source(self, environment: jinja2.Environment, name: str) -> tuple[str, str, Any]:
        if name not in self._sources:
            raise jinja2.TemplateNotFound(name)
        # The template's name doubles as its file name, so tracebacks point at it.
        return self._sources[name], name, lambda: True

    def load(
        self,
        environment: jinja2.Environment,
        name: str,
        globals: MutableMapping[str, Any] | None = None,
    ) -> jinja2.Template:
        try:
            return super().load(environment, name, globals)
        except (jinja2.TemplateSyntaxError, jinja2.TemplateNotFound):
            raise
        except Exception as exc:
            raise _Uncompilable(name) from exc


class _CompiledTemplates(jinja2.BytecodeCache):
    """The compiled code of templates, shared by every render in the process: compiling
    a set costs tens of milliseconds per router, and a node renders the same sources
    over and over.

    Keyed by the environment's class (the sandbox compiles its metering into the code;
    every other option is fixed per class in :mod:`renderer.sandbox`), the template's
    name and a hash of its source text, which :func:`load_template_set` reads afresh for
    every set: an edited file is a new key and is compiled again, whatever its mtime.
    The code holds no printer, budget or view: a template calls them through the
    environment it is loaded into, one per render, so the sandbox and the budget apply
    as when each render compiled its own. At most ``size`` entries, the least recently
    used dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._code: OrderedDict[tuple[str, str], CodeType] = OrderedDict()
        self._lock = threading.Lock()

    def get_bucket(
        self, environment: jinja2.Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        kind = type(environment)
        key = f"{kind.__module__}.{kind.__qualname__}\0{name}\0{filename}"
        checksum = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        bucket = Bucket(environment, key, checksum)
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        key = (bucket.key, bucket.checksum)
        with self._lock:
            code = self._code.get(key)
            if code is not None:
                self._code.move_to_end(key)
        bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is None:
            return
        with self._lock:
            self._code[(bucket.key, bucket.checksum)] = bucket.code
            while len(self._code) > self._size:
                self._code.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._code.clear()


COMPILED_TEMPLATES = 512
"""Compiled templates kept (about 20 per router; a user directory's edits add more)."""

_COMPILED = _CompiledTemplates(COMPILED_TEMPLATES)


class _Uncompilable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def render_template(
    templates: TemplateSet, entry: str, context: dict[str, Any], *, scale: int = 0
) -> str:
    """Render ``entry`` of ``templates``; a user set gets the budget of a view of
    ``scale`` items (:meth:`~renderer.budget.Budget.for_scale`). Any failure, whatever
    the templates do, is a RenderError naming the template file and line."""
    names = frozenset(name for name, _ in templates.sources)
    budget = None if templates.trusted else Budget.for_scale(scale)
    printer = Printer(budget, lambda: current_template_line(names, env))
    loader = _Loader(templates)
    env: jinja2.Environment
    if budget is None:
        env = TrustedEnvironment(loader, printer)
    else:
        env = SandboxedEnvironment(loader, printer, budget)
    env.bytecode_cache = _COMPILED
    try:
        text = env.get_template(entry).render(context)
    except jinja2.TemplateSyntaxError as exc:
        name = exc.name or entry
        raise RenderError(
            escape(exc.message or "syntax error", _MESSAGE_LIMIT),
            template=templates.origin(name),
            line=exc.lineno,
        ) from exc
    except _Uncompilable as exc:
        cause = exc.__cause__
        assert isinstance(cause, Exception)
        message = (
            "nested too deeply to compile"
            if isinstance(cause, RecursionError)
            else _describe(cause)
        )
        raise RenderError(message, template=templates.origin(exc.name)) from cause
    except jinja2.TemplateNotFound as exc:
        frame, line = _template_frame(exc, templates)
        raise RenderError(
            f"template {quote(exc.name)} not found",
            template=templates.origin(frame or entry),
            line=line,
        ) from exc
    except Exception as exc:
        frame, line = _template_frame(exc, templates)
        raise RenderError(
            _describe(exc), template=templates.origin(frame or entry), line=line
        ) from exc
    return printer.place_secrets(text, templates.origin)


def _describe(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return (
            "templates nested too deeply: a macro, include or block that calls itself without end?"
        )
    if isinstance(exc, MemoryError):
        return "out of memory while rendering"
    return escape(str(exc) or type(exc).__name__, _MESSAGE_LIMIT)


def _template_frame(exc: BaseException, templates: TemplateSet) -> tuple[str | None, int | None]:
    """The innermost template file and line in the traceback of ``exc``."""
    names = dict(templates.sources)
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in names:
            found = (frame.filename, frame.lineno)
    return found
