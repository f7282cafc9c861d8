"""kube-lb0 through real netlink, in a throw-away namespace.

The agent's netlink code runs inside the namespace (``ip netns exec``), exactly as the
agent does on a node; the kernel's view is read back with ``ip``.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from tests.netns.lab import Netns, run

RUN = textwrap.dedent(
    """
    import ipaddress, json, sys
    from lbroute.model.errors import InterfaceError
    from nodeagent.netlink import Kubelb
    want = [ipaddress.ip_interface(a) for a in json.loads(sys.argv[1])]
    try:
        with Kubelb("kube-lb0") as k:
            k.ensure()
            if sys.argv[2] == "reconcile":
                c = k.reconcile(frozenset(want))
                out = {"added": [str(a) for a in c.added], "removed": [str(a) for a in c.removed]}
                out["after"] = sorted(str(a) for a in c.owned)
            else:
                out = {}
            out["owned"] = sorted(str(a) for a in k.owned())
    except InterfaceError as exc:
        out = {"error": str(exc)}
    print(json.dumps(out))
    """
)


def agent_netlink(
    ns: Netns, addresses: list[str], action: str = "reconcile"
) -> dict[str, list[str]]:
    out = ns.exec(sys.executable, "-c", RUN, json.dumps(addresses), action).stdout
    return dict(json.loads(out))


def kernel_addresses(ns: Netns) -> set[str]:
    data = json.loads(ns.ip("-j", "addr", "show", "dev", "kube-lb0"))
    return {
        f"{a['local']}/{a['prefixlen']}" for a in data[0]["addr_info"] if a.get("scope") != "link"
    }


def routes(ns: Netns, table: str = "4242") -> set[str]:
    """Routes on kube-lb0 in lbroute's table, as 'dst proto'."""
    found = set()
    for family in ("-4", "-6"):
        # A family with no route in the table has no table at all: ip exits 2.
        show = ("-j", family, "route", "show", "table", table, "dev", "kube-lb0")
        done = run("ip", "-n", ns.name, *show, check=False)
        for r in json.loads(done.stdout) if done.returncode == 0 else []:
            found.add(f"{r['dst']} {r.get('protocol')}")
    return found


def main_table(ns: Netns) -> set[str]:
    found = set()
    for family in ("-4", "-6"):
        for r in json.loads(ns.ip("-j", family, "route", "show", "dev", "kube-lb0")):
            if not r["dst"].startswith("fe80"):
                found.add(r["dst"])
    return found


def test_creating_where_the_kernel_cannot_says_what_to_do(netns: Netns) -> None:
    out = agent_netlink(netns, [], "ensure")
    if "error" not in out:  # this kernel has the dummy type after all
        assert "kube-lb0" in json.loads(netns.ip("-j", "link", "show"))[1]["ifname"]
        return
    assert "cannot create kube-lb0 as a dummy interface" in out["error"]
    assert "modprobe dummy" in out["error"] and "adopts an existing interface" in out["error"]


def test_adopts_an_existing_interface_brings_it_up_and_promotes_secondaries(netns: Netns) -> None:
    netns.ip("link", "add", "kube-lb0", "type", "ifb")
    agent_netlink(netns, [], "ensure")
    link = json.loads(netns.ip("-j", "link", "show", "kube-lb0"))[0]
    assert "UP" in link["flags"]
    sysctl = netns.exec("sysctl", "-n", "net.ipv4.conf.kube-lb0.promote_secondaries").stdout
    assert sysctl.strip() == "1"


def test_reconcile_is_a_diff_and_idempotent(netns: Netns) -> None:
    netns.add_ifb("kube-lb0")
    want = ["192.0.2.7/24", "192.0.2.8/24", "2001:db8::7/64", "198.51.100.5/32"]
    first = agent_netlink(netns, want)
    assert sorted(first["added"]) == sorted(want) and first["removed"] == []
    assert kernel_addresses(netns) == set(want)
    # One route per prefix in lbroute's table (protocol 76), none from the kernel.
    assert routes(netns) == {"192.0.2.0/24 76", "2001:db8::/64 76", "198.51.100.5 76"}
    assert main_table(netns) == set()
    again = agent_netlink(netns, want)
    assert again["added"] == [] and again["removed"] == []
    fewer = agent_netlink(netns, ["192.0.2.8/24", "2001:db8::7/64", "198.51.100.5/32"])
    assert fewer["added"] == [] and fewer["removed"] == ["192.0.2.7/24"]
    assert fewer["after"] == fewer["owned"], "what reconcile reports is the kernel's view"
    assert "192.0.2.0/24 76" in routes(netns)
    agent_netlink(netns, ["2001:db8::7/64"])
    assert routes(netns) == {"2001:db8::/64 76"}


def test_an_address_added_by_hand_is_never_touched(netns: Netns) -> None:
    netns.add_ifb("kube-lb0")
    netns.ip("addr", "add", "192.0.2.99/24", "dev", "kube-lb0")
    out = agent_netlink(netns, ["192.0.2.7/24"])
    assert out["owned"] == out["after"] == ["192.0.2.7/24"]
    agent_netlink(netns, [])
    assert kernel_addresses(netns) == {"192.0.2.99/24"}


def test_removing_the_first_address_of_a_subnet_keeps_the_others(netns: Netns) -> None:
    netns.add_ifb("kube-lb0")
    agent_netlink(netns, ["192.0.2.7/24"])
    agent_netlink(netns, ["192.0.2.7/24", "192.0.2.8/24", "192.0.2.9/24"])
    agent_netlink(netns, ["192.0.2.8/24", "192.0.2.9/24"])  # 192.0.2.7 was the primary
    assert kernel_addresses(netns) == {"192.0.2.8/24", "192.0.2.9/24"}
    assert routes(netns) == {"192.0.2.0/24 76"}


def test_prefix_change_of_one_address(netns: Netns) -> None:
    netns.add_ifb("kube-lb0")
    agent_netlink(netns, ["192.0.2.7/24", "2001:db8::7/64"])
    # IPv6: the kernel holds one address whatever its length (a Service that picks a BGP
    # class, or turns ETP Local, moves from the aggregate to a host prefix).
    out = agent_netlink(netns, ["192.0.2.7/32", "2001:db8::7/128"])
    assert out["added"] == ["192.0.2.7/32", "2001:db8::7/128"]
    assert sorted(out["removed"]) == ["192.0.2.7/24", "2001:db8::7/64"]
    assert kernel_addresses(netns) == {"192.0.2.7/32", "2001:db8::7/128"}
    assert routes(netns) == {"192.0.2.7 76", "2001:db8::7 76"}
    agent_netlink(netns, ["192.0.2.7/32", "2001:db8::7/64"])
    assert kernel_addresses(netns) == {"192.0.2.7/32", "2001:db8::7/64"}


def test_a_request_the_kernel_refuses_is_reported_and_the_rest_is_done(netns: Netns) -> None:
    """Requests go to the kernel in batches: one refused address (IPv6 is off on the
    interface) is reported as failed, and every other address and route is in place."""
    netns.add_ifb("kube-lb0")
    netns.sysctl("net.ipv6.conf.kube-lb0.disable_ipv6", "1")
    want = ["192.0.2.7/24", "2001:db8::7/64", "192.0.2.8/24"]
    out = agent_netlink(netns, want)
    assert sorted(out["added"]) == ["192.0.2.7/24", "192.0.2.8/24"]
    assert kernel_addresses(netns) == {"192.0.2.7/24", "192.0.2.8/24"}
    assert "192.0.2.0/24 76" in routes(netns)


def test_promote_secondaries_is_set_through_netlink_where_proc_sys_is_read_only(
    netns: Netns,
) -> None:
    """In a container /proc/sys is mounted read-only: netlink (CAP_NET_ADMIN) is enough."""
    netns.ip("link", "add", "kube-lb0", "type", "ifb")
    netns.exec("sysctl", "-w", "net.ipv4.conf.kube-lb0.promote_secondaries=0")
    script = (
        "from pathlib import Path\n"
        "from nodeagent.netlink import Kubelb\n"
        "with Kubelb('kube-lb0', sysctl_root=Path('/nonexistent/proc/sys')) as k:\n"
        "    k.ensure()\n"
    )
    netns.exec(sys.executable, "-c", script)
    sysctl = netns.exec("sysctl", "-n", "net.ipv4.conf.kube-lb0.promote_secondaries").stdout
    assert sysctl.strip() == "1"


KNOWN = textwrap.dedent(
    """
    import ipaddress, json, subprocess, sys
    from nodeagent.netlink import Kubelb
    want = frozenset(ipaddress.ip_interface(a) for a in ("192.0.2.10/24", "198.51.100.7/32"))
    out = {}
    with Kubelb("kube-lb0") as k:
        k.ensure()
        dumps = []
        reading = k._addresses
        k._addresses = lambda: dumps.append(1) or reading()
        def step(name, **kw):
            before = len(dumps)
            c = k.reconcile(want | frozenset(ipaddress.ip_interface(a) for a in kw.get("more", ())))
            out[name] = {"read": len(dumps) - before, "added": sorted(map(str, c.added))}
        step("first")
        step("again")
        step("one more", more=["203.0.113.5/32"])
        subprocess.run(["ip", "addr", "del", "192.0.2.10/24", "dev", "kube-lb0"], check=True)
        step("trusted", more=["203.0.113.5/32"])
        k.known_seconds = 0
        step("read back", more=["203.0.113.5/32"])
        k.known_seconds = 60
        step("fewer")  # from what the last one left: its route goes with the address
    print(json.dumps(out))
    """
)


def test_a_reconcile_starts_from_what_the_last_one_left_while_that_is_recent(
    netns: Netns,
) -> None:
    """At 10,000 addresses reading the interface back costs about 0.2 s a pass, so a
    reconcile that follows a complete one within ``known_seconds`` trusts what it left;
    then it reads the kernel again and puts back what someone else removed."""
    netns.add_ifb("kube-lb0")
    out = json.loads(netns.exec(sys.executable, "-c", KNOWN).stdout)
    assert out["first"] == {"read": 1, "added": ["192.0.2.10/24", "198.51.100.7/32"]}
    assert out["again"] == {"read": 0, "added": []}
    assert out["one more"] == {"read": 0, "added": ["203.0.113.5/32"]}
    assert out["trusted"] == {"read": 0, "added": []}  # the removal is not seen yet
    assert out["read back"] == {"read": 1, "added": ["192.0.2.10/24"]}
    assert out["fewer"] == {"read": 0, "added": []}
    assert kernel_addresses(netns) == {"192.0.2.10/24", "198.51.100.7/32"}
    assert routes(netns) == {"192.0.2.0/24 76", "198.51.100.7 76"}


UPDATES = textwrap.dedent(
    """
    import ipaddress, json, random
    from lbroute.model.api import route_mark
    from nodeagent.netlink import Kubelb
    rng = random.Random(5)
    POOLS = [("192.0.2.{}", "/24", "/32"), ("2001:db8::{:x}", "/64", "/128")]

    def pick():
        wanted = {}
        for pattern, agg, host in POOLS:
            for n in rng.sample(range(1, 40), rng.randint(0, 12)):
                ip = pattern.format(n)
                marked = rng.random() < 0.3
                iface = ipaddress.ip_interface(ip + (host if marked else agg))
                mark = (rng.choice([0, 3, 7]), rng.choice([0, 1])) if marked else (0, 0)
                wanted[iface] = mark
        return wanted

    def kernel(k):
        return (sorted(f"{a}={m}" for a, m in k._addresses().items()),
                sorted(f"{n}={list(m)}" for n, m in k._routes().items()))

    def expected(wanted):
        routes = {i.network: [0, 0] for i in wanted}
        routes.update({i.network: list(m) for i, m in wanted.items() if m != (0, 0)})
        return (sorted(f"{a}={route_mark(*m)}" for a, m in wanted.items()),
                sorted(f"{n}={m}" for n, m in routes.items()))

    out = {"steps": [], "fallback": None}
    with Kubelb("kube-lb0") as k:
        k.ensure()
        k.address_marks = True
        out["fallback"] = k.update([], {}) is None  # no reconcile yet: nothing to go on
        wanted = pick()
        k.reconcile(frozenset(wanted), {i: m[0] for i, m in wanted.items() if m[0]},
                    {i: m[1] for i, m in wanted.items() if m[1]})
        for step in range(25):
            new = pick()
            by_ip = {i.ip: i for i in wanted}
            new_by_ip = {i.ip: i for i in new}
            touched = {ip for ip in by_ip.keys() | new_by_ip.keys()
                       if by_ip.get(ip) != new_by_ip.get(ip)
                       or wanted.get(by_ip.get(ip)) != new.get(new_by_ip.get(ip))}
            old = [by_ip[ip] for ip in touched if ip in by_ip]
            changed = {new_by_ip[ip]: new[new_by_ip[ip]] for ip in touched if ip in new_by_ip}
            c = k.update(old, changed)
            out["steps"].append({
                "ok": c is not None and not c.failed,
                "same": kernel(k) == expected(new),
                "owned": sorted(str(i) for i in c.owned) == sorted(str(i) for i in changed),
            })
            wanted = new
        k.known_seconds = 0  # the same wanted state, from a kernel read: nothing to do
        again = k.reconcile(frozenset(wanted), {i: m[0] for i, m in wanted.items() if m[0]},
                            {i: m[1] for i, m in wanted.items() if m[1]})
        out["again"] = [str(i) for i in (*again.added, *again.removed)]
    print(json.dumps(out))
    """
)


def test_a_change_of_a_few_addresses_leaves_what_a_reconcile_would(netns: Netns) -> None:
    """The agent's pass for a few Services at 10,000 changes their addresses only
    (Kubelb.update, a plan for their IPs and prefixes): after each of 25 random changes
    (aggregates sharing a prefix, host prefixes with weights and classes, prefix lengths
    that change, IPv6 on FRR's address metrics) the kernel holds the wanted addresses
    with their metrics and one route per prefix with its mark, each step going on from
    what the last left; a reconcile from a fresh read then has nothing to do."""
    netns.add_ifb("kube-lb0")
    out = json.loads(netns.exec(sys.executable, "-c", UPDATES).stdout)
    assert out["fallback"] is True
    assert len(out["steps"]) == 25
    for i, step in enumerate(out["steps"]):
        assert step == {"ok": True, "same": True, "owned": True}, i
    assert out["again"] == []


ADDRESSES = textwrap.dedent(
    """
    import ipaddress, json, subprocess
    from lbroute.model.errors import ObjectRef
    from nodeagent.addresses import AUDIT_SECONDS, Addresses
    from nodeagent.desired import Announcement, DesiredState
    from nodeagent.status import Metrics
    web = ObjectRef(kind="ServiceGroup", namespace="lbroute", name="web")

    def ann(text, group=web):
        svc = ObjectRef(kind="Service", namespace="default", name=text)
        return Announcement(interface=ipaddress.ip_interface(text), group=group, services=(svc,))

    def kernel():
        out = subprocess.run(["ip", "-j", "addr", "show", "dev", "kube-lb0"],
                             capture_output=True, text=True, check=True).stdout
        return sorted(f"{a['local']}/{a['prefixlen']}" for a in json.loads(out)[0]["addr_info"]
                      if a.get("scope") != "link")
    """
)
"""What the Addresses scripts below share: announcements of one Service each, and the
addresses the kernel has on kube-lb0."""

AUDIT = ADDRESSES + textwrap.dedent(
    """
    a, b, c = ann("192.0.2.10/24"), ann("198.51.100.7/32"), ann("203.0.113.5/32")
    out = {}
    addresses = Addresses(0.25, Metrics())
    addresses.use("kube-lb0")
    addresses.program(DesiredState(announcements=(a, b)), frozenset(), 100.0)
    out["audit at"] = addresses.audit_at
    subprocess.run(["ip", "addr", "del", "192.0.2.10/24", "dev", "kube-lb0"], check=True)
    out["changed"] = addresses.change({c.interface.ip: (None, c)})
    out["after a change"] = kernel()
    out["announced"] = [x.address for x in addresses.announced()]
    addresses.program(DesiredState(announcements=(a, b, c)), frozenset(), 130.0, audit=True)
    out["after the audit"] = kernel()
    out["per group"] = addresses.per_group
    addresses.close()
    out["seconds"] = AUDIT_SECONDS
    print(json.dumps(out))
    """
)


def test_a_change_touches_only_its_addresses_and_the_audit_puts_back_the_rest(
    netns: Netns,
) -> None:
    """A pass for a few Services programs their addresses only, from what the last
    program left; an address someone else removed comes back at the audit, which reads
    the interface again (every AUDIT_SECONDS, in the agent's loop)."""
    netns.add_ifb("kube-lb0")
    out = json.loads(netns.exec(sys.executable, "-c", AUDIT).stdout)
    assert out["audit at"] == 100.0 + out["seconds"]
    assert out["changed"] is True
    assert out["after a change"] == ["198.51.100.7/32", "203.0.113.5/32"]  # not read back
    assert out["announced"] == ["192.0.2.10/24", "198.51.100.7/32", "203.0.113.5/32"]
    assert out["after the audit"] == ["192.0.2.10/24", "198.51.100.7/32", "203.0.113.5/32"]
    assert out["per group"] == {"lbroute/web": 3}


PACED = ADDRESSES + textwrap.dedent(
    """
    isis = ObjectRef(kind="ServiceGroup", namespace="lbroute", name="core")

    def new(a):
        return {a.interface.ip: (None, a)}

    a = ann("203.0.113.1/32", isis)
    b, c, d = ann("203.0.113.2/32", isis), ann("203.0.113.3/32", isis), ann("192.0.2.9/32")
    out = {}
    addresses = Addresses(0.25, Metrics())
    addresses.use("kube-lb0")
    paced = frozenset({isis})
    addresses.program(DesiredState(announcements=(a,)), frozenset({a.interface}), 100.0)
    out["first"] = kernel()
    out["held"] = addresses.change(new(b), paced, 100.1)
    out["due"] = addresses.due
    out["while held"] = kernel()
    out["other group"] = addresses.change(new(d), paced, 100.15)
    out["others go at once"] = kernel()
    out["too early"] = addresses.again(100.2)
    out["more held"] = addresses.change(new(c), paced, 100.2)
    out["on time"] = addresses.again(100.35)
    out["together"] = kernel()
    out["announced"] = [x.address for x in addresses.announced()]
    out["right after"] = addresses.change({c.interface.ip: (c, None)}, paced, 100.4)
    out["due again"] = addresses.due
    out["still there"] = kernel()
    addresses.again(100.7)
    out["quiet, at once"] = addresses.change({b.interface.ip: (b, None)}, paced, 101.0)
    out["removed"] = kernel()
    out["after"] = addresses.due
    print(json.dumps(out))
    """
)


def test_addresses_only_isis_carries_go_the_first_at_once_and_the_next_together(
    netns: Netns,
) -> None:
    """FRR's isisd holds its LSP back while redistributed routes keep changing less than
    100 ms apart (nodeagent.pacing): a change of a few Services programs an IS-IS-only
    address at once when none changed within the pacer's interval, holds the next ones
    until then and programs them together; other addresses are never held."""
    netns.add_ifb("kube-lb0")
    out = json.loads(netns.exec(sys.executable, "-c", PACED).stdout)
    assert out["first"] == ["203.0.113.1/32"]
    assert out["held"] is True and out["due"] == 100.25
    assert out["while held"] == ["203.0.113.1/32"]
    assert out["other group"] is True
    assert out["others go at once"] == ["192.0.2.9/32", "203.0.113.1/32"]
    assert out["too early"] is False
    assert out["more held"] is True
    assert out["on time"] is True
    assert out["together"] == ["192.0.2.9/32", "203.0.113.1/32", "203.0.113.2/32", "203.0.113.3/32"]
    assert out["announced"] == [
        "192.0.2.9/32",
        "203.0.113.1/32",
        "203.0.113.2/32",
        "203.0.113.3/32",
    ]
    # the interval counts from when the held ones went
    assert out["right after"] is True and out["due again"] == pytest.approx(100.6)
    assert "203.0.113.3/32" in out["still there"]
    assert out["quiet, at once"] is True
    assert out["removed"] == ["192.0.2.9/32", "203.0.113.1/32"]
    assert out["after"] == float("inf")
