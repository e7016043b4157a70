"""The engine: deployments, request lifecycle, durable call routing, container pools."""
