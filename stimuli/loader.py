"""The stimulus loader now lives in the library (:mod:`llmct.io.stimuli`); this module re-exports it
so ``from stimuli.loader import load_set`` keeps working.

    >>> from stimuli.loader import load_set, load_sets, to_frame
    >>> set_b = load_set("set_b")
"""

from llmct.io.stimuli import (  # noqa: F401
    EMOTIONS,
    FRAME_SETS,
    SET_FILES,
    STIMULI_DIR,
    Stimulus,
    StimulusError,
    check_frames,
    load_files,
    load_jsonl,
    load_set,
    load_sets,
    to_frame,
)
from llmct.io.stimuli import __all__ as __all__  # noqa: E402,F401  (the same public names)
