"""Training tooling run from a checkout: ``python -m training --config cifar10_paper --model resnet20 --workdir runs/r20``.

Not part of the installed package; the reusable parts live in ``keras_resnets`` (input pipeline,
augmentation, distribution).
"""
