"""Re-save the bundled TorchScript files with an older torch, from the same weights (issue 17, defect 4).

TorchScript saved by torch 2.13 does not load in torch 2.8 (F.interpolate now compiles to a
graph that names aten::_upsample_lanczos2d_aa, unknown to 2.8); a file saved by 2.8 loads in
both. Two steps, run by scripts/check_old_torch.sh --reexport:

    python  benchmarks/reexport_models.py dump   WEIGHTS.pt   # newest torch: state dicts + metadata
    OLDPY   benchmarks/reexport_models.py export WEIGHTS.pt   # oldest torch: rebuild, script, save

The network is rebuilt from the core's ``modeling`` code and the file's own "architecture"
metadata; the metadata is kept as it was, with the exporting torch version added.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = {"pancakes.pt": "pancakes", "refine.pt": "refine"}


def dump(out: Path) -> None:
    import torch

    from pancakes.model_file import load_torchscript

    saved = {}
    for name in FILES:
        module, meta = load_torchscript(ROOT / "model_weights" / name)
        saved[name] = {"state": {k: v.clone() for k, v in module.state_dict().items()}, "meta": meta}
    torch.save(saved, out)
    print(f"torch {torch.__version__}: weights of {', '.join(FILES)} -> {out}")


def export(weights: Path) -> None:
    import torch

    from pancakes.model_file import save_torchscript
    from pancakes.modeling import PancakesNet
    from pancakes.modeling.refine_net import RefineNet

    saved = torch.load(weights)
    for name, kind in FILES.items():
        meta = dict(saved[name]["meta"])
        net = (PancakesNet if kind == "pancakes" else RefineNet)(**meta["architecture"])
        net.load_state_dict(saved[name]["state"])
        meta["exported_with_torch"] = torch.__version__.split("+")[0]
        save_torchscript(net, ROOT / "model_weights" / name, meta)
    print(f"torch {torch.__version__}: re-saved {', '.join(FILES)} in {ROOT / 'model_weights'}")


if __name__ == "__main__":
    {"dump": dump, "export": export}[sys.argv[1]](Path(sys.argv[2]))
