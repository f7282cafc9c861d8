"""lbroute's Kubernetes layer: the one place that talks to the API server.

What the node agent and the allocator share: list/watch sources, read-change-write and
conditions, Events, Lease election, health and metrics serving, and the mapping of the
client's errors to lbroute's own.
"""
