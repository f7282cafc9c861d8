"""Local addresses (``announce: local``): one elected node puts the address on its NIC.

The kernel answers ARP/ND for an address it holds, so lbroute runs no responder of its
own; what it decides is which node holds each address, and it decides that the same way
on every node, from what every node publishes::

    membership   each agent's Lease (renewed; in manifest mode a file in a shared
                 directory): alive or not, the subnets it can serve, what it holds;
                 liveness judged on our own clock, never on another node's
    leasedir     the Leases as YAML files in a directory the agents of one host share
    election     pure: per address, the candidates (alive, selected, on the subnet, a
                 ready endpoint for ETP Local) and the holder (the current claimant
                 keeps it, else the highest rendezvous weight)
    plan         pure: the loop's inputs from the objects, where won addresses go
    addresses    lbroute's local addresses on the NIC: reconcile, renew, announce
    runner       the loop, in a thread of the agent's: publish, read, elect, reconcile;
                 the safety rules (start, outage, stop) are in its docstring

The Kubernetes store of the same Leases is :mod:`lbroute.kube.leases`. The election is
per address, so Services sharing an IP move together and the IPv4 and IPv6 addresses of
one Service are elected apart. A node that stops gracefully deletes its Lease, so the
others take its addresses over at once instead of waiting for it to expire.
"""
