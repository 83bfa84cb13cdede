"""pancakes-eval end to end on stand-in development sets (the real ones need the data cache)."""
import numpy as np
import pytest

from pancakes.training import evaluate, real_data
from pancakes.training.taskset import TaskSet


def _fake_dev_sets(S, n_sets, seed=0, cache_dir=None, part=None):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_sets):
        labels = np.zeros((S, 32, 32), np.int32)
        labels[:, 8:20, 10:24] = 1
        images = (labels * 0.6 + 0.2 + 0.05 * rng.standard_normal(labels.shape)).astype(np.float32)
        out.append(TaskSet(images.clip(0, 1), labels, 1, f"fake{i % 2}", "box"))
    return out


def test_eval_prints_the_model_the_comparison_and_the_trivial_answer(monkeypatch, random_model_path, tmp_path, capsys):
    monkeypatch.setattr(real_data, "dev_sets", _fake_dev_sets)
    md = tmp_path / "eval.md"
    rc = evaluate.main(["--model", str(random_model_path), "--compare", str(random_model_path), "--sets", "2",
                        "--S", "1", "5", "--M", "2", "--K", "3", "--no-baselines", "--markdown", str(md)])
    assert rc == 0
    out = capsys.readouterr().out
    summary = out.split("\n\n")[1]  # the first table: one row per method
    rows = {line.split("|")[1].strip(): line for line in summary.splitlines() if line.startswith("| ")}
    assert "pancakes" in rows and f"pancakes ({random_model_path})" in rows and "trivial (one label)" in rows
    # The same model scored twice on the same sets gives the same figures.
    assert rows["pancakes"].split("|")[2:] == rows[f"pancakes ({random_model_path})"].split("|")[2:]
    assert md.read_text().startswith("Development Set Dice")
    # Set Dice can never exceed the images' own best scores, so the same-images ratio is <= 1.
    header = next(line for line in out.splitlines() if line.startswith("| method | S=1"))
    assert header.rstrip(" |").endswith("S=5 / S=1 on the same images")
    same = float(rows["pancakes"].rstrip(" |").split("|")[-1])
    assert 0 < same <= 1
    # Bootstrap intervals follow; the model against itself differs by exactly zero when paired.
    assert "95% bootstrap intervals" in out
    paired = next(line for line in out.splitlines() if "(paired)" in line)
    assert paired.count("+0.000 to +0.000") == 2
    # Plain ASCII, so that a C/POSIX locale (clusters, some Slicer launchers) can print and write it.
    assert out.isascii() and md.read_bytes().isascii()


def test_eval_missing_model_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(real_data, "dev_sets", _fake_dev_sets)
    assert evaluate.main(["--model", str(tmp_path / "nope.pt"), "--sets", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pancakes-eval:") and "nope.pt" in err and len(err.splitlines()) == 1


def test_eval_shows_progress_over_every_set_unless_quiet(monkeypatch, random_model_path, capsys):
    monkeypatch.setattr(real_data, "dev_sets", _fake_dev_sets)
    args = ["--model", str(random_model_path), "--sets", "3", "--S", "1", "2", "--M", "2", "--K", "3", "--no-baselines"]
    assert evaluate.main(args) == 0
    err = capsys.readouterr().err
    # 6 methods (the model, without superpixel pooling, without adaptation, with fine protocols only, with
    # the merge but without its intensity step, the trivial answer) x 2 S x 3 sets, counted to the end.
    assert "pancakes-eval" in err and "36/36" in err
    assert evaluate.main(args + ["--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_eval_scores_the_model_without_superpixel_pooling_unless_turned_off(monkeypatch, random_model_path, capsys):
    monkeypatch.setattr(real_data, "dev_sets", _fake_dev_sets)
    args = ["--model", str(random_model_path), "--sets", "2", "--S", "1", "--M", "2", "--K", "3",
            "--no-baselines", "--quiet", "--intervals", "0"]
    assert evaluate.main(args) == 0
    out = capsys.readouterr().out
    assert "superpixel pooling 1" in out.splitlines()[0] and "| pancakes (without superpixel pooling) |" in out
    assert evaluate.main(args + ["--superpixels", "0"]) == 0
    out = capsys.readouterr().out
    assert "superpixel pooling 0" in out.splitlines()[0] and "without superpixel pooling" not in out


def test_eval_scores_the_model_without_adaptation_on_the_same_sets(monkeypatch, random_model_path, capsys):
    monkeypatch.setattr(real_data, "dev_sets", _fake_dev_sets)
    args = ["--model", str(random_model_path), "--sets", "2", "--S", "1", "2", "--M", "2", "--K", "3",
            "--no-baselines", "--quiet"]
    assert evaluate.main(args) == 0
    out = capsys.readouterr().out
    assert "adaptation 1" in out.splitlines()[0]
    assert "| pancakes (no adaptation) |" in out
    assert "pancakes (no adaptation) minus pancakes (paired)" in out
    assert evaluate.main(args + ["--adapt", "0"]) == 0
    out = capsys.readouterr().out
    assert "adaptation 0" in out.splitlines()[0] and "no adaptation" not in out
    assert evaluate.main(args + ["--adapt", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pancakes-eval:") and "adapt" in err and len(err.splitlines()) == 1


def _fake_kind_sets(S, n_sets, seed=0, part="test", cache_dir=None, bank=None, distinct=False):
    """Two kinds of fake sets, named "<kind>:<source>" as task_kinds draws them."""
    sets = _fake_dev_sets(S, 2 * n_sets, seed)
    for i, ts in enumerate(sets):
        ts.dataset = ("figure_ground" if i % 2 else "small") + ":fake"
    return sets


def test_eval_by_kind_adds_a_later_model_from_saved_rows(monkeypatch, random_model_path, tmp_path, capsys):
    """The baselines and the shipped model are scored once; a new model joins them later on the
    same sets, paired, and a saved draw of another size is refused."""
    from pancakes.training import task_kinds

    monkeypatch.setattr(task_kinds, "all_kind_sets", _fake_kind_sets)
    saved = tmp_path / "rows.json"
    args = ["--by-kind", "--sets", "8", "--S", "1", "5", "--M", "2", "--K", "3", "--intervals", "50", "--quiet"]
    assert evaluate.main(["--model", str(random_model_path), "--name", "pancakes v1", "--rows-out", str(saved),
                          "--adapt", "0", *args]) == 0
    first = capsys.readouterr().out
    assert "dev part test, by task kind" in first and "### figure_ground (fake;" in first
    assert "| otsu (two classes) |" in first and "| multi_otsu |" in first
    assert evaluate.main(["--model", str(random_model_path), "--name", "pancakes v2", "--rows-in", str(saved),
                          "--adapt", "0", *args]) == 0
    second = capsys.readouterr().out
    assert "| **pancakes v1** |" in second and "| **pancakes v2** |" in second
    # The same weights on the same sets: the paired difference is exactly zero at both S.
    paired = [line for line in second.splitlines() if "pancakes v2 minus pancakes v1 (paired)" in line]
    assert len(paired) == 2 and all(line.count("+0.000 to +0.000") == 2 for line in paired)
    assert evaluate.main(["--model", str(random_model_path), "--rows-in", str(saved), "--adapt", "0",
                          *[a if a != "8" else "4" for a in args]]) == 2
    assert "scored on another draw" in capsys.readouterr().err
    # Rows saved from a draw with repeats (before 2026-12-07) join only a draw with repeats.
    assert evaluate.main(["--model", str(random_model_path), "--rows-in", str(saved), "--adapt", "0",
                          "--with-repeats", *args]) == 2
    assert "scored on another draw" in capsys.readouterr().err


def test_eval_by_kind_draws_distinct_sets_unless_told_otherwise(monkeypatch, random_model_path, capsys):
    from pancakes.training import task_kinds

    asked = []
    monkeypatch.setattr(task_kinds, "all_kind_sets", lambda *a, **k: asked.append(k["distinct"]) or _fake_kind_sets(*a, **k))
    args = ["--model", str(random_model_path), "--by-kind", "--sets", "8", "--S", "1", "--M", "2", "--K", "3",
            "--intervals", "0", "--quiet", "--no-baselines", "--adapt", "0"]
    assert evaluate.main(args) == 0 and evaluate.main([*args, "--with-repeats"]) == 0
    assert asked == [True, False]
    assert "distinct:" in capsys.readouterr().out


def test_eval_by_kind_without_baselines_says_so_instead_of_nan_margins(monkeypatch, random_model_path, capsys):
    """Checkpoint choice runs with --no-baselines: the margins table has nothing to subtract."""
    from pancakes.training import task_kinds

    monkeypatch.setattr(task_kinds, "all_kind_sets", _fake_kind_sets)
    assert evaluate.main(["--model", str(random_model_path), "--by-kind", "--sets", "8", "--S", "1", "5", "--M", "2",
                          "--K", "3", "--intervals", "0", "--quiet", "--no-baselines", "--adapt", "0"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out
    assert "no baselines in these rows" in out


def test_eval_by_kind_takes_any_model_name(monkeypatch, random_model_path, capsys):
    """--name need not start with "pancakes": the report found no model and raised IndexError."""
    from pancakes.training import task_kinds

    monkeypatch.setattr(task_kinds, "all_kind_sets", _fake_kind_sets)
    assert evaluate.main(["--model", str(random_model_path), "--name", "v2b mixed", "--by-kind", "--sets", "8",
                          "--S", "1", "5", "--M", "2", "--K", "3", "--intervals", "20", "--quiet", "--no-baselines",
                          "--adapt", "0"]) == 0
    out = capsys.readouterr().out
    assert "| **v2b mixed** |" in out and "| v2b mixed |" in out


def test_model_methods_are_every_method_but_the_baselines():
    rows = [{"method": m} for m in ["mine", "felzenszwalb", "otsu (two classes)", "trivial (one label)",
                                    "pancakes (x.pt)", "mine"]]
    assert evaluate.model_methods(rows) == ["mine", "pancakes (x.pt)"]


def test_eval_scores_the_coarse_protocol_beside_fine_protocols_only(monkeypatch, random_model_path, capsys):
    monkeypatch.setattr(real_data, "dev_sets", _fake_dev_sets)
    base = ["--model", str(random_model_path), "--sets", "2", "--S", "1", "--M", "3", "--K", "4", "--no-baselines",
            "--adapt", "0", "--intervals", "0", "--quiet"]
    assert evaluate.main(base) == 0
    out = capsys.readouterr().out
    assert "coarse protocol 1" in out.splitlines()[0] and "| pancakes (fine protocols only) |" in out
    assert "| pancakes (merge without intensity step) |" in out
    assert evaluate.main(base + ["--coarse", "0"]) == 0
    out = capsys.readouterr().out
    assert "coarse protocol 0" in out.splitlines()[0] and "fine protocols only" not in out
    with pytest.raises(SystemExit):
        evaluate.main(base + ["--coarse", "2"])
