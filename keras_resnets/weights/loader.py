"""``load_weights``: put any supported kind of weights into a freshly built model of the zoo.

Accepted ``weights``:

* a registry tag or alias for the model ("imagenet", "cifar10", "tv2_in1k") or a full record name
  ("resnet50.a1_in1k"): downloaded from the Hub once, verified, converted and cached;
* ``"hf://owner/repo"`` or ``"hf://owner/repo@revision"``: Keras-native weights and ``config.json``
  published with :func:`keras_resnets.push_to_hub` or ``python -m weights.publish``;
* a local ``.weights.h5`` or ``.keras`` file (Keras-native);
* a local torch-layout checkpoint: timm/torchvision ``.safetensors``, a state dict saved as
  ``.npz``, or a torch pickle ``.th``/``.pth``/``.pt`` (read without running code; torch optional),
  converted on load.

A file that does not record its architecture (torch-layout files from elsewhere, plain Keras
``.weights.h5``) loads into a residual net, whose tensor names it must match, but is refused by a
plain net: an option-A ResNet has exactly the tensors of its plain twin. State what the file holds
with a prefix, ``weights="plain20:/path/to/file.th"`` (any ``resnetN``/``plainN``), or
``load_weights(..., weights_architecture="plain20")``; a file that records its architecture must
agree with the statement and with the model. Unreadable, unsafe or non-finite files raise
:class:`~keras_resnets.weights.errors.WeightsFileError`.

If the model's number of classes differs from the weights', the backbone is loaded and the classifier
keeps its fresh initialisation (with a warning); a model without top loads the backbone only.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from typing import Optional

import keras

from keras_resnets.architecture import graph
from keras_resnets.architecture.identity import Architecture, WeightsMismatchError
from keras_resnets.weights import cache as cache_lib
from keras_resnets.weights import catalog, checkpoints, fingerprint, hub, torch_layout
from keras_resnets.weights.errors import WeightsFileError, file_error
from keras_resnets.weights.fetch import fetch_record, unavailable_hint  # noqa: F401 (also used from here)
from keras_resnets.weights.records import WeightsRecord

HF_PREFIX = "hf://"
KERAS_SUFFIXES = (".weights.h5", ".keras")
CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.weights.h5"
# "plain20:/path/file.th": the caller states which network a file holds (hf:// never matches: no digits).
_STATED_PREFIX = re.compile(r"^((?:resnet|plainnet|plain)\d+):(.+)$", re.IGNORECASE)


def build_target(architecture: Architecture, include_top: bool, classes: Optional[int], name: str) -> keras.Model:
    """A model of `architecture` with random weights and a logits head (a conversion/loading target)."""
    return graph.build_graph(
        architecture, include_top=include_top, classes=classes, name=name, classifier_activation=None
    )


def architecture_of_record(record: WeightsRecord) -> Architecture:
    """The network a registry weight set was trained for: the standard model of its name."""
    return Architecture.from_name(record.model)


def _stated_architecture(value, argument: str) -> Optional[Architecture]:
    if value is None or isinstance(value, Architecture):
        return value
    try:
        return Architecture.from_name(value)
    except ValueError:
        raise ValueError(
            f"`{argument}` must name the network a weights file holds, e.g. 'plain20' or 'resnet56'. "
            f"Received: {argument}={value!r}"
        ) from None


def load_weights(model: keras.Model, weights, *, architecture: Optional[Architecture] = None,
                 weights_architecture=None) -> None:
    """Load `weights` into `model`, a model of this zoo built from `spec` with the given options.

    Args:
        model: the freshly built model.
        weights: a tag/alias/record name, ``"hf://owner/repo[@revision]"``, or a path, optionally
            prefixed with the network the file holds (``"plain20:/path/file.npz"``; see module doc).
        architecture: what `model` is; read from its layers when omitted.
        weights_architecture: the network a weights *file* holds ("plain20", an Architecture), for
            files that do not record it; same as the ``"plain20:"`` prefix.

    Raises:
        ValueError: unknown tag (listing the available ones) or an unsupported file type.
        keras_resnets.weights.WeightsMismatchError: weights of another architecture.
        keras_resnets.weights.WeightsIntegrityError: a downloaded file failed verification.
        keras_resnets.weights.WeightsNotAvailableError: offline without a cached copy, or not on the Hub.
        keras_resnets.weights.WeightsFileError: an unreadable, unsafe or non-finite weights file.
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
    stated = _stated_architecture(weights_architecture, "weights_architecture")
    prefixed = _STATED_PREFIX.match(weights)
    if prefixed and not os.path.exists(weights):
        from_prefix = _stated_architecture(prefixed.group(1), "weights")
        if stated is not None and stated != from_prefix:
            raise ValueError(
                f"`weights` states {from_prefix.name} but `weights_architecture` states {stated.name}. "
                f"Received: weights={weights!r}, weights_architecture={weights_architecture!r}"
            )
        stated, weights = from_prefix, prefixed.group(2)
    if stated is not None and not (os.path.exists(weights) or _looks_like_path(weights)):
        raise ValueError(
            "A stated weights architecture (the 'plainN:' prefix or `weights_architecture`) applies to weight "
            f"files only; registry tags and hf:// repositories record their own. Received: weights={weights!r}"
        )
    if weights.startswith(HF_PREFIX):
        load_hub_repo_weights(model, weights, architecture)
    elif os.path.exists(weights) and not os.path.isdir(weights):
        load_weights_file(model, weights, architecture, stated=stated)
    elif os.path.isdir(weights):
        raise file_error(weights, f"a weights file {KERAS_SUFFIXES + checkpoints.TORCH_LAYOUT_SUFFIXES}",
                         "it is a folder")
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
        _read_keras_weights(source, fingerprint.verify_weights_file(path))  # Finite, content hash if recorded.
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
    # Read once: the bytes must still be those the cache recorded, and those bytes are what is loaded.
    info = fingerprint.verify_weights_file(str(path), expected_file_sha256=cache_lib.CacheEntry(record).recorded_sha256())
    load_keras_weights(model, info, architecture, source_classes=record.classes, weights_name=record.name)


def load_keras_weights(model, info: fingerprint.WeightsFileInfo, architecture: Architecture, source_classes,
                       weights_name: str) -> None:
    """Load a verified Keras-native ``.weights.h5`` of `architecture` with a `source_classes`-way head into `model`.

    Same head: the file's arrays go straight into `model`. Otherwise (no top, other number of classes)
    they go into a twin model and the backbone layers are copied by name.
    """
    load_head = torch_layout.should_load_head(model, source_classes, weights_name)
    if load_head:
        try:
            _read_keras_weights(model, info)
            return
        except WeightsFileError:
            raise
        except ValueError as error:
            raise WeightsMismatchError(
                f"Weights {weights_name!r} do not fit model {model.name!r}: {str(error)[:500]}"
            ) from error
    twin = build_target(
        architecture, include_top=source_classes is not None, classes=source_classes, name=f"{architecture.name}_source"
    )
    try:
        _read_keras_weights(twin, info)
    except WeightsFileError:
        raise
    except ValueError as error:
        raise WeightsMismatchError(
            f"Weights {weights_name!r} do not fit a {architecture.name}: {str(error)[:500]}"
        ) from error
    copy_weights_by_name(twin, model, load_head=False, weights_name=weights_name)


def _read_keras_weights(model, info: fingerprint.WeightsFileInfo) -> None:
    """Assign the verified arrays of `info` to `model`: by layer name when the file records its layout
    (files this project wrote: the conversion cache, training runs, published weights), which is several
    times faster; otherwise Keras reads the file, and what it assigned is checked against `info`."""
    if not fingerprint.assign_by_layout(model, info):
        model.load_weights(info.path)
        fingerprint.require_loaded_content(model, info)


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


def _file_architecture(recorded: Optional[Architecture], stated: Optional[Architecture], name: str,
                       model_architecture: Architecture) -> None:
    """Check what a file records and what the caller states against each other and the model.

    A file that says nothing, loaded into a plain net, is refused: its tensors are also those of the
    option-A residual twin, so it might be either.
    """
    if recorded is not None and stated is not None:
        stated.require_same(recorded, name, hint=f"The file records {recorded.name}; state that or nothing.")
    known = recorded or stated
    if known is not None:
        model_architecture.require_same(known, name)
    elif not model_architecture.residual:
        raise WeightsMismatchError(
            f"Weights {name!r} do not record which network they hold, and a plain net's tensors are "
            f"exactly those of its residual twin, so loading them into {model_architecture.name} could "
            f"silently load a ResNet. If the file holds a {model_architecture.name}, say so: "
            f"weights='{model_architecture.name}:{name}' (or weights_architecture='{model_architecture.name}')."
        )


def _load_keras_file(path: str, name: str):
    """``keras.saving.load_model`` in safe mode (no Lambda/unsafe deserialisation); one error type."""
    from keras_resnets.weights.checkpoints import check_finite

    expected = "a Keras .keras model file (a zip archive written by model.save)"
    checkpoints.require_regular_file(path, expected)
    if not zipfile.is_zipfile(path):
        raise file_error(path, expected, "it is not a zip archive")
    try:
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - zip, JSON, h5 and deserialisation errors alike.
        raise file_error(path, expected, error) from error
    check_finite(path, {variable.path: keras.ops.convert_to_numpy(variable) for variable in source.weights})
    return source


def load_weights_file(model: keras.Model, path: str, architecture: Architecture,
                      stated: Optional[Architecture] = None) -> None:
    """Load a local weights file of any accepted type into `model`.

    Args:
        stated: the network the caller says the file holds (see the module doc), or None.
    """
    lower = path.lower()
    name = os.path.basename(path)
    if lower.endswith(".weights.h5"):
        info = fingerprint.verify_weights_file(path)
        _file_architecture(info.architecture, stated, name, architecture)
        load_keras_weights(model, info, architecture, info.classifier_classes(), name)
    elif lower.endswith(".keras"):
        source = _load_keras_file(path, name)
        recorded = Architecture.from_model(source)
        _file_architecture(recorded, stated, name, architecture)
        head = torch_layout.model_classifier(source)
        load_head = torch_layout.should_load_head(model, None if head is None else head.units, name)
        copy_weights_by_name(source, model, load_head=load_head, weights_name=name)
    elif lower.endswith(checkpoints.TORCH_LAYOUT_SUFFIXES):
        checkpoint = checkpoints.read_checkpoint(path)
        _file_architecture(checkpoint.architecture, stated, name, architecture)
        state_dict = checkpoint.state_dict
        head_name = checkpoints.head_name_of(state_dict)
        head_shape = torch_layout.classifier_shape(state_dict, head_name)
        load_head = torch_layout.should_load_head(model, None if head_shape is None else head_shape[0], name)
        try:
            values = torch_layout.keras_values_from_state_dict(
                model, state_dict, load_head=load_head, head_name=head_name
            )
        except WeightsMismatchError as error:
            if checkpoint.architecture is None:
                raise
            # The file records this very architecture, so missing or extra tensors mean a damaged file.
            raise file_error(path, f"the tensors of the {checkpoint.architecture.name} it records", error) from error
        torch_layout.assign_values(model, values)
    else:
        raise WeightsFileError(
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
    try:
        with open(downloaded.path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise file_error(downloaded.path, f"the JSON config.json of hf://{repo_id}", error) from error
    if not isinstance(config, dict):
        raise file_error(downloaded.path, f"a JSON object in config.json of hf://{repo_id}", "it is not an object")
    return config


def load_hub_repo_weights(model: keras.Model, uri: str, architecture: Architecture) -> None:
    """Load Keras-native weights published on the Hub (``hf://owner/repo[@revision]``) into `model`.

    The weights file's own architecture record (and its number of classes) must agree with the
    repository's ``config.json``, and both with `model`.
    """
    repo_id, revision = parse_hub_uri(uri)
    config = read_hub_config(repo_id, revision)
    try:
        published = Architecture.from_dict(config.get("architecture"))
    except ValueError as error:
        raise WeightsMismatchError(f"config.json of {uri!r} does not describe a network of this zoo: {error}") from None
    architecture.require_same(published, uri, hint=f"Build the model they were published for ({config.get('model')!r}).")
    weights_file = config.get("weights_file", WEIGHTS_FILENAME)
    if not isinstance(weights_file, str) or not weights_file.endswith(".weights.h5") or "/" in weights_file \
            or "\\" in weights_file:
        raise WeightsMismatchError(
            f"config.json of {uri!r} names weights_file={weights_file!r}; expected a .weights.h5 file at the "
            "repository root (as keras_resnets.push_to_hub writes)."
        )
    downloaded = hub.download_verified(
        repo_id, weights_file, revision, sha256=config.get("weights_sha256"),
        require_sha256=False, description=f"weights {uri!r}",
    )
    info = fingerprint.verify_weights_file(downloaded.path, expected_file_sha256=downloaded.sha256)
    recorded = info.architecture
    if recorded is None:
        raise WeightsMismatchError(
            f"The weights file of {uri!r} records no architecture, so it cannot be checked against config.json "
            "(files published with keras_resnets.push_to_hub record it). It was not loaded."
        )
    published.require_same(recorded, uri, hint=f"config.json of {uri!r} says {published.name}; the repository is inconsistent.")
    file_classes = info.classifier_classes()
    if file_classes != config.get("classes"):
        raise WeightsMismatchError(
            f"The weights file of {uri!r} has a {file_classes}-class classifier but config.json says "
            f"classes={config.get('classes')!r}; the repository is inconsistent. It was not loaded."
        )
    load_keras_weights(model, info, architecture, config.get("classes"), uri)
