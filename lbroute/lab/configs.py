"""The lab's fixed router configurations: the upstream router (FRR or BIRD) and a
node's BIRD before the agent's first apply.

The upstream honours the GRACEFUL_SHUTDOWN community (65535:0, RFC 8326) as RFC 8326
asks of a receiver and as an operator's router must for a node's drain to move traffic
before the withdrawal: routes that carry it get local preference 0. FRR 8.4 does this
by itself on receipt (measured: without the route-map below, a drained node's path
still arrives with local preference 0); BIRD does not, so it gets an import filter, and
FRR the standard inbound route-map all the same, the policy written out as an operator
would for routers that need it.

The FRR upstream keeps what the nodes send (``soft-reconfiguration inbound``), so that
its inbound policy is applied again without asking the nodes for a route refresh. FRR
8.4 processes a route-map change after a delay (5 s by default), also the definition of
``lab-from-nodes`` when the lab starts; a node whose session came up within that delay
got a route refresh request then. A graceful restart helper marks the routes of a
refresh in progress stale, and if the session goes down before the refresh ends it
deletes them with the session instead of keeping them for the restart (seen: a node's
router stopped in that second lost its routes; tests/netns/test_graceful_restart.py).
"""

from __future__ import annotations

UPSTREAM_V4, UPSTREAM_V6 = "10.0.0.1", "fd00::1"
UPSTREAM_ASN = 65000


UPSTREAM_FRR = """frr defaults traditional
!
interface br0
 ip ospf area 0.0.0.0
 ip ospf dead-interval 4
 ip ospf hello-interval 1
 ip router isis lab
 ipv6 ospf6 area 0.0.0.0
 ipv6 ospf6 dead-interval 4
 ipv6 ospf6 hello-interval 1
 ipv6 router isis lab
 isis hello-interval 1
exit
!
router rip
 allow-ecmp
 network br0
 timers basic 5 30 20
 version 2
exit
!
router ripng
 allow-ecmp
 network br0
 timers basic 5 30 20
exit
!
bgp community-list standard lab-gshut seq 5 permit graceful-shutdown
!
route-map lab-from-nodes permit 10
 match community lab-gshut
 set local-preference 0
exit
!
route-map lab-from-nodes permit 20
exit
!
router bgp {asn}
 bgp router-id {v4}
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
 neighbor nodes peer-group
 neighbor nodes remote-as external
 neighbor nodes timers connect 1
 neighbor nodes6 peer-group
 neighbor nodes6 remote-as external
 neighbor nodes6 timers connect 1
 bgp listen range 10.0.0.0/24 peer-group nodes
 bgp listen range fd00::/64 peer-group nodes6
 !
 address-family ipv4 unicast
  maximum-paths 8
  neighbor nodes activate
  neighbor nodes soft-reconfiguration inbound
  neighbor nodes route-map lab-from-nodes in
 exit-address-family
 !
 address-family ipv6 unicast
  maximum-paths 8
  neighbor nodes6 activate
  neighbor nodes6 soft-reconfiguration inbound
  neighbor nodes6 route-map lab-from-nodes in
 exit-address-family
exit
!
router ospf
 ospf router-id {v4}
 timers throttle spf 0 50 1000
 timers throttle lsa all 0
 timers lsa min-arrival 0
exit
!
router ospf6
 ospf6 router-id {v4}
 timers throttle spf 0 50 1000
exit
!
router isis lab
 is-type level-2-only
 net 49.0001.0100.0000.0000.00
 lsp-gen-interval 1
 spf-delay-ietf init-delay 0 short-delay 50 long-delay 1000 holddown 500 time-to-learn 500
exit
!
"""

UPSTREAM_BIRD = """router id {v4};
protocol device {{ scan time 1; }}
# BIRD cannot choose the kernel protocol of the routes it installs (all are
# "proto bird"), so the kernel metric says which protocol a route came from.
filter lab_kernel {{
  if source = RTS_BGP then krt_metric = {bgp};
  if source ~ [RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2] then krt_metric = {ospf};
  if source = RTS_RIP then krt_metric = {rip};
  accept;
}}
protocol kernel {{ ipv4 {{ import none; export filter lab_kernel; }}; metric 0; merge paths on; }}
protocol kernel {{ ipv6 {{ import none; export filter lab_kernel; }}; metric 0; merge paths on; }}
filter lab_from_nodes {{
  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
  accept;
}}
# A session that failed (a node's first OPEN can meet an FSM error while its address
# settles) is retried after a second, not after BIRD's default 60 s: a dynamic
# neighbor's spawned protocol refuses the node's new connections while it waits.
protocol bgp nodes {{
  local {v4} as {asn};
  neighbor range 10.0.0.0/24 external;
  error wait time 1, 5;
  ipv4 {{ import filter lab_from_nodes; export none; }};
}}
protocol bgp nodes6 {{
  local {v6} as {asn};
  neighbor range fd00::/64 external;
  error wait time 1, 5;
  ipv6 {{ import filter lab_from_nodes; export none; }};
}}
protocol ospf v2 {{
  ecmp yes;
  merge external yes;
  ipv4 {{ import all; export none; }};
  area 0 {{ interface "br0" {{ hello 1; dead 4; }}; }};
}}
protocol ospf v3 {{
  ecmp yes;
  merge external yes;
  ipv6 {{ import all; export none; }};
  area 0 {{ interface "br0" {{ hello 1; dead 4; }}; }};
}}
protocol rip {{
  ecmp yes;
  ipv4 {{ import all; export none; }};
  interface "br0" {{ update time 5; timeout time 30; garbage time 20; }};
}}
protocol rip ng {{
  ecmp yes;
  ipv6 {{ import all; export none; }};
  interface "br0" {{ update time 5; timeout time 30; garbage time 20; }};
}}
"""

BIRD_SOURCE_METRIC = {"bgp": 186, "ospf": 188, "rip": 189}
"""Kernel metric the upstream BIRD gives the routes of each protocol (the rt_protos
numbers FRR's zebra uses), so :meth:`Lab.routes` names the same protocols for both."""

NODE_BIRD_BOOT = """router id {v4};
protocol device {{ }}
"""
