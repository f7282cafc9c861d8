"""One conversion: the input's objects in, lbroute's objects, the Service patches and the
report out, checked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lbroute.convert import metallb, purelb
from lbroute.convert.check import check
from lbroute.convert.output import Output, secrets_of
from lbroute.convert.report import Report
from lbroute.convert.services import Patched, convert_services, group_pools
from lbroute.convert.values import meta_name
from lbroute.model.vocabulary import GROUP, LOADBALANCER_CLASS

SOURCES = ("metallb", "purelb")
_IS = {"metallb": metallb.is_metallb, "purelb": purelb.is_purelb}
_CONVERT = {"metallb": metallb.convert, "purelb": purelb.convert}


@dataclass(frozen=True)
class Conversion:
    objects: tuple[dict[str, Any], ...]
    """lbroute's ServiceGroups, Peers, NodeAgents and Secrets."""
    services: tuple[Patched, ...]
    report: Report
    default_class: bool
    """Some Service has no loadBalancerClass: lbroute must serve the default class."""

    @property
    def ok(self) -> bool:
        return not self.report.refused and not self.report.unsafe


def convert(
    objects: Sequence[Mapping[str, Any]], source: str, *, namespace: str = "lbroute"
) -> Conversion:
    """Convert the ``source`` tool's configuration among ``objects`` (and the Services,
    Secrets and Nodes there) into lbroute's, and check the result."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}")
    report = Report()
    mine: list[Mapping[str, Any]] = []
    services: list[Mapping[str, Any]] = []
    nodes: list[Mapping[str, Any]] = []
    ignored: Counter[str] = Counter()
    for obj in objects:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if _IS[source](obj):
            mine.append(obj)
        elif any(is_(obj) for other, is_ in _IS.items() if other != source):
            other = next(o for o, is_ in _IS.items() if is_(obj))
            report.error(obj, "", f"belongs to {other}: convert it with --from {other}")
        elif api_version == "v1" and kind == "Service":
            services.append(obj)
        elif api_version == "v1" and kind == "Node":
            nodes.append(obj)
        elif api_version == "v1" and kind == "Secret":
            pass  # read below, copied when referred to
        elif isinstance(api_version, str) and api_version.split("/")[0] == GROUP:
            report.warning(obj, "", "already an lbroute object: not converted, not in the output")
        elif kind == "ConfigMap" and "config" in (
            (obj.get("data") or {}) if isinstance(obj.get("data"), Mapping) else {}
        ):
            report.error(
                obj,
                "data.config",
                "a MetalLB ConfigMap configuration (before 0.13) is "
                "not converted: convert it to MetalLB's CRDs first",
            )
        else:
            ignored[str(kind)] += 1
    if ignored:
        report.info(
            "input",
            "",
            "ignored, not part of a load balancer's configuration: "
            + ", ".join(f"{n} {k}" for k, n in sorted(ignored.items())),
        )
    out = Output(namespace=namespace, report=report, secrets_in=secrets_of(objects))
    _CONVERT[source](mine, out)
    patched, no_class = convert_services(services, group_pools(out.objects), report)
    if no_class:
        report.warning(
            "Services",
            "spec.loadBalancerClass",
            "some Services set no class: run lbroute's allocator and agents with "
            f"--default-class (or recreate them with {LOADBALANCER_CLASS!r})",
        )
    secrets = sorted(meta_name(o) for o in out.objects if o["kind"] == "Secret")
    if secrets:
        report.warning(
            "Secrets",
            "",
            f"the agent reads only the Secrets named in Role {namespace}/lbroute-agent-secrets "
            f"(deploy/rbac.yaml, rules[0].resourceNames): add {', '.join(secrets)}",
        )
    check(out.objects, nodes, [p.service for p in patched], namespace, report)
    return Conversion(tuple(out.objects), tuple(patched), report, no_class)
