"""The lbroute allocator: assigns LoadBalancer addresses from ServiceGroup pools."""
