"""The long run of the reader fuzzer (Testing/Python/reader_fuzz.py): N seeded mutated files per run.

Prints a table of outcomes per format and mutation kind, then every defect (an exception other than
the one-line input error, a signal, a hang over --timeout seconds, RSS over --rss-limit MiB) with its
file, which is kept in --keep for reproduction. CI runs 200 cases (Testing/Python/test_reader_fuzz.py).

Usage::

    python benchmarks/fuzz_readers.py [--cases 3000] [--seed 1] [--model PATH] [--keep DIR]
"""
from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing" / "Python"))
sys.path.insert(0, str(ROOT / "PancakesSegment"))

import reader_fuzz as rf  # noqa: E402


def tiny_model(folder: Path) -> Path:
    """A small random model like the tests' fixture: readers, not the network, are under test."""
    import torch

    from pancakes.model_file import default_metadata, save_torchscript
    from pancakes.modeling import PancakesNet

    torch.manual_seed(0)
    net = PancakesNet(features=8, levels=3, hidden=16)
    path = folder / "random_pancakes.pt"
    save_torchscript(net, path, default_metadata(net, training={"trained": False, "note": "fuzz fixture"}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", type=Path, help="model file (default: a tiny random one)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--rss-limit", type=float, default=3000.0, help="MiB of the driver process")
    parser.add_argument("--keep", type=Path, default=Path("fuzz_defects"), help="where defect files are copied")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or tiny_model(work)
        start = time.perf_counter()
        cases = rf.make_cases(work / "cases", args.cases, args.seed)
        results = rf.run_cases(cases, str(model), work, args.timeout, args.rss_limit)
        took = time.perf_counter() - start
        table = collections.Counter((r.case.fmt, r.case.kind, r.outcome) for r in results)
        outcomes = sorted({r.outcome for r in results})
        print(f"{len(results)} cases, seed {args.seed}, {took:.0f} s ({took / len(results) * 1000:.0f} ms a case)")
        print("| format | mutation | " + " | ".join(outcomes) + " |")
        print("|---|---|" + "---|" * len(outcomes))
        for fmt in rf.FORMATS:
            for kind in rf.KINDS:
                print(f"| {fmt} | {kind} | " + " | ".join(str(table[fmt, kind, o]) for o in outcomes) + " |")
        defects = [r for r in results if r.outcome not in ("segmented", "error")]
        print(f"\n{len(defects)} defects")
        if defects:
            args.keep.mkdir(parents=True, exist_ok=True)
        for r in defects:
            kept = shutil.copy(r.case.path, args.keep)
            print(f"- {kept} ({r.case.kind}): {r.outcome} {r.detail}")


if __name__ == "__main__":
    main()
