"""The compute unit: lazy, deterministic evaluation of processes from their SU schedule."""
