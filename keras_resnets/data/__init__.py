"""Images in, model inputs out: the evaluation transform, augmentation, image folders, input pipelines, class lists."""
