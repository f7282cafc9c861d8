"""lbroute's Kubernetes layer: the one place that talks to the API server.

What the node agent and the allocator share, each standing on it and never on the
other::

    client      the connection (kubeconfig, in-cluster) and every call on one object
    errors      the client's exceptions turned into lbroute's (lbroute.model.errors)
    reflector   list/watch per kind (pages, bookmarks, relist on 410, backoff) and
                KubernetesSource, the snapshots of the kinds given
    directory   the same snapshots from a directory of manifests, and a watched directory
    trim        objects trimmed to what lbroute reads, as they enter
    writes      read-change-write with merge patches and 409 retries; conditions
    events      Events, rate limited
    lease       holding a Lease: leader election, membership
    leases      the agents' membership Leases: ours written, everyone's watched
    serving     /metrics, /healthz and /readyz

Only this package imports the ``kubernetes`` client (an import-linter contract): the
agent and the allocator see plain JSON and lbroute's own errors. Nothing here knows
what an agent or an allocator decides; what each publishes stays with it
(nodeagent.kubereport, allocator.controller).
"""
