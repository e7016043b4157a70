"""Experiments: servers patched with fixes the benchmarks suggest (proofs of concept)."""
