"""ImageNet-style folder trees (``root/<wnid>/<image>``) and the ImageNet subsets of the clustering literature.

**Reader** (:func:`read_image_folder`): a class list selects and orders the class folders (label = position in the
list; other folders are ignored); the images of a class are every file under its folder (subfolders included)
whose name ends in ``.jpeg``, ``.jpg`` or ``.png`` (any case; names starting with ``.`` are skipped), sorted by
path.  Each is decoded with PIL (by content, so ImageNet's CMYK JPEGs and its one PNG named ``.JPEG`` are read),
converted to RGB (grey images get three equal channels) and brought to ``side`` x ``side``:

* ``resize="crop"`` (default): the shorter side is resized to ``side`` (bilinear, antialiased) and the centre
  ``side`` x ``side`` square is cropped, exactly as torchvision's ``Resize(side)`` + ``CenterCrop(side)`` on a PIL
  image.  This keeps the aspect ratio, as ProPos's ImageNet test transform (``Resize(256)`` + ``CenterCrop(224)``,
  ``test_resized_crop``) and DeepCluster's do; a direct resize would squeeze the mostly 4:3 ImageNet photographs,
  and the stored images are also what the training augmentations crop from.
* ``resize="stretch"``: a direct bilinear resize to ``side`` x ``side`` (the aspect ratio is lost), as the test
  transforms of Contrastive Clustering (``Resize((size, size))``) and of ProPos without ``test_resized_crop`` do.

Result: uint8 ``(N, 3, side, side)``, labels in class-list order; no train/test split (``split`` is None).  A
missing or empty class folder, or an image that cannot be decoded, raises :class:`DataFileError` naming it.

**Registered subsets** (the images of ILSVRC-2012's *training* set of these classes, as in the literature; the
validation images are not used; the image counts are DAC's):

* ``imagenet10``: ImageNet-10 of Chang et al., *Deep Adaptive Image Clustering* (DAC, ICCV 2017), 10 classes,
  13,000 images; used by Contrastive Clustering (CC), ProPos and most later deep-clustering papers.
* ``imagenet-dogs``: ImageNet-Dogs of DAC, 15 dog breeds, 19,500 images.

WNID lists (:data:`IMAGENET10_WNIDS`, :data:`IMAGENET_DOGS_WNIDS`): copied from the files that Contrastive
Clustering ships, ``datasets/ImageNet-10.txt`` and ``datasets/ImageNet-dogs.txt`` of Yunfan-Li/Contrastive-Clustering
(commit 647d891e98da0eecacb7334abee1c963f085b027); identical lists (same order) are hard-coded in DivClust's
``data/dataset_implementations/dataset_readers.py`` (ManiadisG/DivClust, commit da034e9), and the 15 breed names
match the class list of MTEB's ``ImageNetDog15Clustering`` task.  Both lists are sorted, so the labels equal those of
torchvision's ``ImageFolder`` on a folder holding only these classes (what CC and ProPos read).

**Side**: :data:`IMAGENET_SUBSET_SIDE` = 96, STL-10's native size: it keeps a subset small enough to live on the
device whole (13,000 x 3 x 96 x 96 = 360 MB; 19,500 images = 540 MB) and it is the size ProPos's author gave for
STL-10 (issue #11) and left commented out in ``config/imagenetdogs_r34_propos.yml``.  That config, and CC
(``image_size: 224``), actually train ImageNet-Dogs / ImageNet-10 at **224** px with a ResNet-34, which would be
2.0 GB / 2.9 GB here; :func:`read_image_folder` and :func:`load_imagenet_subset` take ``side`` for such a variant.

**Where the tree is looked for** (no download: ImageNet's images need a licence from https://image-net.org): in
every mirror and then the download cache, the first directory holding a folder for *every* class of the list, among
the dataset's own folder (``imagenet10/``, ``imagenet-10/``, ``ImageNet-10/``; ``imagenet-dogs/``, ``imagenetdogs/``,
``ImageNet-dogs/``, ``ImageNet-Dogs/``; each also with a ``train/`` subfolder, ProPos's layout), then the full
training tree ``imagenet/train/`` (torchvision's ``ImageNet`` layout), ``ILSVRC2012/train/``,
``imagenet/ILSVRC/Data/CLS-LOC/train/`` or ``ILSVRC/Data/CLS-LOC/train/`` (Kaggle's), then the directory itself.

* ``imagenet``: the full ILSVRC-2012 training set (1,000 classes, 1.28 M images; DeepCluster's). At 224 px it is
  193 GB of uint8, which fits neither one in-memory :class:`RawData` nor one ``.npz``: it is prepared as an *image
  index* (``x`` = the image paths, sorted by class then path; labels = the sorted WNID folders present; the class
  names are the WNIDs), decoded batch by batch at training time (:class:`brb.data.stream.FolderData`). The tree is
  found in the mirrors as for the subsets (``imagenet/train/`` …): every folder named like a WNID (``n`` + 8
  digits) is a class.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from brb.data.registry import DataFileError, FetchOptions, RawData, register_dataset
from brb.data.sources import candidate_dirs

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
RESIZE_MODES = ("crop", "stretch")
#: side of the stored ImageNet-10 / ImageNet-Dogs images (see the module docstring)
IMAGENET_SUBSET_SIDE = 96

#: ImageNet-10 (DAC, Chang et al. 2017), from Yunfan-Li/Contrastive-Clustering datasets/ImageNet-10.txt
IMAGENET10_WNIDS = (
    "n02056570", "n02085936", "n02128757", "n02690373", "n02692877",
    "n03095699", "n04254680", "n04285008", "n04467665", "n07747607",
)
IMAGENET10_NAMES = (
    "king penguin", "Maltese dog", "snow leopard", "airliner", "airship",
    "container ship", "soccer ball", "sports car", "trailer truck", "orange",
)
#: ImageNet-Dogs (DAC, Chang et al. 2017), from Yunfan-Li/Contrastive-Clustering datasets/ImageNet-dogs.txt
IMAGENET_DOGS_WNIDS = (
    "n02085936", "n02086646", "n02088238", "n02091467", "n02097130", "n02099601", "n02101388", "n02101556",
    "n02102177", "n02105056", "n02105412", "n02105855", "n02107142", "n02110958", "n02112137",
)
IMAGENET_DOGS_NAMES = (
    "Maltese dog", "Blenheim spaniel", "basset", "Norwegian elkhound", "giant schnauzer", "golden retriever",
    "Brittany spaniel", "clumber", "Welsh springer spaniel", "groenendael", "kelpie", "Shetland sheepdog",
    "Doberman", "pug", "chow",
)
#: folders of the full ILSVRC-2012 training tree (``<dir>/<wnid>/*.JPEG``), tried after a subset's own folders
IMAGENET_TRAIN_SUBDIRS = (
    "imagenet/train", "ILSVRC2012/train", "imagenet/ILSVRC/Data/CLS-LOC/train", "ILSVRC/Data/CLS-LOC/train",
)


def _with_train(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(names) + tuple(f"{n}/train" for n in names)


SUBSET_SUBDIRS = {
    "imagenet10": _with_train(("imagenet10", "imagenet-10", "ImageNet-10")),
    "imagenet-dogs": _with_train(("imagenet-dogs", "imagenetdogs", "ImageNet-dogs", "ImageNet-Dogs")),
}


# ----------------------------------------------------------------------------------------------------
# Reading a folder tree


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_image_folder(root: str | Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """(image path, label) for every image of ``classes`` (label = index in ``classes``), class by class."""
    root = Path(root)
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"the class list must be non-empty and without duplicates: {list(classes)}")
    samples: list[tuple[Path, int]] = []
    for label, wnid in enumerate(classes):
        folder = root / wnid
        if not folder.is_dir():
            raise DataFileError(f"{folder}: missing; the class {wnid} has no folder in {root}")
        images = sorted((p for p in folder.rglob("*") if is_image_file(p) and p.is_file()),
                        key=lambda p: p.relative_to(folder).as_posix())
        if not images:
            raise DataFileError(f"{folder}: holds no image ({', '.join(IMAGE_SUFFIXES)}) of class {wnid}")
        samples += [(p, label) for p in images]
    return samples


def read_image(path: str | Path, side: int, resize: str = "crop") -> np.ndarray:
    """One image as RGB ``(3, side, side)`` uint8 (``resize``: ``crop`` or ``stretch``, see the module docstring)."""
    from PIL import Image, UnidentifiedImageError

    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, not {resize!r}")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataFileError(f"{path}: cannot read image ({type(err).__name__}: {err})") from None
    width, height = img.size
    if resize == "stretch":
        img = img.resize((side, side), Image.Resampling.BILINEAR)
    else:
        # torchvision Resize(side): the shorter side becomes side, the longer one int(side * long / short)
        if width <= height:
            size = (side, int(side * height / width))
        else:
            size = (int(side * width / height), side)
        if size != (width, height):
            img = img.resize(size, Image.Resampling.BILINEAR)
        # torchvision CenterCrop(side)
        left = int(round((size[0] - side) / 2.0))
        top = int(round((size[1] - side) / 2.0))
        img = img.crop((left, top, left + side, top + side))
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def read_image_folder(
    root: str | Path,
    classes: Sequence[str],
    side: int = IMAGENET_SUBSET_SIDE,
    names: Sequence[str] | None = None,
    resize: str = "crop",
    workers: int | None = None,
) -> RawData:
    """The images of ``root/<class>/`` for each of ``classes`` (in that order) as :class:`RawData`.

    ``names``: the class names stored (default: the folder names); ``workers``: decoding threads (default: up to 8;
    PIL releases the GIL while decoding and resizing).
    """
    if names is not None and len(names) != len(classes):
        raise ValueError(f"{len(names)} class names for {len(classes)} classes")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, not {resize!r}")
    samples = list_image_folder(root, classes)
    x = np.empty((len(samples), 3, side, side), dtype=np.uint8)

    def decode(i: int) -> None:
        x[i] = read_image(samples[i][0], side, resize)

    workers = workers or min(8, os.cpu_count() or 1)
    if workers > 1 and len(samples) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                for _ in pool.map(decode, range(len(samples))):  # re-raises the first failure, in sample order
                    pass
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    else:
        for i in range(len(samples)):
            decode(i)
    y = np.array([label for _, label in samples], dtype=np.int64)
    return RawData(x=x, y=y, class_names=list(names if names is not None else classes))


# ----------------------------------------------------------------------------------------------------
# Finding a tree in the mirrors


def _find_classes(directory: Path, classes: Sequence[str]) -> Path | str | None:
    present = [c for c in classes if (directory / c).is_dir()]
    if len(present) == len(classes):
        return directory
    if not present:
        return None
    missing = [c for c in classes if c not in present]
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"incomplete: lacks the class folders {shown}"


def locate_image_folder(options: FetchOptions, title: str, subdirs: Sequence[str], classes: Sequence[str]) -> Path:
    """The first directory (mirrors, then the cache; each with ``subdirs``) holding a folder for every class."""
    searched: list[str] = []
    for directory in candidate_dirs([*options.mirrors, options.cache_dir], subdirs):
        hit = _find_classes(directory, classes) if directory.is_dir() else None
        if isinstance(hit, Path):
            return hit
        searched.append(f"{directory} ({hit})" if hit else str(directory))
    places = "\n  ".join(searched)
    raise DataFileError(
        f"{title}: no directory holds a folder for each of its {len(classes)} classes ({', '.join(classes)}); "
        f"ImageNet is not downloaded automatically (its images need a licence from https://image-net.org). Put the "
        f"ILSVRC-2012 training tree in a mirror as <mirror>/imagenet/train/<wnid>/*.JPEG (or only these classes' "
        f"folders as <mirror>/{subdirs[0]}/<wnid>/...) and pass --mirror <mirror>; searched:\n  {places}"
    )


def load_imagenet_subset(
    options: FetchOptions, name: str, side: int = IMAGENET_SUBSET_SIDE, resize: str = "crop",
) -> RawData:
    """``imagenet10`` or ``imagenet-dogs`` with the image side and resize mode as parameters."""
    title, classes, names = {
        "imagenet10": ("ImageNet-10", IMAGENET10_WNIDS, IMAGENET10_NAMES),
        "imagenet-dogs": ("ImageNet-Dogs", IMAGENET_DOGS_WNIDS, IMAGENET_DOGS_NAMES),
    }[name]
    subdirs = SUBSET_SUBDIRS[name] + IMAGENET_TRAIN_SUBDIRS + ("",)
    root = locate_image_folder(options, title, subdirs, classes)
    return read_image_folder(root, classes, side=side, names=names, resize=resize)


@register_dataset(
    "imagenet10",
    "ImageNet-10 (Chang et al. 2017): the ILSVRC-2012 training images of 10 classes (13,000), shorter side resized "
    "and centre-cropped to 96x96, 10 classes",
    rank=13,
)
def load_imagenet10(options: FetchOptions) -> RawData:
    return load_imagenet_subset(options, "imagenet10")


@register_dataset(
    "imagenet-dogs",
    "ImageNet-Dogs (Chang et al. 2017): the ILSVRC-2012 training images of 15 dog breeds (19,500), shorter side "
    "resized and centre-cropped to 96x96, 15 classes",
    rank=14,
)
def load_imagenet_dogs(options: FetchOptions) -> RawData:
    return load_imagenet_subset(options, "imagenet-dogs")


#: an ILSVRC class folder's name
WNID = re.compile(r"^n\d{8}$")


def locate_imagenet_train(options: FetchOptions) -> tuple[Path, list[str]]:
    """The first directory of the mirrors / cache (``imagenet/train/`` …, then the directory itself) holding
    WNID-named class folders, and those WNIDs sorted."""
    searched: list[str] = []
    for directory in candidate_dirs([*options.mirrors, options.cache_dir], IMAGENET_TRAIN_SUBDIRS + ("",)):
        if directory.is_dir():
            wnids = sorted(p.name for p in directory.iterdir() if p.is_dir() and WNID.match(p.name))
            if len(wnids) >= 2:
                return directory, wnids
        searched.append(str(directory))
    places = "\n  ".join(searched)
    raise DataFileError(
        "ImageNet: no directory holds ILSVRC class folders (<wnid> = n + 8 digits); ImageNet is not downloaded "
        "automatically (its images need a licence from https://image-net.org). Put the ILSVRC-2012 training tree in "
        f"a mirror as <mirror>/imagenet/train/<wnid>/*.JPEG and pass --mirror <mirror>; searched:\n  {places}"
    )


@register_dataset(
    "imagenet",
    "ImageNet (ILSVRC-2012) training set: 1.28 M images of 1,000 classes, kept as an image index (file paths) and "
    "decoded batch by batch, shorter side resized and centre-cropped to data.resize (default 224)",
    rank=15,
)
def load_imagenet(options: FetchOptions) -> RawData:
    root, wnids = locate_imagenet_train(options)
    samples = list_image_folder(root, wnids)
    x = np.array([str(path.resolve()) for path, _ in samples])
    y = np.array([label for _, label in samples], dtype=np.int64)
    return RawData(x=x, y=y, class_names=wnids)
