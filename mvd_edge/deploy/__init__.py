"""Deployment: the formats table, export, build-engine's pipeline, one parity comparison, engine
verification, the match threshold's calibration, profiling, benchmarks and the demo.

Nothing is imported here: :mod:`.formats` and :mod:`.parity` are read by the torch-free runtime and
quantisation, while :mod:`.export`, :mod:`.bench` and :mod:`.demo` need torch.
"""
