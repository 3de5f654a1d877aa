"""STL-10 (Coates, Ng & Lee 2011) from its official binary release ``stl10_binary.tar.gz``.

**Files** (``http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz``, MD5 ``91f7769df0f17e558f3565bffb0c7dfb``, the
archive torchvision's ``STL10`` downloads): ``stl10_binary/{train_X,train_y,test_X,test_y,unlabeled_X}.bin``,
``class_names.txt`` and ``fold_indices.txt`` (not used).  ``*_X.bin`` are headerless uint8 images of 3x96x96, each
stored as three 96x96 colour planes (R, G, B) in **column-major** order: byte ``c * 96 + r`` of a plane is the pixel
at row ``r``, column ``c``.  They are read to ``(N, 3, 96, 96)`` row-major arrays (the same transpose as torchvision).
``*_y.bin`` hold one uint8 label 1..10 per image (read as 0..9); ``class_names.txt`` one class name per line.

**``stl10``** (registered): the 13,000 labelled images, train (5,000) then test (8,000) with their ``split`` marks,
10 classes, native 96x96.  Every file must have exactly its official size (5,000 / 8,000 images or labels);
a truncated or padded file raises :class:`DataFileError` naming the file and the expected byte count.

**Unlabelled images** (**``stl10-unlabeled``**, registered for pretraining only): the 100,000 images of
``unlabeled_X.bin``, read by :func:`read_stl10_unlabeled` from the archive, the extracted folder or the ``.bin``
itself (:func:`load_stl10_unlabeled` finds them in the mirrors or downloads the archive); 2.76 GB in memory.  They
have no labels: the prepared file gives every image the one placeholder class ``unlabeled``.  A study adds them to a
pretraining with ``data.pretrain_extra: [stl10-unlabeled]`` (``brb pretrain --extra-data``): their images join the
pretraining set, unscored; clustering and evaluation stay on the labelled images.

**Where the files are looked for**: in every mirror and then in the download cache, in the directory itself and in
its subfolders ``stl10``, ``STL10``, ``stl-10`` and ``stl10_binary``: first the extracted folder ``stl10_binary/``
(torchvision's layout, ``<root>/stl10_binary/*.bin``), then a directory that *is* that folder (holds the ``.bin``
files), then the archive ``stl10_binary.tar.gz`` (read in one streaming pass, never extracted).  Only when none is
found, and downloading is allowed, the archive is downloaded (checksum verified) into ``<cache>/stl10``.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from brb.data.registry import DataFileError, FetchOptions, RawData, register_dataset
from brb.data.sources import find_files, locate

STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
STL10_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
STL10_ARCHIVE = "stl10_binary.tar.gz"
STL10_FOLDER = "stl10_binary"
STL10_SUBDIRS = ("", "stl10", "STL10", "stl-10", "stl10_binary")
STL10_SIDE = 96
STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
LABELLED_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")
UNLABELED_FILE = "unlabeled_X.bin"
CLASS_NAMES_FILE = "class_names.txt"
#: images decoded per read (bounds the temporary memory of the transpose to ~28 MB)
_CHUNK = 1024


@dataclass(frozen=True)
class Stl10Spec:
    """Numbers of images the files must hold (the official release's; tests use tiny ones)."""

    n_train: int = 5000
    n_test: int = 8000
    n_unlabeled: int = 100000

    @property
    def image_bytes(self) -> int:
        return 3 * STL10_SIDE * STL10_SIDE


STL10 = Stl10Spec()

# A reader gets the open file, its size in bytes and its name for messages.
Reader = Callable[[BinaryIO, int, str], object]


def _check_size(size: int, expected: int, name: str, what: str) -> None:
    if size != expected:
        state = "truncated" if size < expected else "has trailing bytes"
        raise DataFileError(f"{name}: {state}: {size} bytes; expected {expected} bytes ({what})")


def _read_exactly(fh: BinaryIO, n: int, name: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise DataFileError(f"{name}: ended after {len(data)} of {n} bytes; the file is truncated")
    return data


def image_reader(n: int, spec: Stl10Spec = STL10) -> Reader:
    """Reads exactly ``n`` column-major images to a row-major ``(n, 3, 96, 96)`` uint8 array, chunk by chunk."""

    def read(fh: BinaryIO, size: int, name: str) -> np.ndarray:
        _check_size(size, n * spec.image_bytes, name, f"{n} images of 3x{STL10_SIDE}x{STL10_SIDE} uint8")
        out = np.empty((n, 3, STL10_SIDE, STL10_SIDE), dtype=np.uint8)
        for start in range(0, n, _CHUNK):
            k = min(_CHUNK, n - start)
            planes = np.frombuffer(_read_exactly(fh, k * spec.image_bytes, name), dtype=np.uint8)
            # each plane is stored column by column: (channel, column, row) -> (channel, row, column)
            out[start:start + k] = planes.reshape(k, 3, STL10_SIDE, STL10_SIDE).transpose(0, 1, 3, 2)
        return out

    return read


def label_reader(n: int) -> Reader:
    """Reads exactly ``n`` uint8 labels 1..10 and returns them as int64 0..9."""

    def read(fh: BinaryIO, size: int, name: str) -> np.ndarray:
        _check_size(size, n, name, f"{n} uint8 labels")
        labels = np.frombuffer(_read_exactly(fh, n, name), dtype=np.uint8).astype(np.int64)
        if n and (labels.min() < 1 or labels.max() > len(STL10_NAMES)):
            bad = int(labels[(labels < 1) | (labels > len(STL10_NAMES))][0])
            raise DataFileError(f"{name}: label {bad} outside 1..{len(STL10_NAMES)}")
        return labels - 1

    return read


def read_class_names(fh: BinaryIO, size: int, name: str) -> list[str]:
    try:
        names = [line.strip() for line in fh.read(size).decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise DataFileError(f"{name}: not a text file ({err})") from None
    if len(names) != len(STL10_NAMES):
        raise DataFileError(f"{name}: holds {len(names)} class names, expected {len(STL10_NAMES)}")
    return names


def _member_key(name: str) -> str | None:
    """``stl10_binary/<file>`` (or ``<file>`` at the top level) -> ``<file>``; other members -> None."""
    while name.startswith("./"):
        name = name[2:]
    parent, _, base = name.rpartition("/")
    return base if parent in ("", STL10_FOLDER) else None


def read_files(source: Path, readers: dict[str, Reader], optional: Sequence[str] = ()) -> dict[str, object]:
    """Apply ``readers`` (file name -> reader) to the files of ``source``: the extracted folder or the archive.

    The archive is read in one streaming pass that stops as soon as every wanted member is read.  A required file
    that is absent raises :class:`DataFileError`; an ``optional`` one is left out of the result.
    """
    results: dict[str, object] = {}
    if source.is_dir():
        for key, reader in readers.items():
            path = source / key
            if not path.is_file():
                if key in optional:
                    continue
                raise DataFileError(f"{path}: missing; {source} is not a complete {STL10_FOLDER}/ folder")
            try:
                with open(path, "rb") as fh:
                    results[key] = reader(fh, path.stat().st_size, str(path))
            except OSError as err:
                raise DataFileError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
        return results
    current = str(source)
    try:
        with tarfile.open(source, "r|*") as tf:
            for member in tf:
                key = _member_key(member.name)
                if key is None or key not in readers or key in results or not member.isfile():
                    continue
                current = f"{source}:{member.name}"
                fh = tf.extractfile(member)
                assert fh is not None  # a regular file
                results[key] = readers[key](fh, member.size, current)
                current = str(source)
                if len(results) == len(readers):
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"{current}: cannot read ({type(err).__name__}: {err}); "
                            "the archive is truncated or corrupt") from None
    missing = [k for k in readers if k not in results and k not in optional]
    if missing:
        raise DataFileError(f"{source}: lacks " + ", ".join(f"{STL10_FOLDER}/{k}" for k in missing)
                            + f"; not the complete {STL10_ARCHIVE}")
    return results


def find_stl10(directory: Path, stems: Sequence[str]) -> Path | str | None:
    """The extracted folder holding ``stems`` (``directory/stl10_binary`` or ``directory`` itself), else the archive
    in ``directory``; a note when a folder holds only some of them; None when there is nothing."""
    notes = []
    for folder in (directory / STL10_FOLDER, directory):
        if folder.is_dir():
            hit = find_files(folder, stems, suffixes=("",))
            if isinstance(hit, dict):
                return folder
            if isinstance(hit, str):
                notes.append(f"{folder}: {hit}")
    archive = directory / STL10_ARCHIVE
    if archive.is_file():
        return archive
    return "; ".join(notes) or None


def locate_stl10(options: FetchOptions, stems: Sequence[str] = LABELLED_FILES) -> Path:
    """The folder or archive holding ``stems``: mirrors first, then the cache, then a download into the cache."""

    def download(cache: Path) -> None:
        from torchvision.datasets.utils import download_url

        download_url(STL10_URL, str(cache / "stl10"), STL10_ARCHIVE, md5=STL10_MD5)

    return locate(
        options, "STL-10", STL10_SUBDIRS, lambda d: find_stl10(d, stems), download,
        wanted=f"{STL10_ARCHIVE} or its extracted folder {STL10_FOLDER}/ with " + ", ".join(stems),
    )


def read_stl10(source: Path, spec: Stl10Spec = STL10) -> RawData:
    """The labelled images of an extracted ``stl10_binary/`` folder or of the archive: train then test."""
    readers: dict[str, Reader] = {
        "train_X.bin": image_reader(spec.n_train, spec), "train_y.bin": label_reader(spec.n_train),
        "test_X.bin": image_reader(spec.n_test, spec), "test_y.bin": label_reader(spec.n_test),
        CLASS_NAMES_FILE: read_class_names,
    }
    files = read_files(source, readers, optional=(CLASS_NAMES_FILE,))
    names = files.get(CLASS_NAMES_FILE, STL10_NAMES)
    train = (files["train_X.bin"], files["train_y.bin"])
    test = (files["test_X.bin"], files["test_y.bin"])
    return RawData.from_splits([train], [test], list(names))  # type: ignore[arg-type]


def load_stl10(options: FetchOptions, spec: Stl10Spec = STL10) -> RawData:
    """``stl10`` with the numbers of images as a parameter (tests use tiny files)."""
    return read_stl10(locate_stl10(options), spec)


def read_stl10_unlabeled(path: str | Path, spec: Stl10Spec = STL10) -> np.ndarray:
    """The unlabelled images ``(N, 3, 96, 96)`` uint8 (N = ``spec.n_unlabeled``, 100,000 in the release) of
    ``stl10_binary.tar.gz``, of an extracted ``stl10_binary/`` folder (or a directory holding it), or of
    ``unlabeled_X.bin`` itself.  For pretraining only: the images have no labels."""
    path = Path(path)
    reader = image_reader(spec.n_unlabeled, spec)
    if path.is_dir() and not (path / UNLABELED_FILE).is_file() and (path / STL10_FOLDER).is_dir():
        path = path / STL10_FOLDER
    if path.is_file() and path.name == UNLABELED_FILE:
        try:
            with open(path, "rb") as fh:
                return reader(fh, path.stat().st_size, str(path))  # type: ignore[return-value]
        except OSError as err:
            raise DataFileError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if not path.exists():
        raise DataFileError(f"{path}: not found (expected {STL10_ARCHIVE}, a {STL10_FOLDER}/ folder or {UNLABELED_FILE})")
    return read_files(path, {UNLABELED_FILE: reader})[UNLABELED_FILE]  # type: ignore[return-value]


def load_stl10_unlabeled(options: FetchOptions, spec: Stl10Spec = STL10) -> np.ndarray:
    """The unlabelled images found in the mirrors / cache (downloading the archive if allowed); see
    :func:`read_stl10_unlabeled`."""
    return read_stl10_unlabeled(locate_stl10(options, (UNLABELED_FILE,)), spec)


@register_dataset(
    "stl10",
    "STL-10 labelled images: 13,000 colour 96x96 images (train 5,000 + test 8,000), 10 classes; the 100,000 "
    "unlabelled images are the dataset stl10-unlabeled (for pretraining: data.pretrain_extra)",
    rank=12,
)
def load_stl10_registered(options: FetchOptions) -> RawData:
    return load_stl10(options)


@register_dataset(
    "stl10-unlabeled",
    "STL-10's 100,000 unlabelled colour 96x96 images, for pretraining only (data.pretrain_extra); one placeholder "
    "class",
    rank=12.5,
)
def load_stl10_unlabeled_registered(options: FetchOptions) -> RawData:
    x = load_stl10_unlabeled(options)
    return RawData(x=x, y=np.zeros(len(x), dtype=np.int64), class_names=["unlabeled"])
