"""A worker's rooms and their place in the cluster: the registry, placement and failover, the mailroom for other
workers' messages, rooms coordinated elsewhere, loading from storage."""
