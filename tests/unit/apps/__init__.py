"""User-code modules for the unit tests: each defines @application/@function code.

Cove registers functions per module, so every fixture app lives in a module here.
"""
