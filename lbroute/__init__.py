"""lbroute: Kubernetes LoadBalancer Services on bare metal, announced by BIRD 2 or FRR."""

__version__ = "0.1.0"
