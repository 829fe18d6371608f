"""Dev tools: the demo, the benchmarks, the chaos run, local cluster control, network,
compose and Kubernetes generation.

They drive validators (``node``) and the SDK (``client``), so they belong to neither: the
validator and the SDK never import this package (tests/unit/test_layers.py), and neither
the wheel nor the image carries it (issue 16 item 2). Run them from the repository root,
``python -m devtools.<tool>`` (the Makefile's targets do).
"""
