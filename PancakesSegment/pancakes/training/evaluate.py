"""Development evaluation: Set Dice of the model against training-free baselines.

    pancakes-eval [--model model_weights/pancakes.pt] [--sets 40] [--S 1 2 3 5] [--compare runs/r8/pancakes.pt]

prints, in one run, Set Dice at each S on the held-out development sets for the
model at M=8, K=20, the baselines of pancakes.evaluation.baselines, the faithful-head model
if one is given, and the trivial one-label answer; with label usage per method,
so that a collapse (one label over everything) shows at a glance.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch

from ..coarse_protocol import apply_coarse, has_queries
from ..superpixel_pooling import pool_in_superpixels
from ..evaluation.metrics import label_usage, per_image_scores, set_dice
from .intervals import format_intervals
from .taskset import TaskSet

MapFn = Callable[[np.ndarray, int, int], np.ndarray]  # images [S,H,W] -> labels [S,M,H,W]


def net_maps(net: torch.nn.Module, device: torch.device, adapt: float = 0.0, coarse: bool = False,
             intensity: bool = True, superpixels: bool = False) -> MapFn:
    """Label maps from an eager or scripted PancakesNet on already normalised 128^2 images.

    ``adapt`` > 0 decodes with per-image prototype adaptation, and ``coarse`` merges the
    last protocol into figure and ground, sharpened by each image's intensities
    (pancakes.coarse_protocol, pancakes.coarse_intensity), as the engine does by default;
    ``intensity`` False keeps the merge but leaves out the intensity step (for a paired comparison);
    ``superpixels`` pools every protocol within each image's superpixels (pancakes.superpixel_pooling),
    as the engine does by default.
    """
    groups: dict = {}

    def fn(images: np.ndarray, M: int, K: int) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None].to(device)
        with torch.no_grad():
            feats = net.encode(x)
            if adapt > 0:
                logits = net.decode_logits_adapted(feats, M, K, [], adapt)
            else:
                logits = net.decode_logits(feats, M, K, [])
            if coarse:
                apply_coarse(net, logits, M, K, [], groups, images=x if intensity else None)
            if superpixels:
                logits = pool_in_superpixels(logits, x)
        return (logits.argmax(2) + 1).cpu().numpy()

    return fn


def evaluate_methods(sets: Dict[int, List[TaskSet]], methods: Dict[str, MapFn], M: int = 8, K: int = 20,
                     progress: bool = False) -> List[dict]:
    """One row per (method, S, dataset): mean Set Dice, labels used per protocol, largest label share.

    Each row also keeps its per-set Set Dice under "scores" and each set's ``TaskSet.key`` under "keys"
    (for bootstrap intervals that resample distinct sets), and "distinct", how many of its sets differ.
    ``progress`` shows a bar over all (method, set) pairs on stderr (a 160-set run takes minutes).
    """
    from tqdm import tqdm

    rows = []
    bar = tqdm(total=len(methods) * sum(len(t) for t in sets.values()), unit="set", desc="pancakes-eval",
               file=sys.stderr, disable=not progress)
    for name, fn in methods.items():
        for S, tasks in sets.items():
            bar.set_postfix_str(f"{name}, S={S}")
            per_ds = defaultdict(list)
            alone = defaultdict(list)  # each image's own best Dice: S=1 on the same images
            usage = defaultdict(list)
            keys = defaultdict(list)
            for task in tasks:
                keys[task.dataset].append(task.key())
                maps = fn(task.images, M, K)
                target = task.labelmaps == task.label
                score, _, _ = set_dice(maps, target)
                per_ds[task.dataset].append(score)
                alone[task.dataset].append(float(per_image_scores(maps, target, K=K).reshape(len(maps), -1).max(1).mean()))
                u = label_usage(maps)
                usage[task.dataset].append((u["labels_per_protocol"], u["largest_share"]))
                bar.update()
            for ds in sorted(per_ds):
                lp, ls = np.mean(usage[ds], axis=0)
                rows.append({"method": name, "S": S, "dataset": ds, "set_dice": float(np.mean(per_ds[ds])),
                             "n": len(per_ds[ds]), "labels_per_protocol": float(lp), "largest_share": float(ls),
                             "alone": float(np.mean(alone[ds])), "scores": per_ds[ds], "keys": keys[ds],
                             "distinct": len(set(keys[ds]))})
    bar.close()
    return rows


def summarise(rows: List[dict], key: str = "set_dice") -> Dict[str, Dict[int, float]]:
    """method -> S -> ``key`` (Set Dice by default) averaged over datasets (each dataset weighs the same)."""
    acc: Dict[str, Dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[r["method"]][r["S"]].append(r[key])
    return {m: {s: float(np.mean(v)) for s, v in by_s.items()} for m, by_s in acc.items()}


def format_tables(rows: List[dict], S_values: Sequence[int]) -> str:
    """Markdown: the summary table, usage per method, then the per-dataset table."""
    summ = summarise(rows)
    alone = summarise(rows, "alone")
    lines = ["| method | " + " | ".join(f"S={s}" for s in S_values) + " | S=5 / S=1 | S=5 / S=1 on the same images |",
             "|---|" + "---|" * (len(S_values) + 2)]
    for m, by_s in summ.items():
        ratio = by_s.get(5, float("nan")) / by_s[1] if by_s.get(1) else float("nan")
        # The sets drawn at S=5 are not those at S=1 (a label must be present in all five
        # images, which favours some volumes), so the first ratio mixes consistency with
        # what was drawn; the second compares each S=5 set with its own images scored alone.
        same = by_s.get(5, float("nan")) / alone[m][5] if alone[m].get(5) else float("nan")
        lines.append(f"| {m} | " + " | ".join(f"{by_s.get(s, float('nan')):.3f}" for s in S_values)
                     + f" | {ratio:.2f} | {same:.2f} |")
    lines += ["", "| method | labels used per protocol | largest label share |", "|---|---|---|"]
    for m in summ:
        rs = [r for r in rows if r["method"] == m]
        lines.append(f"| {m} | {np.mean([r['labels_per_protocol'] for r in rs]):.1f} | {np.mean([r['largest_share'] for r in rs]):.2f} |")
    lines += ["", "| method | dataset | " + " | ".join(f"S={s}" for s in S_values) + " |",
              "|---|---|" + "---|" * len(S_values)]
    for m in summ:
        for ds in sorted({r["dataset"] for r in rows}):
            vals = {r["S"]: r["set_dice"] for r in rows if r["method"] == m and r["dataset"] == ds}
            lines.append(f"| {m} | {ds} | " + " | ".join(f"{vals[s]:.3f}" if s in vals else "-" for s in S_values) + " |")
    return "\n".join(lines)


def kind_means(rows: List[dict], method: str) -> Dict[str, Dict[int, float]]:
    """kind -> S -> Set Dice of ``method``, each source of a kind weighing the same
    (rows whose dataset is "<kind>:<source>", as task_kinds draws them)."""
    from .task_kinds import kind_of

    acc: Dict[str, Dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["method"] == method:
            acc[kind_of(r["dataset"])][r["S"]].append(r["set_dice"])
    return {k: {s: float(np.mean(v)) for s, v in by_s.items()} for k, by_s in acc.items()}


def quick_dev_eval(sets: Dict[int, List[TaskSet]], M: int = 8, K: int = 20, adapt: float = 0.0,
                   coarse: bool = False) -> Callable:
    """The periodic evaluation the trainer runs: score = mean Set Dice over S and datasets
    (decoded with the adaptation strength the run trains with, and the coarse last protocol when it
    trains with one). Sets drawn by task kind
    (dataset "<kind>:<source>") are scored per kind, and the score weighs each kind the same.
    """

    def evaluate(net: torch.nn.Module, device: torch.device) -> dict:
        was = net.training
        net.eval()
        rows = evaluate_methods(sets, {"model": net_maps(net, device, adapt, coarse)}, M, K)
        net.train(was)
        summ = summarise(rows)["model"]
        out = {f"dice_S{s}": v for s, v in summ.items()}
        out["score"] = float(np.mean(list(summ.values())))
        if all(":" in r["dataset"] for r in rows):
            kinds = kind_means(rows, "model")
            out.update({f"kind_{k}": float(np.mean(list(v.values()))) for k, v in kinds.items()})
            out["score"] = float(np.mean([out[f"kind_{k}"] for k in kinds]))
        out["labels_per_protocol"] = float(np.mean([r["labels_per_protocol"] for r in rows]))
        out["largest_share"] = float(np.mean([r["largest_share"] for r in rows]))
        return out

    return evaluate


def save_rows(path: str, rows: List[dict], draw: dict) -> None:
    """Per-set scores and the draw they were scored on, as JSON (written atomically)."""
    import json
    import os

    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"draw": draw, "rows": rows}, f)
    os.replace(tmp, path)


def load_rows(paths: Sequence[str], draw: dict) -> List[dict]:
    """Rows saved by ``save_rows``; raises ValueError when one was scored on another draw."""
    import json

    out: List[dict] = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("draw") != draw:
            raise ValueError(f"{path}: scored on another draw ({data.get('draw')}), not {draw}")
        out += data["rows"]
    return out


def model_methods(rows: List[dict]) -> List[str]:
    """The networks among the rows' methods, in order: every method that is not a baseline.

    Why not the "pancakes" prefix: ``--name`` may call the model anything, and a model row
    that is not recognised left the kind report without a reference model (IndexError).
    """
    from ..evaluation.baselines import BASELINES
    from .task_kinds import OTSU_2

    baselines = set(BASELINES) | {OTSU_2}
    return [m for m in dict.fromkeys(r["method"] for r in rows)
            if m not in baselines and not m.startswith("trivial")]


def main(argv: Sequence[str] = None) -> int:
    from ..evaluation.baselines import BASELINES, trivial
    from ..errors import ModelFileError, PancakesInputError
    from ..model_file import load_torchscript
    from .real_data import DataUnavailableError, dev_sets

    ap = argparse.ArgumentParser(prog="pancakes-eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="TorchScript model (default: the bundled one)")
    ap.add_argument("--faithful", default=None, help="a model trained with the paper-faithful head, for context")
    ap.add_argument("--compare", nargs="+", default=[], metavar="MODEL",
                    help="other model files scored on the same sets (e.g. a new checkpoint against the shipped one)")
    ap.add_argument("--name", default="pancakes",
                    help="the main model's name in the tables (start it with 'pancakes'; tell two models apart "
                    "when one comes from --rows-in)")
    ap.add_argument("--sets", type=int, default=40, help="development sets per S (default 40)")
    ap.add_argument("--S", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--M", type=int, default=8)
    ap.add_argument("--K", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--adapt", type=float, default=None, metavar="S",
                    help="decode-time prototype adaptation strength for every model (default: the engine's, 1); "
                    "when above 0, the main model is also scored without it, on the same sets")
    ap.add_argument("--coarse", type=int, choices=[0, 1], default=None,
                    help="1: the last protocol is merged into figure and ground (the engine's default); 0: every "
                    "protocol fine. When 1, the main model is also scored with fine protocols only, and with the "
                    "merge but without its intensity step, on the same sets")
    ap.add_argument("--superpixels", type=int, choices=[0, 1], default=None,
                    help="1: every protocol's boundaries follow each image's edges (the engine's default); 0: as the "
                    "network draws them. When 1, the main model is also scored without it, on the same sets")
    ap.add_argument("--intervals", type=int, default=2000, metavar="DRAWS",
                    help="bootstrap draws for the 95%% intervals of the models' figures (0: none; default 2000)")
    ap.add_argument("--by-kind", action="store_true",
                    help="draw the sets by task kind (figure/ground, coarse, fine parcels, small; --sets per S "
                    "split evenly over the kinds) and report each kind against its baselines")
    ap.add_argument("--part", choices=["select", "test", "all"], default=None,
                    help="half of the dev split to draw from: 'select' (checkpoint choice) or 'test' (reported "
                    "figures); default 'test' with --by-kind, else all of it")
    ap.add_argument("--rows-out", default=None, metavar="JSON",
                    help="save every method's per-set scores, to add a model later with --rows-in")
    ap.add_argument("--rows-in", nargs="+", default=[], metavar="JSON",
                    help="scores saved by --rows-out on the same sets (same --sets, --S, --seed, --part, "
                    "--by-kind): their methods join the tables without being scored again")
    ap.add_argument("--with-repeats", action="store_true",
                    help="with --by-kind, let a source give the same set again, as every draw before 2026-12-07 did "
                    "(to join rows saved then); by default each set is new, and when a source with few slices of a "
                    "structure runs out, the kind's other sources take its turns")
    ap.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    ap.add_argument("--markdown", default=None, help="also write the tables to this file")
    args = ap.parse_args(argv)
    try:
        from ..engine import DEFAULT_ADAPT, DEFAULT_COARSE, DEFAULT_SUPERPIXELS, bundled_model_path, check_adapt

        adapt = check_adapt(DEFAULT_ADAPT if args.adapt is None else args.adapt)
        coarse = bool(DEFAULT_COARSE if args.coarse is None else args.coarse)
        pooled = bool(DEFAULT_SUPERPIXELS if args.superpixels is None else args.superpixels)
        path = args.model or bundled_model_path()
        module, meta = load_torchscript(path, "cpu")
        others = {f"pancakes ({other})": load_torchscript(other, "cpu")[0] for other in args.compare}
        part = args.part or ("test" if args.by_kind else "all")
        draw = {"sets": args.sets, "S": args.S, "seed": args.seed, "part": part, "by_kind": args.by_kind}
        distinct = args.by_kind and not args.with_repeats
        if distinct:
            # Rows saved from draws with repeats, or before a spent source's turns went to the kind's
            # other sources (True, 2026-12-07), are another draw.
            draw["distinct"] = "refilled"
        if args.by_kind:
            from .task_kinds import KINDS, all_kind_sets

            sets = {s: all_kind_sets(s, args.sets // len(KINDS), seed=args.seed + s,
                                     part=None if part == "all" else part, distinct=distinct) for s in args.S}
        else:
            sets = {s: dev_sets(s, args.sets, seed=args.seed + s, part=None if part == "all" else part)
                    for s in args.S}
        earlier = load_rows(args.rows_in, draw)
        for name, m in [(path, module), *zip(args.compare, others.values())]:
            if adapt > 0 and not hasattr(m, "decode_logits_adapted"):
                raise ModelFileError(f"{name}: exported before decode-time adaptation existed; "
                                     "re-export it or pass --adapt 0")
            if coarse and not has_queries(m):
                raise ModelFileError(f"{name}: its head has no label queries to merge; pass --coarse 0")
    except (ModelFileError, DataUnavailableError, PancakesInputError, ValueError, OSError) as exc:
        print(f"pancakes-eval: {exc}", file=sys.stderr)
        return 2
    cpu = torch.device("cpu")
    methods: Dict[str, MapFn] = {args.name: net_maps(module, cpu, adapt, coarse, superpixels=pooled)}
    for name, other in others.items():
        methods[name] = net_maps(other, cpu, adapt, coarse, superpixels=pooled)
    if pooled:
        methods[f"{args.name} (without superpixel pooling)"] = net_maps(module, cpu, adapt, coarse)
    if adapt > 0:
        methods[f"{args.name} (no adaptation)"] = net_maps(module, cpu, coarse=coarse)
    if coarse:
        methods[f"{args.name} (fine protocols only)"] = net_maps(module, cpu, adapt)
        methods[f"{args.name} (merge without intensity step)"] = net_maps(module, cpu, adapt, coarse, intensity=False)
    if args.faithful:
        methods["pancakes (faithful head)"] = net_maps(load_torchscript(args.faithful, "cpu")[0], cpu)
    if not args.no_baselines:
        for name, fn in BASELINES.items():
            if name == "trivial":
                continue  # added below under a clearer name
            methods[name] = lambda im, M, K, fn=fn: fn(im, M, K)
        if args.by_kind:
            from .task_kinds import OTSU_2

            # The bar the issue sets for figure/ground: one map of two classes, whatever M and K.
            methods[OTSU_2] = lambda im, M, K: BASELINES["multi_otsu"](im, 1, 2)
    methods["trivial (one label)"] = lambda im, M, K: trivial(im, M, K)
    known = {r["method"] for r in earlier}
    methods = {k: v for k, v in methods.items() if k not in known}
    t0 = time.time()
    rows = earlier + evaluate_methods(sets, methods, args.M, args.K, progress=not args.quiet)
    if args.rows_out:
        save_rows(args.rows_out, rows, draw)
    models = model_methods(rows)
    if args.by_kind:
        from .kind_report import format_kind_report

        text = format_kind_report(rows, args.S, models, n_boot=args.intervals, seed=args.seed)
    else:
        text = format_tables(rows, args.S)
    if args.intervals and not args.by_kind:
        text += "\n\n" + format_intervals(rows, models, args.S, n_boot=args.intervals, seed=args.seed)
    header = (f"Development Set Dice, M={args.M}, K={args.K}, {args.sets} sets per S, seed {args.seed}, "
              f"dev part {part}{', by task kind' if args.by_kind else ''}, "
              f"model {path}, adaptation {adapt:g}, coarse protocol {int(coarse)}, superpixel pooling {int(pooled)} "
              f"({time.time() - t0:.0f} s)\n\n")
    print(header + text)
    if args.markdown:
        from pathlib import Path

        Path(args.markdown).write_text(header + text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
