"""Table 6 / Figure 6 report (training.results) on synthetic run folders with known values."""

import json

import pytest

from training import results


def _run(path, model, train, test, steps=(1000, 2000, 3000, 4000), complete=True, precision="float32"):
    """A fake workdir: history rows with the given error curves (fractions) and final metrics.

    An unfinished run (``complete=False``) has a history and a config but no final metrics, as a run
    stopped at the end of a GPU sitting.
    """
    path.mkdir(parents=True)
    rows = [{"step": s, "epoch": s / 391, "learning_rate": 0.1, "train_loss": 1.0, "train_error": a,
             "eval_loss": 1.0, "eval_error": b, "train_time_s": 1.0, "images_per_second": 1.0}
            for s, a, b in zip(steps, train, test)]
    (path / "history.json").write_text(json.dumps(rows))
    (path / "config.json").write_text(json.dumps({"model": model, "train_length": 8000, "mixed_precision": precision}))
    if complete:
        (path / "final_metrics.json").write_text(json.dumps({
            "model": model, "eval_error": test[-1], "steps": steps[-1], "total_steps": steps[-1], "completed": True,
            "wall_time_s": 1.0, "device": "none", "mixed_precision": precision}))
    return str(path)


def test_table6_figure6_and_degradation(tmp_path, shared):
    runs = [
        # plain-56 starts lower, then ends higher: the curves cross at step 3000.
        _run(tmp_path / "p20", "plain20", [0.50, 0.30, 0.20, 0.10], [0.55, 0.35, 0.25, 0.15]),
        _run(tmp_path / "p56", "plain56", [0.45, 0.28, 0.22, 0.14], [0.50, 0.33, 0.27, 0.18]),
        _run(tmp_path / "r20", "resnet20", [0.40, 0.20, 0.10, 0.05], [0.45, 0.25, 0.15, 0.0912]),
        _run(tmp_path / "r56", "resnet56", [0.40, 0.18, 0.08, 0.02], [0.45, 0.22, 0.12, 0.0733]),
    ]
    controls = [_run(tmp_path / "c20", "resnet20", [0.3, 0.2, 0.1, 0.06], [0.3, 0.2, 0.12, 0.0850])]
    out = tmp_path / "out"
    assert results.main([*runs, "--control", *controls, "--out", str(out),
                         "--paper-numbers", str(shared("reference/paper_numbers.json"))]) == 0

    table = json.loads((out / "table6.json").read_text())
    rows = {row["model"]: row for row in table["rows"]}
    assert [row["model"] for row in table["rows"]] == ["plain20", "plain56", "resnet20", "resnet56"]
    assert rows["resnet20"]["test_error"] == 9.12 and rows["resnet20"]["control_test_error"] == 8.5
    assert rows["resnet20"]["paper_test_error"] == 8.75 and rows["resnet56"]["paper_test_error"] == 6.97
    assert rows["resnet56"]["control_test_error"] is None and rows["plain20"]["paper_test_error"] is None
    assert rows["plain56"]["train_error"] == 14.0 and rows["resnet20"]["control_train_error"] == 6.0
    degradation = table["degradation"]
    assert degradation["plain56_vs_plain20"]["deeper_has_higher_train_error"] is True
    assert degradation["resnet56_vs_resnet20"]["deeper_has_higher_train_error"] is False
    assert degradation["plain20_plain56_train_error_crossings"] == [3000]

    markdown = (out / "table6.md").read_text()
    assert "| resnet20 | 9.12 | 8.50 | 8.75 | 5.00 | 6.00 |" in markdown
    assert "| plain56 | 18.00 | — | — | 14.00 | — |" in markdown
    assert "cross at iteration(s) 3000." in markdown
    assert (out / "figure6.png").stat().st_size > 1000
    assert (out / "figure6.png").read_bytes()[:4] == b"\x89PNG"


def test_curves_that_do_not_cross_and_bad_input(tmp_path):
    a = results.load_run(_run(tmp_path / "a", "plain20", [0.5, 0.4, 0.3, 0.2], [0.5, 0.4, 0.3, 0.2]))
    b = results.load_run(_run(tmp_path / "b", "plain56", [0.6, 0.5, 0.4, 0.3], [0.6, 0.5, 0.4, 0.3]))
    assert results.crossings(a, b) == []
    assert "do not cross" in results.to_markdown(results.build_table([a, b], [], {}))
    with pytest.raises(ValueError, match="same model"):
        results.build_table([a, a], [], {})
    with pytest.raises(ValueError, match="No history.json"):
        results.load_run(str(tmp_path / "missing"))


def test_unfinished_runs_and_a_precision_variant(tmp_path, shared):
    runs = [
        _run(tmp_path / "p20", "plain20", [0.50, 0.30, 0.20, 0.10], [0.55, 0.35, 0.25, 0.15], precision="bfloat16"),
        # Stopped at 2000 of 8000 steps (the sitting ended): compared with plain-20 at step 2000.
        _run(tmp_path / "p56", "plain56", [0.60, 0.40], [0.65, 0.45], steps=(1000, 2000), complete=False, precision="bfloat16"),
        _run(tmp_path / "r20", "resnet20", [0.40, 0.20, 0.10, 0.05], [0.45, 0.25, 0.15, 0.0912], precision="bfloat16"),
        _run(tmp_path / "r20f", "resnet20", [0.41, 0.21, 0.12], [0.46, 0.26, 0.16], steps=(1000, 2000, 3000),
             complete=False, precision="float32"),
    ]
    out = tmp_path / "out"
    assert results.main([*runs, "--out", str(out), "--paper-numbers", str(shared("reference/paper_numbers.json"))]) == 0
    table = json.loads((out / "table6.json").read_text())
    rows = {row["model"]: row for row in table["rows"]}
    assert rows["plain56"]["complete"] is False and rows["plain56"]["steps"] == 2000 and rows["plain56"]["test_error"] == 45.0
    assert rows["resnet20"]["precision"] == "bfloat16" and rows["resnet20"]["test_error"] == 9.12
    plain = table["degradation"]["plain56_vs_plain20"]
    assert (plain["at_step"], plain["final"], plain["plain20_train_error"], plain["plain56_train_error"]) == (2000, False, 30.0, 40.0)
    [comparison] = table["precision_comparison"]
    assert comparison == {"model": "resnet20", "step": 3000, "precisions": ["bfloat16", "float32"],
                          "train_error": [10.0, 12.0], "test_error": [15.0, 16.0]}
    markdown = (out / "table6.md").read_text()
    assert "| plain56 | 45.00 (at 2,000 of 8,000 steps) |" in markdown
    assert "(at iteration 2,000, the last both runs recorded): the deeper net's training error is higher." in markdown
    assert "| resnet20 | 3,000 | bfloat16 vs float32 | 10.00 vs 12.00 | 15.00 vs 16.00 |" in markdown
