"""Reading manifest files (lbroute.model.manifests, lbroute.model.yamldecode), and the
CLI's reading of its inputs: a hostile or broken file costs nothing but itself.

Covers: alias bombs ("billion laughs") refused at once with bounded memory and the file
named, while the other files still load, render and validate; binary junk, text that
is not UTF-8 and deep nesting reported per file while the rest renders; duplicate keys
and documents that are lists are errors, ``kind: List`` still works; scalars read as the
API server reads them (go-yaml v2, then JSON), and :func:`dump_document` writing what
reads back the same; ``--node`` checked as a node name.
"""

from __future__ import annotations

import json
import math
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lbroute.cli import main
from lbroute.model.errors import ManifestError
from lbroute.model.manifests import parse_manifest_text, read_manifests
from lbroute.model.yamldecode import MAX_DEPTH, decode_documents, dump_document

NODE = """\
apiVersion: v1
kind: Node
metadata: {name: n1}
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
GOOD = "---\n".join((NODE, WEB, TOR))


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output


def laughs(levels: int = 9) -> str:
    """Anchors that each hold nine aliases of the one before: ``*a9`` is 9**10 strings."""
    lines = ["laughs:", "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


BOMBS = {
    "label": "kind: ServiceGroup\napiVersion: lbroute.io/v1alpha1\n{laughs}metadata:\n"
    "  {{name: bomb, namespace: lbroute, labels: {{tier: *a9}}}}\n"
    "spec: {{pools: [{{cidr: 198.51.100.0/24}}]}}\n",
    "bool-field": "kind: ServiceGroup\napiVersion: lbroute.io/v1alpha1\n{laughs}"
    "metadata: {{name: bomb, namespace: lbroute}}\n"
    "spec: {{default: *a9, pools: [{{cidr: 198.51.100.0/24}}]}}\n",
    "metadata-name": "kind: Peer\napiVersion: lbroute.io/v1alpha1\n{laughs}"
    "metadata: {{name: *a9, namespace: lbroute}}\nspec: {{bgp: {{address: 10.0.0.9, asn: 1}}}}\n",
    "secret-stringData": "kind: Secret\napiVersion: v1\n{laughs}"
    "metadata: {{name: bomb, namespace: lbroute}}\nstringData: {{password: *a9}}\n",
}


def bomb(where: str) -> str:
    return BOMBS[where].format(laughs=laughs())


# -- aliases -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", sorted(BOMBS))
def test_an_alias_bomb_is_refused_at_once_and_the_other_files_still_load(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bomb.yaml").write_text(bomb(where), encoding="utf-8")
    assert len(bomb(where)) < 1500, "a small file"
    tracemalloc.start()
    started = time.monotonic()
    try:
        manifests = read_manifests([tmp_path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < 20 * 2**20, f"{peak} bytes"
    assert [o["kind"] for o in manifests.objects] == ["Node", "ServiceGroup", "Peer"]
    (error,) = manifests.errors
    assert error.startswith(f"{tmp_path / 'bomb.yaml'}:1: refused: its aliases expand it")
    assert "excessive aliasing" in error
    assert len(error) < 300, "the message does not expand anything"


def test_render_and_validate_report_an_alias_bomb_and_go_on(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bomb.yaml").write_text(bomb("label"), encoding="utf-8")
    started = time.monotonic()
    result = run("render", "-f", tmp_path, "--node", "n1")
    assert time.monotonic() - started < 10
    assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'bomb.yaml'}:1: refused: ")
    assert len(result.stderr) < 1000
    assert "192.0.2.0/24{24,32}" in result.stdout
    assert "neighbor 10.0.0.254 as 65000;" in result.stdout
    validated = run("validate", "-f", tmp_path, "--node", "n1")
    assert_no_traceback(validated)
    assert validated.exit_code == 1
    assert "refused: its aliases expand it" in validated.stderr
    assert validated.stdout.startswith("OK: bird accepts the managed configuration for node n1")


def test_aliases_and_merges_in_proportion_are_read() -> None:
    services = "\n".join(
        f"- {{apiVersion: v1, kind: Service, metadata: {{name: s{i}, namespace: web}}, "
        f"spec: *spec}}"
        for i in range(500)
    )
    text = (
        "apiVersion: v1\nkind: List\n"
        "defaults: &spec {type: LoadBalancer, ports: [{port: 80, protocol: TCP}]}\n"
        "base: &base {a: 1, b: 2}\n"
        "merged: {<<: *base, b: 3, c: 4}\n"
        "twice: {<<: [{a: 5}, *base]}\n"
        f"items:\n{services}\n"
    )
    (doc,) = decode_documents(text, "list.yaml")
    assert doc.data["merged"] == {"a": 1, "b": 3, "c": 4}, "the mapping's own key wins"
    assert doc.data["twice"] == {"a": 5, "b": 2}, "the first merged mapping wins"
    objects = parse_manifest_text(text, "list.yaml")
    assert len(objects) == 500
    assert objects[499]["spec"] == {
        "type": "LoadBalancer",
        "ports": [{"port": 80, "protocol": "TCP"}],
    }


def test_a_merged_mapping_keeps_its_own_override() -> None:
    text = "a:\n  mid: &m {<<: {x: 1}, x: 2}\ntop: {<<: *m}\n"
    (doc,) = decode_documents(text, "f.yaml")
    assert doc.data == {"a": {"mid": {"x": 2}}, "top": {"x": 2}}


def test_an_alias_inside_the_node_it_names_is_refused() -> None:
    with pytest.raises(ManifestError, match=r"^f.yaml:2: the anchor there is used inside"):
        list(decode_documents("kind: X\nloop: &x [1, *x]\n", "f.yaml"))


# -- files that cannot be read: reported, the rest goes on --------------------------------

BAD_FILES: dict[str, bytes] = {
    "junk.yaml": bytes(range(256)) * 4,
    "latin1.yaml": "kind: Peer\nmetadata: {name: café}\n".encode("latin-1"),
    "control.yaml": b"kind: Peer\nmetadata: {name: \x01\x02}\n",
    "deep.yaml": b"kind: Peer\nspec: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
    "deeper-than-lbroute-reads.yaml": b"kind: Peer\nspec: " + b"[" * 150 + b"]" * 150 + b"\n",
}
EXPECTED = {
    "junk.yaml": ":2: not UTF-8 text (byte 0x80 at offset 128)",
    "latin1.yaml": ":2: not UTF-8 text (byte 0xe9 at offset 31)",
    "control.yaml": ": not valid YAML: unacceptable character #x0001",
    "deep.yaml": ":2: not valid YAML: exceeded maximum nesting depth",
    "deeper-than-lbroute-reads.yaml": ":2: collections nested more than 100 deep; refused",
}


def bad_directory(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    for name, data in BAD_FILES.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def test_each_bad_file_is_one_error_and_the_others_are_read(tmp_path: Path) -> None:
    manifests = read_manifests([bad_directory(tmp_path)])
    assert [o["kind"] for o in manifests.objects] == ["Node", "ServiceGroup", "Peer"]
    assert sorted(manifests.errors) == sorted(
        f"{tmp_path / name}{EXPECTED[name]}" for name in BAD_FILES
    )


@pytest.mark.parametrize("command", ["render", "validate"])
def test_render_and_validate_report_bad_files_and_go_on(tmp_path: Path, command: str) -> None:
    result = run(command, "-f", bad_directory(tmp_path), "--node", "n1")
    assert_no_traceback(result)
    assert result.exit_code == 1
    for name in BAD_FILES:
        assert f"error: {tmp_path / name}{EXPECTED[name]}\n" in result.stderr
    if command == "render":
        assert "192.0.2.0/24{24,32}" in result.stdout
        assert "neighbor 10.0.0.254 as 65000;" in result.stdout
    else:
        assert result.stdout.startswith("OK: bird accepts the managed configuration")


def test_a_missing_path_is_reported_and_the_others_still_render(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    result = run(
        "render", "-f", tmp_path / "nope.yaml", "-f", tmp_path / "good.yaml", "--node", "n1"
    )
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'nope.yaml'}: no such file or directory\n"
    assert "neighbor 10.0.0.254 as 65000;" in result.stdout


def test_nesting_is_read_up_to_max_depth() -> None:
    def nested(depth: int) -> str:
        return "a: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"

    (doc,) = decode_documents(nested(MAX_DEPTH), "f.yaml")
    assert doc.data["a"] is not None
    with pytest.raises(ManifestError, match="nested more than 100 deep"):
        list(decode_documents(nested(MAX_DEPTH + 1), "f.yaml"))
    through_aliases = "x: &x " + "[" * 60 + "]" * 60 + "\ny: " + "[" * 50 + "*x" + "]" * 50
    with pytest.raises(ManifestError, match="nested more than 100 deep through aliases"):
        list(decode_documents(through_aliases, "f.yaml"))


def test_a_file_name_cannot_fake_a_line(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "x\nerror: fake.yaml").write_text("- a\n", encoding="utf-8")
    manifests = read_manifests([tmp_path / "good.yaml", tmp_path / "x\nerror: fake.yaml"])
    (error,) = manifests.errors
    assert "\n" not in error and "x\\nerror: fake.yaml:1: the document is a list" in error


# -- documents: duplicate keys, lists ----------------------------------------------------


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    text = WEB.replace("spec:\n", "metadata: {name: other, namespace: lbroute}\nspec:\n")
    with pytest.raises(ManifestError) as caught:
        parse_manifest_text(text, "dup.yaml")
    assert str(caught.value) == (
        "dup.yaml:4: not valid YAML: duplicate key 'metadata' (first on line 3)"
    )
    with pytest.raises(ManifestError, match=r"^f.yaml:1: .*duplicate key '1' \(first on line 1\)"):
        parse_manifest_text("{1: a, '1': b}", "f.yaml")
    (tmp_path / "good.yaml").write_text(NODE + "---\n" + TOR, encoding="utf-8")
    (tmp_path / "dup.yaml").write_text(text, encoding="utf-8")
    result = run("render", "-f", tmp_path, "--node", "n1")
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'dup.yaml'}:4: not valid YAML: duplicate key" in result.stderr
    assert "neighbor 10.0.0.254 as 65000;" in result.stdout


def test_a_document_that_is_a_list_is_an_error_not_dropped(tmp_path: Path) -> None:
    listed = "- " + WEB.replace("\n", "\n  ").rstrip() + "\n"
    (tmp_path / "good.yaml").write_text(NODE + "---\n" + TOR, encoding="utf-8")
    (tmp_path / "listed.yaml").write_text(listed, encoding="utf-8")
    result = run("render", "-f", tmp_path, "--node", "n1")
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'listed.yaml'}:1: the document is a list, not an object" in (
        result.stderr
    )
    assert "neighbor 10.0.0.254 as 65000;" in result.stdout
    with pytest.raises(ManifestError, match=r"^s.yaml:3: the document is a string, not an object"):
        parse_manifest_text("kind: Peer\n---\njust text\n", "s.yaml")


def test_a_kind_list_is_read_and_its_items_must_be_objects(tmp_path: Path) -> None:
    items = "".join("- " + doc.replace("\n", "\n  ").rstrip() + "\n" for doc in (NODE, WEB, TOR))
    (tmp_path / "list.yaml").write_text(f"apiVersion: v1\nkind: List\nitems:\n{items}")
    result = run("render", "-f", tmp_path, "--node", "n1")
    assert result.exit_code == 0, result.output
    assert "192.0.2.0/24{24,32}" in result.stdout
    with pytest.raises(ManifestError, match=r"^l.yaml:1: 'List': items\[1\] must be an object"):
        parse_manifest_text("kind: List\nitems: [{kind: Peer}, [x]]\n", "l.yaml")
    with pytest.raises(ManifestError, match=r"^l.yaml:1: 'ServiceList': items must be a list"):
        parse_manifest_text("kind: ServiceList\nitems: {a: 1}\n", "l.yaml")
    assert parse_manifest_text("---\n---\n# only a comment\n", "e.yaml") == []


# -- scalars as the API server reads them ------------------------------------------------

SCALARS: list[tuple[str, Any]] = [
    ("yes", True),
    ("y", True),
    ("On", True),
    ("n", False),
    ("off", False),
    ("TRUE", True),
    ("tRue", "tRue"),
    ("~", None),
    ("", None),
    ("2024-01-02", "2024-01-02"),
    ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
    ("2001-12-14 21:59:43.10 -5", "2001-12-14 21:59:43.10 -5"),
    ("1:30", "1:30"),
    ("=", "="),
    ("017", 15),
    ("0o17", 15),
    ("0x1F", 31),
    ("0b11", 3),
    ("1_000", 1000),
    ("-42", -42),
    ("09", 9.0),
    ("1.5", 1.5),
    ("1.", "1."),
    ("1e3", "1e3"),
    ("1e+3", 1000.0),
    (".5", 0.5),
    ("-.inf", -math.inf),
    ("18446744073709551615", 2**64 - 1),
    ("18446744073709551616", 1.8446744073709552e19),
    ("1" * 400, "1" * 400),
    ("'yes'", "yes"),
    ('"2024-01-02"', "2024-01-02"),
    ("!!str 12", "12"),
    ("!!int '12'", 12),
    ("!!float 1", 1.0),
    ("!!binary aGVsbG8=", "hello"),
    ("!!timestamp 2001-12-14", "2001-12-14"),
    ("!custom 5", "5"),
    ("!!set {a, b}", {"a": None, "b": None}),
    ("!!omap [{a: 1}, {b: 2}]", [{"a": 1}, {"b": 2}]),
    ("!custom {a: 1}", {"a": 1}),
]


@pytest.mark.parametrize(("text", "expected"), SCALARS, ids=[t for t, _ in SCALARS])
def test_scalars_are_read_as_the_api_server_reads_them(text: str, expected: Any) -> None:
    (doc,) = decode_documents(f"v: {text}\n", "f.yaml")
    value = doc.data["v"]
    assert type(value) is type(expected)
    assert value == expected


def test_every_value_is_json_and_keys_are_text() -> None:
    text = (
        "1: int\ntrue: bool\n0x10: hex\nwhen: 2024-01-02T03:04:05Z\nbin: !!binary /w==\n"
        "set: !!set {a}\npairs: !!pairs [{a: 1}]\nnested: {on: [1, 2.5, null, '=']}\n"
    )
    (doc,) = decode_documents(text, "f.yaml")
    assert list(doc.data) == ["1", "true", "16", "when", "bin", "set", "pairs", "nested"]
    assert doc.data["bin"] == "\ufffd", "bytes that are not UTF-8, as JSON would carry them"
    assert json.loads(json.dumps(doc.data, allow_nan=False)) == doc.data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.5: a", "a key must be a string, integer or boolean, not a number"),
        ("~: a", "a key must be a string, integer or boolean, not null"),
        ("[1]: a", "a key must be a string, integer or boolean, not a list"),
        ("v: !!int abc", "cannot read 'abc' as !!int"),
        ("v: !!bool maybe", "cannot read 'maybe' as !!bool"),
        ("v: !!float x", "cannot read 'x' as !!float"),
        ("v: !!binary '@@@'", "!!binary that is not base64: Only base64 data is allowed"),
    ],
)
def test_what_json_cannot_hold_is_an_error(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        list(decode_documents(text + "\n", "f.yaml"))
    assert str(caught.value) == f"f.yaml:1: not valid YAML: {message}"


def test_dump_document_reads_back_the_same() -> None:
    data = {
        "strings": ["y", "n", "on", "No", "null", "", "~", "2024-01-02", "0o17", "09", "1e+3",
                    "=", "1:30", "1e3", "<<", "-", "héllo", "a: b", "#x", "12"],
        "values": [True, False, None, 0, -5, 2**63, 1.5, 1e20, math.inf],
        "80": {"true": "keys"},
    }  # fmt: skip
    text = dump_document(data)
    (doc,) = decode_documents(text, "dumped.yaml")
    assert doc.data == data
    assert "- 'y'\n" in text and "- '2024-01-02'\n" in text and "- '1:30'\n" in text


# -- --node ------------------------------------------------------------------------------


@pytest.mark.parametrize("node", ["", "Node-A", "n1\nerror: fake", "-n1", "a" * 300])
@pytest.mark.parametrize("command", ["render", "validate", "agent"])
def test_node_must_be_a_node_name(tmp_path: Path, command: str, node: str) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    source = "--source" if command == "agent" else "-f"
    result = run(command, source, tmp_path, "--node", node)
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert "Invalid value for '--node': " in result.stderr
    assert "is not a node name: lowercase letters, digits, '-' and '.'" in result.stderr
    assert "\nerror: fake" not in result.stderr
    assert len(result.stderr) < 600


def test_a_valid_node_name_with_dots_renders(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD.replace("name: n1", "name: n1.rack-2.example"))
    result = run("render", "-f", tmp_path, "--node", "n1.rack-2.example")
    assert result.exit_code == 0, result.output


# -- the same object twice --------------------------------------------------------------


def secret(password: str) -> str:
    return (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tor, namespace: lbroute}\n"
        f"stringData: {{password: {password}}}\n"
    )


def test_a_secret_or_node_written_twice_is_an_error_naming_both_files(tmp_path: Path) -> None:
    with_password = TOR.replace(
        "asn: 65000}", "asn: 65000, passwordSecretRef: {name: tor, key: password}}"
    )
    first, again = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("---\n".join((NODE, WEB, with_password, secret("first-pw7"))), "utf-8")
    other_node = NODE.replace("10.0.0.1", "10.0.0.2")
    again.write_text("---\n".join((secret("second-pw7"), other_node)), "utf-8")

    result = run("render", "-f", tmp_path, "--node", "n1")

    assert_no_traceback(result)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: Secret lbroute/tor: metadata.name: appears more than once (in {first}:18 and "
        f"again in {again}:1); the first one is used: each Secret in namespace 'lbroute' needs "
        "a name of its own, so remove one copy or rename it",
        f"error: Node n1: metadata.name: appears more than once (in {first}:1 and again in "
        f"{again}:6); the first one is used: each Node needs a name of its own, so remove one "
        "copy or rename it",
    ]
    # The first of each is used, not the last; everything else still renders.
    assert "router id 10.0.0.1;" in result.stdout
    assert 'password "first-pw7";' in result.stdout and "second-pw7" not in result.stdout
    assert "neighbor 10.0.0.254 as 65000;" in result.stdout
    assert "192.0.2.0/24" in result.stdout


def test_a_servicegroup_or_peer_written_twice_names_both_places_too(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(WEB.replace("192.0.2.0/24", "198.51.100.0/24"), "utf-8")
    result = run("validate", "-f", tmp_path, "--node", "n1")
    assert result.exit_code == 1
    assert (
        f"error: ServiceGroup lbroute/web: metadata.name: appears more than once (in "
        f"{tmp_path / 'a.yaml'}:6 and again in {tmp_path / 'b.yaml'}:1); the first one is used"
    ) in result.stderr
    manifests = read_manifests([tmp_path])
    assert [manifests.where(o) for o in manifests.objects] == [
        f"{tmp_path / 'a.yaml'}:1",
        f"{tmp_path / 'a.yaml'}:6",
        f"{tmp_path / 'a.yaml'}:12",
        f"{tmp_path / 'b.yaml'}:1",
    ]
