"""Network namespaces and veth pairs: the lab's wiring, run with ``ip``.

Every namespace gets a unique name (pid, tag, counter), so labs never collide. A
:class:`Lan` is a Linux bridge in a namespace of its own that other namespaces plug
into: the shared segment local addresses (ARP/ND) are tested on.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess

_counter = itertools.count()


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


class Netns:
    """A network namespace that exists from ``create()`` until ``delete()``."""

    def __init__(self, tag: str = "t") -> None:
        self.name = f"lbrt-{os.getpid()}-{tag}-{next(_counter)}"

    def create(self) -> Netns:
        run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")
        return self

    def ip(self, *args: str) -> str:
        return run("ip", "-n", self.name, *args).stdout

    def exec(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def sysctl(self, key: str, value: str) -> None:
        self.exec("sysctl", "-qw", f"{key}={value}")

    def add_ifb(self, name: str) -> None:
        """An interface to hang configuration on (this kernel has no dummy type)."""
        self.ip("link", "add", name, "type", "ifb")
        self.ip("link", "set", name, "up")

    def delete(self) -> None:
        run("ip", "netns", "del", self.name, check=False)


def veth(a: Netns, a_name: str, b: Netns, b_name: str) -> None:
    """A veth pair from ``a`` (named ``a_name``) to ``b`` (named ``b_name``), both up; it
    goes away with either namespace."""
    n = next(_counter)
    tmp_a, tmp_b = f"lva{os.getpid() % 100000}-{n}", f"lvb{os.getpid() % 100000}-{n}"
    run("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    for tmp, ns, name in ((tmp_a, a, a_name), (tmp_b, b, b_name)):
        run("ip", "link", "set", tmp, "netns", ns.name, "name", name)
        ns.ip("link", "set", name, "up")


class Lan:
    """A LAN: the bridge ``br0`` in a namespace of its own (from :meth:`create` until
    :meth:`delete`); :meth:`plug` connects another namespace to it."""

    def __init__(self, tag: str = "lan") -> None:
        self.ns = Netns(tag)
        self._ports = itertools.count()

    def create(self) -> Lan:
        self.ns.create()
        self.ns.ip("link", "add", "br0", "type", "bridge")
        self.ns.ip("link", "set", "br0", "up")
        return self

    def plug(self, ns: Netns, name: str = "eth0") -> str:
        """Connect ``ns`` to the LAN as interface ``name``, up, with IPv6 duplicate
        address detection off (usable at once, as the lab's other links); returns its
        MAC address."""
        port = f"port{next(self._ports)}"
        n = next(_counter)
        tmp_a, tmp_b = f"lla{os.getpid() % 100000}-{n}", f"llb{os.getpid() % 100000}-{n}"
        run("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        run("ip", "link", "set", tmp_a, "netns", ns.name, "name", name)
        run("ip", "link", "set", tmp_b, "netns", self.ns.name, "name", port)
        ns.sysctl(f"net.ipv6.conf.{name}.accept_dad", "0")
        ns.ip("link", "set", name, "up")
        self.ns.ip("link", "set", port, "master", "br0", "up")
        return str(json.loads(ns.ip("-j", "link", "show", name))[0]["address"])

    def delete(self) -> None:
        self.ns.delete()
