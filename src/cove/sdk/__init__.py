"""The SDK: decorators, calls, futures, request context, serialization and runners."""
