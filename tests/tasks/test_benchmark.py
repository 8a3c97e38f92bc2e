"""keras-resnets benchmark: one row per configuration, the machine described, JSON written."""

import json

import pytest

from keras_resnets import cli
from keras_resnets.tasks.benchmark import benchmark, describe_machine, format_table


def test_one_row_per_configuration_from_the_command(tmp_path, capsys):
    output = tmp_path / "bench.json"
    code = cli.main(["benchmark", "--models", "resnet20", "--batch-sizes", "8", "4", "--steps", "2", "--warmup", "1",
                     "--output-json", str(output)])
    printed = capsys.readouterr().out
    assert code == 0
    saved = json.loads(output.read_text())
    configurations = [(r["mode"], r["batch_size"], r["precision"]) for r in saved["rows"]]
    assert configurations == [("inference", 8, "float32"), ("inference", 4, "float32"),
                              ("train", 8, "float32"), ("train", 4, "float32")]
    for row in saved["rows"]:
        assert row["error"] is None and row["images_per_second"] > 0 and row["compile_s"] > 0
        assert row["input_size"] == [32, 32] and row["steps"] == 2
    assert saved["machine"]["backend"] in printed and saved["machine"]["cpu_cores"] >= 1
    assert "| resnet20 | train | 4 | float32 | 32x32 |" in printed


def test_bfloat16_row_is_measured_or_says_why_not():
    rows = benchmark(["resnet20"], batch_sizes=[8], precisions=["bfloat16"], modes=["inference"], steps=2, warmup=1,
                     input_size=(16, 16))
    assert len(rows) == 1 and rows[0].precision == "bfloat16" and rows[0].input_size == [16, 16]
    assert (rows[0].images_per_second or 0) > 0 or rows[0].error
    assert "| resnet20 | inference | 8 | bfloat16 | 16x16 |" in format_table(rows)


def test_folded_inference_row_times_the_network_without_batch_norm():
    import keras

    from keras_resnets.tasks.benchmark import build_network

    def batch_norms(network):
        return [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]

    assert len(batch_norms(build_network("resnet20", "inference", (32, 32)))) == 19
    assert batch_norms(build_network("resnet20", "inference_folded", (32, 32))) == []
    rows = benchmark(["resnet20"], batch_sizes=[128], modes=["inference_folded"], steps=2, warmup=1)
    assert [(r.mode, r.batch_size, r.error) for r in rows] == [("inference_folded", 128, None)]
    assert rows[0].images_per_second > 0
    assert "| resnet20 | inference_folded | 128 | float32 | 32x32 |" in format_table(rows)


def test_machine_description_names_cpu_and_versions():
    machine = describe_machine()
    assert machine["cpu"] and machine["versions"]["keras"] and machine["cpu_cores_usable"] >= 1


@pytest.mark.parametrize("kwargs, message", [
    ({"precisions": ["float16"]}, "precisions="), ({"modes": ["eval"]}, "modes="),
    ({"batch_sizes": [0]}, "batch_sizes=0"), ({"steps": 0}, "steps=0"), ({"input_size": (32,)}, "input_size="),
])
def test_bad_configuration_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        benchmark(["resnet20"], **kwargs)


@pytest.mark.parametrize("command, expected", [("benchmark", "--precisions"), ("validate", "--labels-file")])
def test_new_commands_have_help(command, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert expected in capsys.readouterr().out
