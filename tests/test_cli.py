"""The ``lbroute render`` and ``lbroute validate`` commands, run with click's CliRunner.

Covers exit codes (0 ok, 1 invalid input or configuration, 2 usage), that messages
name the object and field (or file and line) without a traceback, that valid objects
still render when others are invalid, that ``validate`` runs the real router parser
(``bird -p``, ``vtysh --dryrun``) and shows its verdict, and that user templates are
sandboxed: Jinja errors, sandbox escapes and values that would add statements are
refused with the template's file and line. ``agent`` and ``allocator`` check their
options and name a kubeconfig they cannot load in one line; the CLI itself loads no
Kubernetes client until one of them starts. Every command module's commands are in the
group, and its import contract keeps the command modules from importing each other.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import lbroute.cli
from lbroute.cli import main

NODE = """\
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {rack: a}}
status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}
"""
WEB = """\
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: web, namespace: lbroute}
spec:
  pools: [{cidr: 192.0.2.0/24}]
"""
TOR = """\
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: tor, namespace: lbroute}
spec:
  bgp: {address: 10.0.0.254, asn: 65000}
"""
BROKEN_GROUP = """\
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: broken, namespace: lbroute}
spec:
  pools: [{cidr: 198.51.100.0/24}, {cidr: 198.51.101.1/24}]
"""
ISIS = """\
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: core, namespace: lbroute}
spec:
  isis: {area: "49.0001", interfaces: [{name: eth1}]}
"""
VALID = [NODE, WEB, TOR]


def manifests(tmp_path: Path, *docs: str, name: str = "objects.yaml") -> Path:
    path = tmp_path / name
    path.write_text("---\n".join(docs), encoding="utf-8")
    return path


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output


def user_templates(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


# -- render --------------------------------------------------------------------------------


def test_render_prints_the_configuration(tmp_path: Path) -> None:
    result = run("render", "-f", manifests(tmp_path, *VALID), "--node", "n1")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "router id 10.0.0.1;" in result.stdout
    assert "192.0.2.0/24{24,32}" in result.stdout
    assert "neighbor 10.0.0.254 as 65000;" in result.stdout


def test_render_reads_a_directory_of_manifests(tmp_path: Path) -> None:
    for i, doc in enumerate(VALID):
        manifests(tmp_path, doc, name=f"{i}.yaml")
    (tmp_path / "notes.txt").write_text("not a manifest", encoding="utf-8")
    result = run("render", "-f", tmp_path, "--node", "n1")
    assert result.exit_code == 0, result.output
    assert "neighbor 10.0.0.254 as 65000;" in result.stdout


def test_render_is_deterministic(tmp_path: Path) -> None:
    path = manifests(tmp_path, *VALID)
    first = run("render", "-f", path, "--node", "n1")
    assert run("render", "-f", path, "--node", "n1").stdout == first.stdout


def test_render_for_frr(tmp_path: Path) -> None:
    result = run("render", "-f", manifests(tmp_path, *VALID), "--node", "n1", "--router", "frr")
    assert result.exit_code == 0, result.output
    assert "neighbor 10.0.0.254 remote-as 65000" in result.stdout


def test_invalid_object_is_reported_and_the_rest_still_renders(tmp_path: Path) -> None:
    result = run("render", "-f", manifests(tmp_path, *VALID, BROKEN_GROUP), "--node", "n1")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "error: ServiceGroup lbroute/broken: spec.pools[1].cidr: " in result.stderr
    assert "no host bits set" in result.stderr
    assert "192.0.2.0/24{24,32}" in result.stdout
    assert "198.51.100" not in result.stdout


def test_warnings_are_printed_but_do_not_fail(tmp_path: Path) -> None:
    lonely = (
        TOR.replace("name: tor", "name: lonely")
        .replace("bgp:", "serviceGroupSelector: {matchLabels: {tier: db}}\n  bgp:")
        .replace("10.0.0.254", "10.0.0.253")
    )
    result = run("render", "-f", manifests(tmp_path, *VALID, lonely), "--node", "n1")
    assert result.exit_code == 0, result.output
    assert "warning: Peer lbroute/lonely: spec.serviceGroupSelector: " in result.stderr


def test_frr_only_peer_on_bird_is_reported_and_the_rest_renders(tmp_path: Path) -> None:
    result = run(
        "render", "-f", manifests(tmp_path, *VALID, ISIS), "--node", "n1", "--router", "bird"
    )
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "error: Peer lbroute/core: spec.isis: IS-IS is available with FRR only" in result.stderr
    assert "neighbor 10.0.0.254 as 65000;" in result.stdout


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = manifests(
        tmp_path, WEB, "kind: Peer\nmetadata:\n  name: x\n   bad: [\n", name="bad.yaml"
    )
    result = run("render", "-f", path, "--node", "n1")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert f"error: {path}:10: not valid YAML" in result.stderr
    assert result.stdout == ""


def test_missing_manifest_file(tmp_path: Path) -> None:
    result = run("render", "-f", tmp_path / "nope.yaml", "--node", "n1")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "nope.yaml: no such file or directory" in result.stderr


def test_node_without_router_id_is_an_error(tmp_path: Path) -> None:
    result = run("render", "-f", manifests(tmp_path, WEB, TOR), "--node", "n1")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "no router id for node n1" in result.stderr
    ok = run(
        "render", "-f", manifests(tmp_path, WEB, TOR), "--node", "n1", "--router-id", "10.9.9.9"
    )
    assert ok.exit_code == 0, ok.output
    assert "router id 10.9.9.9;" in ok.stdout


def test_a_mistyped_node_is_named_with_the_nodes_known(tmp_path: Path) -> None:
    result = run("validate", "-f", manifests(tmp_path, *VALID), "--node", "m1")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert result.stderr.startswith(
        "error: no Node named 'm1' in the input (known: n1); no router id for node m1"
    ), result.stderr
    given = run(
        "render", "-f", manifests(tmp_path, *VALID), "--node", "m1", "--router-id", "10.9.9.9"
    )
    assert given.exit_code == 0, given.output
    assert "Node m1: not found among the inputs (known: n1)" in given.stderr


def test_field_errors_come_before_the_node_cannot_render(tmp_path: Path) -> None:
    result = run("validate", "-f", manifests(tmp_path, WEB, BROKEN_GROUP, TOR), "--node", "n1")
    assert result.exit_code == 1
    assert_no_traceback(result)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ServiceGroup lbroute/broken: spec.pools[1].cidr:"), lines
    assert lines[-1].startswith("error: no router id for node n1"), lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--router", "bird"], "Missing option '--node'"),
        (["--node", "n1", "--router", "quagga"], "'quagga' is not one of 'bird', 'frr'"),
        (["--node", "n1", "--mode", "owned"], "'owned' is not one of 'managed', 'include'"),
        (["--node", "n1", "--router-id", "2001:db8::1"], "--router-id"),
        (["--node", "n1", "--router-id", "10.0.0.256"], "is not an IPv4 address"),
    ],
    ids=["missing-node", "bad-router", "bad-mode", "router-id-ipv6", "router-id-garbage"],
)
@pytest.mark.parametrize("command", ["render", "validate"])
def test_usage_errors_exit_2(tmp_path: Path, command: str, args: list[str], message: str) -> None:
    result = run(command, "-f", manifests(tmp_path, *VALID), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert_no_traceback(result)


def test_missing_filename_is_a_usage_error() -> None:
    result = run("render", "--node", "n1")
    assert result.exit_code == 2
    assert "Missing option '-f'" in result.stderr


def test_options_from_the_environment(tmp_path: Path) -> None:
    result = run(
        "render",
        "-f",
        manifests(tmp_path, *VALID),
        env={"LBROUTE_RENDER_NODE": "n1", "LBROUTE_RENDER_ROUTER_ID": "10.7.7.7"},
    )
    assert result.exit_code == 0, result.output
    assert "router id 10.7.7.7;" in result.stdout


# -- validate ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["managed", "include"])
def test_validate_bird(tmp_path: Path, mode: str) -> None:
    result = run("validate", "-f", manifests(tmp_path, *VALID), "--node", "n1", "--mode", mode)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"OK: bird accepts the {mode} configuration for node n1")


@pytest.mark.parametrize("extra", [[], [ISIS]], ids=["bgp", "bgp-and-isis"])
def test_validate_frr(tmp_path: Path, extra: list[str]) -> None:
    result = run(
        "validate", "-f", manifests(tmp_path, *VALID, *extra), "--node", "n1", "--router", "frr"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: frr accepts the managed configuration for node n1")


def test_validate_with_invalid_objects_checks_the_rest_and_exits_1(tmp_path: Path) -> None:
    result = run("validate", "-f", manifests(tmp_path, *VALID, BROKEN_GROUP), "--node", "n1")
    assert result.exit_code == 1
    assert result.stdout.startswith("OK: bird accepts")
    assert "ServiceGroup lbroute/broken: spec.pools[1].cidr" in result.stderr


BROKEN_BGP = """\
{% for n in view.bgp %}
protocol bgp {{ n.protocol_name }} {
  neighbor {{ n.address }} as;
}
{% endfor %}
"""


@pytest.mark.parametrize("subdir", ["", "bird"], ids=["flat", "per-router-subdir"])
def test_validate_shows_the_bird_parser_error_and_line(tmp_path: Path, subdir: str) -> None:
    templates = user_templates(tmp_path, "bgp.j2", BROKEN_BGP)
    if subdir:
        (templates / subdir).mkdir()
        (templates / "bgp.j2").rename(templates / subdir / "bgp.j2")
    result = run(
        "validate", "-f", manifests(tmp_path, *VALID), "--node", "n1", "--templates", templates
    )
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "bird rejected the configuration for node n1" in result.stderr
    assert "syntax error" in result.stderr
    assert "| " in result.stderr
    (marked,) = [line for line in result.stderr.splitlines() if line.startswith(">")]
    assert marked.endswith("|   neighbor 10.0.0.254 as;")
    assert "OK" not in result.stdout


def test_user_template_overrides_one_file(tmp_path: Path) -> None:
    templates = user_templates(
        tmp_path,
        "bgp.j2",
        "# site bgp policy\n{% for n in view.bgp %}# {{ n.address }}\n{% endfor %}",
    )
    rendered = run(
        "render", "-f", manifests(tmp_path, *VALID), "--node", "n1", "--templates", templates
    )
    assert rendered.exit_code == 0, rendered.output
    assert "# site bgp policy\n# 10.0.0.254\n" in rendered.stdout
    assert "protocol bgp" not in rendered.stdout
    assert "192.0.2.0/24{24,32}" in rendered.stdout
    validated = run(
        "validate", "-f", manifests(tmp_path, *VALID), "--node", "n1", "--templates", templates
    )
    assert validated.exit_code == 0, validated.output


def test_missing_templates_directory(tmp_path: Path) -> None:
    result = run(
        "render",
        "-f",
        manifests(tmp_path, *VALID),
        "--node",
        "n1",
        "--templates",
        tmp_path / "nope",
    )
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "does not exist" in result.stderr


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        pytest.param("# ok\n{{ nosuch }}\n", 2, "", id="undefined-printed"),
        pytest.param("# ok\n{% for n in nosuch %}{% endfor %}\n", 2, "'nosuch' is undefined",
                     id="undefined-iterated"),
        pytest.param("# ok\n\n{{ view.bgp[0].nosuch.deeper }}\n", 3, "nosuch",
                     id="undefined-attribute"),
        pytest.param("# ok\n{% if %}\n", 2, "Expected an expression", id="syntax-error"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["render", "validate"])
def test_jinja_error_names_the_user_template_and_line(
    tmp_path: Path, command: str, text: str, line: int | None, words: str
) -> None:
    templates = user_templates(tmp_path, "bgp.j2", text)
    result = run(
        command, "-f", manifests(tmp_path, *VALID), "--node", "n1", "--templates", templates
    )
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert f"error: {templates / 'bgp.j2'}:{line}: " in result.stderr
    assert words in result.stderr
    assert result.stdout == ""


def test_printing_an_undefined_variable_names_it(tmp_path: Path) -> None:
    templates = user_templates(tmp_path, "bgp.j2", "{{ nosuch }}\n")
    result = run(
        "render", "-f", manifests(tmp_path, *VALID), "--node", "n1", "--templates", templates
    )
    assert "'nosuch' is undefined" in result.stderr


def test_missing_include_names_the_including_template(tmp_path: Path) -> None:
    templates = user_templates(tmp_path, "bgp.j2", "# ok\n{% include 'nosuch.j2' %}\n")
    result = run(
        "render", "-f", manifests(tmp_path, *VALID), "--node", "n1", "--templates", templates
    )
    assert result.exit_code == 1
    assert f"error: {templates / 'bgp.j2'}:2: " in result.stderr
    assert "nosuch.j2" in result.stderr


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("{{ ''.__class__.__mro__ }}\n", "unsafe", id="dunder-attribute"),
        pytest.param("{{ view.__init__.__globals__ }}\n", "unsafe", id="function-globals"),
        pytest.param("{{ cycler.__init__.__globals__.os }}\n", "unsafe", id="global-cycler"),
        pytest.param("{{ lipsum.__globals__['os'] }}\n", "unsafe", id="global-lipsum"),
        pytest.param("{{ range(10**9)|list }}\n", "Range too big", id="huge-range"),
        pytest.param("{{ 'a;b' }}\n", "refusing to print 'a;b'", id="semicolon"),
        pytest.param('{{ "a\\nb" }}\n', "refusing to print 'a\\nb'", id="newline"),
        pytest.param("{{ 'x' ~ '}' }}\n", "refusing to print", id="brace-by-concat"),
        pytest.param("{{ '\"quoted\"' }}\n", "refusing to print", id="quote"),
        pytest.param("{{ view.groups }}\n", "refusing to print a tuple", id="container"),
        pytest.param("{{ view.bgp[0].password }}\n", "refusing to print None", id="none"),
    ],
)  # fmt: skip
def test_user_template_cannot_escape_the_sandbox(tmp_path: Path, text: str, words: str) -> None:
    templates = user_templates(tmp_path, "bgp.j2", text)
    result = run(
        "validate", "-f", manifests(tmp_path, *VALID), "--node", "n1", "--templates", templates
    )
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert f"error: {templates / 'bgp.j2'}:1: " in result.stderr
    assert words in result.stderr
    assert result.stdout == ""


def test_non_string_yaml_key_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    group = WEB.replace("spec:\n", "spec:\n  on: true\n  colour: blue\n")
    result = run("render", "-f", manifests(tmp_path, NODE, group, TOR), "--node", "n1")
    assert_no_traceback(result)
    assert result.exit_code == 1
    # `on` is go-yaml's true, a key the API server writes as "true"
    assert "error: ServiceGroup lbroute/web: spec.true: unknown field" in result.stderr
    assert "error: ServiceGroup lbroute/web: spec.colour: unknown field" in result.stderr
    assert "neighbor 10.0.0.254" in result.stdout


# -- lbroute agent: where the objects come from -----------------------------------------


def test_agent_needs_exactly_one_source(tmp_path: Path) -> None:
    for args in ([], ["--source", str(tmp_path), "--kubernetes"]):
        result = CliRunner().invoke(main, ["agent", "--node", "node-a", *args])
        assert result.exit_code == 2, result.output
        assert "give either --source DIR or --kubernetes" in result.output


def test_agent_with_an_unreadable_kubeconfig_says_which_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    result = CliRunner().invoke(
        main, ["agent", "--node", "node-a", "--kubernetes", "--kubeconfig", str(missing)]
    )
    assert result.exit_code == 1, result.output
    assert f"cannot load the Kubernetes configuration from {missing}" in result.output


def test_agent_outside_a_cluster_without_kubeconfig_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(main, ["agent", "--node", "node-a", "--kubernetes"])
    assert result.exit_code == 1, result.output
    assert "the in-cluster service account" in result.output


def test_allocator_with_an_unreadable_kubeconfig_says_which_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    result = CliRunner().invoke(main, ["allocator", "--kubeconfig", str(missing)])
    assert_no_traceback(result)
    assert result.exit_code == 1, result.output
    assert f"cannot load the Kubernetes configuration from {missing}" in result.output


def test_the_cli_does_not_load_the_kubernetes_client() -> None:
    """Only the agent and the allocator need it, and import it when they start."""
    code = "import sys, lbroute.cli; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_command_module_is_in_the_group_and_its_contract() -> None:
    """A new command is a new module of lbroute/cli/ with a ``COMMANDS`` tuple: it must be
    added to the group and to the top layer of the CLI's import contract."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    contracts = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["importlinter"]
    (cli,) = [c for c in contracts["contracts"] if c.get("containers") == ["lbroute.cli"]]
    top = {m.strip() for m in cli["layers"][0].split("|")}
    modules = set()
    for info in pkgutil.iter_modules(lbroute.cli.__path__):
        module = importlib.import_module(f"lbroute.cli.{info.name}")
        commands: tuple[click.Command, ...] = getattr(module, "COMMANDS", ())
        if commands:
            modules.add(info.name)
        for command in commands:
            assert command.name is not None
            assert main.commands.get(command.name) is command, f"{command.name} is not in lbroute"
    assert modules == top
    expected = {"render", "validate", "agent", "allocator", "status", "allocate", "convert", "demo",
                "inspect", "drain", "undrain"}  # fmt: skip
    assert set(main.commands) == expected


# -- local addresses (announce local) ------------------------------------------------------

LAN = """\
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: lan, namespace: lbroute}
spec:
  announce: local
  pools:
    - {range: 10.0.0.200-10.0.0.220, subnet: 10.0.0.0/24}
    - {cidr: "2001:db8:5::/120"}
"""
FAR = """\
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: far, namespace: lbroute}
spec:
  announce: local
  pools: [{cidr: 203.0.113.0/28, subnet: 203.0.113.0/24}]
"""
RACK_B = """\
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: rack-b, namespace: lbroute}
spec:
  announce: local
  nodeSelector: {matchLabels: {rack: b}}
  pools: [{range: 198.51.100.10-198.51.100.20}]
"""
AGENT = """\
apiVersion: lbroute.io/v1alpha1
kind: NodeAgent
metadata: {name: agent, namespace: lbroute}
spec:
  localInterface: [bond0, "eth*", default]
"""


def test_render_lists_the_local_pools_the_node_can_serve(tmp_path: Path) -> None:
    result = run("render", "-f", manifests(tmp_path, *VALID, LAN, FAR, AGENT), "--node", "n1")
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert (
        "local addresses (announce local) on node n1: one elected node holds each address on "
        "its NIC (localInterface: bond0, eth*, default) and answers ARP/NDP for it" in err
    )
    assert (
        "  ServiceGroup lbroute/lan pool 10.0.0.200-10.0.0.220: can serve (InternalIP "
        "10.0.0.1 is in subnet 10.0.0.0/24)" in err
    )
    assert (
        "  ServiceGroup lbroute/lan pool 2001:db8:5::/120: needs the node's NIC to tell (the "
        "pool sets no subnet; the agent checks the node's interfaces)" in err
    )
    assert (
        "  ServiceGroup lbroute/far pool 203.0.113.0/28: cannot serve (no InternalIP of n1 is "
        "in subnet 203.0.113.0/24" in err
    )
    assert (
        "warning: ServiceGroup lbroute/far: spec.pools[0].subnet: 203.0.113.0/24 holds no "
        "InternalIP of the nodes the group selects (n1)" in err
    )
    # Local addresses are answered on the NIC, never routed: not in the configuration.
    out = result.stdout
    assert "192.0.2.0/24{24,32}" in out
    assert "10.0.0.200" not in out and "2001:db8:5::" not in out and "203.0.113" not in out


def test_validate_says_what_happens_to_local_groups(tmp_path: Path) -> None:
    path = manifests(tmp_path, *VALID, LAN, RACK_B)
    result = run("validate", "-f", path, "--node", "n1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("OK: bird accepts the managed configuration for node n1")
    assert lines[1].startswith("local addresses (announce local) on node n1: ")
    assert "(localInterface: default)" in lines[1]
    assert "ServiceGroup lbroute/lan pool 10.0.0.200-10.0.0.220: can serve" in lines[2]
    assert "ServiceGroup lbroute/lan pool 2001:db8:5::/120: needs the node's NIC" in lines[3]
    assert lines[4] == "  ServiceGroup lbroute/rack-b: its nodeSelector leaves node n1 out"
    assert (
        "warning: ServiceGroup lbroute/rack-b: spec.nodeSelector: selects none of the Nodes "
        "given (n1): no node can hold its local addresses, so they are unreachable" in result.stderr
    )


def test_node_outside_every_local_group_is_told_so(tmp_path: Path) -> None:
    result = run("validate", "-f", manifests(tmp_path, *VALID, RACK_B), "--node", "n1")
    assert result.exit_code == 0, result.output
    assert "  no local ServiceGroup selects node n1\n" in result.stdout


def test_local_group_with_an_aggregation_is_an_error(tmp_path: Path) -> None:
    bad = LAN.replace("subnet: 10.0.0.0/24}", "subnet: 10.0.0.0/24, aggregation: /25}")
    result = run("render", "-f", manifests(tmp_path, *VALID, bad), "--node", "n1")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert (
        "error: ServiceGroup lbroute/lan: spec.pools[0].aggregation: '/25' is for announce "
        "routed only: a local address goes on the node's NIC with the prefix length of the "
        "NIC's subnet" in result.stderr
    )
    assert "set it to 'default'" in result.stderr


def test_routing_settings_of_a_local_group_are_ignored_with_a_warning(tmp_path: Path) -> None:
    lan = LAN + "  protocols: [bgp]\n  bgp: {communities: ['64512:7']}\n"
    result = run("render", "-f", manifests(tmp_path, *VALID, lan), "--node", "n1")
    assert result.exit_code == 0, result.output
    for field in ("protocols", "bgp"):
        assert (
            f"warning: ServiceGroup lbroute/lan: spec.{field}: is ignored with announce local: "
            "local addresses are answered by ARP/NDP from the elected node's NIC" in result.stderr
        )
    assert "64512:7" not in result.stdout and "(64512, 7)" not in result.stdout


# -- status: local addresses ---------------------------------------------------------------


def _status_doc(tmp_path: Path, local: object | None) -> Path:
    from nodeagent.status import Announced, Status

    doc = json.loads(
        Status(
            node="n1",
            router="bird",
            mode="managed",
            announced=[Announced(address="192.0.2.10/24", group="lbroute/web")],
            updated="2026-12-06T01:00:00Z",
        ).to_json()
    )
    if local is not None:
        doc["local"] = local
    path = tmp_path / "status.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_status_shows_the_local_addresses_the_node_holds(tmp_path: Path) -> None:
    local = [
        {"address": "10.0.0.200/24", "interface": "eth0", "group": "lbroute/lan",
         "services": ["default/web", "default/web-udp"], "since": "2026-12-06T00:59:58Z"},
        {"address": "fd00::200/64", "interface": "bond0", "group": "lbroute/lan",
         "services": ["default/web\n  fake line"]},
    ]  # fmt: skip
    result = run("status", "--status-file", _status_doc(tmp_path, local))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    at = lines.index("local addresses held (2):")
    assert lines[at + 1].split() == [
        "10.0.0.200/24", "eth0", "lbroute/lan", "default/web,", "default/web-udp", "since",
        "2026-12-06T00:59:58Z",
    ]  # fmt: skip
    assert lines[at + 2].split()[:3] == ["fd00::200/64", "bond0", "lbroute/lan"]
    assert "\\n" in lines[at + 2], "a tenant's name cannot fake a line"
    assert len(lines) == at + 3 or not lines[at + 3].startswith("  fake")


def test_status_without_local_addresses_prints_as_before(tmp_path: Path) -> None:
    result = run("status", "--status-file", _status_doc(tmp_path, None))
    assert result.exit_code == 0, result.output
    assert "local addresses" not in result.stdout
    assert "192.0.2.10/24" in result.stdout
    empty = run("status", "--status-file", _status_doc(tmp_path, []))
    assert "local addresses held (0):" in empty.stdout


# -- demo --example --------------------------------------------------------------------


def test_demo_refuses_a_directory_that_is_not_the_lab_example() -> None:
    """Checked before root and the tools, so anyone sees it; nothing is built."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    result = run("demo", "--example", examples)
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert "runs only on examples/lab or a copy of it" in result.stderr
    assert f"{examples / 'cluster.yaml'} not found" in result.stderr


def test_demo_names_what_a_changed_copy_of_the_lab_lacks(tmp_path: Path) -> None:
    lab = Path(__file__).resolve().parent.parent / "examples" / "lab"
    copy = tmp_path / "lab"
    copy.mkdir()
    (copy / "cluster.yaml").write_text(
        (lab / "cluster.yaml").read_text(encoding="utf-8").replace("node-b", "node-c"),
        encoding="utf-8",
    )
    services = (lab / "services.yaml").read_text(encoding="utf-8")
    (copy / "services.yaml").write_text(services.replace("legacy-1", "legacy-2"), "utf-8")
    result = run("demo", "--example", copy)
    assert result.exit_code == 1
    assert_no_traceback(result)
    message = result.stderr
    assert "the Nodes node-a and node-b" in message
    assert message.rstrip().endswith("missing: Node node-b, Service default/legacy-1")


def test_demo_accepts_the_lab_example() -> None:
    """(Running the command would start the demo when root.)"""
    from lbroute.cli.demo import _missing

    lab = Path(__file__).resolve().parent.parent / "examples" / "lab"
    assert _missing(lab) == ""


# -- kubectl lbroute (lbroute inspect) -----------------------------------------------------


def test_kubectl_lbroute_is_the_inspect_group_under_kubectls_name() -> None:
    """The ``kubectl-lbroute`` script runs ``lbroute inspect``'s commands; its help and
    usage errors name it as kubectl users type it."""
    code = (
        "import sys; sys.argv = ['kubectl-lbroute', '--help']; "
        "from lbroute.cli.inspect import plugin; plugin()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: kubectl lbroute [OPTIONS] COMMAND [ARGS]...")
    for command in ("status", "services", "pools", "why"):
        assert f"\n  {command} " in out.stdout
    group = main.commands["inspect"]
    assert isinstance(group, click.Group)
    assert set(group.commands) == {"status", "services", "pools", "why"}


@pytest.mark.parametrize(
    ("service", "message"),
    [("a/b/c", "expected NAME or NAMESPACE/NAME"), ("shop/", "expected NAME or NAMESPACE/NAME")],
)
def test_why_names_a_service_it_cannot_read(service: str, message: str) -> None:
    result = CliRunner().invoke(main, ["inspect", "why", service])
    assert result.exit_code == 2
    assert message in result.output
