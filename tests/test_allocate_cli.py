"""``lbroute allocate -f DIR`` (manifest-directory mode) and ``lbroute allocator``'s start-up
errors, run with click's CliRunner.

Allocate fills in status.loadBalancer.ingress and lbroute.io/allocated-from of the
Service manifests in place: only the documents of changed Services are rewritten (the
others byte for byte, comments included), and in them only the lines of the fields
written (a diff of the file is those lines: comments, flow style, quotes, spacing and
anchors stay; a value shared through an anchor is not written through it), a second
run changes nothing, Lists are
handled, --dry-run writes nothing, failures name the Service and field and exit 1, and
names are printed escaped, so a Service's name cannot fake a line of output.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from click.testing import CliRunner

from lbroute.cli import main

GROUPS = """\
# the pools
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: public, namespace: lbroute}
spec:
  default: true
  pools: [{cidr: 192.0.2.0/24}, {cidr: "2001:db8::/64"}]
"""
KEEP = """\
# already addressed: this document must stay exactly as it is
apiVersion: v1
kind: Service
metadata:
  name: keep
  namespace: default
  annotations: {lbroute.io/allocated-from: "public:192.0.2.0/24"}  # written before
spec: {type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute}
status: {loadBalancer: {ingress: [{ip: 192.0.2.1}]}}
"""
WEB = """\
# the web front end
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: lbroute.io/lbroute
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{port: 443}]
"""
OTHER = """\
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default}
spec: {type: LoadBalancer, loadBalancerClass: example.com/other}
"""
LIST = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: listed, namespace: team}
    spec: {type: LoadBalancer}
"""
LOST = """\
apiVersion: v1
kind: Service
metadata: {name: lost, namespace: default, annotations: {lbroute.io/service-group: nope}}
spec: {type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute}
"""


def tree(tmp_path: Path, *services: str) -> Path:
    (tmp_path / "groups.yaml").write_text(GROUPS)
    (tmp_path / "services.yaml").write_text("---\n".join(services))
    return tmp_path


def ingress(path: Path) -> dict[str, list[str]]:
    found = {}
    for doc in yaml.safe_load_all(path.read_text()):
        for obj in doc.get("items", [doc]):
            lb = (obj.get("status") or {}).get("loadBalancer") or {}
            found[obj["metadata"]["name"]] = [i["ip"] for i in lb.get("ingress") or ()]
    return found


def test_allocate_fills_in_the_services_and_keeps_the_rest_of_the_files(tmp_path: Path) -> None:
    d = tree(tmp_path, KEEP, WEB, OTHER)
    result = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "default/web: assigned 192.0.2.2, 2001:db8::1 from public",
        f"wrote {d / 'services.yaml'}",
    ]
    text = (d / "services.yaml").read_text()
    assert text.startswith(KEEP + "---\n# the web front end\n"), "unchanged documents stay as is"
    assert text.endswith("---\n" + OTHER)
    assert ingress(d / "services.yaml") == {
        "keep": ["192.0.2.1"],
        "web": ["192.0.2.2", "2001:db8::1"],
        "other": [],
    }
    web = list(yaml.safe_load_all(text))[1]
    assert web["metadata"]["annotations"] == {
        "lbroute.io/allocated-from": "public:192.0.2.0/24,2001:db8::/64"
    }
    assert web["spec"]["ports"] == [{"port": 443}]
    assert (d / "groups.yaml").read_text() == GROUPS
    again = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert again.exit_code == 0 and again.stdout == "", "a second run changes nothing"
    assert (d / "services.yaml").read_text() == text


def test_dry_run_prints_and_writes_nothing(tmp_path: Path) -> None:
    d = tree(tmp_path, WEB)
    result = CliRunner().invoke(main, ["allocate", "-f", str(d), "--dry-run"])
    assert result.exit_code == 0
    assert "default/web: would assign 192.0.2.1, 2001:db8::1 from public" in result.stdout
    assert (d / "services.yaml").read_text() == WEB


def test_services_in_lists_and_of_no_class_with_default_class(tmp_path: Path) -> None:
    d = tree(tmp_path, LIST)
    assert CliRunner().invoke(main, ["allocate", "-f", str(d)]).stdout == ""
    result = CliRunner().invoke(main, ["allocate", "-f", str(d), "--default-class"])
    assert result.exit_code == 0, result.output
    assert ingress(d / "services.yaml") == {"listed": ["192.0.2.1"]}


def test_failures_name_the_service_and_field_and_exit_1(tmp_path: Path) -> None:
    d = tree(tmp_path, WEB, LOST)
    result = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: Service default/lost: metadata.annotations[lbroute.io/service-group]: "
        "ServiceGroup 'nope' not found in namespace lbroute; valid: public\n"
    )
    assert ingress(d / "services.yaml")["web"] == ["192.0.2.1", "2001:db8::1"], "others still"
    assert "Traceback" not in result.output


def test_unreadable_input_is_an_error_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    result = CliRunner().invoke(main, ["allocate", "-f", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'bad.yaml'}:")
    missing = CliRunner().invoke(main, ["allocate", "-f", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such file or directory" in missing.stderr


def test_the_allocator_says_when_it_cannot_load_its_configuration(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("not: [a kubeconfig\n")
    result = CliRunner().invoke(main, ["allocator", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: cannot load the Kubernetes configuration from {kubeconfig}"
    )


CONFIGMAP = """\
# settings shared by the team: keep this document as it is
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data:
  defaults: &defaults {colour: blue,   size: 3}   # odd spacing, kept
  copy: *defaults
"""


def test_only_changed_service_documents_are_rewritten_in_a_yaml_1_1_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "groups.yaml").write_text(GROUPS)
    text = "%YAML 1.1\n---\n" + CONFIGMAP + "---\n" + WEB + "# after the web front end\n"
    text += "--- # the last one\n" + KEEP
    (tmp_path / "services.yaml").write_text(text)
    result = CliRunner().invoke(main, ["allocate", "-f", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "services.yaml").read_text()
    head = "%YAML 1.1\n---\n" + CONFIGMAP + "---\n# the web front end\n"
    assert written.startswith(head), "directive, comments and the ConfigMap stay as they were"
    assert written.endswith("# after the web front end\n--- # the last one\n" + KEEP)
    web = written[len(head) : written.index("# after the web front end")]
    assert web.startswith("apiVersion: v1\nkind: Service\n")
    assert ingress(tmp_path / "services.yaml")["web"] == ["192.0.2.2", "2001:db8::1"]


def test_a_symlinked_manifest_stays_a_link_and_its_target_is_written(tmp_path: Path) -> None:
    (tmp_path / "groups.yaml").write_text(GROUPS)
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "web.yaml"
    target.write_text(WEB)
    target.chmod(0o640)
    (tmp_path / "services.yaml").symlink_to("real/web.yaml")
    result = CliRunner().invoke(main, ["allocate", "-f", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "services.yaml").is_symlink()
    assert (tmp_path / "services.yaml").readlink() == Path("real/web.yaml")
    assert ingress(target)["web"] == ["192.0.2.1", "2001:db8::1"]
    assert target.stat().st_mode & 0o777 == 0o640


def test_line_endings_and_a_byte_order_mark_stay(tmp_path: Path) -> None:
    (tmp_path / "groups.yaml").write_text(GROUPS)
    original = ("\ufeff" + OTHER + "---\n" + WEB).replace("\n", "\r\n").encode()
    (tmp_path / "services.yaml").write_bytes(original)
    result = CliRunner().invoke(main, ["allocate", "-f", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "services.yaml").read_bytes()
    unchanged = original[: original.index(b"# the web front end")]
    assert written.startswith(unchanged + b"# the web front end\r\napiVersion: v1\r\n")
    assert b"\n" not in written.replace(b"\r\n", b"")
    assert ingress(tmp_path / "services.yaml")["web"] == ["192.0.2.1", "2001:db8::1"]
    removed, added = changed_lines(original.decode()[1:], written.decode()[1:])
    assert removed == ["metadata: {name: web, namespace: default}"], "the others stay"
    assert added == [
        "metadata: {name: web, namespace: default, annotations: {lbroute.io/allocated-from: "
        "'public:192.0.2.0/24,2001:db8::/64'}}",
        "status:",
        "  loadBalancer:",
        "    ingress:",
        "    - ip: 192.0.2.1",
        "    - ip: 2001:db8::1",
    ]


def test_a_bad_file_is_reported_and_the_others_are_still_allocated(tmp_path: Path) -> None:
    d = tree(tmp_path, WEB)
    (d / "junk.yaml").write_bytes(b"\xff\xfe junk")
    (d / "listed.yaml").write_text("- " + OTHER.replace("\n", "\n  "))
    result = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr == (
        f"error: {d / 'junk.yaml'}:1: not UTF-8 text (byte 0xff at offset 0)\n"
        f"error: {d / 'listed.yaml'}:1: the document is a list, not an object; each object "
        "needs a document of its own (separated by ---) or to be an item of a kind: List\n"
    )
    assert "default/web: assigned 192.0.2.1, 2001:db8::1 from public" in result.stdout
    assert ingress(d / "services.yaml")["web"] == ["192.0.2.1", "2001:db8::1"]
    assert (d / "junk.yaml").read_bytes() == b"\xff\xfe junk", "a bad file is never written"


def test_a_service_name_cannot_fake_an_output_line(tmp_path: Path) -> None:
    """A Service that stopped being lbroute's is released whatever its name holds; the
    line that says so shows the name escaped, never a second line or a terminal code."""
    fake = "x\ndefault/web: assigned 203.0.113.9 from public\x1b[2K"
    gone = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": fake,
                "namespace": "default",
                "annotations": {"lbroute.io/allocated-from": "public:192.0.2.0/24"},
            },
            "spec": {"type": "ClusterIP"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}},
        }
    )
    d = tree(tmp_path, gone)
    result = CliRunner().invoke(main, ["allocate", "-f", str(d), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        r"default/x\ndefault/web: assigned 203.0.113.9 from public\x1b[2K: "
        "would release 192.0.2.9",
        f"would write {d / 'services.yaml'}",
    ]


# -- the changed documents keep their style (issue 23) -----------------------------------

STYLED = """\
# the styled one: comments, flow style, quotes and odd spacing stay
apiVersion: v1
kind: Service
metadata:
  name: styled   # its name
  namespace: "default"
  labels: {app: styled, tier: 'front'}  # flow style
spec:
  type:   LoadBalancer
  loadBalancerClass: lbroute.io/lbroute
  ports:
    - port: 80        # http
      targetPort: 8080
    - {port: 443, name: https}
  selector: {app: styled}
  description: a long line that a YAML library would fold at eighty columns if it were left to do so
"""
FLOW = """\
apiVersion: v1
kind: Service
metadata: {name: flow, namespace: default}  # all flow
spec: {type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute}
status: {loadBalancer: {}}  # nothing yet
"""
CONFIGMAP_STYLED = """\
apiVersion: v1
kind: ConfigMap
metadata:   {name: spacing,   namespace: default}
data:
    key:    "value"   # not a Service: never touched
"""


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines removed and the lines added from ``before`` to ``after``."""
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    removed = [line[1:] for line in diff[2:] if line.startswith("-")]
    added = [line[1:] for line in diff[2:] if line.startswith("+")]
    return removed, added


def test_a_changed_service_keeps_its_comments_and_style_and_only_new_lines_differ(
    tmp_path: Path,
) -> None:
    d = tree(tmp_path, KEEP, STYLED, CONFIGMAP_STYLED, FLOW, OTHER)
    before = (d / "services.yaml").read_text()
    result = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert result.exit_code == 0, result.output
    after = (d / "services.yaml").read_text()
    removed, added = changed_lines(before, after)
    assert removed == ["metadata: {name: flow, namespace: default}  # all flow",
                       "status: {loadBalancer: {}}  # nothing yet"]  # fmt: skip
    assert added == [
        "  annotations:",
        "    lbroute.io/allocated-from: public:192.0.2.0/24",
        "status:",
        "  loadBalancer:",
        "    ingress:",
        "      - ip: 192.0.2.3",
        "metadata: {name: flow, namespace: default, annotations: {lbroute.io/allocated-from: "
        "public:192.0.2.0/24}}  # all flow",
        "status: {loadBalancer: {ingress: [{ip: 192.0.2.2}]}}  # nothing yet",
    ]
    assert ingress(d / "services.yaml") == {
        "keep": ["192.0.2.1"],
        "styled": ["192.0.2.3"],
        "spacing": [],
        "flow": ["192.0.2.2"],
        "other": [],
    }
    again = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert again.exit_code == 0 and again.stdout == ""
    assert (d / "services.yaml").read_text() == after


def test_a_released_address_leaves_the_flow_style_and_its_comment(tmp_path: Path) -> None:
    """A Service that stopped being lbroute's: its entry and annotation go, the rest of
    its lines stay."""
    gone = """\
apiVersion: v1
kind: Service
metadata:
  name: gone
  namespace: default
  annotations: {team: web, lbroute.io/allocated-from: "public:192.0.2.0/24"}
spec: {type: ClusterIP}  # no longer a load balancer
status: {loadBalancer: {ingress: [{ip: 192.0.2.9}]}}  # was ours
"""
    d = tree(tmp_path, gone)
    result = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert result.exit_code == 0, result.output
    assert "default/gone: released 192.0.2.9" in result.stdout
    removed, added = changed_lines(gone, (d / "services.yaml").read_text())
    assert removed == [
        '  annotations: {team: web, lbroute.io/allocated-from: "public:192.0.2.0/24"}',
        "status: {loadBalancer: {ingress: [{ip: 192.0.2.9}]}}  # was ours",
    ]
    assert added == [
        "  annotations: {team: web}",
        "status: {loadBalancer: {}}  # was ours",
    ]


def test_a_service_in_a_list_keeps_the_list_and_its_anchors(tmp_path: Path) -> None:
    """An anchor the written fields do not go through stays an anchor."""
    listed = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: one, namespace: team}   # the first
    spec: &spec {type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute}
  - apiVersion: v1
    kind: Service
    metadata: {name: two, namespace: team}
    spec: *spec   # the same
"""
    d = tree(tmp_path, listed)
    result = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert result.exit_code == 0, result.output
    removed, added = changed_lines(listed, (d / "services.yaml").read_text())
    assert removed == [
        "    metadata: {name: one, namespace: team}   # the first",
        "    metadata: {name: two, namespace: team}",
    ]
    assert added == [
        "    metadata: {name: one, namespace: team, annotations: {lbroute.io/allocated-from: "
        "public:192.0.2.0/24}}   # the first",
        "    status:",
        "      loadBalancer:",
        "        ingress:",
        "          - ip: 192.0.2.1",
        "    metadata: {name: two, namespace: team, annotations: {lbroute.io/allocated-from: "
        "public:192.0.2.0/24}}",
        "    status:",
        "      loadBalancer:",
        "        ingress:",
        "          - ip: 192.0.2.2",
    ]


def test_a_value_written_through_an_anchor_is_not_shared(tmp_path: Path) -> None:
    """Writing into annotations that another Service aliases would give it the
    annotation too: that document is written anew instead, each Service with its own."""
    shared = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata:
      name: mine
      namespace: team
      annotations: &notes {team: web}
    spec: {type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute}
  - apiVersion: v1
    kind: Service
    metadata: {name: theirs, namespace: team, annotations: *notes}
    spec: {type: LoadBalancer, loadBalancerClass: example.com/other}
"""
    d = tree(tmp_path, OTHER, shared)
    result = CliRunner().invoke(main, ["allocate", "-f", str(d)])
    assert result.exit_code == 0, result.output
    text = (d / "services.yaml").read_text()
    assert text.startswith(OTHER + "---\n")
    _, items = yaml.safe_load_all(text)
    mine, theirs = items["items"]
    assert mine["metadata"]["annotations"] == {
        "team": "web",
        "lbroute.io/allocated-from": "public:192.0.2.0/24",
    }
    assert theirs["metadata"]["annotations"] == {"team": "web"}
    assert ingress(d / "services.yaml") == {"other": [], "mine": ["192.0.2.1"], "theirs": []}
