"""Container runtimes: where function containers run, and the worker inside them."""
