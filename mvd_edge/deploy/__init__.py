"""Deployment: the formats table, export, precision graphs' parity, engine verification, the match
threshold's calibration, profiling, benchmarks and the demo.

Nothing is imported here: :mod:`.formats` and :mod:`.parity` are read by the torch-free runtime and
quantisation, while :mod:`.export`, :mod:`.bench` and :mod:`.demo` need torch.
"""
