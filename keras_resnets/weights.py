"""Loading weights into a freshly built model.

Only local Keras-native files are handled here so far; pretrained tags and the Hugging Face Hub come
with the weights registry.
"""

from __future__ import annotations

import os


def load_weights(model, weights, **architecture):
    """Load `weights` (a path to a ``.weights.h5`` or ``.keras`` file) into `model`.

    Raises:
        ValueError: if `weights` is not an existing Keras weights file.
    """
    del architecture
    path = os.fspath(weights)
    if not os.path.isfile(path) or not path.endswith((".weights.h5", ".keras")):
        raise ValueError(
            "`weights` must be None or the path of an existing .weights.h5 or .keras file. "
            f"Received: weights={weights!r}"
        )
    if path.endswith(".keras"):
        import keras

        source = keras.saving.load_model(path, compile=False)
        model.set_weights(source.get_weights())
    else:
        model.load_weights(path)
