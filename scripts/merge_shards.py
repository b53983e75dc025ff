"""Gather ``--shard i/n`` extraction folders into one activation store and check it is complete.

The library already merges shards transparently: ``extract(..., shard="i/n")`` writes
``<store>/shard-i-of-n/`` and :func:`llmct.emotion.extract.load_extraction` reads every ``shard-*``
sub-folder of a store, so shards run on one machine need no merging at all. This is a thin CLI
for the other case -- shards run on several machines or disks: it copies each ``--from`` folder's
``shard-*-of-*`` sub-folders into the store (file by file, atomically, never replacing a file
whose bytes differ), then checks that the shards agree on model/prompt/layers and that every
stimulus is present, by loading them exactly as the experiments do.

    uv run --no-sync python scripts/merge_shards.py \\
        experiments/01_extract/outputs/<slug>/activations/fewshot \\
        --from /mnt/gpu1/.../activations/fewshot /mnt/gpu2/.../activations/fewshot
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llmct.emotion.extract import load_extraction, select_stimuli, stores_in  # noqa: E402
from llmct.errors import LLMCTError  # noqa: E402


def copy_shards(src: Path, dest: Path) -> tuple[int, int]:
    """Copy ``src/shard-*-of-*/chunk-*.npz`` into ``dest``; returns (copied, already there)."""
    shard_dirs = sorted(p for p in src.glob("shard-*-of-*") if p.is_dir())
    if not shard_dirs:
        top = sorted(src.glob("chunk-*.npz"))
        hint = (" (it holds an unsharded store: copy the whole folder instead)" if top else "")
        raise LLMCTError(f"{src} has no shard-*-of-* sub-folders{hint}")
    copied = same = 0
    for shard in shard_dirs:
        target = dest / shard.name
        target.mkdir(parents=True, exist_ok=True)
        for chunk in sorted(shard.glob("chunk-*.npz")):
            out = target / chunk.name
            if out.exists():
                if not filecmp.cmp(chunk, out, shallow=False):
                    raise LLMCTError(f"{out} exists with different content than {chunk}; "
                                     "refusing to overwrite (two runs of the same shard?)")
                same += 1
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{chunk.stem}.", suffix=".tmp", dir=target)
            os.close(fd)
            try:
                shutil.copyfile(chunk, tmp)
                os.replace(tmp, out)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            copied += 1
    return copied, same


def check(dest: Path, stimuli) -> None:
    """Print one line per store; raise unless the stores agree and every stimulus is present."""
    stores = [s for s in stores_in(dest) if s.chunks()]
    if not stores:
        raise LLMCTError(f"{dest} holds no extracted activations")
    first = stores[0].manifest()
    counts = {n for n in (s.folder.name.rsplit("-of-", 1)[-1] for s in stores
                          if s.folder.name.startswith("shard-"))}
    if len(counts) > 1:
        print(f"note: shards of different splits ({sorted(counts)} ways) share {dest}; "
              "that is allowed (rows are looked up by id) but unusual")
    for store in stores:
        store.check_compatible(first)  # same model, weights, dtype, position, prompt, layers
        print(f"  {store.folder.relative_to(dest) if store.folder != dest else '.'}: "
              f"{len(store.done_ids())} rows in {len(store.chunks())} chunks")
    if stimuli is not None:
        ext = load_extraction(dest, stimuli)  # raises naming missing ids
        print(f"complete: all {len(ext.ids)} stimuli load (sources {', '.join(ext.acts)}; "
              f"{len(ext.layers)} layers; model {ext.manifest.get('model')})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path, help="the activation store (…/activations/<prompt>)")
    ap.add_argument("--from", dest="sources", nargs="*", type=Path, default=[],
                    help="store folders from other machines whose shard-*-of-* to copy in")
    ap.add_argument("--sets", nargs="+", default=["set_a", "set_b", "set_b_control", "set_c"],
                    help="shipped sets that must all be present (as extracted by 01)")
    ap.add_argument("--stimuli", default=None, metavar="PATH.jsonl",
                    help="check against your own stimulus file instead of --sets")
    ap.add_argument("--limit", type=int, default=None, help="as the extraction's --limit")
    ap.add_argument("--no-check", action="store_true", help="copy only; skip the completeness check")
    args = ap.parse_args(argv)
    try:
        args.store.mkdir(parents=True, exist_ok=True)
        for src in args.sources:
            copied, same = copy_shards(src, args.store)
            print(f"{src}: {copied} chunks copied, {same} already present")
        stimuli = None if args.no_check else select_stimuli(args.stimuli, args.sets, args.limit)
        print(f"{args.store}:")
        check(args.store, stimuli)
    except LLMCTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("experiments read this folder directly (load_extraction merges shard-* sub-folders)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
