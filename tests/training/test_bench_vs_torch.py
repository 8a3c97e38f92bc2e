"""benchmarks/bench_vs_torch.py runs its engine configurations end to end and compares like with like.

torch is not a dependency: without PyTorch rows asked for, the script measures the engines alone. The
bfloat16 rows are ratios to PyTorch's bfloat16 row only.
"""

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import bench_vs_torch  # noqa: E402


def test_bfloat16_rows_are_compared_with_the_bfloat16_reference_only():
    assert bench_vs_torch._references_for("tf_bf16") == ["torch_bf16"]
    assert bench_vs_torch._references_for("jax_fast_bf16") == ["torch_bf16"]
    # float32 rows: the akamaster-style NCHW reference first, then PyTorch's channels-last layout.
    assert bench_vs_torch._references_for("tf") == ["torch", "torch_cl"]
    assert bench_vs_torch._references_for("jax_cpu_devices") == ["torch", "torch_cl"]
    assert set(bench_vs_torch._BACKENDS) == {c for c in bench_vs_torch.CONFIGS if not c.startswith("torch")}


@pytest.mark.slow
def test_engine_configurations_run_without_torch():
    # The TF engine under mixed bfloat16 (fused BN on bfloat16 inputs inside the compiled step) and the
    # JAX engine data-parallel over two host devices, each in its own process as the script runs them.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_vs_torch.py"), "--models", "resnet8",
               "--configs", "tf_bf16", "jax_cpu_devices", "--rounds", "1", "--steps", "1"]
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    out = process.stdout
    for config in ("tf_bf16", "jax_cpu_devices"):
        medians = [line for line in out.splitlines() if line.strip().startswith(f"resnet8   {config}")]
        assert len(medians) == 1 and "failed" not in medians[0], out
        assert float(medians[0].split()[2]) > 0, out


@pytest.mark.slow
def test_onednn_breakdown_reads_a_real_tensorflow_step():
    # The markers, printed by Python, must bracket the timed steps of oneDNN's own log.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="1")
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_vs_torch.py"), "--models", "resnet8",
               "--configs", "tf", "--steps", "2", "--onednn-breakdown"]
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    rows = {line[:40].strip(): line[40:].replace("(", " ").replace(")", " ").split()
            for line in process.stdout.splitlines() if line.startswith("  ")}
    # ResNet-8: 7 convolutions, each with a forward pass and a weight gradient in every step.
    assert rows["convolution forward_training"][1] == rows["convolution backward_weights"][1] == "7", process.stdout
    assert float(rows["convolution forward_training"][0]) > 0, process.stdout
    assert 0 < float(rows["sum of oneDNN primitives"][0]) and 0 < float(rows["wall time of a step"][0]), process.stdout


def test_paired_ratio_takes_each_round_against_its_own_reference():
    # The machine's speed drifts over the rounds: the medians (210 vs 200) say 1.05x, while in two of
    # the three rounds the configuration was twice as fast as the reference beside it.
    values = {0: 200.0, 1: 210.0, 2: 420.0}
    reference = {0: 100.0, 1: 200.0, 2: 210.0}
    assert statistics.median(values.values()) / statistics.median(reference.values()) == 1.05
    assert bench_vs_torch.paired_ratio(values, reference) == 2.0
    assert bench_vs_torch.paired_ratio({0: 100.0, 2: 300.0}, {0: 100.0, 1: 50.0}) == 1.0  # Round 1 failed for one.
    assert bench_vs_torch.paired_ratio({1: 100.0}, {0: 100.0}) is None


def test_onednn_breakdown_counts_only_the_timed_steps():
    verbose = "onednn_verbose,v1,primitive,exec,cpu,{kind},jit:avx512_core,{prop},src:f32::blocked:acdb::f0,,,mb128,{ms}"
    stdout = "\n".join([
        verbose.format(kind="convolution", prop="forward_training", ms=99.0),  # A warm-up step: not counted.
        "onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,jit,forward_training,,,,mb128,0.5",
        bench_vs_torch.TIMED_START,
        verbose.format(kind="convolution", prop="forward_training", ms=3.0),
        verbose.format(kind="convolution", prop="backward_weights", ms=4.0),
        verbose.format(kind="reorder", prop="undef", ms=0.5),
        verbose.format(kind="convolution", prop="forward_training", ms=5.0),
        verbose.format(kind="reorder", prop="undef", ms=1.5),
        "RESULT {}",
        bench_vs_torch.TIMED_END,
        verbose.format(kind="convolution", prop="backward_data", ms=77.0),
    ])
    breakdown = bench_vs_torch.onednn_breakdown(stdout, timed_steps=2)
    assert breakdown == {"convolution forward_training": (4.0, 1.0), "convolution backward_weights": (2.0, 0.5),
                         "reorder": (1.0, 1.0)}
    with pytest.raises(ValueError, match="markers"):
        bench_vs_torch.onednn_breakdown(stdout.replace(bench_vs_torch.TIMED_END, ""), timed_steps=2)
