import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct (dequantised once, then cached)."""
    import llmct

    return llmct.load_model("default", dtype="float32", device="cpu")
