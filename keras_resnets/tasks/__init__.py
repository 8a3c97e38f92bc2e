"""What users do with a model: fine-tune, predict, export, describe (class names and preprocessing)."""
