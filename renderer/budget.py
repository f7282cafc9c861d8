"""How much work and text one render of user templates may take, counted without a clock.

The renderer is pure (no clock, thread or process), so a user template's render is
bounded by counting instead of timing. :class:`Budget` holds two counters:

- **work**: every loop item and iteration, macro call, include, function or filter
  call, comparison and concatenation costs steps, those that scan a string or list
  cost its length, and a loop iteration or macro call costs the size of its body (its
  node count), so no stretch of template code runs uncounted;
- **text**: every string or list a template makes costs its length, checked *before*
  it is made where one operation could make much more than it was given
  (``'x' * 10**9``, a join, ``%`` and ``format`` widths, ``replace``, ``indent``).

Both limits grow with the node's view (:meth:`Budget.for_scale`): measured on views
from 10 to 45,000 items, the built-in templates use at most a fifth of the work and a
seventh of the text, so a user template may do what they do several times over. A loop
that never ends runs out of work in about a second on a small view (a step is about half
a microsecond; the limit is :data:`WORK_BASE` plus :data:`WORK_PER_ITEM` a view item),
and no render makes more than :data:`TEXT_BASE` plus :data:`TEXT_PER_ITEM` a view item
characters in all. Macros nest at most :data:`MAX_DEPTH` calls deep, numbers stay
within :data:`MAX_INT_BITS` bits, and format widths within :data:`MAX_WIDTH`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jinja2
from jinja2.filters import make_attrgetter
from jinja2.utils import pass_environment

from renderer.secret import Secret

MAX_DEPTH = 64
"""Macro calls nested deeper than this are a recursion that does not end."""

MAX_INT_BITS = 4096
"""Largest number a template may compute (an IPv6 address is 128 bits)."""

MAX_WIDTH = 1000
"""Largest width or precision in a ``%`` or ``format`` specification."""

WORK_BASE = 2_000_000
WORK_PER_ITEM = 500
TEXT_BASE = 16_000_000
TEXT_PER_ITEM = 1_000
"""Limits: a base, plus this much per item of the view (:meth:`Budget.for_scale`)."""


class OverBudget(Exception):
    """A template ran out of budget or made something too large (internal; reported as a
    RenderError naming the template line)."""


class Budget:
    """The work and text one render may still take."""

    __slots__ = ("depth", "text", "text_limit", "work", "work_limit")

    def __init__(self, *, work: int, text: int) -> None:
        self.work = 0
        self.text = 0
        self.work_limit = work
        self.text_limit = text
        self.depth = 0

    @classmethod
    def for_scale(cls, items: int) -> Budget:
        """The budget for rendering a view of ``items`` items (groups, prefixes,
        neighbors, interfaces, filter entries)."""
        return cls(work=WORK_BASE + WORK_PER_ITEM * items, text=TEXT_BASE + TEXT_PER_ITEM * items)

    def step(self, n: int) -> None:
        """Count ``n`` steps of work."""
        self.work += n
        if self.work > self.work_limit:
            raise OverBudget(
                f"the templates did more than {self.work_limit:,} steps of work (loop "
                "iterations, calls, filters); a loop or recursion that does not end?"
            )

    def make(self, n: int) -> None:
        """Count ``n`` characters or list items (a negative width makes nothing)."""
        self.text += max(n, 0)
        if self.text > self.text_limit:
            raise OverBudget(
                f"the templates made more than {self.text_limit:,} characters of text "
                "(or list items); a string or list that keeps growing?"
            )


_SIZED = (str, bytes, list, tuple, dict, set, frozenset)


def size(value: Any) -> int:
    """The length of a string or container, 0 for anything else."""
    return len(value) if isinstance(value, _SIZED) else 0


def text_size(value: Any) -> int:
    """How long ``str(value)`` is, for the values a template may turn into text
    (strings, numbers, addresses); anything else, whose text could be any size (a view
    object, a list of them), is refused."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, float):
        return 32
    if isinstance(value, _ADDRESSES):
        return 50
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, Secret):
        raise OverBudget(
            "a secret has no text of its own; print it only as the value of its own "
            "statement (right after 'password', 'md5' or another key keyword)"
        )
    raise OverBudget(f"cannot turn a {type(value).__name__} into text; use one of its fields")


def check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise OverBudget(f"a number of more than {MAX_INT_BITS} bits")


def check_width(width: str) -> None:
    """A width or precision written in a format: at most :data:`MAX_WIDTH`."""
    if width and (len(width) > 6 or int(width) > MAX_WIDTH):
        raise OverBudget(f"a width or precision of {width[:8]}; at most {MAX_WIDTH}")


_ADDRESSES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
)


# -- what one operation is about to make ------------------------------------------------

SORTING = frozenset(["sort", "dictsort", "groupby", "unique", "min", "max"])
"""Filters that sort: they cost n log n steps."""


def _text(budget: Budget, value: Any, *args: Any, **kwargs: Any) -> None:
    budget.step(text_size(value))


def _indent(budget: Budget, value: Any, width: int | str = 4, *args: Any, **kw: Any) -> None:
    budget.step(text_size(value))
    lines = str(value).count("\n") + 1
    budget.make(len(str(value)) + lines * (len(width) if isinstance(width, str) else width))


def _replace(budget: Budget, s: Any, old: Any, new: Any, count: Any = None) -> None:
    budget.step(text_size(s) + text_size(old) + text_size(new))
    text, old, new = str(s), str(old), str(new)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    budget.make(len(text) + found * max(len(new) - len(old), 0))


def _format(budget: Budget, value: Any, *args: Any, **kwargs: Any) -> None:
    budget.step(text_size(value))
    check_printf(str(value), kwargs or args, budget)


def _batch(budget: Budget, value: Any, linecount: int, fill_with: Any = None) -> None:
    if fill_with is not None:
        budget.make(linecount)


FILTER_CHECKS: dict[str, Callable[..., None] | None] = {
    # The filters a sandboxed template may use, and what each checks before it runs.
    # Not offered: the HTML ones (e, escape, forceescape, safe, striptags, urlencode,
    # urlize, xmlattr), random (not repeatable) and those that make the text of any
    # object or of any width (pprint, tojson, center, wordwrap, filesizeformat).
    "abs": None,
    "attr": None,
    "batch": _batch,
    "capitalize": _text,
    "count": None,
    "d": None,
    "default": None,
    "dictsort": None,
    "first": None,
    "float": None,
    "format": _format,
    "groupby": None,
    "indent": _indent,
    "int": None,
    "items": None,
    "last": None,
    "length": None,
    "list": None,
    "lower": _text,
    "map": None,
    "max": None,
    "min": None,
    "reject": None,
    "rejectattr": None,
    "replace": _replace,
    "reverse": None,
    "round": None,
    "select": None,
    "selectattr": None,
    "slice": None,
    "sort": None,
    "string": _text,
    "title": _text,
    "trim": _text,
    "truncate": _text,
    "unique": None,
    "upper": _text,
    "wordcount": _text,
}


@pass_environment
def metered_join(
    environment: jinja2.Environment, value: Iterable[Any], d: str = "", attribute: Any = None
) -> str:
    """Jinja's ``join``, with the length of the result counted before it is made."""
    items = list(value)
    if attribute is not None:
        items = list(map(make_attrgetter(environment, attribute), items))
    budget: Budget = environment.budget  # type: ignore[attr-defined]  # the sandbox's
    budget.make(sum(map(text_size, items)) + text_size(d) * len(items))
    return str(d).join(map(str, items))


@pass_environment
def metered_sum(
    environment: jinja2.Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    """Jinja's ``sum``, of numbers only (a sum of lists grows quadratically)."""
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        raise OverBudget("sum adds numbers; start must be a number")
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    return sum(iterable, start)


def check_method(
    owner: str | bytes | int,
    name: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    budget: Budget,
) -> None:
    """Count what a string or number method is about to make, before it makes it."""
    first = args[0] if args else None
    if isinstance(owner, int):
        length = kwargs.get("length", first)
        if name == "to_bytes" and isinstance(length, int):
            budget.make(length)
        return
    if name in ("center", "ljust", "rjust", "zfill") and isinstance(first, int):
        budget.make(first)
    elif name == "expandtabs":
        tabsize = kwargs.get("tabsize", first)
        budget.make(len(owner) * (tabsize if isinstance(tabsize, int) and tabsize > 0 else 8))
    elif name == "replace" and len(args) >= 2 and isinstance(owner, str):
        _replace(budget, owner, *args[:3])
    elif name in ("translate", "maketrans"):
        raise OverBudget(f"{name}() is not available in templates")


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|[0-9]*)(?:\.(\*|[0-9]*))?[hlL]?(.)")


def check_printf(fmt: str, args: Any, budget: Budget) -> None:
    """Count what ``fmt % args`` is about to make: at most its length plus, per
    conversion, the longest argument's text and its width."""
    specs = _PRINTF.findall(fmt)
    for width, precision, _ in specs:
        if "*" in (width, precision):
            raise OverBudget("a '*' width or precision in a % format")
        check_width(width)
        check_width(precision)
    if isinstance(args, Mapping):
        values = list(args.values())
    else:
        values = list(args) if isinstance(args, tuple) else [args]
    longest = max(map(text_size, values), default=0)
    factor = 10 if any(conv in "ra" for _, _, conv in specs) else 1
    budget.make(len(fmt) + len(specs) * (factor * longest + MAX_WIDTH))
