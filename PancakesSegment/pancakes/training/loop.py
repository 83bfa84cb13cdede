"""The training loop: sample sets, apply the Pancakes loss, evaluate, checkpoint.

Everything a run needs to continue lives in ``run_dir/last.ckpt``: weights,
optimiser, step, elapsed time, RNG states. ``best.ckpt`` holds the weights with
the best development score so far.
"""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..coarse_protocol import apply_coarse
from ..devices import resolve_device
from ..modeling import PancakesNet
from .batches import set_to_tensors
from .checkpoint import load_checkpoint, net_from_model_file, save_checkpoint
from .config import TrainConfig
from .distill import distill_kl, load_teacher, teacher_logits
from .widen import widen_pancakes_net
from .granularity import is_coarse, regranulate, zone_protocols
from .loss import pancakes_loss
from .small_lesions import insert_lesions


# The config keys that shape the network (a model file's "architecture").
ARCHITECTURE = ("features", "levels", "hidden", "emb_half")


def build_net(cfg: TrainConfig) -> PancakesNet:
    return PancakesNet(cfg.features, cfg.levels, cfg.emb_half, "dot", cfg.hidden)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay from lr to lr_min over cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * frac))


class Trainer:
    """Owns the net, optimiser and data sources of one run (see module docstring).

    sample_set(rng, S) -> TaskSet | None is the data source (mix of synthetic
    and real sets); augment(images, labels, generator) the set augmentation;
    evaluate(net, device) -> dict with a 'score' key, run every eval_every steps.
    """

    def __init__(self, cfg: TrainConfig, run_dir: Path, sample_set: Callable, augment: Optional[Callable],
                 evaluate: Optional[Callable] = None, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sample_set = sample_set
        self.augment = augment
        self.evaluate = evaluate
        self.log = log
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self._use_net(build_net(cfg))
        self.step = 0
        self.elapsed = 0.0
        self.best_score = -1.0
        self.history: list = []
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.init_from: Optional[str] = None
        self._teacher: Optional[torch.nn.Module] = None

    # ---- state ------------------------------------------------------------
    def init_weights(self, model_file: Path) -> None:
        net, meta = net_from_model_file(model_file)
        # The file's architecture wins over the config's, so a stretch started
        # from shipped weights always continues the same network.
        arch = meta.get("architecture", {})
        for key in ARCHITECTURE:
            if key in arch:
                setattr(self.cfg, key, arch[key])
        if self.cfg.widen_features > self.cfg.features:
            self.log(f"widening the UNet from {self.cfg.features} to {self.cfg.widen_features} features per level "
                     "(same protocols to start with)")
            net = widen_pancakes_net(net, self.cfg.widen_features, self.cfg.seed)
            self.cfg.features = self.cfg.widen_features
        self._use_net(net)
        self.init_from = str(model_file)
        prior = meta.get("training", {})
        self.history.append({"init": str(model_file), "prior_training": prior})
        self.log(f"initialised from {model_file} (previous training: {prior.get('steps_total', '?')} steps)")

    def state(self) -> Dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                "elapsed": self.elapsed, "best_score": self.best_score, "config": self.cfg.to_dict(),
                "rng": self.rng.bit_generator.state, "gen": self.gen.get_state(), "history": self.history,
                "init_from": self.init_from}

    def _use_net(self, net: PancakesNet) -> None:
        """Train ``net`` from now on, on the trainer's device, with a fresh optimiser."""
        self.net = net.to(self.device)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def resume(self, path: Path) -> None:
        st = load_checkpoint(path)
        saved = st.get("config", {})
        if any(saved.get(k, getattr(self.cfg, k)) != getattr(self.cfg, k) for k in ARCHITECTURE):
            # The checkpoint's network wins (a widened run is wider than its config file says).
            for k in ARCHITECTURE:
                setattr(self.cfg, k, saved.get(k, getattr(self.cfg, k)))
            self._use_net(build_net(self.cfg))
        self.net.load_state_dict(st["net"])
        self.opt.load_state_dict(st["opt"])
        self.step, self.elapsed, self.best_score = st["step"], st["elapsed"], st["best_score"]
        self.rng.bit_generator.state = st["rng"]
        self.gen.set_state(st["gen"])
        self.history = st.get("history", [])
        self.init_from = st.get("init_from")
        self.log(f"resumed from {path} at step {self.step}")

    def teacher(self) -> Optional[torch.nn.Module]:
        """The frozen starting network that ``cfg.distill`` pulls towards (None when it is 0).

        Loaded on first use, so that a resumed run finds it again from its config or its init file.
        """
        if self.cfg.distill <= 0:
            return None
        if self._teacher is None:
            source = self.cfg.distill_from or self.init_from
            if not source:
                raise ValueError("config: distill > 0 needs a teacher: set distill_from or start with --init")
            self._teacher = load_teacher(Path(source), self.device)
            self.log(f"distilling from {source} at weight {self.cfg.distill}")
        return self._teacher

    # ---- one step -----------------------------------------------------------
    def sample_batch(self):
        """Draw sets until one yields targets -> list of (images, targets, M, K, protocols allowed to win)."""
        cfg, rng = self.cfg, self.rng
        size = int(rng.choice(cfg.sizes, p=np.asarray(cfg.size_probs) / sum(cfg.size_probs)))
        out = []
        while len(out) < cfg.sets_per_step:
            S = int(rng.integers(cfg.s_range[0], cfg.s_range[1] + 1))
            task = self.sample_set(rng, S)
            if task is None:
                continue
            if cfg.p_figure or cfg.p_coarse:
                task = regranulate(task, rng, cfg.p_figure, cfg.p_coarse)
            if cfg.p_lesions and rng.random() < cfg.p_lesions:
                task = insert_lesions(task, rng)
            tensors = set_to_tensors(task, rng, size, cfg.max_targets, self.augment, self.gen)
            if tensors is None:
                continue
            M = int(rng.integers(cfg.m_range[0], cfg.m_range[1] + 1))
            K = int(rng.integers(cfg.k_range[0], cfg.k_range[1] + 1))
            allowed = zone_protocols(M, is_coarse(task), cfg.coarse_zone) if cfg.coarse_zone > 0 else None
            out.append((tensors[0], tensors[1], M, K, allowed))
        return out

    def train_step(self) -> dict:
        self.net.train()
        lr = learning_rate(self.cfg, self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        batch = self.sample_batch()
        self.opt.zero_grad(set_to_none=True)
        total, dices, kls = 0.0, [], []
        teacher = self.teacher()
        use_amp = self.cfg.amp and self.device.type == "cuda"
        for images, targets, M, K, allowed in batch:
            images, targets = images.to(self.device), targets.to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                phi = self.net.encode(images)
                if self.cfg.adapt > 0:
                    logits = self.net.decode_logits_adapted(phi, M, K, [], self.cfg.adapt)
                else:
                    logits = self.net.decode_logits(phi, M, K, [])
            kl = None
            if teacher is not None:
                # Before the coarse merge: the pull keeps every protocol's own labels, the last one's too.
                kl = distill_kl(logits, teacher_logits(teacher, images, M, K, self.cfg.adapt))
                kls.append(float(kl.detach()))
            if self.cfg.coarse_train:
                logits, allowed = coarse_last(self.net, logits, M, K, targets.shape[0], allowed)
            loss, info = pancakes_loss(logits, targets, self.cfg.alpha, self.cfg.beta, self.cfg.relax,
                                       self.cfg.n_relax, self.gen, self.cfg.gamma,
                                       self.cfg.entropy_to_targets, allowed)
            if kl is not None:
                loss = loss + self.cfg.distill * kl
            (loss / len(batch)).backward()
            total += float(loss.detach()) / len(batch)
            dices.append(float(info["dice"].mean()))
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        stats = {"loss": total, "dice": float(np.mean(dices)), "lr": lr}
        if kls:
            stats["distill_kl"] = float(np.mean(kls))
        return stats

    # ---- the run ------------------------------------------------------------
    def run(self, on_best: Optional[Callable[["Trainer", dict], None]] = None) -> None:
        cfg = self.cfg
        deadline = time.time() + cfg.minutes * 60 if cfg.minutes else None
        log_path = self.run_dir / "train.log"
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        ema = None
        with open(log_path, "a") as logf:
            logf.write(json.dumps({"event": "start", "step": self.step, "config": cfg.to_dict(),
                                   "device": str(self.device), "host": platform.node()}) + "\n")
            while self.step < cfg.steps and (deadline is None or time.time() < deadline):
                t0 = time.time()
                stats = self.train_step()
                self.elapsed += time.time() - t0
                ema = stats["loss"] if ema is None else 0.98 * ema + 0.02 * stats["loss"]
                bar.update(1)
                bar.set_postfix(loss=f"{ema:.3f}", dice=f"{stats['dice']:.2f}")
                if self.step % 50 == 0:
                    logf.write(json.dumps({"step": self.step, "loss_ema": ema, **stats, "elapsed": self.elapsed}) + "\n")
                    logf.flush()
                if self.evaluate is not None and self.step % cfg.eval_every == 0:
                    self._eval(logf, on_best)
                if self.step % cfg.ckpt_every == 0:
                    save_checkpoint(self.run_dir / "last.ckpt", self.state())
            bar.close()
            if self.evaluate is not None and self.step % cfg.eval_every != 0:
                self._eval(logf, on_best)
            save_checkpoint(self.run_dir / "last.ckpt", self.state())
            logf.write(json.dumps({"event": "stop", "step": self.step, "elapsed": self.elapsed}) + "\n")

    def _eval(self, logf, on_best) -> None:
        res = self.evaluate(self.net, self.device)
        res = {"step": self.step, **res}
        self.history.append(res)
        logf.write(json.dumps({"event": "eval", **res}) + "\n")
        logf.flush()
        self.log(f"step {self.step}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                    for k, v in res.items() if k != "step"))
        if res["score"] > self.best_score:
            self.best_score = res["score"]
            save_checkpoint(self.run_dir / "best.ckpt", self.state())
            if on_best is not None:
                on_best(self, res)


def coarse_last(net, logits: torch.Tensor, M: int, K: int, n_targets: int,
                allowed: Optional[List[int]]) -> Tuple[torch.Tensor, Optional[List[int]]]:
    """Merge the last protocol of training logits [S, M, K, H, W] as the engine does (on a copy: the
    graph keeps the logits it was built from) -> (logits, protocols allowed to win this set).

    The merged protocol has two labels, so a set of more than two targets may not win it (nor be
    matched on it as a relaxed protocol): its empty slots would take targets at a cross-entropy of ~1e4.
    """
    if M < 2:
        return logits, allowed
    logits = apply_coarse(net, logits.clone(), M, K, [], {})  # the queries move every step: no cached groups
    if n_targets > 2:
        allowed = [m for m in (range(M) if allowed is None else allowed) if m != M - 1]
    return logits, allowed
