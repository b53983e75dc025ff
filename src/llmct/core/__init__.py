"""Layer 1, the measurement core: everything that touches a torch model.

Adapters and sites (:mod:`~llmct.core.arch`), the ordered hook registry
(:mod:`~llmct.core.hooks`), token positions, the one forward runner
(:mod:`~llmct.core.runner`), exact capture, interventions (patching, ablation, read-out
forwards, the prefix cache), steering hooks, the logit lens, chat rendering, model loading and
generation. Imports only :mod:`llmct.errors` and itself (``tests/test_layering.py``).
"""
