"""The fuzzer's tools (tests/test_fuzz.py): its profile, hostile values, and the checks
every case runs.

- :func:`fuzz_settings`: ``LBROUTE_FUZZ=ci`` (the default) runs a fixed number of
  examples, derandomized and without a database, so CI runs the same cases every time;
  ``LBROUTE_FUZZ=deep`` twenty times as many, random, with Hypothesis' database;
- :data:`HOSTILE`: values a field may be set to: strings that start with
  :data:`MARKER` and carry control characters, unicode, configuration syntax or 200 KB;
  wrong types; huge integers; long lists; deep nesting; a shared structure that YAML
  writes with aliases ("billion laughs");
- the checks: :func:`time_budget` (a hard alarm: no hang), :func:`check_problems`
  (bounded: ``MAX_PROBLEMS`` + 1 an object, each one printable line; naming the
  object; input strings quoted),
  :func:`check_config_text` (a secret only right after its keyword, so redaction hides
  it), :func:`check_no_secret`; :class:`Collected` feeds a sample of the
  configurations produced to the real parsers.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from lbroute.model.api import Router
from lbroute.model.errors import Problem, escape
from lbroute.model.fields import MAX_PROBLEMS
from lbroute.model.secrets import SECRET_STATEMENT, redact
from nodeagent.routers import check_config

PROFILE = os.environ.get("LBROUTE_FUZZ", "ci")
if PROFILE not in ("ci", "deep"):
    raise ValueError(f"LBROUTE_FUZZ={PROFILE!r}: expected ci or deep")
SCALE = 20 if PROFILE == "deep" else 1
BUDGET = 20.0
"""Seconds one case may take before it counts as a hang (the alarm)."""
PARSER_SAMPLE = 6
"""Configurations per router fed to the real parser at the end of a test."""
PROBLEM_LIMIT = 1024
"""The longest a problem may print."""
MARKER = "Q7mark"
"""Every hostile string starts with it: a message may show it only right after a quote."""
BGP_PASSWORD = "Fz-bgp!pw7"
OSPF_KEY = "Fz-ospf#k1"
RIP_KEY = "Fz-rip%k2"
SECRETS = (BGP_PASSWORD, OSPF_KEY, RIP_KEY)


def fuzz_settings(examples: int) -> settings:
    """The profile: ``examples`` cases in CI, derandomized; twenty times that, random,
    for ``deep``."""
    return settings(
        max_examples=examples * SCALE,
        deadline=datetime.timedelta(seconds=BUDGET / 2),
        derandomize=PROFILE == "ci",
        database=None if PROFILE == "ci" else settings.get_profile("default").database,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # CI reports the case as found (shrinking a manifest set can take minutes).
        phases=[Phase.explicit, Phase.reuse, Phase.generate] if PROFILE == "ci" else list(Phase),
        print_blob=True,
    )


# -- the checks every case runs -----------------------------------------------------------


class Hang(BaseException):
    """A case ran past :data:`BUDGET` seconds (a BaseException, so that no ``except
    Exception`` in the code under test can swallow it)."""


@contextlib.contextmanager
def time_budget(seconds: float = BUDGET) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"the case ran for more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_problems(problems: list[Problem] | tuple[Problem, ...]) -> None:
    """Bounded, one printable line each, naming the object; input strings quoted."""
    per_object: dict[Any, int] = {}
    for p in problems:
        text = str(p)
        assert len(text) <= PROBLEM_LIMIT, f"{len(text)} characters: {text[:300]}"
        assert text.isprintable(), f"unescaped: {text[:300]!r}"
        assert p.ref.kind and str(p.ref), text
        per_object[p.ref] = per_object.get(p.ref, 0) + 1
        check_quoted(escape(p.path), plain=".")  # the object's own name shows escaped
        check_quoted(escape(p.message))
        check_no_secret(text)
    for ref, n in per_object.items():
        # A name may be two objects (a duplicate), each with its own, plus the duplicate's.
        assert n <= 2 * (MAX_PROBLEMS + 1) + 1, f"{ref}: {n} problems"


def check_quoted(text: str, plain: str = "") -> None:
    """Each input string in ``text`` is quoted (or, in a path, a plain field name: a
    ``plain`` character before it, and only name characters in it)."""
    for m in re.finditer(MARKER, text):
        before = text[m.start() - 1] if m.start() else ""
        if before and before in plain and re.match(r"[\w.\-/]{1,253}(\.|\[|$)", text[m.start() :]):
            continue
        assert before in ("'", '"'), f"an input value printed unquoted: {text[:300]!r}"


def check_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret outside its place: {text[:300]!r}"


def check_config_text(text: str) -> None:
    """Secrets only right after their keyword (so redaction hides them); no NUL."""
    assert "\x00" not in text
    for secret in SECRETS:
        for m in re.finditer(re.escape(secret), text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            assert SECRET_STATEMENT.search(text, line_start, m.start()), (
                f"secret printed outside its statement: {text[line_start : m.end() + 20]!r}"
            )
    redacted = redact(text)
    check_no_secret(redacted)


# -- hostile values ------------------------------------------------------------------------


def _big_alias_bomb() -> list[Any]:
    """A structure whose levels are the same list ten times: YAML writes it with
    anchors and aliases, 1 KB that would expand to 10^8 items."""
    level: list[Any] = ["lol"] * 10
    for _ in range(8):
        level = [level] * 10
    return level


def _nested(depth: int) -> Any:
    value: Any = MARKER
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


_CONTROL = st.sampled_from(["\n", "\r", "\t", "\x1b[31m", "\x07", "\u202e", "\u200b", "\x85"])
UNICODE = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=12)
ADDRESSISH = st.sampled_from(
    [
        "0.0.0.0/0",
        "::/0",
        "10.0.0.0/33",
        "127.0.0.0/8",
        "224.0.0.0/4",
        "fe80::/64",
        "192.0.2.10-192.0.2.1",
        "192.0.2.0/24",
        "2001:db8:1::/64",
        "::ffff:192.0.2.1",
        "10.0.0.1",
        "65000:100",
        "-1",
        "4294967296",
        "default",
        "/129",
    ]
)
HOSTILE_STRINGS = st.one_of(
    st.builds(lambda a, c, b: MARKER + a + c + b, UNICODE, _CONTROL, UNICODE),
    st.builds(lambda a: MARKER + a, ADDRESSISH),
    st.builds(lambda n: MARKER + "x" * n, st.integers(min_value=60, max_value=200_000)),
    st.builds(lambda a: MARKER + '";\n}\nprotocol static x { #' + a, UNICODE),
    st.just(MARKER + "{{ 7*7 }}{% raw %}"),
)
HOSTILE = st.one_of(
    HOSTILE_STRINGS,
    st.sampled_from(
        [None, True, False, 0, -1, 3.5, float("inf"), 10**400, 2**64, [], {}, [None], {"": None}]
    ),
    st.builds(lambda n: [MARKER + "-item"] * n, st.integers(min_value=2, max_value=20_000)),
    st.builds(lambda n: {f"{MARKER}-k{i}": i for i in range(n)}, st.integers(1, 2_000)),
    st.builds(_nested, st.integers(min_value=3, max_value=150)),
    st.just(_big_alias_bomb()),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` (its keys and list indexes, depth first)."""
    found = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def set_at(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def delete_at(obj: Any, path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        obj = obj[key]
    del obj[path[-1]]


def dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=1_000_000)


# Lines of hostile Jinja for a user template (SECRET: an expression of a password).
SECRET_EXPR = "(view.bgp|selectattr('password')|first).password"
SNIPPETS = [
    "# {{ SECRET }}",
    "description {{ SECRET }}",
    "password {{ SECRET }}",
    ' password "{{ SECRET }}";',
    "md5 {{ SECRET }} junk {{ SECRET }}",
    "key-string {{ SECRET }}",
    "area-password clear {{ SECRET }}",
    "{% set x %}{{ SECRET }}{% endset %}# {{ x }}",
    "{% set x %}{{ SECRET }}{% endset %}# {{ x[1:-1] }}",
    "{% macro p() %}{{ SECRET }}{% endmacro %}# {{ p()|upper }}",
    "{% filter upper %}{{ view }}{% endfilter %}",
    "{% filter indent(2) %}# {{ view.node }}{% endfilter %}",
    "{% macro m() %}# x{% endmacro %}{{ m().format('\\n}\\nprotocol static y {') }}",
    "{{ '{}'.format(SECRET) }}",
    "{{ 'x' ~ SECRET }}",
    "{{ SECRET|string }}",
    "{{ SECRET.reveal() }}",
    "{{ view.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler }}{{ joiner }}{{ lipsum }}",
    "{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(1) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ 'x' * 100000000 }}",
    "{{ '%999999999s'|format('x') }}",
    "{{ 10 ** 100000 }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../etc/passwd' %}",
    "{{ view.node }}\x1b[31m\u202e",
    "# {{ view.node ~ '\\n}' }}",
    "{{ undefined_name }}",
    "{% if %}",
    "{{ view.bgp|map(attribute='password')|list }}",
]


ANNOTATION_VALUES = st.one_of(
    HOSTILE_STRINGS,
    st.builds(lambda ips: ",".join(ips), st.lists(ADDRESSISH, max_size=5)),
    st.builds(lambda n: ",".join(f"192.0.2.{i % 250}" for i in range(n)), st.integers(2, 12_000)),
    st.sampled_from(["192.0.2.10", "192.0.2.50", "2001:db8:1::50", "web", "campus", " ", ""]),
    st.sampled_from([None, 5, True, ["192.0.2.1"], {"a": 1}]),
)
ANNOTATION_KEYS = st.sampled_from(
    [
        "lbroute.io/addresses",
        "lbroute.io/service-group",
        "lbroute.io/allow-shared-ip",
        "lbroute.io/allocated-from",
    ]
)
SPEC_FIELDS = st.dictionaries(
    st.sampled_from(
        ["ipFamilies", "ipFamilyPolicy", "loadBalancerIP", "externalTrafficPolicy", "ports"]
    ),
    st.one_of(
        HOSTILE_STRINGS,
        st.sampled_from(
            [["IPv4"], ["IPv6", "IPv4"], ["IPv9"], "SingleStack", "RequireDualStack", "Local"]
        ),
        st.sampled_from([[{"port": "x"}], [{"port": 80, "protocol": MARKER + "\n"}], None, 7]),
    ),
    max_size=3,
)
INGRESS = st.one_of(
    st.just([]),
    st.lists(st.fixed_dictionaries({"ip": st.one_of(HOSTILE_STRINGS, ADDRESSISH)}), max_size=3),
    st.sampled_from([[{"ip": "192.0.2.10"}], [{"hostname": "x"}], "junk", [None], {"ip": 1}]),
)


class Collected:
    """Configurations the built-in templates produced, by router (for the parser)."""

    def __init__(self) -> None:
        self.texts: dict[Router, dict[str, str]] = {r: {} for r in Router}

    def add(self, router: Router, text: str) -> None:
        if not text.startswith("<error>"):
            self.texts[router].setdefault(hashlib.sha256(text.encode()).hexdigest(), text)

    def check_sample(self) -> None:
        """The real parsers accept a sample: the first by hash, a fixed choice that
        changes with the texts."""
        for router, texts in self.texts.items():
            assert texts, f"no {router} configuration was produced"
            for key in sorted(texts)[:PARSER_SAMPLE]:
                result = check_config(router, texts[key])
                assert result.ok, f"{router} refused a rendered configuration:\n{result.describe()}"
