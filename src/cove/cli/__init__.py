"""The ``cove`` command line."""
