"""COIL-20, COIL-100 and MNIST-60k loaders on tiny files in the real formats: PNGs named ``obj<o>__<pose>.png``
in the archives' folders (zipped or extracted), and a gzip'd protocol-2 pickle like deeplearning.net's
``mnist.pkl.gz``."""

from __future__ import annotations

import dataclasses
import gzip
import io
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brb.data import DATASETS, DataFileError, FetchOptions, load_prepared, prepare_dataset
from brb.data.coil import COIL20, COIL100, load_coil, load_mnist60k_sized
from brb.data.registry import TEST, TRAIN
from brb.data.sources import write_idx

sys.path.insert(0, str(Path(__file__).parent))
from test_data_loaders import write_mnist_like  # noqa: E402

TINY20 = dataclasses.replace(COIL20, n_objects=2, poses=(0, 1, 2), side=8)
TINY100 = dataclasses.replace(COIL100, n_objects=3, poses=(0, 5, 355), side=6)
TINY_MNIST = (4, 2, 3)  # train, valid, test rows of the tiny pickle


def options(mirror: Path, **kw) -> FetchOptions:
    kw.setdefault("cache_dir", mirror / "_cache")
    kw.setdefault("download", False)
    return FetchOptions(mirrors=[mirror], **kw)


@pytest.fixture(autouse=True)
def _no_env_mirrors(monkeypatch):
    monkeypatch.delenv("BRB_DATA_MIRRORS", raising=False)


# ----------------------------------------------------------------------------------------------------
# COIL


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return buf.getvalue()


def coil_images(spec, seed=0) -> dict[tuple[int, int], np.ndarray]:
    """(object, pose) -> HxW (grey) or HxWx3 (colour) uint8 pixels, as PIL reads them."""
    rng = np.random.default_rng(seed)
    shape = (spec.side, spec.side) if spec.mode == "L" else (spec.side, spec.side, 3)
    return {(o, p): rng.integers(0, 256, shape, dtype=np.uint8)
            for o in range(1, spec.n_objects + 1) for p in spec.poses}


def write_coil_zip(path: Path, spec, images, extra=()) -> Path:
    """The real layout: ``<folder>/obj<o>__<pose>.png`` stored in shuffled order, plus other members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(images)
    np.random.default_rng(1).shuffle(keys)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{spec.folder}/", "")
        for o, p in keys:
            zf.writestr(f"{spec.folder}/obj{o}__{p}.png", png_bytes(images[o, p]))
        for name, data in extra:
            zf.writestr(name, data)
    return path


def write_coil_folder(directory: Path, images) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for (o, p), arr in images.items():
        (directory / f"obj{o}__{p}.png").write_bytes(png_bytes(arr))
    return directory


def expected_arrays(spec, images):
    keys = sorted(images)
    x = np.stack([images[k][None] if spec.mode == "L" else images[k].transpose(2, 0, 1) for k in keys])
    return x, [o - 1 for o, _ in keys]


@pytest.mark.parametrize("spec, subdir", [(TINY20, ""), (TINY20, "coil-20"), (TINY100, "coil-100"), (TINY100, "coil")])
def test_coil_zip_round_trip(tmp_path, spec, subdir):
    images = coil_images(spec)
    write_coil_zip(tmp_path / subdir / spec.archive, spec, images,
                   extra=[(f"{spec.folder}/convertGroupppm2png.pl", b"#!/usr/bin/perl\n"),
                          (f"__MACOSX/{spec.folder}/._obj1__0.png", b"\x00\x05\x16\x07")])
    raw = load_coil(spec, options(tmp_path))
    x, y = expected_arrays(spec, images)
    assert raw.x.dtype == np.uint8 and raw.x.shape == (len(images), spec.channels, spec.side, spec.side)
    np.testing.assert_array_equal(raw.x, x)
    assert raw.y.tolist() == y and raw.y.dtype == np.int64
    assert raw.class_names == [f"obj{o}" for o in range(1, spec.n_objects + 1)] and raw.split is None


def test_coil_sorted_by_object_then_numeric_pose(tmp_path):
    spec = dataclasses.replace(TINY20, n_objects=11, poses=(0, 2, 10))
    images = coil_images(spec)
    raw = load_coil(spec, options(write_coil_zip(tmp_path / spec.archive, spec, images).parent))
    assert raw.y.tolist() == [o for o in range(11) for _ in range(3)]  # obj2 before obj10, pose 2 before 10
    np.testing.assert_array_equal(raw.x[3 * 9 + 1, 0], images[10, 2])


def test_coil_extracted_folder_and_mirror_is_the_folder(tmp_path):
    images = coil_images(TINY100, seed=3)
    folder = write_coil_folder(tmp_path / "m" / "coil-100" / "coil-100", images)
    x, y = expected_arrays(TINY100, images)
    for mirror in (tmp_path / "m", folder):
        raw = load_coil(TINY100, options(mirror))
        np.testing.assert_array_equal(raw.x, x)
        assert raw.y.tolist() == y


def test_coil_grey_from_rgb_or_palette_pngs(tmp_path):
    images = coil_images(TINY20, seed=4)
    folder = tmp_path / "coil-20-proc"
    folder.mkdir()
    for (o, p), arr in images.items():
        img = Image.fromarray(np.repeat(arr[..., None], 3, axis=2)) if o == 1 else Image.fromarray(arr).convert("P")
        img.save(folder / f"obj{o}__{p}.png")
    np.testing.assert_array_equal(load_coil(TINY20, options(tmp_path)).x, expected_arrays(TINY20, images)[0])


def test_coil_mirror_before_cache(tmp_path):
    a, b = coil_images(TINY20, seed=5), coil_images(TINY20, seed=6)
    write_coil_zip(tmp_path / "cache" / "coil-20" / TINY20.archive, TINY20, b)
    write_coil_zip(tmp_path / "m" / TINY20.archive, TINY20, a)
    opts = FetchOptions(mirrors=[tmp_path / "m"], cache_dir=tmp_path / "cache", download=False)
    np.testing.assert_array_equal(load_coil(TINY20, opts).x, expected_arrays(TINY20, a)[0])
    opts = FetchOptions(mirrors=[tmp_path / "empty"], cache_dir=tmp_path / "cache", download=False)
    np.testing.assert_array_equal(load_coil(TINY20, opts).x, expected_arrays(TINY20, b)[0])


def test_coil_incomplete_or_foreign_archive(tmp_path):
    images = coil_images(TINY20)
    del images[2, 1]
    path = write_coil_zip(tmp_path / TINY20.archive, TINY20, images)
    with pytest.raises(DataFileError, match=r"incomplete COIL-20: 5 of 2 objects x 3 poses = 6 images; "
                                            r"missing coil-20-proc/obj2__1\.png") as err:
        load_coil(TINY20, options(tmp_path))
    assert str(path) in str(err.value)
    images = coil_images(TINY20)
    images[3, 0] = images[1, 0]
    write_coil_zip(path, TINY20, images)
    with pytest.raises(DataFileError, match=r"not COIL-20 .*unexpected coil-20-proc/obj3__0\.png"):
        load_coil(TINY20, options(tmp_path))
    images = coil_images(TINY20)
    images[1, 1] = np.zeros((9, 8), np.uint8)
    write_coil_zip(path, TINY20, images)
    with pytest.raises(DataFileError, match=r"coil-20-proc\.zip:coil-20-proc/obj1__1\.png: image of 8x9 pixels"):
        load_coil(TINY20, options(tmp_path))


def test_registered_coil_loaders_require_the_full_sets(tmp_path):
    # a complete tiny set is an incomplete real one: every missing image and the absent objects are reported
    write_coil_zip(tmp_path / COIL20.archive, TINY20, coil_images(TINY20))
    with pytest.raises(DataFileError) as err:
        DATASETS["coil20"].load(options(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / COIL20.archive) in msg
    assert "incomplete COIL-20: 6 of 20 objects x 72 poses = 1440 images; missing coil-20-proc/obj1__3.png" in msg
    assert "and 1424 more" in msg and "objects with no image: obj3, obj4," in msg and msg.endswith("obj20")
    spec = dataclasses.replace(COIL100, side=4)
    images = coil_images(spec)
    del images[57, 355]
    write_coil_zip(tmp_path / "coil-100" / COIL100.archive, spec, images)
    with pytest.raises(DataFileError, match=r"7199 of 100 objects x 72 poses = 7200 images; "
                                            r"missing coil-100/obj57__355\.png$"):
        DATASETS["coil100"].load(options(tmp_path))


def test_registered_coil100_full_size_round_trip(tmp_path):
    spec = dataclasses.replace(COIL100, side=4)  # every object and pose, tiny images
    images = coil_images(spec, seed=7)
    write_coil_zip(tmp_path / "coil-100" / COIL100.archive, spec, images)
    with pytest.raises(DataFileError, match=r"obj1__0\.png: image of 4x4 pixels; COIL-100 has 128x128"):
        DATASETS["coil100"].load(options(tmp_path))
    raw = load_coil(spec, options(tmp_path))
    assert raw.x.shape == (7200, 3, 4, 4) and raw.y.tolist() == [o for o in range(100) for _ in range(72)]
    np.testing.assert_array_equal(raw.x, expected_arrays(spec, images)[0])


def test_registered_coil20_full_size_round_trip_and_prepare(tmp_path):
    images = coil_images(COIL20, seed=8)
    write_coil_zip(tmp_path / "m" / "coil-20" / COIL20.archive, COIL20, images)
    out = prepare_dataset("coil20", tmp_path / "coil20.npz", mirrors=[tmp_path / "m"], cache_dir=tmp_path / "c",
                          download=False)
    data = load_prepared(out)
    assert data.name == "coil20" and data.n_classes == 20 and data.x.shape == (1440, 1, 128, 128)
    np.testing.assert_array_equal(data.x, expected_arrays(COIL20, images)[0])
    assert data.y.tolist() == [o for o in range(20) for _ in range(72)] and data.split is None


def test_coil_corrupt_archive_names_the_file(tmp_path):
    path = write_coil_zip(tmp_path / TINY20.archive, TINY20, coil_images(TINY20))
    path.write_bytes(path.read_bytes()[:-40])  # the central directory is cut off
    with pytest.raises(DataFileError, match="not a readable zip archive.*truncated or corrupt") as err:
        DATASETS["coil20"].load(options(tmp_path))
    assert str(path) in str(err.value)
    # a damaged member: its stored bytes flipped (CRC error on read)
    write_coil_zip(path, TINY20, coil_images(TINY20))
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("coil-20-proc/obj1__2.png")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 5
    data[start:start + 8] = bytes(255 - b for b in data[start:start + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match=r"coil-20-proc/obj1__2\.png: cannot read .*truncated or corrupt") as err:
        load_coil(TINY20, options(tmp_path))
    assert str(path) in str(err.value)
    # a member that is not a PNG
    images = coil_images(TINY20)
    write_coil_zip(path, TINY20, {k: v for k, v in images.items() if k != (2, 2)},
                   extra=[("coil-20-proc/obj2__2.png", b"not a png")])
    with pytest.raises(DataFileError, match=r"obj2__2\.png: cannot read image"):
        load_coil(TINY20, options(tmp_path))


def test_coil_missing_lists_places_and_archive(tmp_path):
    with pytest.raises(DataFileError, match=r"COIL-20: coil-20-proc\.zip or its extracted folder coil-20-proc/ "
                                            r"not found and downloading is disabled") as err:
        DATASETS["coil20"].load(options(tmp_path / "m", cache_dir=tmp_path / "dl"))
    assert f"\n  {tmp_path / 'dl' / 'coil-20'}" in str(err.value)


def test_coil_download_into_cache(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    calls = []

    def fake_download_url(url, root, filename=None, md5=None):
        calls.append((url, root, filename))
        write_coil_zip(Path(root) / filename, TINY20, coil_images(TINY20, seed=9))

    monkeypatch.setattr(tvu, "download_url", fake_download_url)
    raw = load_coil(TINY20, options(tmp_path / "m", cache_dir=tmp_path / "cache", download=True))
    assert calls == [(COIL20.url, str(tmp_path / "cache" / "coil-20"), "coil-20-proc.zip")]
    assert COIL20.url.endswith("/coil-20/coil-20-proc.zip") and COIL100.url.endswith("/coil-100/coil-100.zip")
    np.testing.assert_array_equal(raw.x, expected_arrays(TINY20, coil_images(TINY20, seed=9))[0])


# ----------------------------------------------------------------------------------------------------
# MNIST-60k


def write_mnist_pickle(path: Path, sizes=TINY_MNIST, seed=0, py2_names=True):
    """deeplearning.net's format: gzip'd protocol-2 pickle of three (float32 x / 255, int64 labels) pairs."""
    rng = np.random.default_rng(seed)
    parts = []
    for n in sizes:
        pixels = rng.integers(0, 256, (n, 784), dtype=np.uint8)
        pixels[:, 0], pixels[:, 1] = 0, 255
        parts.append((pixels, rng.integers(0, 10, n)))
    data = pickle.dumps(tuple((p.astype(np.float32) / np.float32(255), y) for p, y in parts), protocol=2)
    if py2_names:  # as written by numpy < 2
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data))
    return parts


@pytest.mark.parametrize("subdir", ["", "mnist"])
def test_mnist60k_from_pickle(tmp_path, subdir):
    parts = write_mnist_pickle(tmp_path / subdir / "mnist.pkl.gz")
    write_mnist_like(tmp_path / "MNIST" / "raw", n_train=6, n_test=3)  # the pickle takes precedence
    raw = load_mnist60k_sized(options(tmp_path), TINY_MNIST)
    assert raw.x.shape == (7, 1, 28, 28) and raw.x.dtype == np.uint8
    (tx, ty), _, (sx, sy) = parts
    np.testing.assert_array_equal(raw.x.reshape(7, 784), np.concatenate([tx, sx]))
    assert raw.y.tolist() == ty.tolist() + sy.tolist()
    assert raw.split.tolist() == [TRAIN] * 4 + [TEST] * 3
    assert raw.class_names == [str(i) for i in range(10)]


def test_mnist60k_from_standard_idx_files(tmp_path):
    arrays = write_mnist_like(tmp_path / "MNIST" / "raw", n_train=6, n_test=3, seed=2)
    raw = load_mnist60k_sized(options(tmp_path), TINY_MNIST)
    assert raw.x.shape == (7, 1, 28, 28)
    expected = np.concatenate([arrays["train-images-idx3-ubyte"][:4], arrays["t10k-images-idx3-ubyte"]])
    np.testing.assert_array_equal(raw.x[:, 0], expected)
    labels = np.concatenate([arrays["train-labels-idx1-ubyte"][:4], arrays["t10k-labels-idx1-ubyte"]])
    assert raw.y.tolist() == labels.tolist() and raw.split.tolist() == [TRAIN] * 4 + [TEST] * 3
    write_mnist_like(tmp_path / "MNIST" / "raw", n_train=5, n_test=3)
    with pytest.raises(DataFileError, match="hold 5 training and 3 test images; expected 6 and 3"):
        load_mnist60k_sized(options(tmp_path), TINY_MNIST)


def test_pickle_and_idx_paths_agree(tmp_path):
    parts = write_mnist_pickle(tmp_path / "a" / "mnist.pkl.gz", seed=3)
    d = tmp_path / "b"
    d.mkdir()
    (tx, ty), (vx, vy), (sx, sy) = parts
    write_idx(d / "train-images-idx3-ubyte.gz", np.concatenate([tx, vx]).reshape(-1, 28, 28))
    write_idx(d / "train-labels-idx1-ubyte.gz", np.concatenate([ty, vy]).astype(np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte.gz", sx.reshape(-1, 28, 28))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", sy.astype(np.uint8))
    a = load_mnist60k_sized(options(tmp_path / "a"), TINY_MNIST)
    b = load_mnist60k_sized(options(d), TINY_MNIST)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.y.tolist() == b.y.tolist() and a.split.tolist() == b.split.tolist()


def test_registered_mnist60k_requires_the_real_sizes(tmp_path):
    write_mnist_pickle(tmp_path / "mnist.pkl.gz")
    with pytest.raises(DataFileError, match=r"mnist\.pkl\.gz: train images are ndarray float32 of shape "
                                            r"\(4, 784\); expected float \(50000, 784\)"):
        DATASETS["mnist60k"].load(options(tmp_path))
    (tmp_path / "mnist.pkl.gz").unlink()
    write_mnist_like(tmp_path, n_train=6, n_test=3)
    with pytest.raises(DataFileError, match="the standard MNIST files hold 6 training and 3 test images; "
                                            "expected 60000 and 10000"):
        DATASETS["mnist60k"].load(options(tmp_path))
    for f in tmp_path.glob("t10k-*"):
        f.unlink()
    with pytest.raises(DataFileError, match="(?s)no mnist.pkl.gz in any of:.*_cache/mnist\n.*standard MNIST files "
                                            "failed: MNIST: .* not found and downloading is disabled"):
        DATASETS["mnist60k"].load(options(tmp_path))


def _pairs(*parts):
    return tuple((np.asarray(x, np.float32), np.asarray(y)) for x, y in parts)


@pytest.mark.parametrize(
    "obj, message",
    [({"a": 1}, "holds a dict; expected the"),
     ((1, 2, 3), "the train part is not an"),
     (_pairs((np.zeros((4, 784)), np.zeros(4, int)), (np.zeros((2, 784)), np.zeros(2, int)),
             (np.zeros((3, 784)), np.zeros(3, int)))[:2], "holds a tuple; expected the"),
     (_pairs((np.zeros((4, 784)), np.zeros(4, int)), (np.zeros((2, 784)), np.zeros(2, int)),
             (np.full((3, 784), 2.0), np.zeros(3, int))), r"test pixel values outside \[0, 1\]"),
     (_pairs((np.full((4, 784), 0.5), np.zeros(4, int)), (np.zeros((2, 784)), np.zeros(2, int)),
             (np.zeros((3, 784)), np.zeros(3, int))), "train pixel values are not grey levels / 255"),
     (_pairs((np.zeros((4, 784)), np.zeros(4, int)), (np.zeros((2, 784)), np.full(2, 10)),
             (np.zeros((3, 784)), np.zeros(3, int))), "valid labels outside 0..9"),
     (_pairs((np.zeros((4, 784)), np.zeros(4, int)), (np.zeros((2, 784)), np.zeros(2, int)),
             (np.zeros((3, 784)), np.zeros(2, int))), r"test labels are ndarray int64 of shape \(2,\)")],
)
def test_mnist_pickle_malformed(tmp_path, obj, message):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(obj, protocol=2)))
    with pytest.raises(DataFileError, match=message) as err:
        load_mnist60k_sized(options(tmp_path), TINY_MNIST)
    assert str(path) in str(err.value)


def test_mnist_pickle_truncated_or_unsafe(tmp_path, capsys):
    path = tmp_path / "mnist.pkl.gz"
    write_mnist_pickle(path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataFileError, match="truncated or corrupt") as err:
        load_mnist60k_sized(options(tmp_path), TINY_MNIST)
    assert str(path) in str(err.value)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path.write_bytes(gzip.compress(pickle.dumps((Evil(), 1, 2), protocol=2)))
    with pytest.raises(DataFileError, match="is not allowed"):
        load_mnist60k_sized(options(tmp_path), TINY_MNIST)
    assert "pwned" not in capsys.readouterr().out
