"""Test support shipped with pyao: real services started on loopback for tests and benchmarks."""
