"""Image datasets in the formats torchvision downloads: MNIST, Fashion-MNIST, KMNIST, USPS, CIFAR-10,
CIFAR-100 (20 superclasses) and the paper's 5-class GTSRB subset.

Each loader looks for the original files in the offline mirrors first (the mirror directory itself and the
dataset's conventional subfolders, including torchvision's own layout), then in the download cache; only
then, if allowed, it lets ``torchvision.datasets`` download them into the cache.  The files are always read
by the strict parsers here (not through torchvision), so a mirror and a download give identical arrays.
As in the paper, the train and test splits are concatenated (train first).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brb.data.registry import TEST, TRAIN, DataFileError, FetchOptions, RawData, register_dataset
from brb.data.sources import as_text_list, find_files, load_pickle, locate, read_bytes, read_idx

# ----------------------------------------------------------------------------------------------------
# MNIST family (IDX files)

IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxFamilyMember:
    name: str
    title: str
    torchvision_class: str
    subdirs: tuple[str, ...]
    class_names: tuple[str, ...]
    #: first ten training labels of the real files, to reject another member's files found under a
    #: shared directory name (checked only on full-size, 60,000-label training files)
    fingerprint: tuple[int, ...] | None = None


MNIST_FAMILY = {
    "mnist": IdxFamilyMember(
        "mnist", "MNIST", "MNIST", ("", "mnist", "MNIST/raw", "MNIST"),
        tuple(str(i) for i in range(10)), (5, 0, 4, 1, 9, 2, 1, 3, 1, 4),
    ),
    "fmnist": IdxFamilyMember(
        "fmnist", "Fashion-MNIST", "FashionMNIST",
        ("", "fashion-mnist", "fashion_mnist", "fmnist", "FashionMNIST/raw", "FashionMNIST"),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (9, 0, 0, 3, 0, 2, 7, 2, 5, 5),
    ),
    "kmnist": IdxFamilyMember(
        "kmnist", "Kuzushiji-MNIST", "KMNIST", ("", "kmnist", "KMNIST/raw", "KMNIST"),
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}


def _find_idx_family(member: IdxFamilyMember, directory: Path) -> dict[str, Path] | str | None:
    found = find_files(directory, [*IDX_STEMS["train"], *IDX_STEMS["test"]])
    if not isinstance(found, dict):
        return found
    labels = read_idx(found[IDX_STEMS["train"][1]])
    if labels.ndim == 1 and len(labels) == 60000:
        head = tuple(int(v) for v in labels[:10])
        for other in MNIST_FAMILY.values():
            if other.name != member.name and other.fingerprint is not None and head == other.fingerprint:
                return f"holds {other.title}, not {member.title}"
    return found


def _read_idx_split(images_path: Path, labels_path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFileError(f"{images_path}: holds {images.dtype} of shape {images.shape}; expected uint8 (N, 28, 28)")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataFileError(f"{labels_path}: holds {labels.dtype} of shape {labels.shape}; expected uint8 (N,)")
    if len(images) != len(labels):
        raise DataFileError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(labels) and labels.max() >= n_classes:
        raise DataFileError(f"{labels_path}: label {int(labels.max())} outside 0..{n_classes - 1}")
    return images, labels


def load_idx_family(name: str, options: FetchOptions) -> RawData:
    member = MNIST_FAMILY[name]

    def download(cache: Path) -> None:
        import torchvision.datasets as tvd

        getattr(tvd, member.torchvision_class)(root=str(cache), train=True, download=True)

    paths = locate(
        options,
        member.title,
        member.subdirs,
        lambda d: _find_idx_family(member, d),
        download,
        wanted="train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte (plain or .gz)",
    )
    train, test = (
        _read_idx_split(paths[IDX_STEMS[split][0]], paths[IDX_STEMS[split][1]], len(member.class_names))
        for split in ("train", "test")
    )
    return RawData.from_splits([train], [test], list(member.class_names), channel_axis=True)


@register_dataset("mnist", "MNIST handwritten digits: 70,000 grey 28x28 images (train + test), 10 classes", rank=0)
def load_mnist(options: FetchOptions) -> RawData:
    return load_idx_family("mnist", options)


@register_dataset("fmnist", "Fashion-MNIST: 70,000 grey 28x28 clothing images (train + test), 10 classes", rank=1)
def load_fmnist(options: FetchOptions) -> RawData:
    return load_idx_family("fmnist", options)


@register_dataset("kmnist", "Kuzushiji-MNIST: 70,000 grey 28x28 cursive hiragana images (train + test), 10 classes", rank=2)
def load_kmnist(options: FetchOptions) -> RawData:
    return load_idx_family("kmnist", options)


# ----------------------------------------------------------------------------------------------------
# USPS (libsvm text, bzip2-compressed)

USPS_SIDE = 16


def parse_usps(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse libsvm lines ``label idx:value ...`` (labels 1..10, 256 values in [-1, 1]).

    Returns uint8 images ``(N, 16, 16)`` scaled as torchvision does (``(v + 1) / 2 * 255`` truncated)
    and labels 0..9.  Omitted indices are zeros, as in the libsvm format.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        raise DataFileError(f"{name}: not a libsvm text file ({err})") from None
    n_pixels = USPS_SIDE * USPS_SIDE
    rows: list[np.ndarray] = []
    labels: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        pixels = np.zeros(n_pixels, dtype=np.float32)
        try:
            label = int(float(parts[0]))
            if float(parts[0]) != label:
                raise ValueError(f"label {parts[0]!r} is not an integer")
            for token in parts[1:]:
                index, sep, value = token.partition(":")
                if not sep:
                    raise ValueError(f"entry {token!r} is not index:value")
                i = int(index)
                if not 1 <= i <= n_pixels:
                    raise ValueError(f"index {i} outside 1..{n_pixels}")
                pixels[i - 1] = float(value)
        except ValueError as err:
            raise DataFileError(f"{name}: line {lineno}: {err}") from None
        if not 1 <= label <= 10:
            raise DataFileError(f"{name}: line {lineno}: label {label} outside 1..10")
        if np.abs(pixels).max() > 1 + 1e-4 or not np.isfinite(pixels).all():
            raise DataFileError(f"{name}: line {lineno}: pixel values outside [-1, 1]")
        rows.append(pixels)
        labels.append(label - 1)
    if not rows:
        raise DataFileError(f"{name}: holds no samples (empty or truncated file)")
    values = np.clip(np.stack(rows), -1.0, 1.0)
    images = ((values + 1) / 2 * 255).astype(np.uint8).reshape(-1, USPS_SIDE, USPS_SIDE)
    return images, np.asarray(labels, dtype=np.int64)


@register_dataset("usps", "USPS handwritten digits: 9,298 grey 16x16 images (train 7,291 + test 2,007), 10 classes", rank=3)
def load_usps(options: FetchOptions) -> RawData:
    def download(cache: Path) -> None:
        import torchvision.datasets as tvd
        from torchvision.datasets.utils import download_url

        for url, filename, md5 in tvd.USPS.split_list.values():
            download_url(url, str(cache / "usps"), filename, md5=md5)

    paths = locate(
        options, "USPS", ("", "usps", "USPS"),
        lambda d: find_files(d, ["usps", "usps.t"], suffixes=(".bz2", "")),
        download, wanted="usps.bz2 and usps.t.bz2",
    )
    xs = []
    for stem in ("usps", "usps.t"):
        xs.append(parse_usps(read_bytes(paths[stem]), str(paths[stem])))
    return RawData.from_splits(xs[:1], xs[1:], [str(i) for i in range(10)], channel_axis=True)


# ----------------------------------------------------------------------------------------------------
# CIFAR (python pickles)

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_COARSE_NAMES = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
]
CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def read_cifar_batch(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels from one CIFAR pickle."""
    batch = load_pickle(path)
    if "data" not in batch or label_key not in batch:
        raise DataFileError(f"{path}: lacks {'data' if 'data' not in batch else label_key!r}; not a CIFAR batch")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", None)
        raise DataFileError(f"{path}: 'data' is {type(data).__name__} of shape {shape}; expected uint8 (N, 3072)")
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataFileError(f"{path}: {label_key!r} is not a list of integers") from None
    if labels.shape != (len(data),):
        raise DataFileError(f"{path}: {len(data)} images but {label_key!r} has shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataFileError(f"{path}: {label_key!r} outside 0..{n_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def _names_from_meta(path: Path | None, key: str, default: list[str]) -> list[str]:
    if path is None or not path.is_file():
        return list(default)
    meta = load_pickle(path)
    if key not in meta:
        raise DataFileError(f"{path}: lacks {key!r}")
    names = as_text_list(meta[key], path, key)
    if len(names) != len(default):
        raise DataFileError(f"{path}: {key!r} has {len(names)} names, expected {len(default)}")
    return names


@register_dataset("cifar10", "CIFAR-10: 60,000 colour 32x32 images (train + test), 10 classes", rank=7)
def load_cifar10(options: FetchOptions) -> RawData:
    def download(cache: Path) -> None:
        import torchvision.datasets as tvd

        tvd.CIFAR10(root=str(cache), train=True, download=True)

    paths = locate(
        options, "CIFAR-10", ("cifar-10-batches-py", "", "cifar10", "cifar10/cifar-10-batches-py", "cifar-10"),
        lambda d: find_files(d, CIFAR10_BATCHES, suffixes=("",)),
        download, wanted="cifar-10-batches-py/{data_batch_1..5,test_batch}",
    )
    parts = [read_cifar_batch(paths[b], "labels", 10) for b in CIFAR10_BATCHES]
    names = _names_from_meta(paths[CIFAR10_BATCHES[0]].parent / "batches.meta", "label_names", CIFAR10_NAMES)
    return RawData.from_splits(parts[:-1], parts[-1:], names)


@register_dataset(
    "cifar100-20", "CIFAR-100 with its 20 superclasses as labels: 60,000 colour 32x32 images (train + test)",
    rank=8,
)
def load_cifar100_20(options: FetchOptions) -> RawData:
    def download(cache: Path) -> None:
        import torchvision.datasets as tvd

        tvd.CIFAR100(root=str(cache), train=True, download=True)

    paths = locate(
        options, "CIFAR-100", ("cifar-100-python", "", "cifar100", "cifar100/cifar-100-python", "cifar-100"),
        lambda d: find_files(d, ["train", "test"], suffixes=("",)),
        download, wanted="cifar-100-python/{train,test}",
    )
    parts = [read_cifar_batch(paths[s], "coarse_labels", 20) for s in ("train", "test")]
    names = _names_from_meta(paths["train"].parent / "meta", "coarse_label_names", CIFAR100_COARSE_NAMES)
    return RawData.from_splits(parts[:1], parts[1:], names)


# ----------------------------------------------------------------------------------------------------
# GTSRB: the paper's 5-class subset

GTSRB_CLASSES = (2, 12, 17, 18, 35)
GTSRB_NAMES = ["Speed limit (50km/h)", "Priority road", "No entry", "General caution", "Ahead only"]
GTSRB_SIZE = 32


@dataclass(frozen=True)
class GtsrbFiles:
    train_dir: Path
    test_dir: Path
    test_csv: Path


def _find_gtsrb(base: Path) -> GtsrbFiles | str | None:
    """torchvision's layout under ``base`` (``root/gtsrb``): ``GTSRB/Training/<class>/*.ppm``,
    ``GTSRB/Final_Test/Images/*.ppm`` and ``GT-final_test.csv``; the official archives' ``Final_Training/Images``
    is accepted for the training part."""
    train = next((d for d in (base / "GTSRB/Training", base / "GTSRB/Final_Training/Images") if d.is_dir()), None)
    test = base / "GTSRB/Final_Test/Images"
    csv_path = next((p for p in (base / "GT-final_test.csv", test / "GT-final_test.csv") if p.is_file()), None)
    present = {"GTSRB/Training": train is not None, "GTSRB/Final_Test/Images": test.is_dir(),
               "GT-final_test.csv": csv_path is not None}
    if all(present.values()):
        return GtsrbFiles(train, test, csv_path)  # type: ignore[arg-type]
    if not any(present.values()):
        return None
    return "incomplete: lacks " + ", ".join(k for k, v in present.items() if not v)


def gtsrb_image(path: Path) -> np.ndarray:
    """One image resized to 32x32 (bilinear) and histogram-equalised per colour channel: ``(3, 32, 32)`` uint8."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataFileError(f"{path}: cannot read image ({type(err).__name__}: {err})") from None
    img = img.resize((GTSRB_SIZE, GTSRB_SIZE), Image.Resampling.BILINEAR)
    img = ImageOps.equalize(img)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def _gtsrb_test_rows(csv_path: Path) -> list[tuple[str, int]]:
    try:
        with open(csv_path, newline="") as fh:
            reader = csv.DictReader(fh, delimiter=";", skipinitialspace=True)
            if reader.fieldnames is None or not {"Filename", "ClassId"} <= set(reader.fieldnames):
                raise DataFileError(f"{csv_path}: expected ';'-separated columns including Filename and ClassId")
            return [(row["Filename"], int(row["ClassId"])) for row in reader]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as err:
        raise DataFileError(f"{csv_path}: malformed ground-truth row ({err})") from None


@register_dataset(
    "gtsrb",
    "GTSRB 5-class subset of the paper (original classes 2, 12, 17, 18, 35): colour images resized to 32x32 "
    "with per-image histogram equalisation (train + test)",
    rank=5,
)
def load_gtsrb(options: FetchOptions) -> RawData:
    def download(cache: Path) -> None:
        import torchvision.datasets as tvd

        tvd.GTSRB(root=str(cache), split="train", download=True)
        tvd.GTSRB(root=str(cache), split="test", download=True)

    files = locate(
        options, "GTSRB", ("gtsrb", "", "GTSRB"), _find_gtsrb, download,
        wanted="GTSRB/Training/<class>/*.ppm, GTSRB/Final_Test/Images/*.ppm and GT-final_test.csv",
    )
    relabel = {c: i for i, c in enumerate(GTSRB_CLASSES)}
    samples: list[tuple[Path, int]] = []  # training images first, then test images
    for c in GTSRB_CLASSES:
        folder = files.train_dir / f"{c:05d}"
        images = sorted(folder.glob("*.ppm")) if folder.is_dir() else []
        if not images:
            raise DataFileError(f"{folder}: no .ppm images for GTSRB class {c}; the training folder is incomplete")
        samples += [(p, relabel[c]) for p in images]
    n_test = 0
    for filename, c in _gtsrb_test_rows(files.test_csv):
        if c in relabel:
            path = files.test_dir / filename
            if not path.is_file():
                raise DataFileError(f"{path}: listed in {files.test_csv} but missing")
            samples.append((path, relabel[c]))
            n_test += 1
    if n_test == 0:
        raise DataFileError(f"{files.test_csv}: lists no test image of classes {GTSRB_CLASSES}")
    x = np.stack([gtsrb_image(p) for p, _ in samples])
    split = np.r_[np.full(len(samples) - n_test, TRAIN), np.full(n_test, TEST)]
    return RawData(x=x, y=np.array([c for _, c in samples]), class_names=list(GTSRB_NAMES), split=split)
