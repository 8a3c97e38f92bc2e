"""Training and evaluation input pipelines: tf.data for every backend, plain NumPy for JAX-only machines.

Sources (:func:`load_data`): TensorFlow Datasets (``cifar10``, ``cifar100``, ``imagenet2012`` from a
manual download folder, ``imagenette``) and image folders (``<data_dir>/<split>/<class>/<image>``).
Small fixed-size datasets (CIFAR) are decoded once into memory; large ones stream from files.

Order and randomness are functions of (seed, epoch, position): epoch ``e`` visits the examples in
``epoch_permutation(n, seed, e)`` order, and the augmentation of the example at position ``p`` of that
order is seeded by (seed, e, p). A run resumed at step ``s`` therefore rebuilds epoch ``s // steps_per_epoch``
and skips the examples already used, seeing exactly what an uninterrupted run sees.

Distribution: global batch ``g`` of an epoch is the slice ``[g*B, (g+1)*B)`` of the permutation. Worker
``w`` of ``W`` takes the ``w``-th of ``W`` equal parts of it and splits that into per-replica batches, so
the union over replicas of one step is the same global batch on any number of devices or hosts.
Evaluation pads the split to whole global batches with zero-weight examples, so every replica runs the
same number of steps (collectives would hang otherwise) and padded examples count for nothing.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from concurrent import futures
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from keras_resnets.data import augment as augment_lib
from keras_resnets.data import image_folder as image_folder_lib

TFDS_DATASETS = ("cifar10", "cifar100", "imagenet2012", "imagenette")
DATASETS = TFDS_DATASETS + ("image_folder",)
AUGMENTATIONS = ("cifar", "imagenet", "none")
_IN_MEMORY_TFDS = ("cifar10", "cifar100")  # 32x32: decoded once into host memory.


@dataclasses.dataclass
class DataSplit:
    """The examples of one split: in memory (``images``), as files (``paths``) or as a TFDS split.

    Attributes:
        num_examples: number of examples.
        labels: int32 labels (None for a streamed TFDS split).
        images: uint8 (N, H, W, 3) when held in memory.
        paths: image file paths when streamed from an image folder.
        tfds_builder: the ``tfds`` builder when streamed from TFDS; ``tfds_split`` names the split.
    """

    num_examples: int
    labels: Optional[np.ndarray] = None
    images: Optional[np.ndarray] = None
    paths: Optional[List[str]] = None
    tfds_builder: object = None
    tfds_split: Optional[str] = None

    @property
    def random_access(self) -> bool:
        """Whether examples can be read in any order (needed for exact resume and stratified subsets)."""
        return self.tfds_builder is None

    def subset(self, indices) -> "DataSplit":
        """The examples at `indices` (random-access splits only)."""
        indices = np.asarray(indices, np.int64)
        return DataSplit(
            num_examples=len(indices),
            labels=self.labels[indices],
            images=None if self.images is None else self.images[indices],
            paths=None if self.paths is None else [self.paths[i] for i in indices],
        )


@dataclasses.dataclass
class Data:
    """A dataset ready for training: train and evaluation splits and what a model needs to know."""

    name: str
    num_classes: int
    class_names: List[str]
    train: DataSplit
    eval: DataSplit
    eval_split_name: str


# ----------------------------------------------------------------------------------------------------
# Loading


def _tfds_builder(name: str, data_dir: Optional[str], manual_dir: Optional[str]):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ValueError(
            f"`dataset={name!r}` needs tensorflow-datasets, which is not installed; use "
            "`dataset='image_folder'` on machines without TensorFlow."
        ) from error
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        if name == "imagenet2012" and manual_dir:
            if not os.path.isdir(manual_dir):
                raise ValueError(
                    "`manual_dir` must be the folder holding ILSVRC2012_img_train.tar and "
                    f"ILSVRC2012_img_val.tar. Received: manual_dir={manual_dir!r}"
                )
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
        else:
            hint = (
                "pass `manual_dir` (the folder with ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar)"
                if name == "imagenet2012"
                else f"prepare it first (`tfds build {name} --data_dir=...`) on a machine with internet"
            )
            raise ValueError(
                f"TFDS dataset {name!r} is not prepared in data_dir {builder.data_dir!r}; {hint}. "
                f"Received: data_dir={data_dir!r}"
            )
    return builder


def _check_split(name: str, split: str, available) -> None:
    if split not in available:
        raise ValueError(f"Dataset {name!r} has no split {split!r}; available: {sorted(available)}. Received: split={split!r}")


def _load_tfds(name, data_dir, manual_dir, train_split, eval_split) -> Data:
    import tensorflow_datasets as tfds

    builder = _tfds_builder(name, data_dir, manual_dir)
    for split in (train_split, eval_split):
        _check_split(name, split, builder.info.splits.keys())
    class_names = list(builder.info.features["label"].names)

    def split_data(split):
        if name in _IN_MEMORY_TFDS:
            images, labels = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True))
            return DataSplit(len(labels), labels=labels.astype(np.int32), images=images.astype(np.uint8))
        return DataSplit(builder.info.splits[split].num_examples, tfds_builder=builder, tfds_split=split)

    return Data(name, len(class_names), class_names, split_data(train_split), split_data(eval_split), eval_split)


def _decode_folder_split(split: DataSplit, image_size: Optional[int]) -> DataSplit:
    """The image-folder split `split` (file paths) with its images decoded into memory."""
    size = (image_size, image_size) if image_size else None
    chunks = [split.paths[i : i + 2048] for i in range(0, split.num_examples, 2048)]
    # PIL releases the GIL while decoding, so threads decode in parallel.
    with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        arrays = list(pool.map(lambda chunk: image_folder_lib.load_image_arrays(chunk, size=size), chunks))
    return DataSplit(split.num_examples, labels=split.labels, images=np.concatenate(arrays))


def _list_image_folder(data_dir, train_split, eval_split) -> Data:
    """The image folder's splits as file paths and labels (nothing decoded yet)."""
    if not data_dir:
        raise ValueError("`dataset='image_folder'` needs `data_dir`: a folder with <split>/<class>/<images>. Received: data_dir=None")
    if not os.path.isdir(data_dir):
        raise ValueError(f"`data_dir` must be an existing folder with <split>/<class>/<images>. Received: data_dir={data_dir!r}")
    for split in (train_split, eval_split):
        if not os.path.isdir(os.path.join(data_dir, split)):
            present = sorted(e.name for e in os.scandir(data_dir) if e.is_dir())
            raise ValueError(
                f"`data_dir` has no {split!r} sub-folder (present: {present}); set the split names or "
                f"the folder. Received: data_dir={data_dir!r}"
            )
    train = image_folder_lib.scan_image_folder(os.path.join(data_dir, train_split), min_classes=2)
    evaluation = image_folder_lib.scan_image_folder(os.path.join(data_dir, eval_split), class_names=train.class_names)
    return Data(
        "image_folder",
        len(train.class_names),
        list(train.class_names),
        DataSplit(len(train), labels=train.labels, paths=list(train.paths)),
        DataSplit(len(evaluation), labels=evaluation.labels, paths=list(evaluation.paths)),
        eval_split,
    )


def stratified_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` examples drawn with equal share per class (reproducible for a seed)."""
    if count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    chosen = []
    for round_index in range(max(len(p) for p in per_class)):
        for members in per_class:
            if round_index < len(members) and len(chosen) < count:
                chosen.append(members[round_index])
    return np.sort(np.asarray(chosen, np.int64))


def load_data(
    dataset: str,
    *,
    data_dir: Optional[str] = None,
    manual_dir: Optional[str] = None,
    train_split: str = "train",
    eval_split: str = "test",
    in_memory: Optional[bool] = None,
    image_size: Optional[int] = None,
    validation_fraction: float = 0.0,
    train_examples: Optional[int] = None,
    eval_examples: Optional[int] = None,
    seed: int = 0,
) -> Data:
    """Load a dataset's training and evaluation splits.

    Args:
        dataset: one of ``DATASETS``: a TFDS name, or "image_folder" for ``data_dir/<split>/<class>/...``.
        data_dir: TFDS data folder, or the image folder root.
        manual_dir: for imagenet2012, the folder with the downloaded ILSVRC2012 tar files.
        train_split, eval_split: split names (TFDS splits, or sub-folders of an image folder).
        in_memory: decode an image folder once into memory (default: only when `image_size` is <= 64,
            i.e. CIFAR-sized data); only the examples kept after the validation split and the subsets are
            decoded. Images are resized to `image_size` when loaded into memory.
        image_size: training resolution (used for in-memory image folders).
        validation_fraction: hold out this stratified fraction of the training split and evaluate on it
            instead of `eval_split` (the paper's 45k/5k CIFAR split is 0.1).
        train_examples, eval_examples: keep a stratified subset of this many examples (quick runs).
        seed: seed of the validation split and of the subsets.

    Raises:
        ValueError: unknown dataset or split, missing folders, or an unprepared TFDS dataset.
    """
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}. Received: dataset={dataset!r}")
    if in_memory is None:
        in_memory = image_size is not None and image_size <= 64
    if dataset == "image_folder":
        # Listed only: the validation split and the subsets below choose examples by label alone, so an
        # in-memory folder decodes just the images it keeps (a 5,000-image subset of CIFAR-10's 60,000).
        data = _list_image_folder(data_dir, train_split, eval_split)
    else:
        data = _load_tfds(dataset, data_dir, manual_dir, train_split, eval_split)
    if validation_fraction:
        if not data.train.random_access:
            raise ValueError(
                f"`validation_fraction` needs a random-access source (CIFAR or an image folder), not "
                f"streamed {dataset!r}. Received: validation_fraction={validation_fraction!r}"
            )
        folder = image_folder_lib.ImageFolder("", [str(i) for i in range(data.train.num_examples)], data.train.labels, data.class_names, [])
        train_part, held_out = image_folder_lib.split_train_validation(folder, validation_fraction, seed)
        data.eval = data.train.subset([int(p) for p in held_out.paths])
        data.train = data.train.subset([int(p) for p in train_part.paths])
        data.eval_split_name = f"{train_split} (held-out {validation_fraction:g})"
    for attribute, count in (("train", train_examples), ("eval", eval_examples)):
        split = getattr(data, attribute)
        if count is not None and count < split.num_examples:
            if not split.random_access:
                raise ValueError(f"Subsets need a random-access source, not streamed {dataset!r}. Received: {attribute}_examples={count}")
            setattr(data, attribute, split.subset(stratified_subset(split.labels, count, seed)))
    if dataset == "image_folder" and in_memory:
        data.train = _decode_folder_split(data.train, image_size)
        data.eval = _decode_folder_split(data.eval, image_size)
    return data


# ----------------------------------------------------------------------------------------------------
# Order and sharding (shared by the tf.data and NumPy pipelines)


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch `epoch` visits the examples; depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def worker_positions(steps: int, global_batch: int, num_workers: int, worker_index: int, start_step: int = 0) -> np.ndarray:
    """Positions (into an epoch's order) that worker `worker_index` reads for steps [start_step, steps)."""
    if global_batch % num_workers:
        raise ValueError(
            f"The global batch must divide evenly over {num_workers} workers. Received: global_batch={global_batch}"
        )
    positions = np.arange(steps * global_batch).reshape(steps, num_workers, global_batch // num_workers)
    return positions[start_step:, worker_index].reshape(-1)


@dataclasses.dataclass
class PipelineOptions:
    """How examples become model inputs.

    Attributes:
        augmentation: "cifar" (pad + crop + flip), "imagenet" (scale augmentation + crop + flip) or "none".
        image_size: training and evaluation resolution (the crop size).
        padding: CIFAR padding before the random crop.
        scale_range: ImageNet shorter-side range of the scale augmentation.
        pca_lighting: add AlexNet colour noise (ImageNet).
        eval_resize: shorter side before the evaluation crop (ImageNet); 0 resizes to `image_size` exactly.
        eval_crops: 1 (centre crop) or 10 (four corners, centre, and mirrors).
        seed: the run seed that, with epoch and position, seeds every random choice.
    """

    augmentation: str = "cifar"
    image_size: int = 32
    padding: int = 4
    scale_range: Tuple[int, int] = (256, 480)
    pca_lighting: bool = False
    eval_resize: int = 256
    eval_crops: int = 1
    seed: int = 0

    def __post_init__(self):
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"`augmentation` must be one of {AUGMENTATIONS}. Received: augmentation={self.augmentation!r}")
        if self.eval_crops not in (1, 10):
            raise ValueError(f"`eval_crops` must be 1 or 10. Received: eval_crops={self.eval_crops!r}")


def _element_seed(tf, seed: int, epoch: int, position):
    return tf.stack([tf.constant(seed * 1_000_003 + epoch, tf.int64), tf.cast(position, tf.int64)])


def _train_view_tf(options: PipelineOptions, image, seed):
    tf = augment_lib._tf()
    if options.augmentation == "cifar":
        image = augment_lib.cifar_augment_tf(image, seed, options.padding)
        image.set_shape([options.image_size, options.image_size, 3])
        return image
    if options.augmentation == "imagenet":
        return augment_lib.imagenet_augment_tf(image, seed, options.image_size, options.scale_range, options.pca_lighting)
    return augment_lib.resize_exact_tf(image, options.image_size) if image.shape[0] != options.image_size else image


def _eval_view_tf(options: PipelineOptions, image):
    if options.eval_crops == 10:
        return augment_lib.ten_crop_tf(image, options.image_size, options.eval_resize)
    if options.augmentation == "imagenet" and options.eval_resize:
        return augment_lib.center_crop_tf(image, options.image_size, options.eval_resize)
    if image.shape[0] == options.image_size and image.shape[1] == options.image_size:
        return image
    return augment_lib.resize_exact_tf(image, options.image_size)


# ----------------------------------------------------------------------------------------------------
# tf.data


class _TfImageStore:
    """Random access to a split's images from tf.data: an in-memory tensor or the image files."""

    def __init__(self, split: DataSplit):
        tf = augment_lib._tf()
        self._split = split
        if split.images is not None:
            self._images = tf.constant(split.images)
        else:
            self._paths = tf.constant(split.paths)
        self._labels = tf.constant(split.labels, tf.int32)

    def load(self, index):
        tf = augment_lib._tf()
        if self._split.images is not None:
            image = tf.gather(self._images, index)
        else:
            image = image_folder_lib.decode_image(tf.io.read_file(tf.gather(self._paths, index)))
        return image, tf.gather(self._labels, index)


class TfDataPipeline:
    """Builds per-replica tf.data pipelines of one split for one worker.

    Args:
        split: the examples.
        options: augmentation and evaluation views.
        global_batch: examples per step over all replicas.
        num_workers, worker_index: this process's share of every global batch.
        replicas_per_worker: devices fed by this process; batches are per-replica.
    """

    def __init__(self, split: DataSplit, options: PipelineOptions, global_batch: int, num_workers: int = 1,
                 worker_index: int = 0, replicas_per_worker: int = 1):
        self.split, self.options = split, options
        self.global_batch, self.num_workers, self.worker_index = global_batch, num_workers, worker_index
        self.per_replica_batch = global_batch // (num_workers * replicas_per_worker)
        self._store = _TfImageStore(split) if split.random_access else None

    def _options(self, dataset):
        tf = augment_lib._tf()
        options = tf.data.Options()
        options.deterministic = True
        # Each worker already reads only its own share, so tf.distribute must not shard again.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options)

    def train_dataset(self, epoch: int, steps_per_epoch: int, start_step: int = 0):
        """Per-replica batches ``(uint8 images, int32 labels)`` of epoch `epoch` from step `start_step` on."""
        tf = augment_lib._tf()
        options, seed = self.options, self.options.seed
        if self._store is None:
            return self._streamed_train(epoch, steps_per_epoch, start_step)
        order = epoch_permutation(self.split.num_examples, seed, epoch)
        positions = worker_positions(steps_per_epoch, self.global_batch, self.num_workers, self.worker_index, start_step)
        dataset = tf.data.Dataset.from_tensor_slices((positions, order[positions]))

        def load(position, index):
            image, label = self._store.load(index)
            return _train_view_tf(options, image, _element_seed(tf, seed, epoch, position)), label

        dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(self.per_replica_batch, drop_remainder=True)
        return self._options(dataset.prefetch(tf.data.AUTOTUNE))

    def _streamed_train(self, epoch, steps_per_epoch, start_step):
        import tensorflow_datasets as tfds

        tf = augment_lib._tf()
        options, seed = self.options, self.options.seed
        read_config = tfds.ReadConfig(
            shuffle_seed=seed * 1_000_003 + epoch,
            input_context=tf.distribute.InputContext(self.num_workers, self.worker_index),
        )
        dataset = self.split.tfds_builder.as_dataset(
            split=self.split.tfds_split, shuffle_files=True, read_config=read_config,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
        per_worker = self.global_batch // self.num_workers
        dataset = dataset.shuffle(16 * per_worker, seed=seed * 1_000_003 + epoch).repeat()
        dataset = dataset.enumerate().skip(start_step * per_worker).take((steps_per_epoch - start_step) * per_worker)

        def load(position, example):
            image = image_folder_lib.decode_image(example["image"])
            seed_pair = _element_seed(tf, seed, epoch, position * self.num_workers + self.worker_index)
            return _train_view_tf(options, image, seed_pair), tf.cast(example["label"], tf.int32)

        dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(self.per_replica_batch, drop_remainder=True)
        return self._options(dataset.prefetch(tf.data.AUTOTUNE))

    def eval_steps(self) -> int:
        """Steps of a full evaluation pass (the split padded to whole global batches)."""
        return -(-self.split.num_examples // self.global_batch)

    def eval_dataset(self):
        """Per-replica batches ``(uint8 views, int32 labels, float32 weights)``; padding has weight 0."""
        tf = augment_lib._tf()
        options = self.options
        steps = self.eval_steps()
        positions = worker_positions(steps, self.global_batch, self.num_workers, self.worker_index)
        if self._store is None:
            return self._streamed_eval(steps)
        valid = positions < self.split.num_examples
        dataset = tf.data.Dataset.from_tensor_slices((np.where(valid, positions, 0), valid.astype(np.float32)))

        def load(index, weight):
            image, label = self._store.load(index)
            return _eval_view_tf(options, image), label, weight

        dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(self.per_replica_batch, drop_remainder=True)
        return self._options(dataset.prefetch(tf.data.AUTOTUNE))

    def train_batches(self, epoch: int, steps_per_epoch: int, start_step: int = 0):
        """The training batches as NumPy arrays (for the JAX engine; one replica per worker here)."""
        return self.train_dataset(epoch, steps_per_epoch, start_step).as_numpy_iterator()

    def eval_batches(self):
        """The evaluation batches ``(views, labels, weights)`` as NumPy arrays (for the JAX engine)."""
        return self.eval_dataset().as_numpy_iterator()

    def _streamed_eval(self, steps):
        import tensorflow_datasets as tfds

        tf = augment_lib._tf()
        options = self.options
        dataset = self.split.tfds_builder.as_dataset(
            split=self.split.tfds_split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
        )
        dataset = dataset.shard(self.num_workers, self.worker_index)

        def load(example):
            image = image_folder_lib.decode_image(example["image"])
            return _eval_view_tf(options, image), tf.cast(example["label"], tf.int32), tf.constant(1.0)

        dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        per_worker = self.global_batch // self.num_workers
        real = len(range(self.worker_index, self.split.num_examples, self.num_workers))
        view_shape = [options.image_size, options.image_size, 3]
        if options.eval_crops == 10:
            view_shape = [10] + view_shape
        padding = tf.data.Dataset.from_tensors((tf.zeros(view_shape, tf.uint8), tf.constant(0), tf.constant(0.0)))
        dataset = dataset.concatenate(padding.repeat(steps * per_worker - real))
        dataset = dataset.batch(self.per_replica_batch, drop_remainder=True)
        return self._options(dataset.prefetch(tf.data.AUTOTUNE))


# ----------------------------------------------------------------------------------------------------
# NumPy (no TensorFlow): in-memory CIFAR-style data for JAX-only machines


def _prefetch(generator, depth: int) -> Iterator:
    """Run `generator` in a background thread, `depth` items ahead of the consumer."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in generator:
                if stop.is_set():
                    return
                items.put(item)
        except BaseException as error:  # Re-raised in the consumer thread.
            items.put(error)
            return
        items.put(done)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class NumpyPipeline:
    """The tf.data pipeline's NumPy twin for in-memory data: per-worker batches, no TensorFlow.

    Supports the "cifar" and "none" augmentations (ImageNet-style pipelines stream files and need
    tf.data). Each global batch's augmentation is seeded by (seed, epoch, step, worker).
    """

    def __init__(self, split: DataSplit, options: PipelineOptions, global_batch: int, num_workers: int = 1,
                 worker_index: int = 0, prefetch: int = 4):
        if split.images is None:
            raise ValueError(
                "The NumPy input pipeline needs data held in memory (CIFAR-sized image folders or "
                "cifar10/cifar100); stream larger datasets with tf.data (TensorFlow installed). "
                "Received: a split of image files or a streamed TFDS split"
            )
        if options.augmentation not in ("cifar", "none") or options.eval_crops != 1:
            raise ValueError(
                "The NumPy input pipeline implements augmentation 'cifar' or 'none' with single-crop "
                f"evaluation. Received: augmentation={options.augmentation!r}, eval_crops={options.eval_crops}"
            )
        if split.images.shape[1:3] != (options.image_size, options.image_size):
            raise ValueError(
                f"In-memory images are {split.images.shape[1:3]}, not the configured size. "
                f"Received: image_size={options.image_size}"
            )
        self.split, self.options = split, options
        self.global_batch, self.num_workers, self.worker_index = global_batch, num_workers, worker_index
        self.prefetch = prefetch

    def _train_batches(self, epoch, steps_per_epoch, start_step):
        order = epoch_permutation(self.split.num_examples, self.options.seed, epoch)
        per_worker = self.global_batch // self.num_workers
        positions = worker_positions(steps_per_epoch, self.global_batch, self.num_workers, self.worker_index, start_step)
        for offset in range(0, len(positions), per_worker):
            step = start_step + offset // per_worker
            indices = order[positions[offset : offset + per_worker]]
            images = self.split.images[indices]
            if self.options.augmentation == "cifar":
                rng = np.random.default_rng([self.options.seed, epoch, step, self.worker_index])
                images = augment_lib.cifar_augment_numpy(images, rng, self.options.padding)
            yield images, self.split.labels[indices]

    def train_batches(self, epoch: int, steps_per_epoch: int, start_step: int = 0) -> Iterator:
        """This worker's ``(uint8 images, int32 labels)`` batches of epoch `epoch` from `start_step` on."""
        return _prefetch(self._train_batches(epoch, steps_per_epoch, start_step), self.prefetch)

    def eval_steps(self) -> int:
        """Steps of a full evaluation pass."""
        return -(-self.split.num_examples // self.global_batch)

    def eval_batches(self) -> Iterator:
        """This worker's ``(images, labels, weights)`` evaluation batches; padding has weight 0."""
        positions = worker_positions(self.eval_steps(), self.global_batch, self.num_workers, self.worker_index)
        per_worker = self.global_batch // self.num_workers
        for offset in range(0, len(positions), per_worker):
            chunk = positions[offset : offset + per_worker]
            valid = chunk < self.split.num_examples
            indices = np.where(valid, chunk, 0)
            yield self.split.images[indices], self.split.labels[indices], valid.astype(np.float32)
