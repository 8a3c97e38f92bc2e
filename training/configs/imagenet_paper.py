"""ImageNet recipe of He et al. (2015), section 3.4.

Run:    python -m training --config imagenet_paper --model resnet50 --workdir runs/resnet50 \
            --set data_dir=~/tensorflow_datasets --set manual_dir=~/imagenet-tars
        (any ImageNet model: resnet18/34/50/101/152, plain18/34/50/101/152; or an image folder with
        `--set dataset=image_folder --set data_dir=<root with train/ and val/> --set eval_split=val`)
Reaches (paper, Tables 2-3, 10-crop top-1 validation error %): ResNet-18 27.88, 34 25.03, 50 22.85,
101 21.75, 152 21.43; plain-18 27.94, plain-34 28.54.

Batch 256, SGD momentum 0.9, weight decay 1e-4 (L2), lr 0.1 divided by 10 at fixed epochs 30, 60 and 90
of 120 (the paper divides "when the error plateaus" over 60e4 iterations = 120 epochs; fixed epochs make
runs comparable and resumable), scale augmentation (shorter side in [256, 480]), random 224 crop, flip,
AlexNet colour noise. Evaluation: centre crop of the 256-resized image during training, 10-crop at the end.
"""

from training.config import TrainConfig


def get_config(model: str) -> TrainConfig:
    """The paper's ImageNet recipe for `model`."""
    return TrainConfig(
        model=model,
        dataset="imagenet2012",
        eval_split="validation",
        image_size=224,
        augmentation="imagenet",
        pca_lighting=True,
        final_eval_crops=10,
        global_batch_size=256,
        schedule_unit="epochs",
        train_length=120,
        lr_boundaries=(30, 60, 90),
        log_every_steps=100,
        checkpoint_every_steps=2000,
    )
