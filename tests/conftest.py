import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct (dequantised once, then cached)."""
    import llmct

    return llmct.load_model("default", dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models are dominated by threading overhead (10x slower with 2 threads on a busy
    machine); the results do not depend on it. Use with ``pytest.mark.usefixtures``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
