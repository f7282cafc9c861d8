"""User templates as an attacker writes them: they end, print only inert values, keep
secrets in their password lines, and are read only from inside their directory.

- Budget: a recursive macro, loops that never end, strings and lists that grow
  (``'x' * 10**9``, doubling, joins, widths, ``replace``, ``indent``), an include of
  itself and a template nested too deeply to compile each end in a RenderError naming
  the template file and line, within seconds and a bounded amount of memory; the
  built-in templates, run in the same sandbox, still render every golden and a large
  view within their budget.
- Output: what a ``{% filter %}`` or ``{% call %}`` block writes and what a string
  method makes of a macro's output pass the same check as ``{{ value }}``.
- Secrets: printed only as the value of a password or key statement, never as text
  of their own (``~``, ``string``, ``repr`` of the view), never readable.
- Files: a template that links outside the templates directory, or is not a regular
  file, or is too large, is refused, naming the file and without its content.
"""

from __future__ import annotations

import dataclasses
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lbroute.cli import main
from lbroute.model import api
from lbroute.model.errors import RenderError
from lbroute.model.manifests import read_manifests
from renderer.render import render_view
from renderer.templating import MAX_TEMPLATE_BYTES, builtin_template_set, load_template_set
from renderer.view import NodeView, build_view

HERE = Path(__file__).parent
CASES = HERE / "cases"
GOLDEN = HERE / "golden"
PASSWORD = "Tr4nsit-S3cret!"  # in tests/cases/bgp-session-options.yaml


def case_view(case: str, router: api.Router = api.Router.BIRD, node: str = "node-a") -> NodeView:
    model = api.load(read_manifests([CASES / f"{case}.yaml"]).objects)
    return build_view(model, router, node)


def user_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def render_user(
    tmp_path: Path, text: str, *, case: str = "mixed", router: api.Router = api.Router.BIRD
) -> str:
    """Render ``case`` with ``text`` as the user's bgp.j2."""
    templates = load_template_set(router, user_dir(tmp_path, {"bgp.j2": text}))
    return render_view(case_view(case, router), templates)


# -- item 1: every template ends, in bounded time and memory ------------------------------

ATTACKS = [
    pytest.param(
        "# a macro that calls itself\n{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}\n",
        2,
        "macro calls nested more than 64 deep",
        id="recursive-macro",
    ),
    pytest.param(
        "{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}\n",
        2,
        "steps of work",
        id="nested-loops",
    ),
    pytest.param(
        "{% for i in range(100000) %}{% for j in range(100000) if j < 0 %}"
        "{% endfor %}{% endfor %}\n",
        1,
        "steps of work",
        id="nested-loops-filtered",
    ),
    pytest.param(
        "{% for i in range(100000) %}{% for j in range(100000) %}"
        "{{ 'x' if false else '' }}{% endfor %}{% endfor %}\n",
        1,
        "steps of work",
        id="nested-loops-printing-nothing",
    ),
    pytest.param(
        "{% for i in range(100000) %}{% for j in range(1000) %}"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}{% endfor %}\n",
        1,
        "characters of text",
        id="loop-of-text",
    ),
    pytest.param("{{ ('x' * 10**9)|length }}\n", 1, "characters of text", id="string-times"),
    pytest.param("{{ ([0] * 10**9)|length }}\n", 1, "characters of text", id="list-times"),
    pytest.param("{{ 2 ** (10 ** 9) }}\n", 1, "bits", id="power"),
    pytest.param(
        "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s|length }}{% endmacro %}"
        "{{ d('x', 40) }}\n",
        1,
        "the templates did more than",
        id="doubling-by-recursion",
    ),
    pytest.param(
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}\n",
        1,
        "characters of text",
        id="doubling-in-a-namespace",
    ),
    pytest.param(
        "{% set a = 'x' * 100000 %}{{ ([a] * 100000)|join|length }}\n",
        1,
        "characters of text",
        id="huge-join",
    ),
    pytest.param(
        "{% set a = 'x' * 100000 %}{{ a|replace('x', a)|length }}\n",
        1,
        "characters of text",
        id="replace",
    ),
    pytest.param(
        "{% set a = '\\n' * 100000 %}{{ a|indent(100000)|length }}\n",
        1,
        "characters of text",
        id="indent",
    ),
    pytest.param("{{ '%999999999d'|format(1) }}\n", 1, "at most 1000", id="printf-width"),
    pytest.param("{{ '%*d' % (10**9, 1) }}\n", 1, "'*' width", id="printf-star"),
    pytest.param("{{ '{:>999999999}'.format(1) }}\n", 1, "at most 1000", id="format-width"),
    pytest.param("{{ 'x'.center(10**9)|length }}\n", 1, "characters", id="center"),
    pytest.param(
        "{{ '\\t'.expandtabs(tabsize=10**9)|length }}\n", 1, "characters", id="expandtabs"
    ),
    pytest.param("{{ (1).to_bytes(10**9, 'big')|length }}\n", 1, "characters", id="to-bytes"),
    pytest.param(
        "{% for i in range(1000) %}{{ ''.center(-10**9) }}{% endfor %}{{ ('x' * 10**8)|length }}\n",
        1,
        "characters",
        id="negative-width",
    ),
    pytest.param("{{ [1]|batch(10**9, 0)|list|length }}\n", 1, "characters", id="batch"),
    pytest.param(
        "{{ ([[1] * 1000] * 10000)|sum(start=[])|length }}\n", 1, "sum adds numbers", id="sum"
    ),
    pytest.param("{{ lipsum(10**6)|length }}\n", 1, "characters", id="lipsum"),
    pytest.param(
        "{% set big = range(100000)|list %}{% for i in range(100000) %}"
        "{% if -1 in big %}{% endif %}{% endfor %}\n",
        1,
        "steps of work",
        id="scan-in-a-loop",
    ),
    pytest.param(
        "{% set big = range(100000)|list %}{% for i in range(100000) %}"
        "{% if big|sort|first %}{% endif %}{% endfor %}\n",
        1,
        "steps of work",
        id="sort-in-a-loop",
    ),
    pytest.param("# me again\n{% include 'bgp.j2' %}\n", 2, "nested too deeply", id="include"),
]


@pytest.mark.parametrize(("text", "line", "words"), ATTACKS)
def test_hostile_template_ends_in_a_render_error_quickly(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(RenderError) as caught:
            render_user(tmp_path, text)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(caught.value).startswith(f"{tmp_path / 'templates' / 'bgp.j2'}:{line}: ")
    assert words in str(caught.value)
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_template_too_deeply_nested_to_compile_is_named(tmp_path: Path) -> None:
    text = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}\n"
    with pytest.raises(RenderError) as caught:
        render_user(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path / 'templates' / 'bgp.j2'}: ")
    assert "nested too deeply" in str(caught.value)


def test_cli_reports_a_recursive_macro_with_its_line_and_no_traceback(tmp_path: Path) -> None:
    templates = user_dir(tmp_path, {"bgp.j2": "{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}\n"})
    result = CliRunner().invoke(
        main,
        [
            *("render", "-f", str(CASES / "mixed.yaml"), "--node", "node-a"),
            *("--router", "bird", "--templates", str(templates)),
        ],
    )
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"error: {templates / 'bgp.j2'}:1: macro calls nested more than 64 deep" in (
        result.output
    )


def _goldens() -> list[Any]:
    params = []
    for golden in sorted(GOLDEN.glob("*.conf")):
        name, router = golden.name.removesuffix(".conf").rsplit(".", 1)
        case, _, node = name.partition("@")
        params.append(pytest.param(case, api.Router(router), node or "node-a", id=golden.name))
    return params


@pytest.mark.parametrize(("case", "router", "node"), _goldens())
def test_builtin_templates_in_the_sandbox_render_every_golden(
    case: str, router: api.Router, node: str
) -> None:
    golden = GOLDEN / f"{case}{'' if node == 'node-a' else '@' + node}.{router.value}.conf"
    sandboxed = dataclasses.replace(builtin_template_set(router), trusted=False)
    assert render_view(case_view(case, router, node), sandboxed) == golden.read_text("utf-8")


def _large_model(groups: int, peers: int) -> api.Model:
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.255.0.1"}]},
        }
    ]
    for i in range(groups):
        objects.append(
            {
                "apiVersion": "lbroute.io/v1alpha1",
                "kind": "ServiceGroup",
                "metadata": {"name": f"g{i}", "namespace": "lbroute", "labels": {"t": "x"}},
                "spec": {
                    "pools": [{"cidr": f"10.{i // 256}.{i % 256}.0/24"}],
                    "bgp": {"communities": [f"65000:{i}"], "localPref": 100 + i % 50},
                },
            }
        )
    for j in range(peers):
        objects.append(
            {
                "apiVersion": "lbroute.io/v1alpha1",
                "kind": "Peer",
                "metadata": {"name": f"p{j}", "namespace": "lbroute"},
                "spec": {"bgp": {"address": f"172.16.{j // 256}.{j % 256}", "asn": 65000 + j}},
            }
        )
    return api.load(objects)


@pytest.mark.parametrize("router", list(api.Router))
def test_builtin_templates_in_the_sandbox_fit_the_budget_of_a_large_view(
    router: api.Router,
) -> None:
    view = build_view(_large_model(2000, 100), router, "node-a")
    sandboxed = dataclasses.replace(builtin_template_set(router), trusted=False)
    assert render_view(view, sandboxed) == render_view(view)


# -- item 2: whatever reaches the output is checked; secrets stay in their line -----------

UNCHECKED_OUTPUT = [
    pytest.param(
        "{% filter replace('x', view|string) %}x{% endfilter %}\n",
        "cannot turn a NodeView into text",
        id="filter-block-argument",
    ),
    pytest.param(
        "{% filter format(view) %}%s{% endfilter %}\n",
        "cannot turn a NodeView into text",
        id="filter-block-format",
    ),
    pytest.param(
        "{% filter default(';\\nprotocol static x {', true) %}{% endfilter %}\n",
        "refusing to print",
        id="filter-block-default",
    ),
    pytest.param(
        "{% macro m() %}{}{% endmacro %}{{ m().format('\\n}\\nprotocol static x {') }}\n",
        "refusing to print '\\n}\\nprotocol static x {'",
        id="macro-format",
    ),
    pytest.param(
        "{% macro m() %}x{% endmacro %}{{ m().replace('x', ';\\nprotocol static x {') }}\n",
        "refusing to print",
        id="macro-replace",
    ),
    pytest.param(
        "{% call '{0}'.format(view) %}{% endcall %}\n",
        "cannot turn a NodeView into text",
        id="call-block-format",
    ),
    pytest.param(
        "{% call ';\\nprotocol static x'.format() %}{% endcall %}\n",
        "refusing to print",
        id="call-block-method",
    ),
    pytest.param(
        "{% set x %}; protocol static x{% endset %}{{ x }}\n",
        "refusing to print",
        id="set-block",
    ),
    pytest.param(
        "{% macro m() %}x{% endmacro %}{{ m() ~ ';' }}\n",
        "refusing to print",
        id="macro-concat",
    ),
]


@pytest.mark.parametrize(("text", "words"), UNCHECKED_OUTPUT)
def test_every_way_to_the_output_is_checked(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(RenderError) as caught:
        render_user(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path / 'templates' / 'bgp.j2'}:1: ")
    assert words in str(caught.value)


def test_blocks_macros_and_filters_still_render_template_text(tmp_path: Path) -> None:
    text = (
        "{% macro wrap(name) %}protocol static {{ name }} {\n{{ caller() }}}\n{% endmacro %}"
        "{% call wrap('lbr_x') %}  ipv4;\n{% endcall %}"
        "{% filter upper %}# {{ view.node }}\n{% endfilter %}"
        "{% filter indent(2, true) %}# {{ view.router }}\n{% endfilter %}"
        "{% macro two() %}# one\n# two\n{% endmacro %}{{ two()|indent(4) }}"
        "{% block b %}# block\n{% endblock %}{{ self.b() }}"
    )
    out = render_user(tmp_path, text)
    assert "protocol static lbr_x {\n  ipv4;\n}\n# NODE-A\n  # bird\n# one\n    # two\n" in out
    assert "# block\n# block\n" in out


PRINTS = "{% for n in view.bgp if n.password is not none %}"
ENDS = "{% endfor %}"


@pytest.mark.parametrize("router", list(api.Router))
def test_a_secret_printed_outside_its_statement_is_refused(
    tmp_path: Path, router: api.Router
) -> None:
    for i, text in enumerate(
        [
            f"{PRINTS}# {{{{ n.password }}}}\n{ENDS}",
            "{% macro p(n) %}{{ n.password }}{% endmacro %}" + f"{PRINTS}# {{{{ p(n) }}}}\n{ENDS}",
            f"{PRINTS}description {{{{ (view.bgp|selectattr('password')|first).password }}}}\n"
            + ENDS,
        ]
    ):
        with pytest.raises(RenderError) as caught:
            render_user(tmp_path / str(i), text, case="bgp-session-options", router=router)
        message = str(caught.value)
        assert message.startswith(f"{tmp_path / str(i) / 'templates' / 'bgp.j2'}:1: ")
        assert "a secret is printed outside the statement it belongs to" in message
        assert PASSWORD not in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("{{ 'x' ~ SECRET }}", "a secret has no text of its own", id="concat"),
        pytest.param("{{ SECRET|string }}", "a secret has no text of its own", id="string"),
        pytest.param("{{ [SECRET]|join }}", "a secret has no text of its own", id="join"),
        pytest.param("{{ '%s'|format(SECRET) }}", "a secret has no text of its own", id="%"),
        pytest.param("{{ '{}'.format(SECRET) }}", "a secret has no text of its own", id="format"),
        pytest.param("{{ SECRET.reveal() }}", "unsafe", id="reveal"),
        pytest.param("{{ SECRET._value }}", "unsafe", id="private"),
        pytest.param("{{ SECRET|length }}", "has no len()", id="length"),
        pytest.param("{{ view|string }}", "cannot turn a NodeView into text", id="view"),
        pytest.param("{{ SECRET|pprint }}", "No filter named 'pprint'", id="pprint"),
        pytest.param(
            "{% set x %}{{ SECRET }}{% endset %}{{ x }}", "refusing to print '\\x000", id="copy"
        ),
        pytest.param(
            "{% macro p() %}{{ SECRET }}{% endmacro %}# {{ p()|upper }}",
            "a secret is printed outside",
            id="macro-filter",
        ),
        pytest.param(
            "{% macro p() %}{{ SECRET }}{% endmacro %}# {{ p()|replace('0', '') }}",
            "contains a NUL character",
            id="macro-cut",
        ),
    ],
)
def test_a_secret_has_no_text_of_its_own(tmp_path: Path, text: str, words: str) -> None:
    secret = "(view.bgp|selectattr('password')|first).password"
    with pytest.raises(RenderError) as caught:
        render_user(tmp_path, text.replace("SECRET", secret) + "\n", case="bgp-session-options")
    assert words in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_captured_secret_cut_to_pieces_prints_no_secret(tmp_path: Path) -> None:
    secret = "(view.bgp|selectattr('password')|first).password"
    text = f"{{% set x %}}{{{{ {secret} }}}}{{% endset %}}# {{{{ x[1:-1] }}}}\n"
    out = render_user(tmp_path, text, case="bgp-session-options")
    assert PASSWORD[1:-1] not in out
    assert "\x00" not in out


def test_a_secret_compares_equal_to_no_string_and_shows_as_secret_in_a_view() -> None:
    view = case_view("bgp-session-options")
    [neighbor] = [n for n in view.bgp if n.password is not None]
    assert neighbor.password != PASSWORD
    assert PASSWORD not in repr(view)
    assert "password=<secret>" in repr(neighbor)
    with pytest.raises(TypeError):
        str(neighbor.password)


@pytest.mark.parametrize(
    ("case", "router"),
    [
        ("bgp-session-options", api.Router.BIRD),
        ("bgp-session-options", api.Router.FRR),
        ("ospf-v2", api.Router.FRR),
        ("rip", api.Router.FRR),
    ],
)
def test_secrets_print_in_their_statement_from_a_user_template(
    tmp_path: Path, case: str, router: api.Router
) -> None:
    """A user's copy of the built-in templates (which print every secret) renders what
    the built-in set does; a macro may print a secret into its statement too."""
    builtin = dict(builtin_template_set(router).sources)
    templates = load_template_set(router, user_dir(tmp_path, builtin))
    view = case_view(case, router)
    assert render_view(view, templates) == render_view(view)
    if case == "bgp-session-options":
        text = "{% macro p(n) %}{{ n.password }}{% endmacro %}" + (
            f"{PRINTS} neighbor {{{{ n.key }}}} password {{{{ p(n) }}}}\n{ENDS}"
        )
        out = render_user(tmp_path / "macro", text, case=case, router=router)
        assert f" password {PASSWORD}\n" in out


# -- item 3: template files only from inside their directory ------------------------------


def test_link_out_of_the_templates_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "token"
    outside.write_text("eyJhbGciOi-the-service-account-token", encoding="utf-8")
    directory = user_dir(tmp_path, {})
    (directory / "leak.j2").symlink_to(outside)
    with pytest.raises(RenderError) as caught:
        load_template_set(api.Router.BIRD, directory)
    message = str(caught.value)
    assert message.startswith(f"{directory / 'leak.j2'}: is a link to {str(outside)!r}")
    assert "outside the templates directory" in message
    assert "eyJhbGciOi" not in message


def test_router_subdirectory_linked_out_of_the_templates_directory_is_refused(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "bgp.j2").write_text("# elsewhere\n", encoding="utf-8")
    directory = user_dir(tmp_path, {})
    (directory / "bird").symlink_to(elsewhere)
    with pytest.raises(RenderError, match="outside the templates directory"):
        load_template_set(api.Router.BIRD, directory)


def test_links_inside_the_directory_work_as_in_a_configmap_volume(tmp_path: Path) -> None:
    directory = tmp_path / "templates"
    data = directory / "..2024_01_01_00_00_00.000000000"
    data.mkdir(parents=True)
    (data / "bgp.j2").write_text("# bgp from a ConfigMap\n", encoding="utf-8")
    (directory / "..data").symlink_to(data.name)
    (directory / "bgp.j2").symlink_to("..data/bgp.j2")
    (directory / "ospf.j2").symlink_to("bgp.j2")
    templates = load_template_set(api.Router.BIRD, directory)
    assert dict(templates.sources)["ospf.j2"] == "# bgp from a ConfigMap\n"
    assert "# bgp from a ConfigMap\n" in render_view(case_view("mixed"), templates)


def test_fifo_and_oversized_templates_are_refused(tmp_path: Path) -> None:
    directory = user_dir(tmp_path, {})
    os.mkfifo(directory / "bgp.j2")
    with pytest.raises(RenderError, match=r"bgp\.j2: is not a regular file"):
        load_template_set(api.Router.BIRD, directory)
    (directory / "bgp.j2").unlink()
    (directory / "bgp.j2").write_text("#" * (MAX_TEMPLATE_BYTES + 1), encoding="utf-8")
    with pytest.raises(RenderError, match=r"bgp\.j2: is larger than 1024 KiB"):
        load_template_set(api.Router.BIRD, directory)


# -- compiled templates are shared between renders -----------------------------------------


def test_an_edited_template_is_picked_up_although_its_compiled_code_is_shared(
    tmp_path: Path,
) -> None:
    view = case_view("mixed")
    directory = user_dir(tmp_path, {"header.j2": "# first header\n"})
    before = os.stat(directory / "header.j2")
    assert "# first header" in render_view(view, load_template_set(api.Router.BIRD, directory))
    assert "# first header" in render_view(view, load_template_set(api.Router.BIRD, directory))
    # Same size, and the same mtime as before: only the content tells them apart.
    (directory / "header.j2").write_text("# other header\n", encoding="utf-8")
    os.utime(directory / "header.j2", ns=(before.st_atime_ns, before.st_mtime_ns))
    text = render_view(view, load_template_set(api.Router.BIRD, directory))
    assert "# other header" in text and "# first header" not in text
    # The built-in set still renders as the golden file says.
    golden = (GOLDEN / "mixed.bird.conf").read_text(encoding="utf-8")
    assert render_view(view, builtin_template_set(api.Router.BIRD)) == golden


def test_a_template_compiled_before_keeps_its_sandbox_and_budget(tmp_path: Path) -> None:
    endless = "{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}\n"
    for _ in range(2):  # the second render uses the code the first compiled
        with pytest.raises(RenderError, match=r"bgp\.j2:2: "):
            render_user(tmp_path, endless)
        with pytest.raises(RenderError, match="unsafe"):
            render_user(tmp_path, "{{ view.__class__ }}")
    # A user's copy of a built-in template is compiled for the sandbox (its own code, not
    # the trusted one compiled from the same text) and renders the same.
    source = dict(builtin_template_set(api.Router.BIRD).sources)["bgp.j2"]
    view = case_view("mixed")
    trusted = render_view(view, builtin_template_set(api.Router.BIRD))
    templates = load_template_set(api.Router.BIRD, user_dir(tmp_path, {"bgp.j2": source}))
    assert not templates.trusted and render_view(view, templates) == trusted
