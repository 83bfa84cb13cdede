"""What every front door agrees on, without torch: limits, axes, devices, checks, cancelling, file names.

The CLI parses its arguments with it, the Slicer module's run settings validate with
it, and the engine checks its calls with it, so M, K, the axis and the device mean the
same thing (and fail with the same one-line message) everywhere. It imports no torch,
SimpleITK or numpy: the Slicer module loads it before PyTorch is installed.

Usage::

    M, K = check_mk(8, 20)                 # PancakesInputError naming the bad value
    device = check_device("GPU")           # -> "cuda"; resolved to a torch.device by pancakes.devices
    AXES["coronal"]                        # -> 1, the array axis in LPS-oriented (z, y, x) order
    protocol_file_name("brain1", 2, "nifti")   # -> "brain1_P03.nii.gz"
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

from .errors import PancakesInputError

# ---- limits and defaults -------------------------------------------------------
DEFAULT_PROTOCOLS = 8  # M: the paper's default number of protocols
DEFAULT_LABELS = 20  # K: labels per protocol
MAX_PROTOCOLS = 64
MAX_LABELS = 255  # labels are stored as uint8 values 1..K
# Strength of the per-image prototype adaptation at decode time
# (modeling/heads.DotProductHead.adapted_logits); 0 turns it off.
DEFAULT_ADAPT = 1.0
# Whether the last protocol is merged into figure and ground (pancakes.coarse_protocol).
DEFAULT_COARSE = True
# Whether every protocol's boundaries are pulled onto the image's edges (pancakes.superpixel_pooling).
DEFAULT_SUPERPIXELS = True
# How far a click refinement spreads to neighbouring slices, either side, in mm (Refiner.refine_volume_slice,
# at least the adjacent slices; the 3D random walker of pancakes.refine.propagation stops sooner where the
# structure ends). 24 mm was chosen on the select half of the dev labels (benchmarks/bench_refine_propagation.py,
# results/refine_propagation_walker.md): 3D Dice 0.613 against 0.565 at 12 mm; on the test half both gave 0.56.
# Here, not in the refiner, so that the Slicer panel can show it before PyTorch is installed.
PROPAGATION_REACH_MM = 24.0

# ---- axes and devices ------------------------------------------------------------
AXES = {"axial": 0, "coronal": 1, "sagittal": 2}  # array axis in (z, y, x) LPS order
DEFAULT_AXIS = "axial"
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"

# ---- long jobs ---------------------------------------------------------------------
Progress = Optional[Callable[[int, int], None]]  # (done, total)
Cancel = Optional[Callable[[], bool]]  # True: stop at the next batch


class Cancelled(RuntimeError):
    """Raised when a cancel callback asked a long job to stop."""


# ---- checks --------------------------------------------------------------------------
def _is_whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def check_mk(M: int, K: int) -> Tuple[int, int]:
    """Validate the number of protocols and labels asked for -> (M, K) as ints."""
    for name, v, hi in (("protocols", M, MAX_PROTOCOLS), ("labels", K, MAX_LABELS)):
        if not _is_whole(v) or not 1 <= int(v) <= hi:
            raise PancakesInputError(f"{name}={v!r}: must be an integer in 1..{hi}")
    return int(M), int(K)


def check_adapt(adapt: float) -> float:
    """Validate the adaptation strength: a finite number >= 0."""
    try:
        value = float(adapt)
    except (TypeError, ValueError):
        raise PancakesInputError(f"adapt={adapt!r}: must be a number >= 0") from None
    if isinstance(adapt, bool) or not math.isfinite(value) or value < 0:
        raise PancakesInputError(f"adapt={adapt!r}: must be a finite number >= 0")
    return value


def check_which(which: Optional[Sequence[int]], M: int) -> List[int]:
    """Validate selected protocol indices (0-based); None -> [] (all protocols)."""
    if which is None:
        return []
    sel = [int(m) for m in which]
    bad = [m for m in sel if not 0 <= m < M]
    if bad or not sel:
        raise PancakesInputError(f"protocols {list(which)}: indices must be in 0..{M - 1}")
    return sel


def check_axis(axis: str) -> int:
    """Slicing direction name -> array axis in LPS-oriented (z, y, x) order."""
    if axis not in AXES:
        raise PancakesInputError(f"axis {axis!r}: use one of {', '.join(AXES)}")
    return AXES[axis]


def check_device(device: str) -> str:
    """A user's device name -> 'auto', 'cpu', 'cuda' or 'cuda:N' ('gpu' means 'cuda').

    Only the name is checked here; whether CUDA exists is asked of torch by
    pancakes.devices.resolve_device.
    """
    name = str(device).lower()
    if name == "gpu":
        return "cuda"
    if name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise PancakesInputError(f"device {device!r}: use 'auto', 'cpu' or 'cuda'")


def check_batch_size(batch_size) -> Optional[int]:
    """Slices per forward pass: a whole number >= 1, or None for the device's default.

    Zero, negative or fractional sizes are refused: a negative step made the slice
    loops run zero times, so volumes came back all background without a word.
    """
    if batch_size is None:
        return None
    if not _is_whole(batch_size) or batch_size < 1:
        raise PancakesInputError(f"batch_size={batch_size!r}: must be a whole number >= 1, or None for the default")
    return int(batch_size)


# ---- output names ----------------------------------------------------------------------
# --format -> file suffix. dicom-seg: DICOM SEG, for DICOM series inputs only (pancakes.dicom_seg).
FORMATS = {"seg.nrrd": ".seg.nrrd", "nifti": ".nii.gz", "dicom-seg": ".seg.dcm"}


def protocol_file_name(subject: str, m: int, fmt: str = "seg.nrrd") -> str:
    """<subject>_P03.seg.nrrd for 0-based protocol ``m``: the CLI's and the Slicer export's name."""
    return f"{subject}_P{m + 1:02d}{FORMATS[fmt]}"


def output_path(out_dir: Union[str, Path], subject: str, m: int, fmt: str = "seg.nrrd") -> Path:
    """OUT/<subject>/<subject>_P03.seg.nrrd for 0-based protocol ``m``."""
    return Path(out_dir) / subject / protocol_file_name(subject, m, fmt)


def colour_table_path(out_dir: Union[str, Path], M: int, K: int) -> Path:
    """OUT/pancakes_M8_K20_colors.txt: the colour table beside NIfTI labelmaps."""
    return Path(out_dir) / f"pancakes_M{M}_K{K}_colors.txt"
