"""The public builders (``ResNet50``, ``PlainNet56``, ...), the model registry and weight loading at build time."""
