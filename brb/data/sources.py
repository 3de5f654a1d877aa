"""Finding raw dataset files (offline mirrors first, then a download) and strict readers for their formats.

Every loader follows the same pattern: a list of candidate directories (each mirror and the download cache,
each with the dataset's conventional subfolders) is searched for the complete set of files; only when no
directory holds them, and downloading is allowed, is the dataset downloaded into the cache and searched
again.  Failures raise :class:`~brb.data.registry.DataFileError` naming every place searched, or the
offending file when a file is found but is truncated or malformed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np

from brb.data.registry import DataFileError, FetchOptions

T = TypeVar("T")

def candidate_dirs(bases: Iterable[Path], subdirs: Sequence[str]) -> list[Path]:
    """Each base directory joined with each subfolder (``""`` meaning the base itself), duplicates removed."""
    out: list[Path] = []
    seen: set[str] = set()
    for base in bases:
        for sub in subdirs:
            path = Path(base) / sub if sub else Path(base)
            key = str(path)
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


def locate(
    options: FetchOptions,
    title: str,
    subdirs: Sequence[str],
    find: Callable[[Path], T | str | None],
    download: Callable[[Path], None],
    wanted: str,
) -> T:
    """Search mirrors (then the download cache) for a dataset's files; download into the cache if allowed.

    ``find(directory)`` returns the located files, ``None`` when the directory holds none of them, or a
    note (str) saying why a directory holding some of them was not used (reported if nothing is found).
    ``wanted`` describes the files looked for (used in error messages).
    """
    searched: list[str] = []

    def search(bases: Iterable[Path]) -> T | None:
        for directory in candidate_dirs(bases, subdirs):
            hit = find(directory) if directory.is_dir() else None
            if isinstance(hit, str):
                searched.append(f"{directory} ({hit})")
            elif hit is not None:
                return hit
            else:
                searched.append(str(directory))
        return None

    found = search([*options.mirrors, options.cache_dir])
    if found is not None:
        return found
    places = "\n  ".join(searched)
    if not options.download:
        raise DataFileError(
            f"{title}: {wanted} not found and downloading is disabled; searched:\n  {places}\n"
            "Place the files in one of these directories, pass --mirror DIR, or allow downloading."
        )
    cache = Path(options.cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        download(cache)
    except DataFileError:
        raise
    except Exception as err:  # network, checksum or extraction failures from torchvision
        raise DataFileError(
            f"{title}: {wanted} not found in any mirror and the download into {cache} failed "
            f"({type(err).__name__}: {err}); searched:\n  {places}"
        ) from err
    searched.clear()
    found = search([cache])
    if found is not None:
        return found
    raise DataFileError(
        f"{title}: downloaded into {cache} but {wanted} still not found; searched:\n  " + "\n  ".join(searched)
    )


def first_existing(directory: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        path = directory / name
        if path.is_file():
            return path
    return None


def find_files(
    directory: Path, stems: Sequence[str], suffixes: Sequence[str] = ("", ".gz")
) -> dict[str, Path] | str | None:
    """All of ``stems`` (each as ``stem + suffix`` for the first suffix present) in ``directory``.

    Returns the mapping when every file is present, ``None`` when none is, and a note listing the
    missing ones when only some are.
    """
    found = {stem: first_existing(directory, [stem + s for s in suffixes]) for stem in stems}
    missing = [stem for stem, path in found.items() if path is None]
    if not missing:
        return {stem: path for stem, path in found.items() if path is not None}
    if len(missing) == len(stems):
        return None
    return "incomplete: lacks " + ", ".join(missing)


# ----------------------------------------------------------------------------------------------------
# Reading (possibly compressed) files


def read_bytes(path: Path) -> bytes:
    """The file's content, transparently decompressing gzip, bzip2 or xz (detected by magic bytes)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        if head[:3] == b"BZh":
            with bz2.open(path, "rb") as fh:
                return fh.read()
        if head[:6] == b"\xfd7zXZ\x00":
            with lzma.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as err:
        raise DataFileError(
            f"{path}: cannot read ({type(err).__name__}: {err}); the file is truncated or corrupt"
        ) from None


# ----------------------------------------------------------------------------------------------------
# IDX (the MNIST family's format): magic 0x0000, a dtype code, the number of dimensions, big-endian
# uint32 sizes, then the big-endian data.

IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, name: str = "<idx>") -> np.ndarray:
    """Parse IDX bytes strictly; any inconsistency raises :class:`DataFileError` naming ``name``."""
    if len(data) < 4:
        raise DataFileError(f"{name}: not an IDX file (only {len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataFileError(f"{name}: not an IDX file (magic bytes {data[:2].hex()}, expected 0000)")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DataFileError(f"{name}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise DataFileError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{name}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataFileError(
            f"{name}: {what}: header declares shape {dims} of {dtype} ({expected} bytes) "
            f"but the file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file, plain or gzip-compressed."""
    return parse_idx(read_bytes(path), str(path))


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as IDX (gzip-compressed when ``compress`` or the name ends in ``.gz``)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise ValueError(f"dtype {array.dtype} cannot be written as IDX")
    body = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body += array.astype(IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


# ----------------------------------------------------------------------------------------------------
# Python pickles (the CIFAR batches): unpickled with an allow-list so that a file cannot run code.

_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}
_NUMPY_INTERNALS = {"_reconstruct", "scalar", "_frombuffer"}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401
        if module.startswith("numpy.core"):  # pickles written by numpy < 2
            module = "numpy._core" + module[len("numpy.core") :]
        allowed = (module, name) in _ALLOWED_GLOBALS or (
            module in ("numpy._core.multiarray", "numpy._core.numeric") and name in _NUMPY_INTERNALS
        )
        if not allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a dataset pickle")
        return super().find_class(module, name)


def load_pickle(path: Path) -> dict:
    """Load a dataset pickle (Python 2 or 3, as the CIFAR batches) into a dict with ``str`` keys."""
    data = read_bytes(path)
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:
        raise DataFileError(f"{path}: not a readable dataset pickle ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise DataFileError(f"{path}: pickle holds a {type(obj).__name__}, expected a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def as_text_list(values, path: Path, key: str) -> list[str]:
    try:
        return [v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values]
    except TypeError:
        raise DataFileError(f"{path}: entry {key!r} is not a list of names") from None
