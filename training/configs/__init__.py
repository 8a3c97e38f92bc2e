"""Training recipes, one module per recipe; each defines ``get_config(model) -> TrainConfig``."""
