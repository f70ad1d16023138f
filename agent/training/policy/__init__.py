"""Measuring policies away from real users: simulated users and off-policy evaluation.

Kept out of `policies` (which decides each served turn) because only
`heartline policy evaluate`, the benchmarks and the tests use them.
"""
