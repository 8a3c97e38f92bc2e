"""CIFAR-10 recipe of He et al. (2015), section 4.2.

Run:    python -m training --config cifar10_paper --model resnet20 --workdir runs/resnet20
        (any CIFAR model: resnet20/32/44/56/110/1202, plain20/32/44/56/110/1202)
Reaches (paper, Table 6, test error %): ResNet-20 8.75, 32 7.51, 44 7.17, 56 6.97, 110 6.43, 1202 7.93.
Plain nets get worse with depth (Figure 6). On the JPEG re-encoded CIFAR-10 in shared/
(`--set dataset=image_folder --set data_dir=<cifar10-jpeg>`), expect a few points more error.

Batch 128, SGD momentum 0.9, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k, weight decay
1e-4 as an L2 penalty (gradient += 1e-4 * w, Caffe/PyTorch SGD semantics), 4-pixel pad + random 32x32
crop + flip. Preprocessing: per-channel normalisation with the training set's mean and std (the paper
subtracts the per-pixel mean; `--set normalization=per_pixel_mean` does that). `--set
validation_fraction=0.1` gives the paper's 45k/5k split. Networks of depth >= 110 warm up at lr 0.01
until the training error is below 80% (about 400 iterations), as the paper does for ResNet-110.
"""

from training.modeling import model_spec

from training.config import TrainConfig


def get_config(model: str) -> TrainConfig:
    """The paper's CIFAR-10 recipe for `model` (the defaults of TrainConfig are this recipe)."""
    config = TrainConfig(model=model, dataset="cifar10")
    if model_spec(model).depth >= 110:
        config.warmup_lr = 0.01
    return config
