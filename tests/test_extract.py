"""Extraction pipeline: resume after an interruption, shard + merge == one run, store identity
checks, user-file validation, and every experiment's main() end to end on tiny stimuli."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from llmct.emotion import extract as ex
from llmct.errors import LLMCTError, StoreError
from stimuli.loader import Stimulus, StimulusError

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["red", "calm", "storm", "bread", "river", "glass", "noise", "light", "stone", "field"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny forwards on a shared CPU run fastest on one thread; restore the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def stims(n, set_name="set_a"):
    return [Stimulus(id=f"s{i}", text=f"The {WORDS[i % 10]} and the {WORDS[(i * 3) % 10]} {i}.",
                     label="joy", set=set_name) for i in range(n)]


def test_parse_shard_and_limit():
    assert ex.parse_shard("1/4") == (1, 4) and ex.parse_shard(None) is None
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(LLMCTError, match="shard"):
            ex.parse_shard(bad)
    a = [Stimulus(id=f"a{i}", text="t", label=lab, set="set_b", pair_id=f"p{i}")
         for i, lab in enumerate(["x", "x", "x", "y"])]
    c = [Stimulus(id=f"c{i}", text="t", label="neutral", set="set_b_control", pair_id=f"p{i}")
         for i in range(4)]
    kept = ex.limit_stimuli(a + c, 1)
    # one per (set, label), plus the matched partners of kept items
    assert [s.id for s in kept] == ["a0", "a3", "c0", "c3"]


def test_bad_user_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"id": "u1", "text": "fine", "label": "joy"}, {"id": "u2", "text": "ok", "label": "joy"},
            {"id": "u3", "label": "joy"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(StimulusError, match=r"mine\.jsonl:3: missing required field 'text'"):
        ex.select_stimuli(str(path), [])
    with pytest.raises(StimulusError, match=r"mine\.jsonl:3"):
        load_experiment("02_probes").main(["--stimuli", str(path), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()  # failed before anything was written


@pytest.mark.integration
def test_resume_after_interruption_gives_identical_arrays(embedded, tmp_path, monkeypatch):
    model, tok = embedded
    items = stims(5)
    opts = dict(prompt="raw", chunk_size=2, progress=False, model_name="default")
    real = ex.capture
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash in the second chunk")
        return real(*a, **k)

    monkeypatch.setattr(ex, "capture", flaky)
    with pytest.raises(KeyboardInterrupt):
        ex.extract(model, tok, items, tmp_path / "run", **opts)
    monkeypatch.setattr(ex, "capture", real)
    with pytest.raises(StoreError, match="not extracted yet.*s2"):
        ex.load_extraction(tmp_path / "run", items)
    resumed = ex.extract(model, tok, items, tmp_path / "run", **opts)
    assert (resumed.n_skipped, resumed.n_extracted) == (2, 3)
    again = ex.extract(model, tok, items, tmp_path / "run", **opts)
    assert again.n_extracted == 0 and again.chunks == []

    ex.extract(model, tok, items, tmp_path / "once", **{**opts, "chunk_size": 32})
    got, want = ex.load_extraction(tmp_path / "run", items), ex.load_extraction(tmp_path / "once", items)
    assert got.ids == [s.id for s in items] and set(got.acts) == set(ex.DEFAULT_SOURCES)
    for source in ex.DEFAULT_SOURCES:
        assert got.acts[source].shape == (5, 30, 576)
        np.testing.assert_allclose(got.acts[source], want.acts[source], rtol=1e-5, atol=1e-5)
    man = got.manifest
    assert man["prompt"] == "raw" and man["model"] == "default" and man["dtype"] == "float32"
    assert man["layers"] == list(range(30)) and man["position"] == "last"
    assert {"model_fingerprint", "llmct_version", "prompt_template"} <= set(man)

    # a changed text is re-extracted, and each load gets the row of the text it asks for
    changed = [Stimulus(id="s0", text="something else entirely", label="joy", set="set_a")]
    with pytest.raises(StoreError, match="text"):
        ex.load_extraction(tmp_path / "run", changed)
    assert ex.extract(model, tok, changed, tmp_path / "run", **opts).n_extracted == 1
    new = ex.load_extraction(tmp_path / "run", changed).acts["hidden_out"]
    old = ex.load_extraction(tmp_path / "run", items).acts["hidden_out"]
    np.testing.assert_allclose(old, got.acts["hidden_out"], atol=1e-6)
    assert not np.allclose(new[0], old[0])
    with pytest.raises(StoreError, match="several texts"):
        ex.load_extraction(tmp_path / "run", ["s0"])
    # another prompt in the same folder is refused
    with pytest.raises(StoreError, match="prompt"):
        ex.extract(model, tok, items, tmp_path / "run", **{**opts, "prompt": "zeroshot"})


@pytest.mark.integration
def test_shards_merge_to_a_single_run(embedded, tmp_path):
    model, tok = embedded
    items = stims(5)
    opts = dict(prompt="raw", progress=False, layers=[0, 5, -1], sources=["hidden_out"])
    s0 = ex.extract(model, tok, items, tmp_path / "sharded", shard="0/2", **opts)
    with pytest.raises(StoreError, match="not extracted"):
        ex.load_extraction(tmp_path / "sharded", items)
    s1 = ex.extract(model, tok, items, tmp_path / "sharded", shard=(1, 2), **opts)
    assert (s0.n_extracted, s1.n_extracted) == (3, 2) and s0.store_dir != s1.store_dir
    ex.extract(model, tok, items, tmp_path / "single", **opts)
    merged = ex.load_extraction(tmp_path / "sharded", [s.id for s in items])
    single = ex.load_extraction(tmp_path / "single", items)
    assert merged.layers == [0, 5, 29]
    np.testing.assert_allclose(merged.acts["hidden_out"], single.acts["hidden_out"], atol=1e-5)
    np.testing.assert_array_equal(merged.n_tokens, single.n_tokens)
    assert ex.extract(model, tok, items, tmp_path / "sharded", **opts).n_extracted == 0


def load_experiment(name):
    path = ROOT / "experiments" / name / "run.py"
    spec = importlib.util.spec_from_file_location(f"exp_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_file(tmp_path) -> Path:
    """2 emotions x 6 items in 'set_a' and 'set_b', 12 paired controls, 3 Set C items."""
    rows = []
    for set_name in ("set_a", "set_b"):
        for lab, word in (("joy", "happy"), ("fear", "scared")):
            for i in range(6):
                rows.append({"id": f"{set_name}-{lab}-{i}", "label": lab, "set": set_name,
                             "pair_id": f"{lab}-{i}" if set_name == "set_b" else None,
                             "text": f"She felt {word} near the {WORDS[i]} today."})
    for lab in ("joy", "fear"):
        for i in range(6):
            rows.append({"id": f"ctl-{lab}-{i}", "label": "neutral", "set": "set_b_control",
                         "pair_id": f"{lab}-{i}", "text": f"The {WORDS[i]} was measured at noon."})
    for i in range(3):
        rows.append({"id": f"c-{i}", "label": "neutral", "set": "set_c",
                     "text": f"The {WORDS[i + 3]} glowed orange in the furnace."})
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps({k: v for k, v in r.items() if v is not None})
                              for r in rows) + "\n")
    return path


@pytest.mark.integration
def test_experiments_run_end_to_end(embedded, tmp_path, capsys):
    data = tiny_file(tmp_path)
    common = ["--stimuli", str(data), "--activations", str(tmp_path / "acts"), "--limit", "5",
              "--layers", "0", "15", "-1", "--sources", "hidden_out", "mlp_out", "--no-progress",
              "--torch-threads", "1"]
    # short prompts keep CPU extraction cheap; the few-shot path is the default of the real runs
    extra = {"04_zeroshot": ["--prompt", "zeroshot", "--baseline-prompt", "raw"]}
    for name in ("01_extract", "02_probes", "03_binary", "04_zeroshot"):
        out = tmp_path / name
        argv = [*common, "--prompt", "raw", *extra.get(name, []), "--out", str(out)]
        assert load_experiment(name).main(argv) == 0
        assert list(out.glob("*.csv")) and list(out.glob("*.png")) and list(out.glob("*.svg"))
    import pandas as pd

    res = pd.read_csv(tmp_path / "02_probes" / "probe_results.csv")
    assert {"model", "train_set", "test_set", "source", "layer", "depth", "auroc", "auroc_std",
            "control"} <= set(res.columns)
    assert {"none", "shuffled", "text_tfidf"} <= set(res.control)  # + other text-only baselines
    assert {("set_a", "set_a"), ("set_a", "set_b")} <= set(zip(res.train_set, res.test_set, strict=True))
    scored = pd.read_csv(tmp_path / "03_binary" / "scored_sets.csv")
    assert set(scored.scored) == {"set_a (emotional)", "set_c (neutral)"}
    assert scored.mean_p_emotional.between(0, 1).all()
    diff = pd.read_csv(tmp_path / "04_zeroshot" / "zeroshot_vs_fewshot.csv")
    assert {"auroc_zeroshot", "auroc_raw", "difference", "pooled_difference", "difference_lo",
            "difference_hi", "ci_unit"} <= set(diff.columns)
    probe_rows = diff[diff.control == "none"]
    assert probe_rows.difference_lo.notna().all()
    assert (probe_rows.difference_lo <= probe_rows.pooled_difference + 1e-12).all()
    assert (probe_rows.pooled_difference <= probe_rows.difference_hi + 1e-12).all()
    seeds = pd.read_csv(tmp_path / "02_probes" / "fold_seeds.csv")
    assert seeds.seed.nunique() == 5 and set(seeds.rule) == {"layer0", "argmax", "first_within"}
    summary = pd.read_csv(tmp_path / "02_probes" / "probe_summary.csv")
    within = summary[summary.train_set == summary.test_set]
    assert (within.n_fold_seeds == 5).all()
    assert (within.argmax_seed_min <= within.argmax_seed_max).all()
    assert (tmp_path / "acts" / "raw-tiny").is_dir() and (tmp_path / "acts" / "zeroshot-tiny").is_dir()
    # results are never silently replaced; activations resume instead
    again = [*common, "--prompt", "raw", "--out", str(tmp_path / "02_probes")]
    with pytest.raises(LLMCTError, match="refusing to overwrite"):
        load_experiment("02_probes").main(again)
    assert load_experiment("02_probes").main([*again, "--overwrite"]) == 0
