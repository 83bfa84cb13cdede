"""Distillation from the starting weights: the KL term, and a run that uses it stays nearer its start."""
import pytest
import torch

from pancakes.training.distill import distill_kl, load_teacher, teacher_logits
from pancakes.training.loop import Trainer

from test_train_smoke import model_file_of, square_sets, tiny_config


def test_the_kl_is_zero_for_equal_logits_and_positive_otherwise():
    torch.manual_seed(0)
    a = torch.randn(2, 3, 4, 8, 8)
    assert float(distill_kl(a, a)) == pytest.approx(0.0, abs=1e-6)
    # A constant shift over K leaves the probabilities, hence the KL, unchanged.
    assert float(distill_kl(a + 5.0, a)) == pytest.approx(0.0, abs=1e-5)
    assert float(distill_kl(torch.randn(2, 3, 4, 8, 8), a)) > 0.1
    with pytest.raises(ValueError, match="differ"):
        distill_kl(a, a[:, :2])


def _start_file(tmp_path):
    first = Trainer(tiny_config(), tmp_path / "start", square_sets, augment=None, log=lambda m: None)
    for _ in range(20):
        first.train_step()
    return model_file_of(first, tmp_path / "start.pt")


def _drift(trainer, teacher, steps):
    """Mean KL to the teacher on fresh sets after ``steps`` training steps of ``trainer``."""
    for _ in range(steps):
        trainer.train_step()
    trainer.net.eval()
    kls = []
    for images, _, M, K, _ in trainer.sample_batch() + trainer.sample_batch() + trainer.sample_batch():
        with torch.no_grad():
            student = trainer.net.decode_logits(trainer.net.encode(images), M, K, [])
        kls.append(float(distill_kl(student, teacher_logits(teacher, images, M, K))))
    return sum(kls) / len(kls)


def test_a_distilled_run_stays_nearer_its_start_than_a_free_one(tmp_path):
    start = _start_file(tmp_path)
    teacher = load_teacher(start)
    runs = {}
    for name, weight in (("free", 0.0), ("distilled", 3.0)):
        torch.manual_seed(1)
        # A high learning rate moves a free run far from its start within a few steps.
        trainer = Trainer(tiny_config(distill=weight, lr=1e-2, p_figure=0.5, p_coarse=0.0), tmp_path / name,
                          square_sets, augment=None, log=lambda m: None)
        trainer.init_weights(start)
        runs[name] = _drift(trainer, teacher, 25)
    assert runs["distilled"] < 0.5 * runs["free"]


def test_distillation_logs_its_kl_and_needs_a_teacher(tmp_path):
    start = _start_file(tmp_path)
    trainer = Trainer(tiny_config(distill=1.0), tmp_path / "d", square_sets, augment=None, log=lambda m: None)
    trainer.init_weights(start)
    stats = trainer.train_step()
    assert stats["distill_kl"] >= 0.0
    orphan = Trainer(tiny_config(distill=1.0), tmp_path / "o", square_sets, augment=None, log=lambda m: None)
    with pytest.raises(ValueError, match="teacher"):
        orphan.train_step()
    with pytest.raises(ValueError, match="distill"):
        tiny_config(distill=-1.0)
