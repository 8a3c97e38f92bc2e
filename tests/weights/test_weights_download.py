"""Downloads cannot hang and unavailable weights say what to do: deadline, unreachable Hub, unpublished records."""

import shlex
import socket
import time

import pytest

import keras_resnets
from helpers.fake_hub import serve_weights
from keras_resnets.weights import WeightsNotAvailableError, catalog, hub as hub_lib
from keras_resnets.weights import loader  # noqa: F401 (imports Keras now, not inside a timed call)

DEADLINE_S = 1.5
CONTENT = bytes(range(256)) * 8  # 2 KB: 16 bytes per 0.1 s would need 13 s.


def _serve_resnet18(hub, monkeypatch):
    record = serve_weights(hub, catalog.CATALOG.get("resnet18.tv_in1k"), CONTENT)
    monkeypatch.setitem(catalog.CATALOG._records, record.name, record)
    return record


def _assert_suggests_the_fix(message):
    assert "download_weights('resnet18.tv_in1k')" in message
    assert "--weights /path/to/model.safetensors" in message


def test_a_trickling_download_stops_at_the_deadline(hub, monkeypatch):
    _serve_resnet18(hub, monkeypatch)
    hub.trickle("timm/resnet18.tv_in1k", "model.safetensors", seconds_per_chunk=0.1)
    deadline = 2 * DEADLINE_S  # Room for the HEAD request on a busy machine: the GET must have started.
    start = time.monotonic()
    with pytest.raises(hub_lib.DownloadTimeoutError) as error:
        keras_resnets.download_weights("resnet18.tv_in1k", timeout=deadline)
    elapsed = time.monotonic() - start
    assert elapsed < 3 * deadline, elapsed
    message = str(error.value)
    assert f"{deadline:g} s deadline" in message and hub_lib.TIMEOUT_ENV in message
    _assert_suggests_the_fix(message)
    assert hub.count("GET") == 1  # The body was being sent when the deadline hit.


def test_a_silent_hub_is_abandoned_at_the_deadline_from_the_environment(hub, monkeypatch):
    _serve_resnet18(hub, monkeypatch)
    hub.go_silent()
    monkeypatch.setenv(hub_lib.TIMEOUT_ENV, str(DEADLINE_S))
    start = time.monotonic()
    with pytest.raises(hub_lib.DownloadTimeoutError, match="deadline"):
        keras_resnets.download_weights("resnet18.tv_in1k")
    assert time.monotonic() - start < 3 * DEADLINE_S
    assert hub.count() >= 1  # The request was accepted, never answered.


def test_an_unreachable_hub_fails_in_seconds_with_the_fix(hub, monkeypatch):
    from huggingface_hub import constants

    with socket.socket() as probe:  # A port that was free a moment ago: nothing listens there.
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    start = time.monotonic()
    with pytest.raises(WeightsNotAvailableError) as error:
        keras_resnets.download_weights("resnet18.tv_in1k")
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "unreachable" in message and f"127.0.0.1:{closed_port}" in message
    _assert_suggests_the_fix(message)
    # The builder takes the same path (huggingface_hub alone would retry for over 20 s).
    start = time.monotonic()
    with pytest.raises(WeightsNotAvailableError, match="unreachable"):
        keras_resnets.ResNet18(weights="imagenet")
    assert time.monotonic() - start < 20


def test_an_unreachable_hub_still_serves_a_cached_file(hub, monkeypatch):
    from huggingface_hub import constants

    record = _serve_resnet18(hub, monkeypatch)
    first = hub_lib.download_verified(record.repo_id, record.filename, None, description="x")  # Unpinned: main.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    again = hub_lib.download_verified(record.repo_id, record.filename, None, description="x")
    assert again == first


@pytest.mark.parametrize("value", [0, -1, "soon", float("inf"), True])
def test_bad_timeouts_are_rejected_by_name(value, monkeypatch):
    with pytest.raises(ValueError, match=r"`timeout` must be a positive number of seconds\. Received: timeout="):
        keras_resnets.download_weights("resnet18.tv_in1k", timeout=value)
    monkeypatch.setenv(hub_lib.TIMEOUT_ENV, str(value))
    with pytest.raises(ValueError, match=hub_lib.TIMEOUT_ENV):
        hub_lib.download_timeout()


def test_unpublished_weights_tell_users_what_to_do_not_maintainers():
    with pytest.raises(WeightsNotAvailableError) as error:
        keras_resnets.download_weights("resnet20.cifar10")
    message = str(error.value)
    assert "not published on the Hub" in message and "--weights /path/to/resnet20-12fca82f.th" in message
    assert "fill" not in message and "OWNER" not in message and "weights.publish" not in message


def test_the_publish_command_in_the_maintainer_note_runs(shared, tmp_path):
    import weights.publish

    note = catalog.CATALOG.get("resnet20.cifar10").pin_note
    command = shlex.split(note.split("`")[1])
    assert command[:3] == ["python", "-m", "weights.publish"]
    argv = [
        str(shared("weights/akamaster/resnet20.npz")) if arg == "/path/to/resnet20.npz"
        else str(tmp_path / arg) if arg.startswith("out/") else arg
        for arg in command[3:]
    ]
    assert weights.publish.main(argv + ["--dry-run"]) == 0
    assert (tmp_path / "out" / "resnet20.cifar10" / "model.weights.h5").is_file()
