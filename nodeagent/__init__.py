"""The lbroute node agent: programs kube-lb0 and drives the node's BIRD or FRR."""
