"""Layer 2, on-disk formats: the activation store (one atomic writer), the stimulus loader and
the shards of a data-parallel run. Imports :mod:`llmct.core` and below, never an analysis or an
emotion method (``tests/test_layering.py``).
"""
