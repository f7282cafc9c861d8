"""The lbroute node agent: programs kube-lb0 and drives the node's BIRD or FRR.

One agent runs on every node. It reads the objects (from the Kubernetes API or a
directory of manifests, through lbroute.kube), computes what this node announces, puts
those addresses on kube-lb0 and makes the router run the configuration the renderer
gives for them, then says how that went (a status file, NodeState, Events, metrics).

Inside, one module per concern::

    main        the process: source, reporter, metrics server, signals; runs the agent
    agent       the loop: objects in, addresses and router configuration out
    settings    how an agent runs, and which router it drives
    desired     what this node announces (pure)
    addresses   kube-lb0 as the desired state says, IS-IS-only addresses paced
    pacing      when those addresses may change (pure)
    scheduler   when a configuration is applied, retried, applied again (pure)
    status      the status document, reports to publish, metrics
    kubereport  publishing reports: NodeState, Events, conditions
    routers     the router daemons (the only package here that runs processes)
    netlink     the kernel (the only package here that imports pyroute2)

It never imports the allocator, nor the allocator it.
"""
