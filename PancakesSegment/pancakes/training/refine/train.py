"""Train the click refiner and export it as TorchScript.

    python -m pancakes.training.refine.train --out runs/refine [--minutes 25] [--resume]

Each iteration draws a batch of (image, target) examples with a seed for each: about
``--pancakes-share`` of them the best label the protocol model (``--pancakes``, the
shipped pancakes.pt by default) gives that image, the rest perturbed truth
(pancakes.training.refine.seeds); then it runs ``--steps-per-sample`` correction steps: a
simulated click on the current error (largest error component's centre, or a random
error pixel), a forward pass, Dice + BCE against the target, then the prediction is
detached and fed back as the next step's "previous" channel. ``--warm-clicks W`` first
plays 1..W clicks without gradients in a share (``--warm-share``) of the samples, so
training also sees the states of later clicks. ``--real-share`` sets how many examples come
from the real TRAIN bank rather than the synthetic generator; ``--ema D`` validates and
exports an exponential moving average of the weights (decay D per iteration), which
smooths out where a small-batch run happens to stop. Writes OUT/train.log,
OUT/last.ckpt (resumable) and OUT/refine.pt (TorchScript with metadata). Copy
refine.pt to model_weights/ only when benchmarks/bench_refine.py shows clicks help.
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ...devices import resolve_device
from ...superpixel_pooling import available as superpixels_available
from ...model_file import default_metadata, save_torchscript
from ..checkpoint import save_checkpoint  # atomic, shared with the Pancakes trainer
from ...refine.clicks import CLICK_SIGMA
from .data import ExampleSource, PancakesSeedPool
from .options import parse
from ...modeling.refine_net import RefineNet
from .parallel import SessionWorkers
from .portable_weights import eager_pancakes, init_weights
from .seeds import perturbed_seed
from ..widen import widen_refine_net
from .prior_batches import BatchPriors, batch_prior, stack_priors
from .simulate import click_curves, model_input, seed_probability
from ...refine.label_prior import PRIOR_BIAS, PRIOR_WEIGHT

P_NO_FIRST_CLICK = 0.1  # some steps without clicks: propagation to a neighbour slice has none
P_RANDOM_CLICK = 0.3
VAL_EXAMPLES = 48
VAL_SEED = 12345


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits, target [N, H, W] -> scalar: mean soft Dice loss + mean BCE."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2))
    soft = 1 - (2 * inter + 1) / (p.sum((1, 2)) + target.sum((1, 2)) + 1)
    return soft.mean() + bce


def draw_batch(source, rng: np.random.Generator, n: int,
               pool: Optional[PancakesSeedPool] = None, share: float = 0.0):
    """-> images float32 [n, S, S], targets bool, seeds bool (and, from a pool ``with_prior``, the batch's label
    priors: prior_batches.stack_priors).

    ``source``: an ExampleSource, or SessionWorkers drawing from one in parallel.

    With a ``pool``, each example's seed is a real Pancakes label with probability
    ``share`` (those examples come from the pool), otherwise perturbed truth.
    """
    n_pancakes = int(rng.binomial(n, share)) if pool is not None and share > 0 else 0
    pairs = pool.take(rng, n_pancakes) if n_pancakes else []
    exs = [p[0] for p in pairs] + source.draw_many(rng, n - n_pancakes)
    seeds = [p[1] for p in pairs] + [perturbed_seed(e.target, e.labelmap, rng) for e in exs[n_pancakes:]]
    batch = np.stack([e.image for e in exs]), np.stack([e.target for e in exs]), np.stack(seeds)
    if pool is None or not pool.with_prior:
        return batch
    return (*batch, stack_priors([p[2] for p in pairs] + [None] * (n - n_pancakes), batch[0].shape[1:]))


def pancakes_pool(path: Optional[str], source, log, device: str = "cpu",
                  size: int = 32, superpixels: bool = True, core: Optional[float] = None,
                  with_prior: bool = False) -> Optional[PancakesSeedPool]:
    """A seed pool around the protocol model at ``path`` (None: the bundled one; FILE.state: a
    ``save_pancakes_state`` file), decoding with or without superpixel pooling, seeding with the picked
    label or (``core``) its confident core; None if it is missing."""
    from ...engine import Pancakes, bundled_model_path

    try:
        if path is not None and str(path).endswith(".state"):
            model = eager_pancakes(path, device)
        else:
            model = Pancakes.load(path or bundled_model_path(), device=device)
    except Exception as exc:  # no model file: train on perturbed seeds only, and say so
        log(f"[refine] no Pancakes model for seeds ({exc}); perturbed seeds only")
        return None
    model.set_superpixels(superpixels)
    log(f"[refine] Pancakes seeds decoded with adaptation {model.adapt:g}, coarse protocol "
        f"{'on' if model.coarse else 'off'}, superpixel pooling {'on' if model.superpixels else 'off'}, "
        f"seeds {'the whole label' if core is None else f'its core (probability >= {core:g})'}")
    return PancakesSeedPool(source, model, size=size, core=core, with_prior=with_prior)


def check_seed_decode(args) -> None:
    """The product's seeds are pooled in superpixels (pancakes.superpixel_pooling, scikit-image). Without
    scikit-image the engine would quietly decode unpooled seeds, and the refiner would learn from
    seeds unlike the ones it gets: refuse instead, with the way out."""
    if args.pancakes_share > 0 and args.seed_superpixels and not superpixels_available():
        raise SystemExit("pancakes.training.refine.train: scikit-image is not installed, so Pancakes seeds cannot be "
                         "pooled in superpixels as the product pools them; install scikit-image, or pass "
                         "--seed-superpixels 0 to train on unpooled seeds")


def warm_start(net: RefineNet, images: np.ndarray, targets: np.ndarray, seeds: np.ndarray,
               counts: np.ndarray, rng: np.random.Generator, workers: Optional[SessionWorkers] = None,
               seed_prior: float = 1.0, priors: BatchPriors = None):
    """Play ``counts[i]`` clicks of session i without gradients -> (pos, neg, masks, previous).

    images float [N, S, S]; targets, seeds bool [N, S, S]; counts int [N].
    Returns the click lists, bool masks [N, S, S] and float32 previous probabilities
    [N, S, S] after those clicks (seed_probability(seed, seed_prior) where counts[i] is 0). Training
    sessions of only ``steps`` clicks never show the network the states of clicks 4-10,
    where the plateau is decided; this reaches them for the price of forward passes.
    ``workers`` simulate the clicks (None: in-process); ``priors``: the label priors (prior_batches).
    """
    workers = workers or SessionWorkers()
    n = images.shape[0]
    pos: List[list] = [[] for _ in range(n)]
    neg: List[list] = [[] for _ in range(n)]
    masks, previous = seeds.copy(), seed_probability(seeds, seed_prior)
    device = next(net.parameters()).device
    for t in range(int(counts.max(initial=0))):
        active = np.flatnonzero(counts > t)
        _add_clicks(workers.next_clicks(masks[active], targets[active], rng, P_RANDOM_CLICK), active, pos, neg)
        with torch.no_grad():
            x = model_input(images[active], seeds[active], [pos[i] for i in active], [neg[i] for i in active],
                            previous[active], device)
            logits = net(x)[:, 0].cpu() + batch_prior(priors, pos, active)
        masks[active], previous[active] = (logits > 0).numpy(), torch.sigmoid(logits).numpy()
    return pos, neg, masks, previous


def _add_clicks(clicks: list, sessions: np.ndarray, pos: List[list], neg: List[list]) -> None:
    """Append each session's new click (row, col, positive) or None to its positive or negative list."""
    for i, click in zip(sessions, clicks):
        if click is not None:
            (pos if click[2] else neg)[i].append((float(click[0]), float(click[1])))


def train_iteration(net: RefineNet, opt: torch.optim.Optimizer, images: np.ndarray, targets: np.ndarray,
                    seeds: np.ndarray, steps: int, rng: np.random.Generator, warm_clicks: int = 0,
                    warm_share: float = 0.5, workers: Optional[SessionWorkers] = None,
                    seed_prior: float = 1.0, priors: BatchPriors = None) -> float:
    """One batch of ``steps`` click-and-refine steps; returns the mean loss.

    With ``warm_clicks`` > 0, a ``warm_share`` of the sessions first play 1..warm_clicks
    clicks (uniform) without gradients (``warm_start``), so the graded steps cover later
    clicks too; the others start at their seed, so the first clicks keep their weight.
    ``workers`` simulate the clicks (None: in-process); ``seed_prior`` as in seed_probability; ``priors``:
    the label priors (prior_batches), added to every update's logits, the loss's included.
    """
    workers = workers or SessionWorkers()
    n = images.shape[0]
    counts = np.zeros(n, int)
    if warm_clicks > 0:
        counts = np.where(rng.random(n) < warm_share, rng.integers(1, warm_clicks + 1, n), 0)
    pos, neg, masks, previous = warm_start(net, images, targets, seeds, counts, rng, workers, seed_prior, priors)
    device = next(net.parameters()).device
    target_t = torch.from_numpy(targets.astype(np.float32)).to(device)
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for t in range(steps):
        clicking = np.arange(n)
        if t == 0:  # some sessions' first step has no click, as propagated slices have none
            clicking = clicking[(counts > 0) | (rng.random(n) >= P_NO_FIRST_CLICK)]
        _add_clicks(workers.next_clicks(masks[clicking], targets[clicking], rng, P_RANDOM_CLICK), clicking,
                    pos, neg)
        logits = net(model_input(images, seeds, pos, neg, previous, device))[:, 0]
        logits = logits + batch_prior(priors, pos, None, device)
        loss = dice_bce(logits, target_t) / steps
        loss.backward()  # per step: steps are detached from each other, so graphs need not pile up
        total += float(loss.detach())
        detached = logits.detach().cpu()
        masks, previous = (detached > 0).numpy(), torch.sigmoid(detached).numpy()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    return total


def validate(net: RefineNet, val, seed_prior: float = 1.0) -> dict:
    net.eval()
    curves = click_curves(net, *val, n_clicks=8, device=next(net.parameters()).device, seed_prior=seed_prior)
    net.train()
    return {f"dice@{c}": round(float(curves[:, c].mean()), 4) for c in (0, 1, 3, 5, 8)}


def export(net: RefineNet, path: Path, state: dict, args, val_scores: dict, data: str) -> None:
    meta = default_metadata(
        net, kind="refine", input_channels=5,
        channels=["image", "seed mask", "positive clicks", "negative clicks", "previous probability"],
        click_sigma_px=CLICK_SIGMA, seed_prior=args.seed_prior,
        click_encoding="Gaussian blob per click, peak 1, max over clicks, in model pixels",
        forward="forward(x: Tensor[N,5,128,128]) -> Tensor[N,1,128,128] logits",
        head="1x1 conv + gain*(2*previous-1) skip",
        architecture={"features": net.features, "levels": net.levels},
        training={"trained": True, "iterations": state["step"], "wall_seconds": round(state["elapsed"]),
                  "batch": args.batch, "steps_per_sample": args.steps_per_sample, "lr": args.lr,
                  "warm_clicks": args.warm_clicks, "warm_share": args.warm_share, "seed_core": args.seed_core,
                  "real_share": args.real_share, "ema": args.ema or None,
                  "label_prior": [PRIOR_WEIGHT, PRIOR_BIAS] if args.label_prior else None,
                  "data": data, "seeds": seeds_note(args),
                  "hardware": (f"{platform.machine()}, {torch.get_num_threads()} thread(s), {args.workers} worker(s), "
                               f"{state.get('device', 'cpu')}"),
                  "init_from": state.get("init_from"),
                  "validation_train_sources": val_scores, "exported": time.strftime("%Y-%m-%d %H:%M:%S")})
    save_torchscript(net, path, meta)  # moves net to the CPU: export is the last thing a run does


def seeds_note(args) -> str:
    if args.pancakes_share <= 0:
        return "perturbed ground truth (pancakes.training.refine.seeds)"
    pooling = "pooled in superpixels" if args.seed_superpixels else "without superpixel pooling"
    core = "" if args.seed_core is None else f"'s core (probability >= {args.seed_core:g})"
    return (f"{args.pancakes_share:.0%} best Pancakes label{core} for the target (M=8, K=20, "
            f"{args.pancakes or 'bundled pancakes.pt'}, {pooling}), the rest perturbed ground truth "
            f"(pancakes.training.refine.seeds)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    check_seed_decode(args)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "train.log", "a")

    def log(**rec) -> None:
        rec = {"time": time.strftime("%H:%M:%S"), **rec}
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
        print(json.dumps(rec), flush=True)

    source = ExampleSource.default(args.synthetic_only, args.templates, log=lambda m: log(msg=m),
                                   real_share=args.real_share)
    data = "synthetic" + ("" if source.real is None else
                          f" + real TRAIN bank ({', '.join(source.real.datasets)}; {args.real_share:.0%} of examples)")
    # Fork the workers before any CUDA work (they only run numpy and CPU torch).
    workers = SessionWorkers(source, args.workers)
    try:
        return _train(args, out, log, source, workers, data)
    finally:
        workers.close()


def _train(args, out: Path, log, source: ExampleSource, workers: SessionWorkers, data: str) -> int:
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    net = RefineNet(args.features, args.levels)
    state = {"step": 0, "elapsed": 0.0, "device": str(device), "init_from": None}
    if args.init:
        weights = init_weights(args.init)
        init_features = int(weights["head.weight"].shape[1])
        if init_features < args.features:  # start where the narrower refiner stands (see widen.py)
            small = RefineNet(init_features, args.levels)
            small.load_state_dict(weights)
            net = widen_refine_net(small, args.features, args.seed)
        else:
            net.load_state_dict(weights)
        state["init_from"] = str(args.init)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    # The average starts at the first step's weights (about the init), so a fine-tune's
    # hot early steps reach it damped.
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(args.ema)) if args.ema > 0 else None
    ckpt = out / "last.ckpt"
    if args.resume and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False, map_location=device)
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        if ema is not None:
            if "ema" not in saved:
                raise SystemExit(f"{ckpt}: --resume with --ema, but the checkpoint holds no average")
            ema.load_state_dict(saved["ema"])
        state = {**saved["state"], "device": str(device)}
        log(msg=f"resumed at iteration {state['step']}, {state['elapsed']:.0f} s")
    rng = np.random.default_rng(args.seed + state["step"])
    pool = None
    if args.pancakes_share > 0:  # seeds in batches of about the training batch, on the training device
        pool = pancakes_pool(args.pancakes, workers, lambda m: log(msg=m), str(device), max(32, 2 * args.batch),
                             bool(args.seed_superpixels), args.seed_core, bool(args.label_prior))
    if pool is None:
        args.pancakes_share = 0.0
    # Validation (training sources only) mixes seeds like training, from its own pool.
    # Small (refilled as needed) so it segments little more than the ~share * VAL_EXAMPLES it serves.
    val_pool = None if pool is None else PancakesSeedPool(source, pool.model, size=8, uses=1, core=args.seed_core)
    val = draw_batch(source, np.random.default_rng(VAL_SEED), VAL_EXAMPLES, val_pool, args.pancakes_share)[:3]
    budget = args.minutes * 60
    start, last_val, last_ckpt = time.time() - state["elapsed"], time.time(), time.time()
    def kept() -> RefineNet:
        """The weights that are validated and exported: the average when there is one."""
        return net if ema is None else ema.module

    def checkpoint() -> dict:
        saved = {"net": net.state_dict(), "opt": opt.state_dict(), "state": state}
        return saved if ema is None else {**saved, "ema": ema.state_dict()}

    scores = validate(kept(), val, args.seed_prior)
    log(step=state["step"], val=scores, data=data, params=sum(p.numel() for p in net.parameters()))
    losses: List[float] = []
    while state["elapsed"] < budget and (args.max_iterations is None or state["step"] < args.max_iterations):
        frac = state["elapsed"] / budget
        warm = min(1.0, (state["step"] + 1) / 100)
        for g in opt.param_groups:  # cosine over the time budget, down to lr / 10
            g["lr"] = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        batch = draw_batch(workers, rng, args.batch, pool, args.pancakes_share)
        losses.append(train_iteration(net, opt, *batch[:3], args.steps_per_sample, rng, args.warm_clicks,
                                      args.warm_share, workers, args.seed_prior, batch[3] if len(batch) > 3 else None))
        if ema is not None:
            ema.update_parameters(net)
        state["step"] += 1
        state["elapsed"] = time.time() - start
        if state["step"] % 50 == 0:
            log(step=state["step"], loss=round(float(np.mean(losses)), 4), elapsed=round(state["elapsed"]),
                lr=round(opt.param_groups[0]["lr"], 6), pancakes_images=0 if pool is None else pool.segmented)
            losses = []
        if time.time() - last_ckpt > 120:
            save_checkpoint(ckpt, checkpoint())
            last_ckpt = time.time()
        if time.time() - last_val > args.val_every:
            scores = validate(kept(), val, args.seed_prior)
            log(step=state["step"], val=scores)
            last_val = time.time()
    save_checkpoint(ckpt, checkpoint())
    scores = validate(kept(), val, args.seed_prior)
    log(step=state["step"], val=scores, done=True)
    export(kept(), out / "refine.pt", state, args, scores, data)
    log(msg=f"exported {out / 'refine.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
