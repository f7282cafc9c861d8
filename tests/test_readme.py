"""The README's commands do what the text next to them says, when pasted.

Every fenced code block of README.md whose language is ``sh``, ``console``, ``shell`` or
``bash`` is one of three kinds, told by an HTML comment on the last non-blank line
before its opening fence (invisible on GitHub):

- ``<!-- not run in CI: REASON -->``: not run (it needs root, a cluster, a registry, or
  is CI itself); the reason must be given;
- ``<!-- synopsis: ... -->``: a command's synopsis (``[--option VALUE]``, ``a|b``): each
  line names an ``lbroute`` command, and every ``--option`` it shows must be in that
  command's ``--help``;
- no comment: run. Each command (a line, its ``\\`` continuations and a heredoc's body)
  must have an entry in :data:`RUN_AS_SHOWN` below, which says the exit code and the lines its
  output must hold; a ``console`` block's output lines (``...`` elides) must appear too.
  The commands of one block run in order, with bash, in one scratch directory holding
  copies of ``examples/`` and ``deploy/`` and ``.venv/bin/lbroute``, so they may write
  files there.

A new block that is neither marked nor has its commands in :data:`RUN_AS_SHOWN` fails
:func:`test_every_command_block_is_run_or_marked`, naming its line. ``yaml`` blocks are
objects: each renders with no error and no warning against a Node they select.
``text`` blocks are not checked. The API bullets must name every spec field of their
kind's CRD.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbroute.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMAND_LANGUAGES = {"sh", "console", "shell", "bash"}
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not run in CI|synopsis)\s*(?::\s*(?P<why>.*?))?\s*-->$")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<word>\w+)\1")


@dataclass(frozen=True)
class Expect:
    """What one README command must do: its exit code, lines its output (stdout and
    stderr) must contain, and the programs it needs (skipped without them)."""

    code: int
    lines: tuple[str, ...]
    needs: tuple[str, ...] = ()


RUN_AS_SHOWN: dict[str, Expect] = {
    # What it is: a mistake is reported with the object, the field and what would be
    # valid; the rest still renders.
    "lbroute render -f examples/bgp.yaml -f examples/invalid/bad-cidr.yaml --node node-a "
    "--router bird": Expect(1, ("protocol bgp lbr_bgp_upstream_v4 {",)),
    # Install in a cluster: an overlay that kubectl kustomize builds.
    "mkdir -p lbroute-site && cat > lbroute-site/kustomization.yaml <<'EOF'": Expect(0, ()),
    "kubectl kustomize lbroute-site | grep 'image: '": Expect(
        0,
        ("image: REGISTRY/lbroute-bird:0.1.0", "image: REGISTRY/lbroute-frr:0.1.0"),
        needs=("kubectl",),
    ),
    "kubectl kustomize lbroute-site | grep -e '--default-class' -e 'kind: DaemonSet' "
    "-e 'name: netops-lb'": Expect(
        0,
        ("- --default-class", "kind: DaemonSet", "name: netops-lb"),
        needs=("kubectl",),
    ),
    # Render and validate a configuration.
    ".venv/bin/lbroute render -f examples/mixed.yaml --node node-a --router frr": Expect(
        0, ("hostname node-a", "router bgp 64512", "router ospf")
    ),
    ".venv/bin/lbroute validate -f examples/bgp.yaml --node node-b --router bird": Expect(
        0,
        ("OK: bird accepts the managed configuration for node node-b",),
        needs=("bird",),
    ),
    ".venv/bin/lbroute render -f examples/bgp.yaml --node node-a --mode include": Expect(
        0, ("(include mode)", "protocol kernel lbr_kernel4 {")
    ),
}
"""README command, as shown (spacing and comments do not matter) -> what it must do."""


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    """The command as pasted: continuation lines and heredoc body included."""
    output: tuple[str, ...] = ()
    """A console block's output lines shown after the command."""

    @property
    def key(self) -> str:
        first = self.text.split("\n", 1)[0] if HEREDOC.search(self.text) else self.text
        return normalise(first)


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    lines: tuple[str, ...]
    marker: str | None
    why: str | None

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"

    def commands(self) -> list[Command]:
        return _console_commands(self) if self.lang == "console" else _sh_commands(self)


def normalise(command: str) -> str:
    """A command as shlex reads it, so that spacing and comments do not matter."""
    return " ".join(shlex.split(command.replace("\\\n", " "), comments=True))


RUN = {normalise(command): expect for command, expect in RUN_AS_SHOWN.items()}


def readme_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, start = len(opening["indent"]), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        before = next((t for t in reversed(lines[:start]) if t.strip()), "")
        marker = MARKER.match(before)
        blocks.append(
            Block(
                line=start + 1,
                lang=opening["lang"],
                lines=tuple(body),
                marker=marker["kind"] if marker else None,
                why=marker["why"] if marker else None,
            )
        )
        i += 1
    return blocks


def _sh_commands(block: Block) -> list[Command]:
    commands: list[Command] = []
    lines = list(block.lines)
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        first = i
        text = [lines[i]]
        while text[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            text.append(lines[i])
        heredoc = HEREDOC.search("\n".join(text))
        if heredoc:
            while i + 1 < len(lines) and lines[i].strip() != heredoc["word"]:
                i += 1
                text.append(lines[i])
        commands.append(Command(line=block.line + 1 + first, text="\n".join(text)))
        i += 1
    return commands


def _console_commands(block: Block) -> list[Command]:
    commands: list[Command] = []
    for n, line in enumerate(block.lines):
        if line.startswith("$ "):
            commands.append(Command(line=block.line + 1 + n, text=line[2:]))
        elif commands and line.strip() and line.strip() != "...":
            last = commands[-1]
            commands[-1] = Command(last.line, last.text, (*last.output, line))
    return commands


BLOCKS = [b for b in readme_blocks() if b.lang in COMMAND_LANGUAGES]
RUN_BLOCKS = [b for b in BLOCKS if b.marker is None]
SYNOPSES = [b for b in BLOCKS if b.marker == "synopsis"]


def test_the_readme_has_command_blocks_of_each_kind() -> None:
    """The parser finds what is there (a test that runs nothing proves nothing)."""
    assert RUN_BLOCKS and SYNOPSES
    assert any(b.marker == "not run in CI" for b in BLOCKS)
    assert sum(len(b.commands()) for b in RUN_BLOCKS) >= len(RUN)


def test_every_command_block_is_run_or_marked() -> None:
    unknown = [
        f"README.md:{c.line}: {c.text.splitlines()[0]}"
        for b in RUN_BLOCKS
        for c in b.commands()
        if c.key not in RUN
    ]
    assert not unknown, (
        "README commands neither run by tests/test_readme.py (add them to RUN_AS_SHOWN) nor in a "
        "block marked <!-- not run in CI: reason --> or <!-- synopsis -->:\n" + "\n".join(unknown)
    )


def test_every_skipped_block_says_why() -> None:
    silent = [b.id for b in BLOCKS if b.marker == "not run in CI" and not b.why]
    assert not silent, f"<!-- not run in CI: ... --> needs a reason: {silent}"


def test_every_expectation_is_a_readme_command() -> None:
    """An entry of RUN whose command left the README is stale."""
    shown = {c.key for b in RUN_BLOCKS for c in b.commands()}
    assert not set(RUN) - shown, f"RUN has commands the README no longer shows: {set(RUN) - shown}"


def _lbroute() -> Path:
    here = Path(sys.executable).parent / "lbroute"
    return here if here.exists() else ROOT / ".venv" / "bin" / "lbroute"


def _scratch(tmp_path: Path) -> Path:
    """A directory like the repository's root for the README's relative paths."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "lbroute").symlink_to(_lbroute())
    return tmp_path


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=lambda b: b.id)
def test_readme_commands_do_what_the_text_says(block: Block, tmp_path: Path) -> None:
    commands = [c for c in block.commands() if c.key in RUN]
    missing = sorted({n for c in commands for n in RUN[c.key].needs if shutil.which(n) is None})
    if missing:
        pytest.skip(f"{block.id} needs {', '.join(missing)}, not installed here")
    cwd = _scratch(tmp_path)
    env = {**os.environ, "PATH": f"{_lbroute().parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for command in commands:
        expect = RUN[command.key]
        done = subprocess.run(
            ["bash", "-c", command.text],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = done.stdout + done.stderr
        where = f"README.md:{command.line}: {command.key}\n{output}"
        assert done.returncode == expect.code, where
        assert "Traceback" not in output, where
        for line in (*expect.lines, *command.output):
            assert line in output, f"{line!r} not in the output of {where}"


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@pytest.mark.parametrize("block", SYNOPSES, ids=lambda b: b.id)
def test_readme_synopses_match_the_commands(block: Block) -> None:
    for command in block.commands():
        words = command.text.split()
        assert words[0] == "lbroute", f"README.md:{command.line}: a synopsis of lbroute only"
        result = CliRunner().invoke(main, [words[1], "--help"])
        assert result.exit_code == 0, f"README.md:{command.line}: {result.output}"
        for option in OPTION.findall(command.text):
            assert option in result.output, (
                f"README.md:{command.line}: {option} is not an option of lbroute {words[1]}"
            )


@pytest.mark.parametrize(
    ("kind", "crd"),
    [("ServiceGroup", "servicegroups"), ("Peer", "peers"), ("NodeAgent", "nodeagents")],
)
def test_the_api_bullets_name_every_field_of_their_kind(kind: str, crd: str) -> None:
    """ "The API in one example" lists each kind's spec fields: all of them, as the CRD
    (which tests/test_crds.py keeps in step with the model) has them."""
    import yaml

    text = README.read_text(encoding="utf-8")
    bullet = re.search(rf"^- \*\*{kind}\*\*:(.*?)(?=^- |^$)", text, re.M | re.S)
    assert bullet, f"README.md has no '- **{kind}**:' bullet"
    schema = yaml.safe_load((ROOT / "deploy" / "crds" / f"{crd}.yaml").read_text("utf-8"))
    fields = schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    named = set(re.findall(r"`(\w+)(?:\[\])?`", bullet[1]))
    missing = [f for f in fields["properties"] if f not in named]
    assert not missing, f"the README's {kind} bullet does not name {missing}"


YAML_NODE = """\
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {rack: r1, lbroute.io/router: bird}}
status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}
---
apiVersion: v1
kind: Secret
metadata: {name: tor-bgp, namespace: lbroute}
stringData: {password: Example-Only}
"""
"""A Node the README's objects select (``rack: r1``, the BIRD label) and the Secret its
Peer names, for the ``yaml`` blocks to render against."""


@pytest.mark.parametrize(
    "block", [b for b in readme_blocks() if b.lang == "yaml"], ids=lambda b: b.id
)
def test_readme_objects_are_valid(block: Block, tmp_path: Path) -> None:
    """The README's ``yaml`` blocks are objects lbroute takes as they are: they render
    with no error and no warning."""
    (tmp_path / "objects.yaml").write_text("\n".join(block.lines) + "\n", encoding="utf-8")
    (tmp_path / "node.yaml").write_text(YAML_NODE, encoding="utf-8")
    result = CliRunner().invoke(main, ["render", "-f", str(tmp_path), "--node", "node-a"])
    noisy = [line for line in result.output.splitlines() if line.startswith(("error", "warn"))]
    assert result.exit_code == 0 and not noisy, f"{block.id}:\n{result.output}"


def test_the_readme_names_every_package_the_install_script_installs() -> None:
    script = (ROOT / "scripts" / "install-deps.sh").read_text(encoding="utf-8")
    packages = re.findall(r"_pkgs\+=\(([\w.+-]+)\)", script)
    assert "bird2" in packages and "python3-venv" in packages
    intro = README.read_text(encoding="utf-8").split("\n## ", 1)[0]
    missing = [p for p in packages if f"`{p}`" not in intro]
    assert not missing, f"the README's first section does not name {missing}"
