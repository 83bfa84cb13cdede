"""In-memory slice bank of real data and the paper's task sampling over it.

Sampling (paper §3.3): pick a dataset, then a protocol, then a label, then a *set* of
S slices that all show that label: neighbouring slices (1-3 slices apart) along one
axis of one volume, or, in datasets whose volumes share one grid (the MNI templates),
the same slice position taken from different volumes.

Example::

    bank = SliceBank.from_arrays({"mni_atlases": arrays})
    rng = np.random.default_rng(0)
    ts = bank.sample_set(rng, S=3)
    target = ts.labelmaps == ts.label          # [S, H, W] binary target
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from .taskset import TaskSet  # one set type for real and synthetic sources

# Neighbouring slices of a set lie at most this many bank slices apart. Bank slices
# are ~1.5-3 mm apart for the medical volumes, so sets span a few millimetres.
MAX_STRIDE = 3
# Probability of a cross-volume set (same position, different volumes) where possible.
P_ACROSS_VOLUMES = 0.5


class DatasetBank:
    """Slices of one dataset with the indices sampling needs (built once at load)."""

    def __init__(self, name: str, arrays: Dict[str, np.ndarray]):
        self.name = name
        self.images: np.ndarray = arrays["images"]
        self.volume = arrays["volume"].astype(np.int64)
        self.axis = arrays["axis"].astype(np.int64)
        self.position = arrays["position"].astype(np.int64)
        self.volume_names = [str(v) for v in arrays["volume_names"]]
        self.protocols = [str(p) for p in arrays["protocols"]]
        self.shared_grid = bool(arrays["shared_grid"])
        n = self.images.shape[0]
        # Images are stored sorted by (volume, axis, position): a stack is a run.
        key = self.volume * 16 + self.axis
        if n and np.any(np.diff(key) < 0):
            raise ValueError(f"slice bank {name!r} is not sorted by volume and axis")
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if n else np.zeros(0, int)
        self.stack_start = starts
        self.stack_end = np.r_[starts[1:], n].astype(np.int64)
        self.labels: List[np.ndarray] = []
        self.rows: List[np.ndarray] = []
        self.present: List[np.ndarray] = []       # [N, K+1] per image
        self.present_rows: List[np.ndarray] = []  # [rows, K+1] per stored label map
        self.stack_counts: List[np.ndarray] = []  # [n_stacks, K+1]
        for j in range(len(self.protocols)):
            labels, rows = arrays[f"labels_{j}"], arrays[f"rows_{j}"].astype(np.int64)
            per_row = arrays[f"present_{j}"]
            self.present_rows.append(per_row)
            present = np.zeros((n, per_row.shape[1]), dtype=bool)
            has = rows >= 0
            present[has] = per_row[rows[has]]
            self.labels.append(labels)
            self.rows.append(rows)
            self.present.append(present)
            self.stack_counts.append(np.add.reduceat(present.astype(np.int32), starts, axis=0)
                                     if n else np.zeros((0, per_row.shape[1]), np.int32))
        self._lookup = self._position_lookup() if self.shared_grid else None
        self._viable: Dict[int, List[Tuple[int, np.ndarray]]] = {}

    def _position_lookup(self) -> np.ndarray:
        """[V, 3, P] image index at (volume, axis, position), -1 where none."""
        lookup = np.full((len(self.volume_names), 3, int(self.position.max()) + 1), -1, np.int64)
        lookup[self.volume, self.axis, self.position] = np.arange(self.images.shape[0])
        return lookup

    def viable(self, S: int) -> List[Tuple[int, np.ndarray]]:
        """(protocol index, labels) pairs for which some stack holds >= S slices with
        the label; cached per S."""
        if S not in self._viable:
            out = []
            for j, counts in enumerate(self.stack_counts):
                labs = np.flatnonzero(counts.max(axis=0) >= S) if counts.size else np.zeros(0, int)
                labs = labs[labs > 0]
                if labs.size:
                    out.append((j, labs))
            self._viable[S] = out
        return self._viable[S]

    def sample(self, rng: np.random.Generator, S: int, protocol: Optional[str] = None) -> Optional[TaskSet]:
        """One set of S slices; ``protocol`` pins the protocol (None: any that can give S slices)."""
        options = self.viable(S)
        if protocol is not None:
            options = [(j, labs) for j, labs in options if self.protocols[j] == protocol]
        if not options:
            return None
        j, labs = options[rng.integers(len(options))]
        label = int(labs[rng.integers(len(labs))])
        stacks = np.flatnonzero(self.stack_counts[j][:, label] >= S)
        st = stacks[rng.integers(len(stacks))]
        s0, s1 = self.stack_start[st], self.stack_end[st]
        cand = s0 + np.flatnonzero(self.present[j][s0:s1, label])
        idx = None
        if self._lookup is not None and rng.random() < P_ACROSS_VOLUMES:
            idx = self._across_volumes(rng, j, label, cand, S)
        if idx is None:
            idx = self._neighbours(rng, cand, S)
        return self._task(idx, j, label)

    @staticmethod
    def _neighbours(rng: np.random.Generator, cand: np.ndarray, S: int) -> np.ndarray:
        """S slices of one stack, evenly ``d`` apart among those showing the label."""
        n = cand.size
        d_max = 1 if S == 1 else max(1, min(MAX_STRIDE, (n - 1) // (S - 1)))
        d = int(rng.integers(1, d_max + 1))
        start = int(rng.integers(0, n - d * (S - 1)))
        return cand[start + d * np.arange(S)]

    def _across_volumes(self, rng: np.random.Generator, j: int, label: int,
                        cand: np.ndarray, S: int) -> Optional[np.ndarray]:
        """The anchor's position in every volume showing the label, topped up with
        slices up to MAX_STRIDE away when S exceeds the number of volumes."""
        a = cand[rng.integers(cand.size)]
        ax, q = self.axis[a], self.position[a]
        same = self._lookup[:, ax, q]
        same = same[same >= 0]
        same = rng.permutation(same[self.present[j][same, label]])
        if same.size < 2:
            return None
        if same.size >= S:
            return same[:S]
        lo, hi = max(0, q - MAX_STRIDE), q + MAX_STRIDE + 1
        near = self._lookup[:, ax, lo:hi].ravel()
        near = near[(near >= 0) & ~np.isin(near, same)]
        near = near[self.present[j][near, label]]
        if near.size < S - same.size:
            return None
        return np.concatenate([same, rng.choice(near, S - same.size, replace=False)])

    def _task(self, idx: np.ndarray, j: int, label: int) -> TaskSet:
        names = tuple(f"{self.volume_names[self.volume[i]]}:{'xyz'[self.axis[i]]}{self.position[i]}"
                      for i in idx)
        return TaskSet(
            images=self.images[idx].astype(np.float32),
            labelmaps=self.labels[j][self.rows[j][idx]].astype(np.int64),
            label=label,
            dataset=self.name,
            protocol=self.protocols[j],
            slices=names,
        )


class SliceBank:
    """Slice banks of several datasets; ``sample_set`` draws a TaskSet from them."""

    def __init__(self, banks: List[DatasetBank]):
        if not banks:
            raise ValueError("a SliceBank needs at least one dataset")
        self._banks = {b.name: b for b in banks}

    @classmethod
    def from_arrays(cls, arrays_by_name: Dict[str, Dict[str, np.ndarray]]) -> "SliceBank":
        return cls([DatasetBank(name, arrays) for name, arrays in arrays_by_name.items()])

    @property
    def datasets(self) -> List[str]:
        return list(self._banks)

    def dataset(self, name: str) -> DatasetBank:
        if name not in self._banks:
            raise ValueError(f"dataset {name!r} is not in this bank; it has {self.datasets}")
        return self._banks[name]

    def protocols(self, name: str) -> List[str]:
        return list(self.dataset(name).protocols)

    def sample_set(self, rng: np.random.Generator, S: int, dataset: Optional[str] = None,
                   protocol: Optional[str] = None) -> Optional[TaskSet]:
        """Draw one set of S slices (dataset -> protocol -> label -> slices, each
        uniform among the choices that can yield S slices). ``dataset`` pins the
        dataset, and with it ``protocol`` the protocol. Returns None when no dataset can give
        a set of S slices."""
        if int(S) != S or S < 1:
            raise ValueError(f"set size S must be a positive integer, got {S!r}")
        S = int(S)
        if dataset is not None:
            return self.dataset(dataset).sample(rng, S, protocol)
        names = [n for n, b in self._banks.items() if b.viable(S)]
        if not names:
            return None
        return self._banks[names[rng.integers(len(names))]].sample(rng, S)
