"""COIL-20 and COIL-100 (Columbia object image libraries) and MNIST as Aljalbout et al. (2018) use it.

**COIL-20** (``coil20``): the "processed" archive ``coil-20-proc.zip`` of Columbia CAVE, 1,440 grey 128x128 PNGs
``coil-20-proc/obj{1..20}__{0..71}.png`` (20 objects x 72 poses, 5 degrees apart).  **COIL-100** (``coil100``):
``coil-100.zip``, 7,200 colour 128x128 PNGs ``coil-100/obj{1..100}__{0,5,...,355}.png`` (the pose is the angle).
Labels are the object number - 1, class names ``obj1``, ``obj2``, ...; samples are sorted by object, then pose.
Images keep their native 128x128 size (``data.resize`` of a study resizes them on the device, e.g. to tk-uco's
64x64).  Each loader accepts, in every mirror and then in the download cache (the directory itself and the
subfolders ``coil-20``/``coil-100``, ``coil20``/``coil100``, ``COIL-20``/``COIL-100``, ``coil``), the zip
archive or its extracted folder (``coil-20-proc/``, ``coil-100/``; also a mirror that *is* that folder); only
when none is found, and downloading is allowed, the zip is downloaded into ``<cache>/coil-20`` (``coil-100``).
The archive must hold exactly every object x pose image (other members are ignored); a missing, duplicated or
unexpected image, a corrupt archive or an image of another size raises :class:`DataFileError` naming the file.
COIL has no train/test split.

**MNIST-60k** (``mnist60k``), the MNIST of Aljalbout et al.: the deeplearning.net pickle ``mnist.pkl.gz`` holds
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``, float32 rows of 784 pixels in [0, 1] (the
uint8 grey levels / 255), where train = the first 50,000 images of the standard MNIST training set, valid = its
last 10,000 and test = the standard 10,000 test images.  The authors keep train + test (60,000) and drop valid.
Mapping to the standard files::

    mnist60k[:50000]      = pickle train = standard train[:50000]    (split TRAIN)
    (dropped)               pickle valid = standard train[50000:]
    mnist60k[50000:60000] = pickle test  = standard t10k              (split TEST)

When a mirror or the cache holds ``mnist.pkl.gz`` (or ``mnist.pkl``; in the directory itself, ``mnist/`` or
``MNIST/``) it is read (pixels ``round(x * 255)`` as uint8, an exact inverse); otherwise the same 60,000 are
taken from the standard IDX files through the ``mnist`` loader (mirrors, cache, then its download).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brb.data.registry import TEST, TRAIN, DataFileError, FetchOptions, RawData, register_dataset
from brb.data.sources import _SafeUnpickler, candidate_dirs, first_existing, locate, read_bytes
from brb.data.torchvision_sets import load_idx_family

# ----------------------------------------------------------------------------------------------------
# COIL-20 / COIL-100

COIL_NAME = re.compile(r"obj(\d+)__(\d+)\.png")
COIL_BASE = "https://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100/"


@dataclass(frozen=True)
class CoilSpec:
    title: str
    archive: str  # the zip's file name
    folder: str  # the folder inside the zip (and when extracted)
    url: str
    subdirs: tuple[str, ...]
    mode: str  # PIL mode the images are converted to: "L" (grey) or "RGB"
    n_objects: int
    poses: tuple[int, ...]
    side: int = 128

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def n_images(self) -> int:
        return self.n_objects * len(self.poses)


COIL20 = CoilSpec(
    "COIL-20", "coil-20-proc.zip", "coil-20-proc", COIL_BASE + "coil-20/coil-20-proc.zip",
    ("", "coil-20", "coil20", "COIL-20", "coil"), "L", 20, tuple(range(72)),
)
COIL100 = CoilSpec(
    "COIL-100", "coil-100.zip", "coil-100", COIL_BASE + "coil-100/coil-100.zip",
    ("", "coil-100", "coil100", "COIL-100", "coil"), "RGB", 100, tuple(range(0, 360, 5)),
)


def _find_coil(spec: CoilSpec, directory: Path) -> Path | None:
    """The zip in ``directory``, else the extracted folder in it, else ``directory`` itself when it is that folder."""
    archive = directory / spec.archive
    if archive.is_file():
        return archive
    # the folder name doubles as a conventional subfolder (``coil-100/coil-100.zip``): a folder counts only
    # when it holds images
    for folder in (directory / spec.folder, directory):
        if folder.name == spec.folder and folder.is_dir() and any(folder.glob("obj*__*.png")):
            return folder
    return None


def _coil_members(spec: CoilSpec, names: list[str], source: Path) -> dict[tuple[int, int], str]:
    """(object, pose) -> member name for every ``obj<o>__<p>.png``; checks the set is exactly the expected one."""
    members: dict[tuple[int, int], str] = {}
    unexpected: list[str] = []
    for name in names:
        base = name.rsplit("/", 1)[-1]
        match = COIL_NAME.fullmatch(base)
        if match is None:
            continue
        key = (int(match[1]), int(match[2]))
        if not (1 <= key[0] <= spec.n_objects and key[1] in spec.poses):
            unexpected.append(name)
        elif key in members:
            raise DataFileError(f"{source}: holds {base} twice ({members[key]} and {name})")
        else:
            members[key] = name
    expected = f"{spec.n_objects} objects x {len(spec.poses)} poses = {spec.n_images} images"
    if unexpected:
        shown = ", ".join(unexpected[:5]) + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else "")
        raise DataFileError(f"{source}: not {spec.title} ({expected}): unexpected {shown}")
    if len(members) != spec.n_images:
        missing = [f"{spec.folder}/obj{o}__{p}.png" for o in range(1, spec.n_objects + 1) for p in spec.poses
                   if (o, p) not in members]
        absent = sorted({o for o in range(1, spec.n_objects + 1) if all((o, p) not in members for p in spec.poses)})
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        objects = f"; objects with no image: {', '.join(f'obj{o}' for o in absent)}" if absent else ""
        raise DataFileError(
            f"{source}: incomplete {spec.title}: {len(members)} of {expected}; missing {shown}{objects}"
        )
    return members


def _decode_png(data: bytes, spec: CoilSpec, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert(spec.mode)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise DataFileError(f"{name}: cannot read image ({type(err).__name__}: {err})") from None
    if img.size != (spec.side, spec.side):
        raise DataFileError(f"{name}: image of {img.size[0]}x{img.size[1]} pixels; {spec.title} has "
                            f"{spec.side}x{spec.side}")
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_coil(spec: CoilSpec, source: Path) -> RawData:
    """The images of a COIL zip or extracted folder, checked against ``spec``'s objects and poses."""
    if source.is_dir():
        files = {p.relative_to(source).as_posix(): p for p in source.rglob("obj*__*.png")}
        members = _coil_members(spec, sorted(files), source)
        return _decode_all(spec, members, lambda name: files[name].read_bytes(), lambda name: str(files[name]))
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise DataFileError(f"{source}: not a readable zip archive ({type(err).__name__}: {err}); "
                            "the file is truncated or corrupt") from None
    with zf:
        members = _coil_members(spec, zf.namelist(), source)
        return _decode_all(spec, members, zf.read, lambda name: f"{source}:{name}")


def _decode_all(spec: CoilSpec, members: dict[tuple[int, int], str], read, label) -> RawData:
    keys = sorted(members)  # by object, then pose
    x = np.empty((len(keys), spec.channels, spec.side, spec.side), dtype=np.uint8)
    for i, key in enumerate(keys):
        name = members[key]
        try:
            data = read(name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, NotImplementedError) as err:
            raise DataFileError(f"{label(name)}: cannot read ({type(err).__name__}: {err}); "
                                "the archive is truncated or corrupt") from None
        x[i] = _decode_png(data, spec, label(name))
    y = np.array([o - 1 for o, _ in keys])
    return RawData(x=x, y=y, class_names=[f"obj{o}" for o in range(1, spec.n_objects + 1)])


def load_coil(spec: CoilSpec, options: FetchOptions) -> RawData:
    def download(cache: Path) -> None:
        from torchvision.datasets.utils import download_url

        download_url(spec.url, str(cache / spec.subdirs[1]), spec.archive)

    source = locate(
        options, spec.title, spec.subdirs, lambda d: _find_coil(spec, d), download,
        wanted=f"{spec.archive} or its extracted folder {spec.folder}/",
    )
    return read_coil(spec, source)


@register_dataset(
    "coil20", "COIL-20 (processed): 1,440 grey 128x128 images of 20 objects x 72 poses, 20 classes", rank=10,
)
def load_coil20(options: FetchOptions) -> RawData:
    return load_coil(COIL20, options)


@register_dataset(
    "coil100", "COIL-100: 7,200 colour 128x128 images of 100 objects x 72 poses, 100 classes", rank=11,
)
def load_coil100(options: FetchOptions) -> RawData:
    return load_coil(COIL100, options)


# ----------------------------------------------------------------------------------------------------
# MNIST-60k (Aljalbout et al.): deeplearning.net's mnist.pkl.gz train + test, or the same from the IDX files

MNIST_PICKLE_NAMES = ("mnist.pkl.gz", "mnist.pkl")
MNIST_PICKLE_SUBDIRS = ("", "mnist", "MNIST")
#: rows of the pickle's train, valid and test parts
MNIST_PICKLE_SIZES = (50000, 10000, 10000)
MNIST_SIDE = 28


def _pickle_part(part, what: str, n: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(part, (tuple, list)) and len(part) == 2):
        raise DataFileError(f"{path}: the {what} part is not an (images, labels) pair")
    x, y = part
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.shape != (n, MNIST_SIDE * MNIST_SIDE):
        raise DataFileError(f"{path}: {what} images are {type(x).__name__} {getattr(x, 'dtype', '')} of shape "
                            f"{getattr(x, 'shape', None)}; expected float ({n}, {MNIST_SIDE * MNIST_SIDE})")
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (n,):
        raise DataFileError(f"{path}: {what} labels are {type(y).__name__} {getattr(y, 'dtype', '')} of shape "
                            f"{getattr(y, 'shape', None)}; expected integers ({n},)")
    if n and (y.min() < 0 or y.max() > 9):
        raise DataFileError(f"{path}: {what} labels outside 0..9")
    if n and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise DataFileError(f"{path}: {what} pixel values outside [0, 1]")
    scaled = x.astype(np.float64) * 255
    pixels = np.rint(scaled)
    if n and np.abs(scaled - pixels).max() > 0.01:
        raise DataFileError(f"{path}: {what} pixel values are not grey levels / 255")
    return pixels.astype(np.uint8).reshape(n, MNIST_SIDE, MNIST_SIDE), y.astype(np.int64)


def read_mnist_pickle(path: Path, sizes: tuple[int, int, int] = MNIST_PICKLE_SIZES) -> RawData:
    """Train + test of deeplearning.net's ``mnist.pkl.gz`` (the valid part is checked, then dropped)."""
    data = read_bytes(path)
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:
        raise DataFileError(f"{path}: not a readable dataset pickle ({type(err).__name__}: {err})") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 3):
        raise DataFileError(f"{path}: holds a {type(obj).__name__}; expected the (train, valid, test) tuple "
                            "of deeplearning.net's mnist.pkl.gz")
    train, _, test = (_pickle_part(part, what, n, path) for part, what, n in zip(obj, ("train", "valid", "test"), sizes))
    return RawData.from_splits([train], [test], [str(i) for i in range(10)], channel_axis=True)


def mnist_from_idx(raw: RawData, sizes: tuple[int, int, int] = MNIST_PICKLE_SIZES) -> RawData:
    """The pickle's train + test from the ``mnist`` loader's data: standard train[:sizes[0]] and the test set."""
    if raw.split is None:  # pragma: no cover - the mnist loader always marks its split
        raise DataFileError("MNIST-60k: the mnist loader returned no train/test split")
    train, test = raw.split == TRAIN, raw.split == TEST
    n_train, n_valid, n_test = sizes
    if train.sum() != n_train + n_valid or test.sum() != n_test:
        raise DataFileError(f"MNIST-60k: the standard MNIST files hold {train.sum()} training and {test.sum()} test "
                            f"images; expected {n_train + n_valid} and {n_test}")
    index = np.r_[np.flatnonzero(train)[:n_train], np.flatnonzero(test)]
    return RawData(x=raw.x[index], y=raw.y[index], class_names=raw.class_names, split=raw.split[index])


def load_mnist60k_sized(options: FetchOptions, sizes: tuple[int, int, int] = MNIST_PICKLE_SIZES) -> RawData:
    """``mnist60k`` with the pickle's (train, valid, test) sizes as a parameter (tests use tiny files)."""
    dirs = candidate_dirs([*options.mirrors, options.cache_dir], MNIST_PICKLE_SUBDIRS)
    for directory in dirs:
        path = first_existing(directory, MNIST_PICKLE_NAMES) if directory.is_dir() else None
        if path is not None:
            return read_mnist_pickle(path, sizes)
    try:
        raw = load_idx_family("mnist", options)
    except DataFileError as err:
        places = "\n  ".join(str(d) for d in dirs)
        raise DataFileError(f"MNIST-60k: no mnist.pkl.gz in any of:\n  {places}\nand the standard MNIST files "
                            f"failed: {err}") from err
    return mnist_from_idx(raw, sizes)


@register_dataset(
    "mnist60k",
    "MNIST as Aljalbout et al. 2018: 60,000 grey 28x28 images (deeplearning.net pickle train 50,000 = standard "
    "train[:50000], + test 10,000; the 10,000 validation images dropped), 10 classes",
    rank=9,
)
def load_mnist60k(options: FetchOptions) -> RawData:
    return load_mnist60k_sized(options)
