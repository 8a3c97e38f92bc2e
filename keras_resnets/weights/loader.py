"""``load_weights``: put any supported kind of weights into a freshly built model of the zoo.

Accepted ``weights``:

* a registry tag or alias for the model ("imagenet", "cifar10", "tv2_in1k") or a full record name
  ("resnet50.a1_in1k"): downloaded from the Hub once, verified, converted and cached;
* ``"hf://owner/repo"`` or ``"hf://owner/repo@revision"``: Keras-native weights and ``config.json``
  published with :func:`keras_resnets.push_to_hub` or ``python -m weights.publish``;
* a local ``.weights.h5`` or ``.keras`` file (Keras-native);
* a local torch-layout checkpoint: timm/torchvision ``.safetensors``, a state dict saved as
  ``.npz``, or a torch pickle ``.th``/``.pth`` (needs torch), converted on load.

If the model's number of classes differs from the weights', the backbone is loaded and the classifier
keeps its fresh initialisation (with a warning); a model without top loads the backbone only.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import h5py
import keras

from keras_resnets.architecture import graph
from keras_resnets.architecture.identity import Architecture, WeightsMismatchError
from keras_resnets.weights import cache as cache_lib
from keras_resnets.weights import catalog, checkpoints, fingerprint, hub, torch_layout
from keras_resnets.weights.fetch import fetch_record, unavailable_hint  # noqa: F401 (also used from here)
from keras_resnets.weights.records import WeightsRecord

HF_PREFIX = "hf://"
KERAS_SUFFIXES = (".weights.h5", ".keras")
CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.weights.h5"


def build_target(architecture: Architecture, include_top: bool, classes: Optional[int], name: str) -> keras.Model:
    """A model of `architecture` with random weights and a logits head (a conversion/loading target)."""
    return graph.build_graph(
        architecture, include_top=include_top, classes=classes, name=name, classifier_activation=None
    )


def architecture_of_record(record: WeightsRecord) -> Architecture:
    """The network a registry weight set was trained for: the standard model of its name."""
    return Architecture.from_name(record.model)


def load_weights(model: keras.Model, weights, *, architecture: Optional[Architecture] = None) -> None:
    """Load `weights` into `model`, a model of this zoo built from `spec` with the given options.

    Args:
        model: the freshly built model.
        weights: a tag/alias/record name, ``"hf://owner/repo[@revision]"``, or a path (see module doc).
        architecture: what `model` is; read from its layers when omitted.

    Raises:
        ValueError: unknown tag (listing the available ones) or an unsupported file type.
        keras_resnets.weights.WeightsMismatchError: weights of another architecture.
        keras_resnets.weights.WeightsIntegrityError: a downloaded file failed verification.
        keras_resnets.weights.WeightsNotAvailableError: offline without a cached copy, or not on the Hub.
    """
    if architecture is None:
        architecture = Architecture.from_model(model)
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise ValueError(
            "`weights` must be None, a weights tag such as 'imagenet', 'hf://owner/repo[@revision]', or a "
            f"path to a weights file. Received: weights={weights!r}"
        )
    if weights.startswith(HF_PREFIX):
        load_hub_repo_weights(model, weights, architecture)
    elif os.path.isfile(weights):
        load_weights_file(model, weights, architecture)
    elif _looks_like_path(weights):
        raise ValueError(
            "`weights` looks like a file path, but no such file exists. Accepted files: "
            f"{KERAS_SUFFIXES + checkpoints.TORCH_LAYOUT_SUFFIXES}. Received: weights={weights!r}"
        )
    else:
        record = catalog.CATALOG.resolve(architecture.name, weights)
        load_record(model, record, architecture)


def _looks_like_path(weights: str) -> bool:
    return os.sep in weights or "/" in weights or weights.lower().endswith(
        KERAS_SUFFIXES + checkpoints.TORCH_LAYOUT_SUFFIXES
    )


def _check_record_architecture(record: WeightsRecord, architecture: Architecture) -> None:
    expected = architecture_of_record(record)
    differences = expected.differences(architecture)
    if differences:
        field, (theirs, ours) = next(iter(differences.items()))
        raise WeightsMismatchError(
            f"Weights {record.name!r} were trained for the standard {record.model} ({field}={theirs!r}); this "
            f"model was built with {field}={ours!r}, so the tensors would not fit or mean something else. "
            f"Build it with {field}={theirs!r} or use weights=None. Received: {field}={ours!r}"
        )


def cached_record_weights(record: WeightsRecord, force_download: bool = False, timeout=None):
    """Path of `record`'s Keras-native weights in the converted cache, creating the entry if needed.

    The first call downloads (within `timeout` seconds, see :func:`keras_resnets.weights.hub.download_timeout`),
    verifies and converts (under an inter-process lock); later calls only check that the entry exists.
    """
    if not record.published:
        fetch_record(record)  # Raises, with the record's note on how to get the weights.
    entry = cache_lib.CacheEntry(record)
    if not force_download:
        found = entry.lookup()
        if found is not None:
            return found
    with entry.lock():
        found = None if force_download else entry.lookup()
        if found is not None:  # Another process created it while we waited for the lock.
            return found
        downloaded = fetch_record(record, force_download=force_download, timeout=timeout)
        source = _record_source_model(record, downloaded.path)
        return entry.write(source, downloaded.sha256, extra={"source_file": downloaded.path})


def _record_source_model(record: WeightsRecord, path: str) -> keras.Model:
    """A model of `record`'s architecture holding the weights of the downloaded file."""
    source = build_target(architecture_of_record(record), include_top=True, classes=record.classes,
                          name=f"{record.model}_source")
    if record.file_format == "keras-weights-h5":
        source.load_weights(path)
    else:
        state_dict = checkpoints.read_state_dict(path)
        values = torch_layout.keras_values_from_state_dict(
            source, state_dict, load_head=True, head_name=checkpoints.head_name_of(state_dict)
        )
        torch_layout.assign_values(source, values)
    return source


def load_record(model: keras.Model, record: WeightsRecord, architecture: Architecture) -> None:
    """Load the registry weights `record` into `model` (download/convert/cache on first use)."""
    _check_record_architecture(record, architecture)
    path = cached_record_weights(record)
    load_keras_weights(model, str(path), architecture, source_classes=record.classes, weights_name=record.name)


def load_keras_weights(model, path: str, architecture: Architecture, source_classes, weights_name: str) -> None:
    """Load a Keras-native ``.weights.h5`` of `architecture` with a `source_classes`-way head into `model`.

    Same head: Keras loads the file directly (fast path). Otherwise (no top, other number of classes)
    the file is loaded into a twin model and the backbone layers are copied by name.
    """
    load_head = torch_layout.should_load_head(model, source_classes, weights_name)
    if load_head:
        try:
            _read_keras_weights(model, path)
            return
        except ValueError as error:
            raise WeightsMismatchError(
                f"Weights {weights_name!r} do not fit model {model.name!r}: {str(error)[:500]}"
            ) from error
    twin = build_target(
        architecture, include_top=source_classes is not None, classes=source_classes, name=f"{architecture.name}_source"
    )
    try:
        _read_keras_weights(twin, path)
    except ValueError as error:
        raise WeightsMismatchError(
            f"Weights {weights_name!r} do not fit a {architecture.name}: {str(error)[:500]}"
        ) from error
    copy_weights_by_name(twin, model, load_head=False, weights_name=weights_name)


def _read_keras_weights(model, path: str) -> None:
    """``model.load_weights(path)``, by layer name when the file records its layout (files this project
    wrote: the conversion cache, training runs, published weights), which is several times faster."""
    if not fingerprint.assign_by_layout(model, path):
        model.load_weights(path)


def copy_weights_by_name(source: keras.Model, target: keras.Model, load_head: bool, weights_name: str) -> None:
    """Copy every weighted layer of `target` from the same-named layer of `source` (head optional).

    Raises:
        WeightsMismatchError: naming the layer, if `source` lacks it or its shapes differ, or if `source`
            has weighted backbone layers that `target` lacks.
    """
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    used = set()
    for layer in target.layers:
        if not layer.weights or (layer.name == torch_layout.CLASSIFIER_LAYER and not load_head):
            continue
        if layer.name not in source_layers:
            raise WeightsMismatchError(
                f"Weights {weights_name!r} have no layer {layer.name!r}, which model {target.name!r} needs. "
                "Are they for another architecture?"
            )
        values = source_layers[layer.name].get_weights()
        shapes = [tuple(v.shape) for v in values]
        wanted = [tuple(w.shape) for w in layer.weights]
        if shapes != wanted:
            raise WeightsMismatchError(
                f"Layer {layer.name!r}: weights {weights_name!r} have shapes {shapes}, model {target.name!r} "
                f"needs {wanted}. Are they for another architecture?"
            )
        layer.set_weights(values)
        used.add(layer.name)
    unused = sorted(set(source_layers) - used - {torch_layout.CLASSIFIER_LAYER})
    if unused:
        raise WeightsMismatchError(
            f"Weights {weights_name!r} have layers that model {target.name!r} lacks: {unused[:8]}. "
            "They belong to another architecture."
        )


def _classes_in_keras_weights_file(path: str) -> Optional[int]:
    """Outputs of the classifier stored in a Keras ``.weights.h5`` of this zoo (None without top).

    The classifier kernel is the only 2-D variable of these models (conv kernels are 4-D, BN 1-D).
    """
    kernels = []
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: kernels.append(obj.shape) if isinstance(obj, h5py.Dataset)
                          and len(obj.shape) == 2 else None)
    if len(kernels) > 1:
        raise WeightsMismatchError(f"{path} holds several 2-D variables; it is not a model of this zoo.")
    return kernels[0][1] if kernels else None


def load_weights_file(model: keras.Model, path: str, architecture: Architecture) -> None:
    """Load a local weights file of any accepted type into `model`."""
    lower = path.lower()
    name = os.path.basename(path)
    if lower.endswith(".weights.h5"):
        stored = fingerprint.read_fingerprint(path)
        if stored is not None:
            architecture.require_same(stored, name)
        load_keras_weights(model, path, architecture, _classes_in_keras_weights_file(path), name)
    elif lower.endswith(".keras"):
        source = keras.saving.load_model(path, compile=False)
        architecture.require_same(Architecture.from_model(source), name)
        head = torch_layout.model_classifier(source)
        load_head = torch_layout.should_load_head(model, None if head is None else head.units, name)
        copy_weights_by_name(source, model, load_head=load_head, weights_name=name)
    elif lower.endswith(checkpoints.TORCH_LAYOUT_SUFFIXES):
        state_dict = checkpoints.read_state_dict(path)
        head_name = checkpoints.head_name_of(state_dict)
        head_shape = torch_layout.classifier_shape(state_dict, head_name)
        load_head = torch_layout.should_load_head(model, None if head_shape is None else head_shape[0], name)
        values = torch_layout.keras_values_from_state_dict(
            model, state_dict, load_head=load_head, head_name=head_name
        )
        torch_layout.assign_values(model, values)
    else:
        raise ValueError(
            f"Unsupported weights file type; accepted: {KERAS_SUFFIXES + checkpoints.TORCH_LAYOUT_SUFFIXES}. "
            f"Received: weights={path!r}"
        )


def parse_hub_uri(uri: str):
    """``"hf://owner/repo@rev"`` -> ("owner/repo", "rev" or None); raises ValueError if malformed."""
    body = uri[len(HF_PREFIX):]
    repo_id, _, revision = body.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")) or (_ and not revision):
        raise ValueError(
            "`weights` on the Hub must look like 'hf://owner/repo' or 'hf://owner/repo@revision'. "
            f"Received: weights={uri!r}"
        )
    return repo_id, revision or None


def read_hub_config(repo_id: str, revision: Optional[str]) -> dict:
    """Download and parse ``config.json`` of a Keras-native weights repository."""
    downloaded = hub.download_verified(
        repo_id, CONFIG_FILENAME, revision, require_sha256=False, description=f"config.json of {repo_id}"
    )
    with open(downloaded.path) as handle:
        return json.load(handle)


def load_hub_repo_weights(model: keras.Model, uri: str, architecture: Architecture) -> None:
    """Load Keras-native weights published on the Hub (``hf://owner/repo[@revision]``) into `model`."""
    repo_id, revision = parse_hub_uri(uri)
    config = read_hub_config(repo_id, revision)
    try:
        published = Architecture.from_dict(config.get("architecture"))
    except ValueError as error:
        raise WeightsMismatchError(f"config.json of {uri!r} does not describe a network of this zoo: {error}") from None
    architecture.require_same(published, uri, hint=f"Build the model they were published for ({config.get('model')!r}).")
    weights_file = config.get("weights_file", WEIGHTS_FILENAME)
    downloaded = hub.download_verified(
        repo_id, weights_file, revision, sha256=config.get("weights_sha256"),
        require_sha256=False, description=f"weights {uri!r}",
    )
    load_keras_weights(model, downloaded.path, architecture, config.get("classes"), uri)
