"""The membership Leases as files: one YAML file per node in a directory the agents share.

In manifest-directory mode there is no API server to keep Leases in, so the agents of
one host (the lab, a single machine) share a directory (``--lease-dir``) instead: each
writes its own Lease, the same object it would write to the API, as
``<lease name>.yaml`` through :func:`~lbroute.model.files.write_atomic` (a reader sees
the old file or the new, never half of one), reads all of them, and deletes its own on
a graceful stop. A file has no resourceVersion; its renewTime alone marks a change.

Another agent's file is read as the API server would read it (bounded YAML, at most
:data:`MAX_FILE` bytes); a file that is not one Lease object named as the file is
reported and left out, and the others are read as usual.
"""

from __future__ import annotations

from pathlib import Path

from lbroute.model.errors import ManifestError, ObjectRef, Problem, Severity, quote
from lbroute.model.fields import mapping_at
from lbroute.model.files import write_atomic
from lbroute.model.manifests import parse_manifest_text, path_name
from lbroute.model.vocabulary import LEASE, MEMBER_LEASE_PREFIX
from lbroute.model.yamldecode import dump_document
from nodeagent.local.membership import JSON

MAX_FILE = 256 * 1024
"""The largest Lease file read (the API server's limit on an object's annotations)."""
SUFFIX = ".yaml"


class DirectoryLeaseStore:
    """The membership Leases of ``namespace`` as files in ``directory`` (created at the
    first write); a :class:`~nodeagent.local.membership.LeaseStore`."""

    def __init__(self, directory: Path, *, namespace: str) -> None:
        self.directory = directory
        self.namespace = namespace

    def path(self, name: str) -> Path:
        return self.directory / f"{name}{SUFFIX}"

    def write(self, lease: JSON) -> None:
        name = str(mapping_at(lease, "metadata").get("name"))
        write_atomic(self.path(name), dump_document(lease))

    def read_all(self) -> tuple[list[JSON], list[Problem]]:
        leases: list[JSON] = []
        problems: list[Problem] = []
        # A directory that is missing or cannot be listed shows no Lease, ours neither:
        # that ends our own membership too (Members), so nothing is taken over blind.
        for path in sorted(self.directory.glob(f"{MEMBER_LEASE_PREFIX}*{SUFFIX}")):
            name = path.name.removesuffix(SUFFIX)
            try:
                lease = self._read(path, name)
            except (ManifestError, OSError) as exc:
                if isinstance(exc, FileNotFoundError):  # deleted since listed
                    continue
                problems.append(self._problem(name, f"{exc}"))
                continue
            if isinstance(lease, str):
                problems.append(self._problem(name, f"{path_name(path)}: {lease}"))
            else:
                leases.append(lease)
        return leases, problems

    def _read(self, path: Path, name: str) -> JSON | str:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            return f"larger than {MAX_FILE} bytes"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8 text"
        objects = parse_manifest_text(text, path_name(path))
        if len(objects) != 1:
            return f"holds {len(objects)} objects; expected one {LEASE}"
        if objects[0].get("kind") != LEASE:
            return f"holds a {quote(objects[0].get('kind'))}; expected a {LEASE}"
        lease = objects[0]
        found = mapping_at(lease, "metadata").get("name")
        if found != name:
            return f"holds the Lease named {quote(found)}; expected {quote(name)} as the file"
        return lease

    def _problem(self, name: str, message: str) -> Problem:
        return Problem(
            severity=Severity.ERROR,
            ref=ObjectRef(kind=LEASE, namespace=self.namespace, name=name),
            path="",
            message=f"{message}; the Lease is ignored",
        )

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
