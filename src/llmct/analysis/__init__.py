"""Statistics over arrays: bootstraps and permutations, probes, text-only baselines, peak layers,
geometry and RSA. Never touches a torch model: imports nothing from :mod:`llmct.core`, and not
``torch`` or ``transformers`` (``tests/test_layering.py``).
"""
