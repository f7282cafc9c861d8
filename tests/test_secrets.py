"""Secrets never leave the node, and the agent holds no more privilege than it uses
(issue 24: "Secrets leak", "Trust boundaries").

- Redaction: one grammar of the statements a secret follows, in BIRD and FRR
  (``password``, ``md5``, ``authentication string``, ``authentication-key``,
  ``key-string``, IS-IS ``area-password``...), hides the rest of the line after the
  keyword, so whatever a template put around the value, nothing of it is left; a secret
  printed anywhere the renderer allows (the same grammar) is redacted (a property).
- A password or key is a typed value from the moment a Secret is decoded: a Peer, a
  Secret or a whole model printed or logged shows ``<secret>``.
- The status document redacts the router's message and is written 0600; the NodeState
  and the Events the reporter publishes carry no secret, and the ``ApplyFailed`` Events
  (which tenants read on their Services) no configuration text at all.
- Log lines pass through one filter that redacts them, tracebacks included.
- The agent reads only the Secrets its Role names: against the fake API server enforcing
  deploy/rbac.yaml, a Peer naming another Secret is reported and everything else runs.
- Metrics listen on the address given (IPv4 or IPv6), and a wrong one is refused at start.

The real routers' part (a rejected configuration quoting a password line) is in
tests/netns/test_secrets.py.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbroute.kube.client import api_client
from lbroute.kube.directory import Snapshot
from lbroute.kube.reflector import KubernetesSource, Timing
from lbroute.kube.serving import Health, serve
from lbroute.model import api
from lbroute.model.errors import ObjectRef, ServingError, Severity
from lbroute.model.secrets import SECRET_STATEMENT, RedactSecrets, SecretValue, redact
from nodeagent.kubereport import KubeReporter
from nodeagent.routers import check_config
from nodeagent.status import LastApply, Metrics, Report, Status
from tests.fakeapi import FakeAPI
from tests.rbac import Permissions, request_attributes

ROOT = Path(__file__).resolve().parents[1]
NS = "lbroute"
SECRET = "s3cret!42"

# -- redaction ------------------------------------------------------------------------

REDACTED_LINES = [
    # BIRD
    ('  password "s3cret!42";', "  password <redacted>"),
    ('  password "s3cret!42" { id 1; algorithm keyed md5; };', "  password <redacted>"),
    # FRR, every statement a secret can follow
    (" neighbor 10.0.0.1 password s3cret!42", " neighbor 10.0.0.1 password <redacted>"),
    (" ip ospf message-digest-key 1 md5 s3cret!42", " ip ospf message-digest-key 1 md5 <redacted>"),
    (" ip ospf authentication-key s3cret!42", " ip ospf authentication-key <redacted>"),
    (" ip rip authentication string s3cret!42", " ip rip authentication string <redacted>"),
    ("  key-string s3cret!42", "  key-string <redacted>"),
    (" area-password md5 s3cret!42 authenticate snp validate", " area-password <redacted>"),
    (" domain-password clear s3cret!42", " domain-password <redacted>"),
    (" isis password md5 s3cret!42", " isis password <redacted>"),
    (
        " ipv6 ospf6 authentication key-id 1 hash-algo md5 key s3cret!42",
        " ipv6 ospf6 authentication key-id 1 hash-algo md5 <redacted>",
    ),
    # A value that swallowed the next keyword, from a user template, leaves nothing.
    (" md5 password s3cret!42", " md5 <redacted>"),
    # The parser's and the context's forms.
    (
        ">    42 |  neighbor 10.0.0.1 password s3cret!42",
        ">    42 |  neighbor 10.0.0.1 password <redacted>",
    ),
    (
        "line 7: % Unknown command: neighbor 10.0.0.1 password s3cret!42 junk",
        "line 7: % Unknown command: neighbor 10.0.0.1 password <redacted>",
    ),
]
UNTOUCHED_LINES = [
    "  algorithm keyed md5;",
    " ip rip authentication mode md5",
    " ip ospf authentication message-digest",
    "bird: <config>:12:3 syntax error, unexpected CF_SYM_UNDEFINED",
    "Password too long",
    "spec.bgp.passwordSecretRef: Secret tor not found in namespace lbroute",
    "a secret has no text of its own; print it only as the value of its own statement "
    "(right after 'password', 'md5' or another key keyword)",
]


@pytest.mark.parametrize(("line", "shown"), REDACTED_LINES)
def test_every_secret_statement_is_redacted(line: str, shown: str) -> None:
    assert redact(line) == shown
    assert redact(shown) == shown, "redacting twice changes nothing"


@pytest.mark.parametrize("line", UNTOUCHED_LINES)
def test_other_text_is_left_as_it_is(line: str) -> None:
    assert redact(line) == line


def test_redaction_keeps_the_other_lines() -> None:
    text = "  1 | router bgp 64512\n> 2 |  neighbor 10.0.0.1 password x\n  3 | exit\n"
    assert (
        redact(text)
        == "  1 | router bgp 64512\n> 2 |  neighbor 10.0.0.1 password <redacted>\n  3 | exit\n"
    )


_TOKENS = st.sampled_from(
    [
        "password",
        "md5",
        "key",
        "key-string",
        "authentication",
        "string",
        "authentication-key",
        "clear",
        "keyed",
        "mode",
        "neighbor",
        "10.0.0.1",
        "area-password",
        '"',
        "{",
        ";",
        "#",
        "!",
        "x",
    ]
)
_SEPARATORS = st.sampled_from([" ", "  ", "\t", " \t"])
_WORDS = st.lists(st.tuples(_TOKENS, _SEPARATORS), max_size=8).map(
    lambda ws: "".join(w + s for w, s in ws)
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(prefix=_WORDS, suffix=_WORDS, quoted=st.booleans())
def test_a_secret_printed_where_the_renderer_allows_is_redacted(
    prefix: str, suffix: str, quoted: bool
) -> None:
    """The renderer's placement check and the redaction are one grammar: wherever a line
    may carry a secret, nothing of it survives redaction."""
    line = prefix + ('"' if quoted else "")
    if not SECRET_STATEMENT.search(line):
        return
    text = f"before\n{line}{SECRET}{suffix}\nafter"
    assert SECRET not in redact(text)
    assert redact(text).startswith("before\n") and redact(text).endswith("\nafter")


PARSER_CASES = {
    api.Router.BIRD: (
        "router id 10.0.0.11;\nprotocol device {\n}\nprotocol bgp tor {\n"
        "  local as 64512;\n  neighbor 10.0.0.1 as 65000;\n  ipv4 { export none; };\n"
        f'  password "{SECRET}";\n  no-such-option;\n}}\n'
    ),
    api.Router.FRR: (
        "frr defaults traditional\n!\nrouter bgp 64512\n neighbor 10.0.0.1 remote-as 65000\n"
        f" neighbor 10.0.0.1 password {SECRET}\n neighbor 10.0.0.1 no-such-option\nexit\n!\n"
    ),
}


@pytest.mark.parametrize("router", list(PARSER_CASES))
def test_a_parsers_refusal_quotes_the_password_line_redacted(router: api.Router) -> None:
    """The real parser refuses the line after the password: what it says and the lines
    around the fault (``lbroute validate``, the drivers' errors) hold no secret."""
    result = check_config(router, PARSER_CASES[router])
    assert not result.ok
    shown = result.describe()
    assert "no-such-option" in shown and "password <redacted>" in shown, shown
    assert SECRET not in shown


# -- typed secrets ----------------------------------------------------------------------


def _peer_objects() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "Peer",
            "metadata": {"name": "tor", "namespace": NS},
            "spec": {"bgp": {"address": "192.0.2.1", "asn": 65000,
                             "passwordSecretRef": {"name": "bgp-upstream"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "bgp-upstream", "namespace": NS},
            "stringData": {"password": SECRET},
        },
    ]  # fmt: skip


def test_no_object_shows_its_secret() -> None:
    model = api.load(_peer_objects())
    assert [p for p in model.problems if p.severity is Severity.ERROR] == []
    (peer,) = model.peers
    assert peer.bgp is not None and isinstance(peer.bgp.password, SecretValue)
    assert peer.bgp.password.reveal() == SECRET
    secret = api.parse_object(_peer_objects()[1])
    for shown in (repr(model), repr(peer), str(peer), repr(secret), f"{peer!r}"):
        assert SECRET not in shown
    assert "password=<secret>" in repr(peer)
    with pytest.raises(TypeError, match="no text of its own"):
        str(peer.bgp.password)
    with pytest.raises(TypeError, match="no text of its own"):
        f"{peer.bgp.password}"
    assert peer.bgp.password == SecretValue(SECRET) and peer.bgp.password != SECRET


# -- status, NodeState, Events --------------------------------------------------------

ERROR = (
    "bird: <config>:5:3 syntax error, unexpected CF_SYM_UNDEFINED\n"
    f'      4 |   password "{SECRET}";\n'
    ">     5 |   no-such-option;"
)


def test_the_status_document_redacts_the_routers_message() -> None:
    status = Status(node="node-a", last_apply=LastApply(result="Failed", error=ERROR))
    text = status.to_json()
    assert SECRET not in text
    assert "password <redacted>" in json.loads(text)["last_apply"]["error"]


@pytest.fixture
def fake() -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS)) as api_server:
        yield api_server


def _report(error: str, announced: dict[ObjectRef, tuple[str, ...]]) -> Report:
    result = "Failed" if error else "Applied"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
    }
    return Report(
        status=Status(
            node="node-a",
            router="bird",
            mode="managed",
            last_apply=LastApply(time="2026-11-28T03:00:00Z", result=result, error=error),
        ),
        announced=announced,
        local=frozenset(),
        object_problems=(),
        node_problems=(),
        objects=(service,),
        agent=ObjectRef(kind="NodeAgent", namespace=NS, name="bird-nodes"),
    )


def test_node_state_and_events_carry_no_secret_and_events_no_configuration(
    fake: FakeAPI, tmp_path: Path
) -> None:
    reporter = KubeReporter(
        api_client(str(fake.kubeconfig(tmp_path / "kubeconfig"))), node="node-a", namespace=NS
    )
    web = ObjectRef(kind="Service", namespace="default", name="web")
    reporter.sync(_report("", {web: ("192.0.2.10/24",)}))
    reporter.sync(_report(ERROR, {web: ("192.0.2.10/24",)}))
    state = fake.get("nodestates", "node-a", NS)
    assert state is not None
    assert state["status"]["lastApply"]["error"] == redact(ERROR)
    assert SECRET not in json.dumps(state)
    events = [e for e in fake.objects("events.events.k8s.io") if e["reason"] == "ApplyFailed"]
    assert {e["regarding"]["kind"] for e in events} == {"NodeState", "NodeAgent", "Service"}
    for event in events:
        note = event["note"]
        assert "lbroute status on node node-a" in note, "says where the message is"
        for word in (SECRET, "password", "<redacted>", "no-such-option", "syntax error"):
            assert word not in note, f"no configuration text, nor the router's: {note}"


# -- logs -------------------------------------------------------------------------------


def test_log_lines_and_tracebacks_are_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    log = logging.getLogger("tests.secrets")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("router said: %s", f"neighbor 10.0.0.1 password {SECRET}")
        try:
            raise ValueError(f'  password "{SECRET}";')
        except ValueError:
            log.exception("applying failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    out = stream.getvalue()
    assert SECRET not in out
    assert "router said: neighbor 10.0.0.1 password <redacted>" in out
    assert "ValueError:   password <redacted>" in out


# -- the agent's Secrets under deploy/rbac.yaml ------------------------------------------

FAST = Timing(watch_seconds=(30, 40), backoff=(0.05, 0.2), connect_timeout=2)


def _secret(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "stringData": {"password": SECRET},
    }


def _bgp_peer(name: str, secret: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "Peer",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"bgp": {"address": address, "asn": 65000, "passwordSecretRef": {"name": secret}}},
    }


def test_the_agent_reads_only_the_secrets_its_role_names(tmp_path: Path) -> None:
    """deploy/rbac.yaml enforced by the fake API: the Secret a Peer names that the Role
    does not list is refused (403), counted as absent, and reported on that Peer; the
    listed one is read; the agent's first snapshot is not held up by the refusal."""
    perms = Permissions.load(ROOT / "deploy", namespace=NS, name="lbroute-agent")

    def authorize(method: str, path: str, query: str) -> bool:
        request = request_attributes(method, path, query)
        return not request.resource or perms.allows_request(request)

    with FakeAPI(namespaces=("default", NS), authorize=authorize) as fake:
        fake.put_all(
            [
                _bgp_peer("listed", "bgp-upstream", "192.0.2.1"),
                _bgp_peer("unlisted", "tor-password", "192.0.2.2"),
                _secret("bgp-upstream"),
                _secret("tor-password"),
                _secret("unrelated"),
            ]
        )
        source = KubernetesSource(
            api_client(str(fake.kubeconfig(tmp_path / "kubeconfig"))),
            node="node-a",
            namespace=NS,
            timing=FAST,
        )
        stop = threading.Event()
        snapshots: queue.Queue[Snapshot] = queue.Queue()

        def run() -> None:
            for snapshot in source.snapshots(stop):
                snapshots.put(snapshot)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            snapshot = _until_secrets_followed(snapshots)
        finally:
            stop.set()
            thread.join(timeout=10)
        refused = [r for r in fake.requests if r.resource == "secrets" and r.code == 403]
    secrets = {o["metadata"]["name"] for o in snapshot.objects if o.get("kind") == "Secret"}
    assert secrets == {"bgp-upstream"}
    assert refused, "the unlisted Secret was asked for, and refused"
    assert all("tor-password" in urlencode(r.query) for r in refused)
    model = api.load(snapshot.objects)
    assert [p.name for p in model.peers] == ["listed"]
    (problem,) = [p for p in model.problems if p.ref.name == "unlisted"]
    assert problem.path == "spec.bgp.passwordSecretRef"
    assert "Secret tor-password not found in namespace lbroute" in problem.message
    assert "lbroute-agent-secrets" in problem.message


def _until_secrets_followed(snapshots: queue.Queue[Snapshot]) -> Snapshot:
    """The first snapshot that has the Peers and the readable Secret."""
    while True:
        snapshot = snapshots.get(timeout=10)
        kinds = [o.get("kind") for o in snapshot.objects]
        if kinds.count("Peer") == 2 and "Secret" in kinds:
            return snapshot


# -- metrics address ----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_metrics_listen_on_the_address_given(host: str) -> None:
    health = Health()
    health.ready = True
    server = serve(0, Metrics(), health, host)
    try:
        bound, port = server.server_address[:2]
        assert bound == host
        url_host = f"[{host}]" if ":" in host else host
        with urllib.request.urlopen(f"http://{url_host}:{port}/readyz", timeout=5) as reply:
            assert reply.read() == b"ok\n"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("node-a", "metrics address 'node-a' is not an IP address"),
        ("192.0.2.77", "cannot serve metrics on '192.0.2.77' port 0"),
    ],
)
def test_a_wrong_metrics_address_is_refused_at_start(host: str, says: str) -> None:
    with pytest.raises(ServingError, match=says):
        serve(0, Metrics(), Health(), host)
