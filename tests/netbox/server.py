"""A real NetBox on loopback for the tests, started and stopped by the test suite.

``start()`` returns a :class:`NetBoxServer` (``url``, ``token``, ``api()``, ``stop()``)
after it has:

- found the NetBox source: ``$LBROUTE_NETBOX_SOURCE`` (a tarball or an unpacked
  directory), else ``../shared/netbox/netbox-v4.4.10.tar.gz`` beside the repository;
- made sure of what is slow to build and kept outside the checkout, in
  ``$LBROUTE_CACHE/netbox`` (default ``/var/cache/lbroute`` as root, else
  ``~/.cache/lbroute``): the unpacked source and a virtualenv with NetBox's
  requirements, each keyed by a hash of what it is built from;
- started its own PostgreSQL cluster (``initdb`` into a temporary directory, the server
  on a unix socket there, no TCP), its own ``redis-server`` on a free loopback port and
  NetBox's ``runserver`` on another;
- filled the database from a dump of a migrated NetBox: the one cached for this source,
  else the one committed beside this file; NetBox checks the dump against its
  migrations before serving, and when they differ (or there is no dump) the database
  is migrated from empty (about 3 minutes) and the dump cached;
- created a superuser with a write-enabled API token (``Authorization: Token ...``).

``stop()`` ends every process it started, by pid, and removes the temporary directory;
it is also registered with ``atexit``, and each process is started with a parent-death
signal, so nothing outlives the test session even when it is killed.

``python -m tests.netbox.server --prepare`` builds the cache ahead of the tests (a
start and a stop, unless a dump has already served here); ``--write-dump PATH``
migrates from empty and writes the dump (how the committed one is made); ``--serve``
starts a server until Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import fcntl
import functools
import gzip
import hashlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETBOX_VERSION = "4.4.10"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO.parent / "shared" / "netbox" / f"netbox-v{NETBOX_VERSION}.tar.gz"
# The dump of a freshly migrated NetBox, committed so that a new machine does not spend
# the 3 minutes of migrations; checked against NetBox's migrations at every start.
COMMITTED_DUMP = Path(__file__).with_name(f"netbox-{NETBOX_VERSION}-migrated.sql.gz")
SOURCE_ENV = "LBROUTE_NETBOX_SOURCE"
CACHE_ENV = "LBROUTE_CACHE"
TMP_PREFIX = "lbroute-netbox-"
USERNAME = "lbroute"
# The launcher's exit status when the database and NetBox's migrations differ.
_MISMATCH = 3
# What wipe() deletes (endpoint, table), in this order: what refers to another object
# before it.
WIPED = (
    ("ipam/ip-addresses", "ipam_ipaddress"),
    ("ipam/ip-ranges", "ipam_iprange"),
    ("ipam/prefixes", "ipam_prefix"),
    ("ipam/aggregates", "ipam_aggregate"),
    ("ipam/asns", "ipam_asn"),
    ("ipam/asn-ranges", "ipam_asnrange"),
    ("ipam/vlans", "ipam_vlan"),
    ("ipam/vlan-groups", "ipam_vlangroup"),
    ("ipam/vrfs", "ipam_vrf"),
    ("ipam/route-targets", "ipam_routetarget"),
    ("ipam/roles", "ipam_role"),
    ("ipam/rirs", "ipam_rir"),
    ("tenancy/tenants", "tenancy_tenant"),
    ("tenancy/tenant-groups", "tenancy_tenantgroup"),
    ("extras/tags", "extras_tag"),
    ("extras/custom-fields", "extras_customfield"),
)

log = logging.getLogger("tests.netbox")


class Unavailable(Exception):
    """Something NetBox needs is missing here (its source, PostgreSQL, Redis): the
    tests are skipped with this message (or fail, in CI)."""


class StartError(RuntimeError):
    """NetBox (or a service under it) did not come up; the message has the log tail."""


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


# --- what the server needs ------------------------------------------------------------


def find_source() -> Path | None:
    """The NetBox source: ``$LBROUTE_NETBOX_SOURCE``, else the shared tarball beside the
    checkout, else beside the repository it was cloned from (a CI checkout elsewhere
    that was cloned from a local path)."""
    env = os.environ.get(SOURCE_ENV)
    if env:
        path = Path(env).expanduser()
        return path if path.exists() else None
    for found in (DEFAULT_SOURCE, _beside_origin()):
        if found is not None and found.exists():
            return found
    return None


def _beside_origin() -> Path | None:
    """``shared/netbox/`` next to the local repository this checkout was cloned from."""
    config = REPO / ".git" / "config"
    try:
        text = config.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        origin = value.strip().removeprefix("file://")
        if key.strip() == "url" and origin.startswith("/"):
            return Path(origin).parent / DEFAULT_SOURCE.relative_to(REPO.parent)
    return None


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    if os.geteuid() == 0:
        return Path("/var/cache/lbroute")
    return Path.home() / ".cache" / "lbroute"


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL's programs (Debian: /usr/lib/postgresql/N/bin), else the
    directory of ``initdb`` on the PATH."""

    def major(p: Path) -> int:
        return int(p.name) if p.name.isdigit() else -1

    for version in sorted(Path("/usr/lib/postgresql").glob("*"), key=major, reverse=True):
        if (version / "bin" / "initdb").exists():
            return version / "bin"
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def base_python() -> str:
    """The interpreter under the running one's virtualenv, for NetBox's own venv."""
    return getattr(sys, "_base_executable", None) or sys.executable


def unavailable(source: Path | None = None) -> str | None:
    """Why a NetBox cannot be started here (from ``source``, else the default), or None."""
    if source is None and find_source() is None:
        where = os.environ.get(SOURCE_ENV) or str(DEFAULT_SOURCE)
        return (
            f"no NetBox {NETBOX_VERSION} source at {where}: set {SOURCE_ENV} to its "
            f"tarball (netbox-v{NETBOX_VERSION}.tar.gz) or an unpacked copy"
        )
    bindir = postgres_bindir()
    if bindir is None:
        return "PostgreSQL is not installed (initdb not found): run make install"
    for tool in ("postgres", "psql", "pg_dump", "pg_isready"):
        if not (bindir / tool).exists():
            return f"PostgreSQL's {tool} is not in {bindir}: run make install"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed: run make install"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, PostgreSQL needs a 'postgres' user to run as"
    return None


# --- timing ---------------------------------------------------------------------------


@dataclass
class Timings:
    phases: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - began
            self.phases[name] = self.phases.get(name, 0.0) + took
            log.info("netbox: %s: %.1f s", name, took)

    def total(self) -> float:
        """Seconds since these timings began (the phases, and what lies between)."""
        return time.monotonic() - self.began

    def summary(self) -> str:
        parts = ", ".join(f"{name} {took:.1f}" for name, took in self.phases.items())
        return f"{self.total():.1f} s ({parts})"


# --- the cache: source, virtualenv, dumps ---------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def source_key(source: Path) -> str:
    """A tarball's hash; for a directory, a hash of its files' names, sizes and times."""
    if source.is_file():
        return _sha256_file(source)[:16]
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        st = path.stat()
        digest.update(f"{path.relative_to(source)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One preparation at a time per cache (the Makefile's and a test session's)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("netbox: waiting for another preparation of %s", directory)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _requirements(text: str) -> str:
    """NetBox's requirements as installed here: psycopg's binary build (no compiler
    needed), and without the documentation builder (mkdocs*), which NetBox never
    imports."""
    lines = []
    for line in text.splitlines():
        name = line.strip().lower()
        if name.startswith("mkdocs"):
            continue
        lines.append(line.replace("psycopg[c,pool]", "psycopg[binary,pool]"))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Prepared:
    """The cached NetBox: its ``netbox/`` project, its venv's Python, the cache keys."""

    home: Path
    project: Path
    python: Path
    key: str

    @property
    def cached_dump(self) -> Path:
        return self.home / "dumps" / f"netbox-{NETBOX_VERSION}-{self.key}.sql.gz"

    def dumps(self) -> list[Path]:
        """The dumps a start tries, first first: the one cached for this source and
        venv (written after a migrate here), the committed one."""
        return [d for d in (self.cached_dump, COMMITTED_DUMP) if d.exists()]

    def served(self, dump: Path) -> Path:
        """The stamp of a NetBox served from ``dump`` with this source and venv."""
        digest = _sha256_file(dump)[:16]
        return self.home / "served" / f"{self.key}-{digest}"


def _unpack(source: Path, into: Path) -> None:
    partial = into.with_name(into.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    if source.is_file():
        partial.mkdir(parents=True)
        with tarfile.open(source) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(partial, filter="data")
            else:  # Python before 3.11.4 (Debian 12's 3.11.2) has no extraction filters.
                for member in tar.getmembers():
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts or member.islnk():
                        raise Unavailable(f"{source}: unsafe member {member.name}")
                tar.extractall(partial)
    else:
        shutil.copytree(source, partial, ignore=shutil.ignore_patterns("__pycache__"))
    if not (partial / "netbox" / "manage.py").exists():
        shutil.rmtree(partial, ignore_errors=True)
        raise Unavailable(f"{source} is not a NetBox source: no netbox/manage.py in it")
    shutil.rmtree(into, ignore_errors=True)
    partial.rename(into)


def _build_venv(venv: Path, requirements: str, timings: Timings) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    with timings.phase("venv create"):
        _run([base_python(), "-m", "venv", str(venv)], "python -m venv")
    (venv / "requirements.txt").write_text(requirements)
    with timings.phase("venv pip install"):
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        _run([*pip, "-r", str(venv / "requirements.txt")], "pip install (NetBox's requirements)")
    (venv / ".complete").write_text(requirements)


def prepare_cache(source: Path, timings: Timings, cache: Path | None = None) -> Prepared:
    """The unpacked source and NetBox's venv in the cache, built when missing."""
    home = (cache or cache_root()) / "netbox"
    with _locked(home):
        with timings.phase("source hash"):
            skey = source_key(source)
        unpacked = home / f"source-{skey}"
        if not (unpacked / "netbox" / "manage.py").exists():
            with timings.phase("unpack"):
                _unpack(source, unpacked)
        requirements = _requirements((unpacked / "requirements.txt").read_text())
        python_id = f"{base_python()} {sys.version_info[:3]}"
        vkey = hashlib.sha256(f"{python_id}\n{requirements}".encode()).hexdigest()[:16]
        venv = home / f"venv-{vkey}"
        if not (venv / ".complete").exists():
            _build_venv(venv, requirements, timings)
    return Prepared(home, unpacked / "netbox", venv / "bin" / "python", f"{skey}-{vkey}")


# --- processes ------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _dies_with_parent(sig: int) -> Callable[[], None]:
    """A preexec_fn: the child gets ``sig`` when the process that started it dies (a
    killed test session leaves nothing running; atexit does not run then)."""

    def preexec() -> None:
        _libc.prctl(_PR_SET_PDEATHSIG, sig)

    return preexec


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen's arguments to run as ``user`` with its group only (None: as we are)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _run(
    argv: list[str],
    what: str,
    *,
    user: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> bytes:
    """Run to completion; on failure raise StartError with the output's tail."""
    done: subprocess.CompletedProcess[bytes] = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        preexec_fn=_dies_with_parent(signal.SIGKILL),
        check=False,
        **_as_user(user),
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace")[-4000:]
        raise StartError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    logfile: Path
    stop_signal: int

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(self.stop_signal)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("netbox: %s (pid %d) did not stop: killed", self.name, self.popen.pid)
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _remove_stale_dirs() -> None:
    """Temporary directories of sessions that were killed (their owner pid is gone)."""
    for directory in Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
        try:
            pid = int((directory / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except (OSError, ValueError):
            continue


# --- the server -----------------------------------------------------------------------

_CONFIGURATION = """\
# Written by tests/netbox/server.py for one test session.
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES = {databases!r}
REDIS = {redis!r}
SECRET_KEY = {secret_key!r}
DEBUG = False
LOGIN_REQUIRED = True
# Loopback only: no census, release check or plugin catalogue requests.
ISOLATED_DEPLOYMENT = True
CENSUS_REPORTING_ENABLED = False
RELEASE_CHECK_URL = None
"""

# Run by NetBox's Python: import NetBox, wait for "go" (the database is there), check the
# database against NetBox's migrations (exit 3 when they differ), create the API user
# and token, then serve, all in one Django start.
_LAUNCHER = """\
import os
import sys

import django

django.setup()

from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

import netbox.urls  # noqa: F401  (the slow imports, before the database is there)

if sys.stdin.readline().strip() != "go":
    sys.exit(0)

executor = MigrationExecutor(connection)
plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
# Applied here but not in this NetBox (a newer one's dump); squashed ones replace others.
disk = executor.loader.disk_migrations
known = set(disk) | {r for m in disk.values() for r in (m.replaces or ())}
unknown = set(executor.loader.applied_migrations) - known
if plan or unknown:
    names = [f"{m.app_label}.{m.name}" for m, _ in plan] + sorted(".".join(k) for k in unknown)
    print(
        f"lbroute: the database does not match NetBox's migrations: {len(plan)} unapplied, "
        f"{len(unknown)} unknown: {', '.join(names[:10])}",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(3)
from users.models import Token, User

user, _ = User.objects.get_or_create(
    username=os.environ["LBROUTE_NETBOX_USER"],
    defaults={"is_superuser": True, "is_staff": True, "is_active": True},
)
Token.objects.create(
    user=user, key=os.environ["LBROUTE_NETBOX_TOKEN"], write_enabled=True,
    description="lbroute tests",
)
connection.close()
call_command("runserver", os.environ["LBROUTE_NETBOX_ADDR"], use_reloader=False, skip_checks=True)
"""


class NetBoxServer:
    """One NetBox with its own PostgreSQL and Redis, all in a temporary directory."""

    def __init__(self, prepared: Prepared, timings: Timings) -> None:
        self.prepared = prepared
        self.timings = timings
        self.token = secrets.token_hex(20)
        self.url = ""
        self.dump_used: Path | None = None
        self._procs: list[_Process] = []
        self._started: list[_Process] = []
        self._stopped = False
        self._root = os.geteuid() == 0
        self._pg_user = "postgres" if self._root else None
        bindir = postgres_bindir()
        if bindir is None:
            raise Unavailable("PostgreSQL is not installed")
        self._bin = bindir
        _remove_stale_dirs()
        self.tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        self.tmp.chmod(0o711)  # PostgreSQL's user must reach its directory in here.
        (self.tmp / "owner.pid").write_text(str(os.getpid()))
        self._pgdir = self.tmp / "pg"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        atexit.register(self.stop)

    # -- processes

    def _spawn(
        self,
        name: str,
        argv: list[str],
        *,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: int = subprocess.DEVNULL,
    ) -> _Process:
        logfile = self.tmp / f"{name}.log"
        with logfile.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd or self.tmp,
                env=env,
                preexec_fn=_dies_with_parent(stop_signal),
                **_as_user(user),
            )
        proc = _Process(name, popen, logfile, stop_signal)
        self._procs.append(proc)
        self._started.append(proc)
        log.info("netbox: started %s (pid %d)", name, popen.pid)
        return proc

    def _drop(self, proc: _Process) -> None:
        proc.stop()
        self._procs.remove(proc)

    def stop(self) -> None:
        """End every process started here (by pid), remove the temporary directory."""
        if self._stopped:
            return
        self._stopped = True
        began = time.monotonic()
        for proc in reversed(self._procs):
            proc.stop()
        self._procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        log.info("netbox: stopped in %.1f s", time.monotonic() - began)

    # -- PostgreSQL

    def _pg(self, tool: str) -> str:
        return str(self._bin / tool)

    def _psql(
        self, sql: str | None = None, *, stdin: bytes | None = None, db: str = "netbox"
    ) -> bytes:
        argv = [self._pg("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self._pgdir)]
        argv += ["-U", "netbox", "-d", db]
        if sql is not None:
            argv += ["-c", sql]
        return _run(argv, f"psql {sql or '(restore)'}", stdin=stdin)

    def sql(self, query: str) -> str:
        """A query on NetBox's database (psql, unaligned, no headers): its output."""
        argv = [self._pg("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self._pgdir), "-U", "netbox", "-d", "netbox", "-c", query]
        return _run(argv, f"psql {query[:60]}").decode()

    def _start_postgres(self) -> None:
        data = self._pgdir / "data"
        self._pgdir.mkdir(mode=0o700)
        if self._root:
            entry = pwd.getpwnam("postgres")
            os.chown(self._pgdir, entry.pw_uid, entry.pw_gid)
        with self.timings.phase("initdb"):
            argv = [self._pg("initdb"), "-D", str(data), "-U", "netbox", "-A", "trust"]
            argv += ["-E", "UTF8", "--no-locale", "--no-sync"]
            _run(argv, "initdb", user=self._pg_user, cwd=self._pgdir)
        with self.timings.phase("postgres start"):
            # Throw-away data: no durability, a unix socket in the directory, no TCP.
            settings = {
                "listen_addresses": "",
                "unix_socket_directories": str(self._pgdir),
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "100",
                "shared_buffers": "128MB",
            }
            argv = [self._pg("postgres"), "-D", str(data)]
            for key, value in settings.items():
                argv += ["-c", f"{key}={value}"]
            # SIGINT: a fast shutdown (SIGTERM would wait for NetBox's connections).
            proc = self._spawn(
                "postgres", argv, stop_signal=signal.SIGINT, user=self._pg_user, cwd=self._pgdir
            )
            self._wait("PostgreSQL", proc, self._pg_ready, timeout=60)

    def _pg_ready(self) -> bool:
        argv = [self._pg("pg_isready"), "-q", "-h", str(self._pgdir), "-U", "netbox"]
        return subprocess.run(argv, check=False).returncode == 0

    def _create_db(self, dump: Path | None) -> None:
        self._psql("DROP DATABASE IF EXISTS netbox", db="postgres")
        self._psql("CREATE DATABASE netbox", db="postgres")
        if dump is not None:
            with self.timings.phase("restore"):
                self._psql(stdin=gzip.decompress(dump.read_bytes()))
            log.info("netbox: restored %s", dump)

    def write_dump(self, path: Path) -> None:
        with self.timings.phase("dump"):
            argv = [self._pg("pg_dump"), "-h", str(self._pgdir), "-U", "netbox"]
            sql = _run([*argv, "--no-owner", "--no-privileges", "netbox"], "pg_dump")
            # psql 15.14 and later guard a restore with \restrict KEY ... \unrestrict KEY
            # (a random key): an older psql does not know them, and this dump is ours.
            sql = b"".join(
                line
                for line in sql.splitlines(keepends=True)
                if not line.startswith((b"\\restrict ", b"\\unrestrict "))
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + f".partial-{os.getpid()}")
            # mtime=0: the same database gives the same file.
            partial.write_bytes(gzip.compress(sql, compresslevel=9, mtime=0))
            partial.rename(path)
        log.info("netbox: wrote %s (%d bytes)", path, path.stat().st_size)

    # -- Redis

    def _start_redis(self) -> int:
        with self.timings.phase("redis start"):
            for _attempt in range(5):
                port = free_port()
                argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
                argv += ["--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
                proc = self._spawn("redis", argv)
                try:
                    self._wait("Redis", proc, functools.partial(_redis_ping, port), timeout=30)
                    return port
                except StartError:
                    if "Address already in use" not in proc.tail():
                        raise
                    self._drop(proc)
            raise StartError("Redis: no free loopback port after 5 attempts")

    # -- NetBox

    def _env(self, redis_port: int) -> dict[str, str]:
        config = _CONFIGURATION.format(
            databases={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": "netbox",
                    "USER": "netbox",
                    "PASSWORD": "",
                    "HOST": str(self._pgdir),
                    "PORT": "",
                    # runserver serves each request on a thread of its own: close the
                    # connection after it rather than leave one open per thread.
                    "CONN_MAX_AGE": 0,
                }
            },
            redis={
                "tasks": {"HOST": "127.0.0.1", "PORT": redis_port, "DATABASE": 0, "SSL": False},
                "caching": {"HOST": "127.0.0.1", "PORT": redis_port, "DATABASE": 1, "SSL": False},
            },
            secret_key=secrets.token_urlsafe(48),
        )
        (self.tmp / "lbroute_netbox_configuration.py").write_text(config)
        (self.tmp / "lbroute_netbox_launcher.py").write_text(_LAUNCHER)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYTHON", "DJANGO_", "NETBOX_", "VIRTUAL_ENV"))
        }
        env.update(
            PYTHONPATH=f"{self.tmp}{os.pathsep}{self.prepared.project}",
            NETBOX_CONFIGURATION="lbroute_netbox_configuration",
            DJANGO_SETTINGS_MODULE="netbox.settings",
            LBROUTE_NETBOX_USER=USERNAME,
        )
        return env

    def _migrate(self, env: dict[str, str]) -> None:
        with self.timings.phase("migrate"):
            _run(
                [str(self.prepared.python), "manage.py", "migrate", "--no-input"],
                "manage.py migrate",
                cwd=self.prepared.project,
                env=env,
            )

    def _spawn_netbox(self, env: dict[str, str]) -> _Process:
        """NetBox's launcher on a free port. It imports NetBox first (about 5 s, mostly
        the API's URLs and GraphQL schema; no database), then waits for a line "go" on
        its stdin before it touches the database: the imports run beside initdb and
        the restore."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        launcher = [str(self.prepared.python), str(self.tmp / "lbroute_netbox_launcher.py")]
        env = {
            **env,
            "LBROUTE_NETBOX_ADDR": f"127.0.0.1:{port}",
            "LBROUTE_NETBOX_TOKEN": self.token,
        }
        return self._spawn(
            "netbox",
            launcher,
            stop_signal=signal.SIGKILL,
            cwd=self.prepared.project,
            env=env,
            stdin=subprocess.PIPE,
        )

    def _serve(self, env: dict[str, str], proc: _Process | None, timeout: float) -> bool:
        """Let the launcher (``proc``, else a new one) serve; False when the database
        does not match NetBox's migrations."""
        with self.timings.phase("netbox start"):
            for _attempt in range(5):
                proc = proc or self._spawn_netbox(env)
                assert proc.popen.stdin is not None
                with contextlib.suppress(BrokenPipeError):  # It failed: _wait says why.
                    proc.popen.stdin.write(b"go\n")
                    proc.popen.stdin.close()
                try:
                    self._wait("NetBox", proc, self._answers, timeout=timeout)
                    return True
                except StartError:
                    if proc.popen.returncode == _MISMATCH:
                        log.info("netbox: %s", proc.tail().strip().splitlines()[-1])
                        self._drop(proc)
                        return False
                    if "already in use" not in proc.tail():
                        raise
                    self._drop(proc)
                    proc = None
                    # The launcher created the token before runserver failed.
                    self._psql("DELETE FROM users_token", db="netbox")
            raise StartError("NetBox: no free loopback port after 5 attempts")

    def _answers(self) -> bool:
        try:
            status = self.api("GET", "/api/status/", timeout=5)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return bool(status.get("netbox-version"))

    def _wait(
        self, what: str, proc: _Process, ready: Callable[[], bool], *, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if proc.popen.poll() is not None:
                raise StartError(
                    f"{what} exited with status {proc.popen.returncode} while starting; "
                    f"end of {proc.logfile.name}:\n{proc.tail()}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise StartError(
                    f"{what} did not answer within {timeout:.0f} s; "
                    f"end of {proc.logfile.name}:\n{proc.tail()}"
                )
            time.sleep(0.05)

    def boot(self, *, dumps: list[Path], timeout: float, write_dump: Path | None) -> Path:
        """Redis, PostgreSQL and the database (the first dump, else migrations), then
        NetBox; with a dump, NetBox's imports run beside PostgreSQL's set-up. Returns the
        dump NetBox now serves (restored, or written after the migrations)."""
        env = self._env(self._start_redis())
        dump = next((d for d in dumps if d.exists()), None)
        early = self._spawn_netbox(env) if dump is not None else None
        self._start_postgres()
        self._create_db(dump)
        self.dump_used = dump
        if dump is not None and self._serve(env, early, timeout):
            return dump
        if dump is not None:
            log.warning("netbox: %s does not match NetBox's migrations: migrating", dump)
            self._create_db(None)
            self.dump_used = None
        self._migrate(env)
        written = write_dump or self.prepared.cached_dump
        self.write_dump(written)
        if not self._serve(env, None, timeout):
            raise StartError("NetBox still reports unapplied migrations after migrate")
        return written

    # -- the REST API

    def api(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        timeout: float = 60,
        token: str | None = None,
    ) -> Any:
        """One REST call (``path`` from /api/...) with the token (or ``token``); the
        decoded JSON, None for no body. Raises ApiError for an HTTP error status."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Token {token or self.token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raise ApiError(method, path, e.code, e.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None

    def wipe(self) -> None:
        """Delete what tests create (addresses, ranges, prefixes, VRFs, VLANs, RIRs,
        tags, tenants, custom fields...) through the API, as a client would; one SQL
        query first finds which kinds have any (an API list costs 40 ms, even empty)."""
        some = " UNION ALL ".join(
            f"SELECT '{table}' WHERE EXISTS (SELECT 1 FROM {table})" for _, table in WIPED
        )
        present = set(self.sql(some).split())
        for endpoint, table in WIPED:
            while table in present:
                page = self.api("GET", f"/api/{endpoint}/?brief=true&limit=1000")
                ids = [{"id": row["id"]} for row in page["results"]]
                if ids:
                    self.api("DELETE", f"/api/{endpoint}/", ids)
                if not page["next"]:
                    present.discard(table)

    def leftovers(self) -> list[str]:
        """After stop(): what is still there (a process still running, the directory)."""
        left = [f"{p.name} (pid {p.popen.pid})" for p in self._started if p.popen.poll() is None]
        if self.tmp.exists():
            left.append(str(self.tmp))
        return left

    def __repr__(self) -> str:
        return f"NetBoxServer({self.url!r})"


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _prepared(source: Path | None, cache: Path | None) -> tuple[Prepared, Timings]:
    """The cache made sure of (Unavailable when something NetBox needs is missing)."""
    reason = unavailable(source)
    if reason:
        raise Unavailable(reason)
    source = source or find_source()
    assert source is not None
    timings = Timings()
    return prepare_cache(source, timings, cache), timings


def start(
    source: Path | None = None,
    *,
    cache: Path | None = None,
    timeout: float = 120.0,
    use_dumps: bool = True,
    write_dump: Path | None = None,
) -> NetBoxServer:
    """A running NetBox (see the module's docstring). Raises Unavailable when something
    it needs is missing, StartError when it does not come up (nothing is left running)."""
    prepared, timings = _prepared(source, cache)
    server = NetBoxServer(prepared, timings)
    try:
        served = server.boot(
            dumps=prepared.dumps() if use_dumps else [], timeout=timeout, write_dump=write_dump
        )
    except BaseException:
        server.stop()
        raise
    stamp = prepared.served(served)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    log.info("netbox: %s up in %s", server.url, timings.summary())
    return server


def prepare(source: Path | None = None, *, cache: Path | None = None) -> str:
    """Build the cache ahead of the tests: the source, the venv, and a dump that NetBox
    has served from (checked against its migrations, else migrated and dumped). A start
    and a stop, unless a dump has already served with this source and venv."""
    prepared, timings = _prepared(source, cache)
    dumps = prepared.dumps()
    if dumps and prepared.served(dumps[0]).exists():
        return f"ready in {timings.summary()}: {dumps[0]} has served with this source and venv"
    server = start(source, cache=cache)
    server.stop()
    return f"prepared: NetBox started in {server.timings.summary()}, stopped"


# --- command line ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.netbox.server", description=__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--prepare",
        action="store_true",
        help="build the cache (source, venv, a dump NetBox has served from) if not yet built",
    )
    what.add_argument(
        "--write-dump",
        metavar="PATH",
        type=Path,
        help="migrate an empty database and write its dump to PATH (a .sql.gz)",
    )
    what.add_argument("--serve", action="store_true", help="start NetBox and wait for Ctrl-C")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    reason = unavailable()
    if reason:
        print(f"netbox: not prepared: {reason}", file=sys.stderr)
        return 0 if args.prepare else 1
    began = time.monotonic()
    if args.prepare:
        print(f"netbox: {prepare()}", file=sys.stderr)
        return 0
    server = start(use_dumps=args.write_dump is None, write_dump=args.write_dump)
    try:
        if args.serve:
            print(f"NETBOX_URL={server.url}\nNETBOX_TOKEN={server.token}", flush=True)
            # Ctrl-C, or SIGTERM (kill PID: a shell's background job ignores SIGINT).
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    finally:
        server.stop()
    print(f"netbox: done in {time.monotonic() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
