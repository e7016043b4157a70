"""A stand-in ``tensorlake`` package for the parity suite, used only while Cove itself does
not serve ``tensorlake.applications`` (tests/parity/harness.py decides). Not shipped."""
