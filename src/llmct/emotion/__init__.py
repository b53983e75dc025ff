"""Layer 3, the emotion study's methods: prompt templates and answer words, extraction of
stimuli under a prompt, the emotion-vector method and its null directions, preference ratings.
Built on :mod:`llmct.core`, :mod:`llmct.io` and :mod:`llmct.analysis` (``tests/test_layering.py``).
"""
