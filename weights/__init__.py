"""Maintainer tools for weights, run from a checkout: ``python -m weights.publish``, ``python -m weights.fill_pins``,
``python -m weights.evaluate_cifar``. Not installed with the package; the reusable code is in
:mod:`keras_resnets.weights`."""
