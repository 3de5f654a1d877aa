"""UCI datasets: the full optical recognition of handwritten digits (OPTDIGITS), mirror first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brb.data.builtin import optdigits_to_uint8
from brb.data.registry import DataFileError, FetchOptions, RawData, register_dataset
from brb.data.sources import find_files, locate, read_bytes

OPTDIGITS_FILES = ("optdigits.tra", "optdigits.tes")
OPTDIGITS_BASE = "https://archive.ics.uci.edu/ml/machine-learning-databases/optdigits/"
OPTDIGITS_ZIP = "https://archive.ics.uci.edu/static/public/80/optical+recognition+of+handwritten+digits.zip"


def parse_optdigits(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """CSV lines of 64 integers 0..16 (an 8x8 image, row-major) and a label 0..9.

    Returns uint8 images ``(N, 8, 8)`` scaled by 255/16 (rounded) and the labels.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        raise DataFileError(f"{name}: not a text file ({err})") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [int(v) for v in line.split(",")]
        except ValueError as err:
            raise DataFileError(f"{name}: line {lineno}: {err}") from None
        if len(values) != 65:
            raise DataFileError(f"{name}: line {lineno}: {len(values)} values, expected 64 pixels and a label")
        if min(values[:64]) < 0 or max(values[:64]) > 16:
            raise DataFileError(f"{name}: line {lineno}: pixel values outside 0..16")
        if not 0 <= values[64] <= 9:
            raise DataFileError(f"{name}: line {lineno}: label {values[64]} outside 0..9")
        rows.append(values)
    if not rows:
        raise DataFileError(f"{name}: holds no samples (empty or truncated file)")
    table = np.asarray(rows, dtype=np.int64)
    images = optdigits_to_uint8(table[:, :64]).reshape(-1, 8, 8)
    return images, table[:, 64]


@register_dataset(
    "optdigits",
    "UCI optical recognition of handwritten digits (OPTDIGITS): 5,620 grey 8x8 images (training 3,823 + test 1,797), "
    "10 classes",
    rank=4,
)
def load_optdigits(options: FetchOptions) -> RawData:
    def download(cache: Path) -> None:
        from torchvision.datasets.utils import download_and_extract_archive, download_url

        root = cache / "optdigits"
        try:
            for filename in OPTDIGITS_FILES:
                download_url(OPTDIGITS_BASE + filename, str(root), filename)
        except Exception:  # the legacy path may be gone: fall back to the archive of the dataset page
            download_and_extract_archive(OPTDIGITS_ZIP, str(root), filename="optdigits.zip")

    paths = locate(
        options, "OPTDIGITS", ("", "optdigits", "uci/optdigits"),
        lambda d: find_files(d, OPTDIGITS_FILES), download, wanted="optdigits.tra and optdigits.tes",
    )
    train, test = (parse_optdigits(read_bytes(paths[f]), str(paths[f])) for f in OPTDIGITS_FILES)
    return RawData.from_splits([train], [test], [str(i) for i in range(10)], channel_axis=True)
