"""The publication figures' style: re-exported from the library's one style module
(:mod:`llmct.style`), so experiment figures, the report and the paper figures share one palette."""

from llmct.style import *  # noqa: F401,F403
