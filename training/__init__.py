"""Training tooling run from a checkout: ``python -m training --config cifar10_paper --model resnet20 --workdir runs/r20``.

Not part of the installed package; the reusable parts live in ``keras_resnets`` (input pipeline,
augmentation, distribution).
"""

import os

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def use_onednn_by_default(environ=None) -> None:
    """Ask TensorFlow for its oneDNN CPU kernels unless the environment already decides.

    TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; elsewhere (e.g. an
    AVX2 server) they train ResNet-20 about 1.5x faster than its default kernels
    (``benchmarks/bench_vs_torch.py``). Only effective before TensorFlow is imported, so the training
    entry points call it first; ``TF_ENABLE_ONEDNN_OPTS=0`` in the environment keeps them off.
    """
    environ = os.environ if environ is None else environ
    environ.setdefault(ONEDNN_VARIABLE, "1")

