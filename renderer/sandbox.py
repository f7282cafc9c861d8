"""The two Jinja environments: lbroute's own templates, and the metered sandbox.

Both compile templates with :class:`CodeGenerator`, which sends what a ``{% filter %}``
or ``{% call %}`` block writes through the same check as ``{{ value }}``
(:mod:`renderer.printing`), and both hand captured output back as
:class:`~renderer.printing.Rendered`.

- :class:`TrustedEnvironment`, for the built-in templates only: no sandbox, because
  its attribute checks cost about half of the render time and these templates are
  part of the code.
- :class:`SandboxedEnvironment`, as soon as one user template is in the set: Jinja's
  immutable sandbox (no private attributes, no mutation), without the filters that
  make HTML, random or unbounded text, and metered by a
  :class:`~renderer.budget.Budget`. The code generator adds the counting to what the
  sandbox cannot see (loop items and bodies, macro and template bodies, ``~``,
  comparisons, slices, the text of every write); the environment counts and checks
  calls, operators, filters, tests and string formatting. Secrets have no readable
  attribute here.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import jinja2
import jinja2.compiler
import jinja2.nodes as nodes
import jinja2.runtime
import jinja2.sandbox
from jinja2.filters import FILTERS
from jinja2.utils import generate_lorem_ipsum

from renderer.budget import (
    FILTER_CHECKS,
    MAX_DEPTH,
    MAX_WIDTH,
    SORTING,
    Budget,
    OverBudget,
    check_bits,
    check_method,
    check_printf,
    check_width,
    metered_join,
    metered_sum,
    size,
    text_size,
)
from renderer.printing import Printer, Rendered, keeps_rendered
from renderer.secret import Secret

_JINJA_KWARGS = frozenset(["_loop_vars", "_block_vars"])
"""What Jinja adds to calls made in a loop or block, beside the template's arguments."""


class RenderedContext(jinja2.runtime.Context):
    """Hands back what a macro, ``caller()`` or a block renders as Rendered."""

    def call(self, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        result = super().call(obj, *args, **kwargs)
        if isinstance(result, str) and isinstance(
            obj, (jinja2.runtime.Macro, jinja2.runtime.BlockReference)
        ):
            return Rendered(result)
        return result


# -- compiling --------------------------------------------------------------------------


_OWN_CALLS = frozenset(["metered_items", "metered_body", "rendered_body"])
"""Calls the code generator adds, written as direct calls (a template cannot write
an environment attribute, so none of these comes from a template)."""


def _own_call(name: str, *args: nodes.Expr, lineno: int) -> nodes.Call:
    target = nodes.EnvironmentAttribute(name, lineno=lineno)
    return nodes.Call(target, list(args), [], None, None, lineno=lineno)


def _weight(body: list[nodes.Node]) -> int:
    """The number of nodes in ``body``, at least 1."""
    return 1 + sum(1 + sum(1 for _ in n.find_all(nodes.Node)) for n in body)


def _meter(template: nodes.Template) -> None:
    """Add the counting to every loop, macro, call block, block and template body."""
    loops: list[nodes.For] = list(template.find_all(nodes.For))
    for loop in loops:
        test = 2 + (_weight([loop.test]) if loop.test is not None else 0)
        items = cast(nodes.Expr, loop.iter)
        loop.iter = _own_call("metered_items", items, nodes.Const(test), lineno=loop.lineno)
        step = _own_call("metered_body", nodes.Const(_weight(loop.body)), lineno=loop.lineno)
        loop.body.insert(0, nodes.ExprStmt(step, lineno=loop.lineno))
    bodies: list[nodes.Macro | nodes.CallBlock | nodes.Block | nodes.Template] = [template]
    for kind in (nodes.Macro, nodes.CallBlock, nodes.Block):
        bodies += template.find_all(kind)
    for body in bodies:
        step = _own_call("metered_body", nodes.Const(_weight(body.body)), lineno=body.lineno)
        body.body.insert(0, nodes.ExprStmt(step, lineno=body.lineno))


class CodeGenerator(jinja2.compiler.CodeGenerator):
    """Jinja's code generator, with block output checked and, in the sandbox, metered."""

    @property
    def _metered(self) -> bool:
        return isinstance(self.environment, SandboxedEnvironment)

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        if self._metered:
            _meter(node)
        super().visit_Template(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Any, forward_caller: bool = False) -> None:
        target = node.node
        if not (isinstance(target, nodes.EnvironmentAttribute) and target.name in _OWN_CALLS):
            return super().visit_Call(node, frame, forward_caller=forward_caller)
        if target.name == "rendered_body":
            self.write(f"environment.rendered(concat({frame.buffer}))")
            return
        if target.name == "metered_body":
            self.write("environment.budget.step(")
        else:
            self.write(f"environment.{target.name}(")
        for i, arg in enumerate(node.args):
            self.write(", " if i else "")
            self.visit(arg, frame)
        self.write(")")

    def visit_CallBlock(self, node: nodes.CallBlock, frame: Any) -> None:
        call_frame, macro_ref = self.macro_body(node, frame)
        self.writeline("caller = ")
        self.macro_def(macro_ref, call_frame)
        self.start_write(frame, node)
        self.write("environment.printer.checked_text(")
        self.visit_Call(node.call, frame, forward_caller=True)
        self.write(")")
        self.end_write(frame)

    def visit_FilterBlock(self, node: nodes.FilterBlock, frame: Any) -> None:
        filter_frame = frame.inner()
        filter_frame.symbols.analyze_node(node)
        self.enter_frame(filter_frame)
        self.buffer(filter_frame)
        self.blockvisit(node.body, filter_frame)
        self.start_write(frame, node)
        self.write("environment.printer.checked_text(")
        node.filter.node = _own_call("rendered_body", lineno=node.lineno)
        self.visit_Filter(node.filter, filter_frame)
        self.write(")")
        self.end_write(frame)
        self.leave_frame(filter_frame)

    def visit_Output(self, node: nodes.Output, frame: Any) -> None:
        super().visit_Output(node, frame)
        if self._metered:
            static = sum(
                len(str(child.data if isinstance(child, nodes.TemplateData) else child.value))
                for child in node.nodes
                if isinstance(child, (nodes.TemplateData, nodes.Const))
            )
            if static:
                self.writeline(f"environment.budget.make({static})")

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        if not self._metered:
            return super().visit_Concat(node, frame)
        self.write("environment.concat_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Compare(self, node: nodes.Compare, frame: Any) -> None:
        if not self._metered:
            return super().visit_Compare(node, frame)
        self.write("(environment.scanned(")
        self.visit(node.expr, frame)
        self.write(")")
        for op in node.ops:
            self.write(f" {jinja2.compiler.operators[op.op]} environment.scanned(")
            self.visit(op.expr, frame)
            self.write(")")
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Any) -> None:
        if not (self._metered and isinstance(node.arg, nodes.Slice)):
            return super().visit_Getitem(node, frame)
        self.write("environment.made(")
        super().visit_Getitem(node, frame)
        self.write(")")


# -- the environments -------------------------------------------------------------------


_OPTIONS: dict[str, Any] = {
    "undefined": jinja2.StrictUndefined,
    "autoescape": False,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": True,
    "auto_reload": False,
}


class TrustedEnvironment(jinja2.Environment):
    """For lbroute's own templates: the same printing checks, no sandbox."""

    code_generator_class = CodeGenerator
    context_class = RenderedContext

    def __init__(self, loader: jinja2.BaseLoader, printer: Printer) -> None:
        super().__init__(loader=loader, finalize=printer.finalize, **_OPTIONS)
        self.printer = printer

    @staticmethod
    def rendered(text: str) -> Rendered:
        return Rendered(text)


class SandboxedEnvironment(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """For any set with a user template: sandboxed and metered by ``budget``."""

    code_generator_class = CodeGenerator
    context_class = RenderedContext
    intercepted_binops = frozenset(["+", "-", "*", "/", "//", "%", "**"])

    def __init__(self, loader: jinja2.BaseLoader, printer: Printer, budget: Budget) -> None:
        super().__init__(loader=loader, finalize=printer.finalize, **_OPTIONS)
        self.printer = printer
        self.budget = budget
        self.globals["lipsum"] = self._lipsum
        self.filters = {name: self._metered_filter(name) for name in FILTER_CHECKS}
        self.filters["join"] = self._metered_filter("join", metered_join)
        self.filters["sum"] = self._metered_filter("sum", metered_sum)
        self.tests = {
            name: self._metered_test(cast(Callable[..., Any], test))
            for name, test in self.tests.items()
        }

    # what the generated code calls

    def rendered(self, text: str) -> Rendered:
        self.budget.make(len(text))
        return Rendered(text)

    def metered_items(self, iterable: Iterable[Any], weight: int) -> Iterator[Any]:
        self.budget.step(1)
        return _metered(iterable, self.budget, weight)

    def concat_text(self, parts: tuple[Any, ...]) -> str:
        self.budget.make(sum(text_size(p) for p in parts))
        return "".join(map(str, parts))

    def scanned(self, value: Any) -> Any:
        self.budget.step(1 + size(value))
        return value

    def made(self, value: Any) -> Any:
        """``value``, just made by a call or filter: its length is counted, an iterator
        is metered."""
        if isinstance(value, Rendered):
            return value
        if isinstance(value, Iterator) and not _is_metered(value):
            return _metered(value, self.budget, 1)
        self.budget.make(size(value))
        return value

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        """Jinja's ``lipsum``, its text counted before it is made."""
        self.budget.make(n * max * 16)
        return str(generate_lorem_ipsum(n, html, min, max))

    # the sandbox's hooks

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not isinstance(obj, Secret) and super().is_safe_attribute(obj, attr, value)

    def call(__self, __context: Any, __obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = __self.budget
        budget.step(1 + sum(map(size, args)) + sum(map(size, kwargs.values())))
        owner = getattr(__obj, "__self__", None)
        if getattr(__obj, "__wrapped__", None) is not None:  # str.format, see wrap_str_format
            owner = getattr(__obj.__wrapped__, "__self__", None)
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(owner, (str, bytes, int)):
            check_method(owner, __obj.__name__, args, kwargs, budget)
            if __obj.__name__ == "join" and not isinstance(owner, int) and args:
                parts = list(args[0])
                budget.make(sum(map(text_size, parts)) + len(owner) * len(parts))
                args = (parts, *args[1:])
        if isinstance(__obj, jinja2.runtime.Macro):
            if budget.depth >= MAX_DEPTH:
                raise OverBudget(
                    f"macro calls nested more than {MAX_DEPTH} deep; a macro that "
                    "calls itself without end?"
                )
            budget.depth += 1
            try:
                return super().call(__context, __obj, *args, **kwargs)
            finally:
                budget.depth -= 1
        result = super().call(__context, __obj, *args, **kwargs)
        given = (*args, *(v for k, v in kwargs.items() if k not in _JINJA_KWARGS))
        return __self.made(keeps_rendered(owner, given, result))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.budget.step(1)
        if operator in ("*", "+") and (size(left) or size(right)):
            if operator == "*":
                seq, times = (left, right) if isinstance(right, int) else (right, left)
                self.budget.make(size(seq) * max(times, 0) if isinstance(times, int) else 0)
            else:
                self.budget.make(size(left) + size(right))
        elif isinstance(left, int) and isinstance(right, int):
            if operator == "*":
                check_bits(left.bit_length() + right.bit_length())
            elif operator == "**" and right > 0 and abs(left) > 1:
                check_bits(left.bit_length() * right)
            elif operator == "+":
                check_bits(max(left.bit_length(), right.bit_length()) + 1)
        elif operator == "%" and isinstance(left, str | bytes):
            fmt = left.decode("latin-1") if isinstance(left, bytes) else left
            check_printf(fmt, right, self.budget)
        return self.binop_table[operator](left, right)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, slice):
            return self.made(super().getitem(obj, argument))
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)):
            return None
        if value.__name__ not in ("format", "format_map"):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        formatter = _MeteredFormatter(self)
        self.budget.make(len(text))

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if value.__name__ == "format_map":
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return str(formatter.vformat(text, (), args[0]))
            return str(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    def _metered_filter(self, name: str, func: Callable[..., Any] | None = None) -> Any:
        func = func or FILTERS[name]
        check = FILTER_CHECKS.get(name)
        offset = 1 if hasattr(func, "jinja_pass_arg") else 0  # context, eval_ctx or environment

        @functools.wraps(func)
        def metered(*args: Any, **kwargs: Any) -> Any:
            self.budget.step(1 + sum(map(size, args)))
            value, rest = args[offset], args[offset + 1 :]
            if name in SORTING:
                n = size(value)
                self.budget.step(n * n.bit_length())
            if check is not None:
                check(self.budget, value, *rest, **kwargs)
            result = func(*args, **kwargs)
            return self.made(keeps_rendered(value, (*rest, *kwargs.values()), result))

        return metered

    def _metered_test(self, test: Callable[..., Any]) -> Any:
        @functools.wraps(test)
        def metered(*args: Any, **kwargs: Any) -> Any:
            self.budget.step(1 + sum(map(size, args)))
            return test(*args, **kwargs)

        return metered


def _metered(items: Iterable[Any], budget: Budget, weight: int) -> Iterator[Any]:
    """``items``, each costing ``weight`` steps."""
    for item in items:
        budget.work += weight
        if budget.work > budget.work_limit:
            budget.step(0)
        yield item


def _is_metered(value: Any) -> bool:
    return getattr(value, "gi_code", None) is _metered.__code__


class _MeteredFormatter(jinja2.sandbox.SandboxedFormatter):
    """``str.format`` in the sandbox: every field's text is counted before it is made."""

    def __init__(self, env: SandboxedEnvironment) -> None:
        super().__init__(env)
        self._budget = env.budget

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            self._budget.make(10 * text_size(value))  # repr() escapes a character in <= 10
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for width in re.findall(r"[0-9]+", format_spec):
            check_width(width)
        self._budget.make(text_size(value) + (MAX_WIDTH if format_spec else 0))
        return super().format_field(value, format_spec)
