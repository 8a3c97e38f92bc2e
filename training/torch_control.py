"""A same-data PyTorch control for Table 6: ``python -m training.torch_control --data-dir D --workdir W``.

The akamaster CIFAR-10 recipe, written for this project in plain PyTorch: option-A ResNet-20/32/44/56/110
(3x3 stem with 16 filters, three stages of n basic blocks with 16/32/64 filters, shortcut
``x[:, :, ::2, ::2]`` plus planes//4 zero channels on each side, BatchNorm eps 1e-5, He-normal init),
SGD with momentum 0.9 and weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 at epochs 100 and
150, 200 epochs, augmentation by a 4-pixel zero pad, a random 32x32 crop and a horizontal flip, inputs in
[0, 1] normalised with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).

It reads the same JPEG class folders as ``python -m training`` (``<data-dir>/train/<class>/*.jpg`` and
``<data-dir>/test/<class>/*.jpg``, decoded with Pillow into memory) and writes a workdir in the same
format as that pipeline: ``history.json`` (one row per epoch, the pipeline's row fields),
``config.json`` and ``final_metrics.json``. ``checkpoint.pt`` (model, optimizer, step) is rewritten
after each epoch and at the end, and a rerun with the same workdir resumes from it.

Only torch, numpy, Pillow and the standard library are used; torch is imported inside the functions
that need it, so the data, schedule and argument parts work (and are tested) without torch.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import sys
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
DEPTHS = (20, 32, 44, 56, 110)
HISTORY_FIELDS = (
    "step", "epoch", "learning_rate", "train_loss", "train_error", "eval_loss", "eval_error",
    "train_time_s", "images_per_second",
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and check the command line (``--help`` lists the options)."""
    parser = argparse.ArgumentParser(prog="python -m training.torch_control", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with train/<class>/*.jpg and test/<class>/*.jpg")
    parser.add_argument("--workdir", required=True, help="output folder (resumed when it holds checkpoint.pt)")
    parser.add_argument("--model", default="resnet20", help="resnet20, resnet32, resnet44, resnet56 or resnet110")
    parser.add_argument("--epochs", type=int, default=200, help="training epochs (default 200)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (tiny runs)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop at the first epoch end after this many seconds of this sitting (resumable)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--lr-epochs", default="100,150", help="epochs at which the rate is divided by 10")
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model_depth(args.model)
    if args.device not in ("cuda", "cpu"):
        raise ValueError(f"Unknown device. Received: --device={args.device!r}; accepted: 'cuda', 'cpu'.")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)!r}")
    if args.max_seconds is not None and not args.max_seconds > 0:
        raise ValueError(f"--max-seconds must be above 0. Received: {args.max_seconds!r}")
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps must be at least 1. Received: {args.max_steps!r}")
    try:
        args.lr_epochs = tuple(int(e) for e in args.lr_epochs.split(",") if e.strip())
    except ValueError:
        raise ValueError(f"--lr-epochs takes comma-separated integers. Received: {args.lr_epochs!r}") from None
    return args


def model_depth(model: str) -> int:
    """The depth of a model name such as ``resnet56``; raises ValueError for names this control lacks."""
    accepted = ", ".join(f"resnet{d}" for d in DEPTHS)
    if not model.startswith("resnet") or not model[6:].isdigit() or int(model[6:]) not in DEPTHS:
        raise ValueError(f"Unknown model for the torch control. Received: --model={model!r}; accepted: {accepted}.")
    return int(model[6:])


def learning_rate(epoch: int, base: float = 0.1, boundaries: Sequence[int] = (100, 150)) -> float:
    """The rate during (0-based) ``epoch``: ``base`` divided by 10 at each boundary passed."""
    return base * 0.1 ** sum(epoch >= b for b in boundaries)


def load_split(root: str, split: str, classes: Optional[List[str]] = None) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Decode ``<root>/<split>/<class>/*.jpg`` with Pillow: (N,32,32,3) uint8 images, (N,) int64 labels, classes.

    Classes are the sorted sub-folder names (those of the training split for the test split); files are
    taken in sorted order.
    """
    from PIL import Image

    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise ValueError(f"No '{split}' folder in the data directory. Received: data_dir={root!r}")
    if classes is None:
        classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    paths, labels = [], []
    for index, name in enumerate(classes):
        class_dir = os.path.join(folder, name)
        if not os.path.isdir(class_dir):
            raise ValueError(f"Class folder {name!r} missing from {folder!r} (the classes come from train/).")
        for file in sorted(os.listdir(class_dir)):
            if file.lower().endswith((".jpg", ".jpeg", ".png")):
                paths.append(os.path.join(class_dir, file))
                labels.append(index)

    def decode(path):
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), np.uint8)
        if array.shape != (32, 32, 3):
            raise ValueError(f"Expected 32x32 images. Received: {path!r} {array.shape}")
        return array

    # Pillow releases the GIL while decoding, so threads divide the 60,000 decodes among the cores.
    with concurrent.futures.ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        images = list(pool.map(decode, paths, chunksize=256))
    if not images:
        raise ValueError(f"No images under {folder!r}.")
    return np.stack(images), np.array(labels, np.int64), classes


def epoch_order(num_examples: int, epoch: int, seed: int = 0) -> np.ndarray:
    """The shuffled example order of ``epoch``: a function of (seed, epoch) only, so resuming replays it."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """4-pixel zero pad, random 32x32 crop and random horizontal flip of a (B,32,32,3) uint8 batch."""
    batch = images.shape[0]
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    rows, cols = rng.integers(0, 9, batch), rng.integers(0, 9, batch)
    flips = rng.random(batch) < 0.5
    # One gather for the whole batch: per-image row and (possibly reversed) column indices.
    row_index = rows[:, None] + np.arange(32)[None, :]
    col_index = cols[:, None] + np.arange(32)[None, :]
    col_index = np.where(flips[:, None], col_index[:, ::-1], col_index)
    return padded[np.arange(batch)[:, None, None], row_index[:, :, None], col_index[:, None, :]]


def normalise(images: np.ndarray) -> np.ndarray:
    """(B,32,32,3) uint8 to (B,3,32,32) float32: [0, 1], minus MEAN, over STD, channels first."""
    return np.ascontiguousarray(((images.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2))


def build_model(depth: int, num_classes: int = 10):
    """Option-A CIFAR ResNet of ``depth`` (6n+2) as a torch ``nn.Module``, He-normal initialised."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self, in_planes, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes, eps=1e-5)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
            self.pad = planes // 4 if (stride != 1 or in_planes != planes) else 0

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            shortcut = x
            if self.pad:  # Option A: subsample, then zero channels on both sides.
                shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + shortcut)

    class CifarResNet(nn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16, eps=1e-5)
            layers, in_planes = [], 16
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(n):
                    layers.append(Block(in_planes, planes, stride if i == 0 else 1))
                    in_planes = planes
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(64, num_classes)
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(module.weight)

        def forward(self, x):
            x = self.blocks(F.relu(self.bn1(self.conv1(x))))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return CifarResNet()


def _write_json(path: str, payload) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


def _evaluate(model, images, labels, device, batch_size=1000):
    import torch
    from torch.nn import functional as F

    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(normalise(images[start:start + batch_size])).to(device)
            y = torch.from_numpy(labels[start:start + batch_size]).to(device)
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    model.train()
    return loss_sum / len(images), 1.0 - correct / len(images)


def train(args: argparse.Namespace) -> dict:
    """Train (or resume) the control run described by parsed ``args``; returns the final metrics."""
    import torch
    from torch.nn import functional as F

    started = time.time()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device=cuda but torch sees no CUDA device; accepted: 'cuda' (with a GPU) or 'cpu'.")
    device = torch.device(args.device)
    os.makedirs(args.workdir, exist_ok=True)
    torch.manual_seed(args.seed)
    train_x, train_y, classes = load_split(args.data_dir, "train")
    test_x, test_y, _ = load_split(args.data_dir, "test", classes)
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)

    model = build_model(model_depth(args.model), len(classes)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    checkpoint_path = os.path.join(args.workdir, "checkpoint.pt")
    history_path = os.path.join(args.workdir, "history.json")
    step, rows, train_time = 0, [], 0.0
    if os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, train_time = int(state["step"]), float(state["train_time_s"])
        if os.path.exists(history_path):
            with open(history_path) as handle:
                rows = [row for row in json.load(handle) if row["step"] <= step]
        print(f"Resumed from {checkpoint_path} at step {step} (epoch {state['epoch']}).", flush=True)
    config = {"model": args.model, "framework": "torch", "torch_version": torch.__version__,
              "recipe": "akamaster CIFAR-10 (option A)", "data_dir": os.path.abspath(args.data_dir),
              "epochs": args.epochs, "max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr,
              "lr_epochs": list(args.lr_epochs), "momentum": 0.9, "weight_decay": 1e-4, "seed": args.seed,
              "classes": classes, "train_examples": int(len(train_x)), "test_examples": int(len(test_x))}
    _write_json(os.path.join(args.workdir, "config.json"), config)

    def save(epoch):
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                    "step": step, "train_time_s": train_time}, checkpoint_path + ".tmp")
        os.replace(checkpoint_path + ".tmp", checkpoint_path)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # Fixed shapes: let cuDNN pick its fastest kernels once.
    model.train()
    since = [0.0, 0, 0, train_time]  # loss sum, correct, count, train time at the last row
    sitting_started = time.time()
    while step < total_steps:
        if args.max_seconds is not None and time.time() - sitting_started > args.max_seconds:
            print(f"Stopped by --max-seconds at step {step}/{total_steps}; rerun with the same --workdir to resume.",
                  flush=True)
            break
        epoch, offset = divmod(step, steps_per_epoch)
        rate = learning_rate(epoch, args.lr, args.lr_epochs)
        for group in optimizer.param_groups:
            group["lr"] = rate
        order = epoch_order(len(train_x), epoch, args.seed)
        rng = np.random.default_rng([args.seed, epoch, 1])
        # Loss and correct counts stay on the device until the epoch ends: a host sync per step would
        # make the GPU wait on Python. The epoch's time is read after a synchronisation.
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        tick = time.time()
        for index in range(offset, steps_per_epoch):
            if step >= total_steps:
                break
            chosen = order[index * args.batch_size:(index + 1) * args.batch_size]
            x = torch.from_numpy(normalise(augment(train_x[chosen], rng))).to(device, non_blocking=True)
            y = torch.from_numpy(train_y[chosen]).to(device, non_blocking=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(chosen)
            correct += (logits.argmax(1) == y).sum()
            since[2] += len(chosen)
            step += 1
        since[0] += float(loss_sum.item())  # .item() synchronises, so the epoch's timing is honest.
        since[1] += int(correct.item())
        train_time += time.time() - tick
        eval_loss, eval_error = _evaluate(model, test_x, test_y, device)
        trained = train_time - since[3]
        rows.append({
            "step": step, "epoch": step / steps_per_epoch, "learning_rate": rate,
            "train_loss": since[0] / since[2] if since[2] else float("nan"),
            "train_error": 1.0 - since[1] / since[2] if since[2] else float("nan"),
            "eval_loss": eval_loss, "eval_error": eval_error, "train_time_s": train_time,
            "wall_time_s": time.time() - started,
            "images_per_second": since[2] / trained if trained > 0 else float("nan"),
        })
        since = [0.0, 0, 0, train_time]
        _write_json(history_path, rows)
        save(step // steps_per_epoch)
        row = rows[-1]
        print(f"step {step}/{total_steps} epoch {row['epoch']:.2f} lr {rate:.4g} train_err "
              f"{100 * row['train_error']:.2f}% eval_err {100 * eval_error:.2f}%", flush=True)

    if not rows:  # Resumed a finished run without a history: evaluate once.
        eval_loss, eval_error = _evaluate(model, test_x, test_y, device)
    else:
        eval_error = rows[-1]["eval_error"]
    metrics = {
        "model": args.model, "eval_error": eval_error, "steps": step,
        "wall_time_s": time.time() - started,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": "float32", "framework": "torch", "torch_version": torch.__version__,
        "train_error": rows[-1]["train_error"] if rows else None, "train_time_s": train_time,
        "total_steps": total_steps, "completed": step >= steps_per_epoch * args.epochs,
    }
    _write_json(os.path.join(args.workdir, "final_metrics.json"), metrics)
    print(f"Finished {args.model} (torch control) at step {step}: eval error {100 * eval_error:.2f}%", flush=True)
    return metrics


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point."""
    try:
        args = parse_args(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
