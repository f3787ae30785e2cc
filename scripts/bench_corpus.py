"""Corpus simulation speed per modality on this machine: one process, one sample at a time (the
corpus builder runs one such process per core). Writes docs/bench_corpus.json and prints a table.

    .venv/bin/python scripts/bench_corpus.py [--per-modality 8]
"""

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import torch

from emzoo.data.corpus import MODALITIES, MODALITY_CYCLE, simulate_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-modality", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("docs/bench_corpus.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seconds = defaultdict(list)
    index = 0
    while min(len(seconds[m]) for m in MODALITIES) < args.per_modality:
        modality = MODALITY_CYCLE[index % len(MODALITY_CYCLE)]
        if len(seconds[modality]) < args.per_modality:
            start = time.perf_counter()
            simulate_sample(99, "test", index, 256)
            seconds[modality].append(time.perf_counter() - start)
        index += 1
    rows = {m: round(len(s) / sum(s), 3) for m, s in seconds.items()}
    mix = sum(1 / rows[m] for m in MODALITY_CYCLE) / len(MODALITY_CYCLE)  # seconds per sample in the corpus mix
    result = {
        "images_per_second_one_process": rows,
        "corpus_mix_images_per_second": round(os.cpu_count() / mix, 2),
        "cores": os.cpu_count(),
        "size": 256,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print("| Modality | images/s (one process, 256^2 with all labels) |\n|---|---|")
    for m in MODALITIES:
        print(f"| {m} | {rows[m]} |")
    print(f"\nCorpus mix on {os.cpu_count()} processes: {result['corpus_mix_images_per_second']} images/s")


if __name__ == "__main__":
    main()
