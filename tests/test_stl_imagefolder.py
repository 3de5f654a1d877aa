"""STL-10 and ImageNet-style folder loaders on tiny files in the real formats: an ``stl10_binary.tar.gz`` of
headerless uint8 ``.bin`` files (each image three column-major 96x96 planes, labels 1..10), extracted or not, and
``<wnid>/<image>`` trees of JPEGs and PNGs of various sizes and modes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brb.data import DATASETS, DataFileError, FetchOptions
from brb.data.imagefolder import (
    IMAGENET10_NAMES,
    IMAGENET10_WNIDS,
    IMAGENET_DOGS_WNIDS,
    IMAGENET_SUBSET_SIDE,
    load_imagenet_subset,
    read_image,
    read_image_folder,
)
from brb.data.registry import TEST, TRAIN
from brb.data.stl10 import (
    STL10,
    STL10_MD5,
    STL10_NAMES,
    STL10_URL,
    Stl10Spec,
    load_stl10,
    load_stl10_unlabeled,
    read_stl10_unlabeled,
)

TINY = Stl10Spec(n_train=3, n_test=2, n_unlabeled=4)
SIDE = 96
PLANE = SIDE * SIDE


def options(mirror: Path, **kw) -> FetchOptions:
    kw.setdefault("cache_dir", mirror / "_cache")
    kw.setdefault("download", False)
    return FetchOptions(mirrors=[mirror], **kw)


@pytest.fixture(autouse=True)
def _no_env_mirrors(monkeypatch):
    monkeypatch.delenv("BRB_DATA_MIRRORS", raising=False)


# ----------------------------------------------------------------------------------------------------
# STL-10


def stl_images(n: int, seed: int) -> np.ndarray:
    """(n, 3, 96, 96) uint8 in row-major (channel, row, column) order, as the loader must return them."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3, SIDE, SIDE), dtype=np.uint8)


def stl_bytes(images: np.ndarray) -> bytes:
    """The release's layout, written byte by byte from its definition: image, channel, then column, then row."""
    n = len(images)
    out = np.empty(n * 3 * PLANE, dtype=np.uint8)
    ch, r, c = np.meshgrid(np.arange(3), np.arange(SIDE), np.arange(SIDE), indexing="ij")
    offsets = ch * PLANE + c * SIDE + r  # column-major within each plane
    for i in range(n):
        out[i * 3 * PLANE + offsets.ravel()] = images[i].ravel()
    return out.tobytes()


def stl_files(spec: Stl10Spec = TINY, seed: int = 0) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    arrays = {"train_X": stl_images(spec.n_train, seed), "test_X": stl_images(spec.n_test, seed + 1),
              "unlabeled_X": stl_images(spec.n_unlabeled, seed + 2),
              "train_y": rng.integers(1, 11, spec.n_train).astype(np.uint8),
              "test_y": rng.integers(1, 11, spec.n_test).astype(np.uint8)}
    files = {f"{k}.bin": (stl_bytes(v) if k.endswith("_X") else v.tobytes()) for k, v in arrays.items()}
    files["class_names.txt"] = ("\n".join(STL10_NAMES) + "\n").encode()
    files["fold_indices.txt"] = b"0 1 2\n"
    return files, arrays


def write_stl_tar(path: Path, files: dict[str, bytes], order=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("stl10_binary")
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
        for name in order or files:
            info = tarfile.TarInfo(f"stl10_binary/{name}")
            info.size = len(files[name])
            tf.addfile(info, io.BytesIO(files[name]))
    return path


def write_stl_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_stl10_layout_is_column_major_per_channel():
    # one white pixel at (channel 1, row 0, column 1) lands at byte PLANE + 1 * 96 + 0, and not at PLANE + 1
    img = np.zeros((1, 3, SIDE, SIDE), np.uint8)
    img[0, 1, 0, 1] = 255
    data = np.frombuffer(stl_bytes(img), np.uint8)
    assert np.flatnonzero(data).tolist() == [PLANE + SIDE]


def test_stl10_archive_round_trip(tmp_path):
    files, arrays = stl_files()
    # the unlabelled file first, as a worst case for the streaming read
    order = ["unlabeled_X.bin", *(k for k in files if k != "unlabeled_X.bin")]
    write_stl_tar(tmp_path / "stl10" / "stl10_binary.tar.gz", files, order=order)
    raw = load_stl10(options(tmp_path), TINY)
    assert raw.x.dtype == np.uint8 and raw.x.shape == (5, 3, 96, 96) and raw.x.flags.c_contiguous
    np.testing.assert_array_equal(raw.x, np.concatenate([arrays["train_X"], arrays["test_X"]]))
    assert raw.y.dtype == np.int64
    assert raw.y.tolist() == (np.concatenate([arrays["train_y"], arrays["test_y"]]).astype(int) - 1).tolist()
    assert raw.y.min() >= 0 and raw.y.max() <= 9
    assert raw.split.tolist() == [TRAIN] * 3 + [TEST] * 2
    assert raw.class_names == STL10_NAMES


def test_stl10_pixel_positions_reveal_the_transpose(tmp_path):
    files, _ = stl_files()
    train = bytearray(files["train_X.bin"])
    train[: 3 * PLANE] = bytes(3 * PLANE)
    train[SIDE] = 200  # plane 0, byte 96: column 1, row 0
    train[1] = 100  # plane 0, byte 1: column 0, row 1
    files["train_X.bin"] = bytes(train)
    write_stl_folder(tmp_path / "stl10_binary", files)
    x = load_stl10(options(tmp_path), TINY).x
    assert x[0, 0, 0, 1] == 200 and x[0, 0, 1, 0] == 100
    assert np.count_nonzero(x[0]) == 2


def test_stl10_extracted_folder_preferred_and_mirror_is_the_folder(tmp_path):
    files, arrays = stl_files(seed=3)
    other, _ = stl_files(seed=4)
    write_stl_tar(tmp_path / "m" / "stl10_binary.tar.gz", other)
    folder = write_stl_folder(tmp_path / "m" / "stl10_binary", files)
    for mirror in (tmp_path / "m", folder):
        raw = load_stl10(options(mirror), TINY)
        np.testing.assert_array_equal(raw.x[:3], arrays["train_X"])
    # without class_names.txt the release's names are used
    (folder / "class_names.txt").unlink()
    assert load_stl10(options(folder), TINY).class_names == STL10_NAMES


def test_stl10_truncated_bin_names_the_file_and_expected_size(tmp_path):
    files, _ = stl_files()
    files["test_X.bin"] = files["test_X.bin"][:-100]
    folder = write_stl_folder(tmp_path / "stl10_binary", files)
    with pytest.raises(DataFileError, match=r"test_X\.bin: truncated: 55196 bytes; expected 55296 bytes "
                                            r"\(2 images of 3x96x96 uint8\)") as err:
        load_stl10(options(tmp_path), TINY)
    assert str(folder / "test_X.bin") in str(err.value)
    archive = write_stl_tar(tmp_path / "a" / "stl10_binary.tar.gz", files)
    with pytest.raises(DataFileError, match=r"stl10_binary\.tar\.gz:stl10_binary/test_X\.bin: truncated: 55196 "
                                            r"bytes; expected 55296 bytes") as err:
        load_stl10(options(archive.parent), TINY)
    assert str(archive) in str(err.value)
    files, _ = stl_files()
    files["train_y.bin"] += b"\x01"
    write_stl_folder(tmp_path / "stl10_binary", files)
    with pytest.raises(DataFileError, match=r"train_y\.bin: has trailing bytes: 4 bytes; expected 3 bytes"):
        load_stl10(options(tmp_path), TINY)


def test_stl10_truncated_or_incomplete_archive(tmp_path):
    files, _ = stl_files()
    archive = write_stl_tar(tmp_path / "stl10_binary.tar.gz", files)
    archive.write_bytes(archive.read_bytes()[: len(archive.read_bytes()) // 2])
    with pytest.raises(DataFileError, match="cannot read .*truncated or corrupt") as err:
        load_stl10(options(tmp_path), TINY)
    assert str(archive) in str(err.value)
    del files["test_y.bin"]
    write_stl_tar(archive, files)
    with pytest.raises(DataFileError, match=r"stl10_binary\.tar\.gz: lacks stl10_binary/test_y\.bin"):
        load_stl10(options(tmp_path), TINY)


def test_stl10_bad_label_and_incomplete_folder(tmp_path):
    files, _ = stl_files()
    files["test_y.bin"] = bytes([3, 0])
    write_stl_folder(tmp_path / "stl10_binary", files)
    with pytest.raises(DataFileError, match=r"test_y\.bin: label 0 outside 1\.\.10"):
        load_stl10(options(tmp_path), TINY)
    (tmp_path / "stl10_binary" / "test_X.bin").unlink()
    with pytest.raises(DataFileError, match=r"(?s)not found and downloading is disabled.*stl10_binary: "
                                            r"incomplete: lacks test_X\.bin"):
        load_stl10(options(tmp_path), TINY)


def test_registered_stl10_requires_the_official_sizes(tmp_path):
    assert DATASETS["stl10"].kind == "image" and STL10 == Stl10Spec(5000, 8000, 100000)
    files, _ = stl_files()
    write_stl_tar(tmp_path / "stl10_binary.tar.gz", files)
    with pytest.raises(DataFileError, match=r"stl10_binary/train_X\.bin: truncated: 82944 bytes; expected "
                                            r"138240000 bytes \(5000 images of 3x96x96 uint8\)"):
        DATASETS["stl10"].load(options(tmp_path))


def test_registered_stl10_unlabeled_reads_the_official_file(tmp_path):
    """The unlabelled images are registered for pretraining; the real reader demands the official 100,000."""
    assert DATASETS["stl10-unlabeled"].kind == "image"
    files, _ = stl_files()  # TINY: 4 unlabelled images
    write_stl_tar(tmp_path / "stl10_binary.tar.gz", files)
    with pytest.raises(DataFileError, match=r"stl10_binary/unlabeled_X\.bin: truncated: 110592 bytes; expected "
                                            r"2764800000 bytes \(100000 images of 3x96x96 uint8\)"):
        DATASETS["stl10-unlabeled"].load(options(tmp_path))


def test_registered_stl10_missing_lists_places(tmp_path):
    with pytest.raises(DataFileError, match=r"STL-10: stl10_binary\.tar\.gz or its extracted folder stl10_binary/ "
                                            r"with train_X\.bin, .* not found and downloading is disabled") as err:
        DATASETS["stl10"].load(options(tmp_path / "m", cache_dir=tmp_path / "dl"))
    assert f"\n  {tmp_path / 'dl' / 'stl10'}" in str(err.value)


def test_stl10_download_into_cache_with_checksum(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    calls = []
    files, arrays = stl_files(seed=5)

    def fake_download_url(url, root, filename=None, md5=None):
        calls.append((url, root, filename, md5))
        write_stl_tar(Path(root) / filename, files)

    monkeypatch.setattr(tvu, "download_url", fake_download_url)
    raw = load_stl10(options(tmp_path / "m", cache_dir=tmp_path / "cache", download=True), TINY)
    assert calls == [(STL10_URL, str(tmp_path / "cache" / "stl10"), "stl10_binary.tar.gz", STL10_MD5)]
    np.testing.assert_array_equal(raw.x[3:], arrays["test_X"])


def test_stl10_unlabeled(tmp_path):
    files, arrays = stl_files(seed=6)
    archive = write_stl_tar(tmp_path / "a" / "stl10_binary.tar.gz", files)
    folder = write_stl_folder(tmp_path / "f" / "stl10_binary", files)
    for path in (archive, folder, folder.parent, folder / "unlabeled_X.bin"):
        x = read_stl10_unlabeled(path, TINY)
        assert x.shape == (4, 3, 96, 96) and x.dtype == np.uint8
        np.testing.assert_array_equal(x, arrays["unlabeled_X"])
    np.testing.assert_array_equal(load_stl10_unlabeled(options(tmp_path / "a"), TINY), arrays["unlabeled_X"])
    # a folder with only the labelled files is skipped when looking for the unlabelled images
    only = {k: v for k, v in files.items() if k != "unlabeled_X.bin"}
    write_stl_folder(tmp_path / "g" / "stl10_binary", only)
    with pytest.raises(DataFileError, match=r"(?s)unlabeled_X\.bin not found and downloading is disabled"):
        load_stl10_unlabeled(options(tmp_path / "g"), TINY)
    with pytest.raises(DataFileError, match=r"unlabeled_X\.bin: truncated: 110592 bytes; expected 2764800000 bytes"):
        read_stl10_unlabeled(folder)
    del files["unlabeled_X.bin"]
    with pytest.raises(DataFileError, match=r"lacks stl10_binary/unlabeled_X\.bin"):
        read_stl10_unlabeled(write_stl_tar(tmp_path / "b" / "stl10_binary.tar.gz", files), TINY)


# ----------------------------------------------------------------------------------------------------
# ImageNet-style folders


def save(path: Path, arr: np.ndarray, fmt: str | None = None, mode: str | None = None) -> np.ndarray:
    """Write ``arr`` (HxW grey or HxWx3) and return the pixels PIL decodes from the file, as RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    if mode:
        img = img.convert(mode)
    img.save(path, format=fmt)
    with Image.open(path) as back:
        return np.asarray(back.convert("RGB"))


def reference_crop(path: Path, side: int) -> np.ndarray:
    """torchvision's Resize(side) + CenterCrop(side), the behaviour the reader documents."""
    from torchvision import transforms

    with Image.open(path) as img:
        out = transforms.Compose([transforms.Resize(side), transforms.CenterCrop(side)])(img.convert("RGB"))
    return np.asarray(out).transpose(2, 0, 1)


def noise(h: int, w: int, seed: int, grey: bool = False) -> np.ndarray:
    shape = (h, w) if grey else (h, w, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "tree"
    save(root / "n01" / "a.png", noise(12, 20, 0))  # 20 wide, 12 high
    save(root / "n01" / "b.JPEG", noise(30, 10, 1, grey=True), fmt="JPEG")  # greyscale JPEG, uppercase suffix
    save(root / "n02" / "c.jpg", noise(9, 9, 2), fmt="JPEG")  # a class folder not in the class list
    save(root / "n03" / "sub" / "e.jpeg", noise(8, 8, 3), fmt="JPEG")
    save(root / "n03" / "d.Png", noise(16, 8, 4), fmt="PNG")
    (root / "n03" / "notes.txt").write_text("not an image")
    (root / "n03" / ".hidden.png").write_bytes(b"AppleDouble")
    return root


def test_image_folder_order_labels_resize_and_rgb(tree):
    raw = read_image_folder(tree, ["n03", "n01"], side=6)
    assert raw.x.dtype == np.uint8 and raw.x.shape == (4, 3, 6, 6)
    assert raw.y.tolist() == [0, 0, 1, 1] and raw.class_names == ["n03", "n01"] and raw.split is None
    expected = [tree / "n03" / "d.Png", tree / "n03" / "sub" / "e.jpeg", tree / "n01" / "a.png", tree / "n01" / "b.JPEG"]
    for got, path in zip(raw.x, expected):
        np.testing.assert_array_equal(got, reference_crop(path, 6))
    grey = raw.x[3]
    assert (grey[0] == grey[1]).all() and (grey[1] == grey[2]).all() and grey.std() > 0
    named = read_image_folder(tree, ["n01"], side=4, names=["first"], workers=1)
    assert named.class_names == ["first"] and named.x.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(named.x, read_image_folder(tree, ["n01"], side=4, workers=4).x)


def test_read_image_crop_and_stretch(tmp_path):
    wide = noise(8, 16, 5)
    save(tmp_path / "w.png", wide)
    # shorter side 8 -> 8 (no resampling): the centre crop takes columns 4..11
    np.testing.assert_array_equal(read_image(tmp_path / "w.png", 8), wide[:, 4:12].transpose(2, 0, 1))
    stretched = read_image(tmp_path / "w.png", 8, resize="stretch")
    with Image.open(tmp_path / "w.png") as img:
        expected = np.asarray(img.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(stretched, expected)
    for h, w in ((13, 7), (7, 13), (100, 75)):
        save(tmp_path / f"{h}x{w}.png", noise(h, w, h * w))
        np.testing.assert_array_equal(read_image(tmp_path / f"{h}x{w}.png", 5), reference_crop(tmp_path / f"{h}x{w}.png", 5))
    palette = save(tmp_path / "p.png", noise(4, 4, 6), mode="P")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png", 4), palette.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="resize must be one of"):
        read_image(tmp_path / "p.png", 4, resize="pad")


def test_image_folder_missing_class_and_unreadable_image(tree):
    with pytest.raises(DataFileError, match=r"n09: missing; the class n09 has no folder in") as err:
        read_image_folder(tree, ["n01", "n09"], side=4)
    assert str(tree / "n09") in str(err.value)
    (tree / "n04").mkdir()
    (tree / "n04" / "readme.txt").write_text("x")
    with pytest.raises(DataFileError, match=r"n04: holds no image"):
        read_image_folder(tree, ["n04"], side=4)
    bad = tree / "n01" / "c_bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataFileError, match=r"c_bad\.jpg: cannot read image") as err:
        read_image_folder(tree, ["n01"], side=4)
    assert str(bad) in str(err.value)
    bad.unlink()
    good = tree / "n01" / "b.JPEG"
    truncated = tree / "n01" / "b_cut.jpeg"
    truncated.write_bytes(good.read_bytes()[:-60])
    with pytest.raises(DataFileError, match=r"b_cut\.jpeg: cannot read image .*truncated") as err:
        read_image_folder(tree, ["n01"], side=4, workers=2)
    assert str(truncated) in str(err.value)


def write_subset(root: Path, wnids, seed: int = 0, per_class: int = 1) -> None:
    for k, wnid in enumerate(wnids):
        for j in range(per_class):
            save(root / wnid / f"{wnid}_{j}.JPEG", noise(10 + k, 14 + j, seed + 10 * k + j), fmt="JPEG")


def test_registered_imagenet10_from_the_full_training_tree(tmp_path):
    train = tmp_path / "m" / "imagenet" / "train"
    write_subset(train, IMAGENET10_WNIDS, per_class=2)
    write_subset(train, ["n01440764"])  # another ILSVRC class: ignored
    raw = DATASETS["imagenet10"].load(options(tmp_path / "m"))
    side = IMAGENET_SUBSET_SIDE
    assert raw.x.shape == (20, 3, side, side) and raw.x.dtype == np.uint8
    assert raw.y.tolist() == [k for k in range(10) for _ in range(2)] and raw.split is None
    assert raw.class_names == list(IMAGENET10_NAMES)
    np.testing.assert_array_equal(raw.x[5], reference_crop(train / IMAGENET10_WNIDS[2] / f"{IMAGENET10_WNIDS[2]}_1.JPEG", side))


def test_imagenet_subset_own_folder_first_and_side_parameter(tmp_path):
    write_subset(tmp_path / "m" / "imagenet" / "train", IMAGENET_DOGS_WNIDS, seed=1)
    write_subset(tmp_path / "m" / "imagenet-dogs" / "train", IMAGENET_DOGS_WNIDS, seed=2)  # ProPos's layout
    (tmp_path / "m" / "imagenet-dogs" / "val").mkdir()
    raw = load_imagenet_subset(options(tmp_path / "m"), "imagenet-dogs", side=8)
    own = read_image_folder(tmp_path / "m" / "imagenet-dogs" / "train", IMAGENET_DOGS_WNIDS, side=8)
    assert raw.x.shape == (15, 3, 8, 8) and raw.class_names[5] == "golden retriever"
    np.testing.assert_array_equal(raw.x, own.x)


def test_registered_imagenet_subset_missing_explains_where_to_put_it(tmp_path):
    write_subset(tmp_path / "m" / "imagenet" / "train", IMAGENET10_WNIDS[:7])
    with pytest.raises(DataFileError) as err:
        DATASETS["imagenet10"].load(options(tmp_path / "m", download=True))
    msg = str(err.value)
    assert msg.startswith("ImageNet-10: no directory holds a folder for each of its 10 classes (n02056570, ")
    assert "not downloaded automatically" in msg and "<mirror>/imagenet/train/<wnid>/*.JPEG" in msg
    assert "<mirror>/imagenet10/<wnid>/" in msg
    assert f"{tmp_path / 'm' / 'imagenet' / 'train'} (incomplete: lacks the class folders n04285008, n04467665, " \
           f"n07747607)" in msg
    with pytest.raises(DataFileError, match=r"ImageNet-Dogs: no directory .*<mirror>/imagenet-dogs/<wnid>/"):
        DATASETS["imagenet-dogs"].load(options(tmp_path / "empty"))


# ----------------------------------------------------------------------------------------------------
# The full ImageNet: an image index decoded batch by batch


def imagenet_tree(tmp_path: Path) -> Path:
    train = tmp_path / "m" / "imagenet" / "train"
    write_subset(train, ["n00000002", "n00000001", "n00000003"], per_class=3)
    save(train / "n00000003" / "grey.JPEG", noise(20, 12, 99, grey=True), fmt="JPEG")
    save(train / "notes" / "x.png", noise(8, 8, 7))  # not a WNID folder: not a class
    return train


def test_registered_imagenet_is_an_index_that_decodes_as_the_folder_reader(tmp_path):
    import torch

    from brb.data.prepared import load_prepared, save_prepared
    from brb.data.stream import FolderData, device_data, is_index
    from brb.data.tensors import DeviceData

    train = imagenet_tree(tmp_path)
    raw = DATASETS["imagenet"].load(options(tmp_path / "m"))
    assert raw.class_names == ["n00000001", "n00000002", "n00000003"] and raw.y.tolist() == [0] * 3 + [1] * 3 + [2] * 4
    assert raw.x.shape == (10,) and raw.x[0] == str((train / "n00000001" / "n00000001_0.JPEG").resolve())
    save_prepared(tmp_path / "imagenet.npz", "imagenet", raw)
    prepared = load_prepared(tmp_path / "imagenet.npz")
    assert is_index(prepared) and prepared.x.tolist() == raw.x.tolist()

    pixels = read_image_folder(train, raw.class_names, side=8)  # the in-memory reader on the same tree
    data = device_data(prepared, "cpu", "channel", resize=8)
    assert isinstance(data, FolderData) and data.sample_shape == (3, 8, 8) and len(data) == 10
    rows = torch.tensor([9, 0, 4])
    torch.testing.assert_close(data.decode(rows), torch.from_numpy(pixels.x[[9, 0, 4]]), rtol=0, atol=0)
    memory = DeviceData(prepared.__class__("imagenet", pixels.x, pixels.y, pixels.class_names), "cpu", "channel")
    torch.testing.assert_close(data.mean, memory.mean)
    torch.testing.assert_close(data.std, memory.std)
    torch.testing.assert_close(data.batch(rows), memory.batch(rows))
    torch.testing.assert_close(torch.cat(list(data.iter_batches(4))), memory.batch(slice(0, 10)))  # prefetched

    (train / "n00000002" / "n00000002_1.JPEG").write_bytes(b"broken")
    with pytest.raises(DataFileError, match=r"n00000002_1\.JPEG: cannot read image"):
        data.batch(torch.tensor([3, 4]))


def test_registered_imagenet_missing_says_where_to_put_it(tmp_path):
    (tmp_path / "m" / "imagenet" / "train" / "n00000001").mkdir(parents=True)  # one class is not a tree
    with pytest.raises(DataFileError, match=r"ImageNet: no directory holds ILSVRC class folders .*<mirror>/imagenet/"
                                            r"train/<wnid>/\*\.JPEG"):
        DATASETS["imagenet"].load(options(tmp_path / "m", download=True))


def test_deepcluster_trains_on_an_image_index(tmp_path):
    """The cluster stage on a prepared index: batches decoded from the JPEGs, scores and labels as any run."""
    import json

    from brb.config import make_config
    from brb.data.prepared import save_prepared
    from brb.stages import cluster_stage, evaluate_stage

    imagenet_tree(tmp_path)
    save_prepared(tmp_path / "imagenet.npz", "imagenet", DATASETS["imagenet"].load(options(tmp_path / "m")))
    config = make_config({
        "data": {"resize": 16}, "model": {"arch": "dc_small", "embedding_dim": 32},
        "cluster": {"algorithm": "deepcluster", "epochs": 1, "batch_size": 4, "dc_k": 4, "kmeans_n_init": 1,
                    "kmeans_backend": "torch", "pca_dim": 8},
        "run": {"seed": 0, "threads": 1, "device": "cpu"},
    })
    cluster_stage(config, tmp_path / "imagenet.npz", tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "imagenet" and metrics["n_clusters"] == 3 and 0 <= metrics["acc"] <= 1
    evaluate_stage(tmp_path / "run", tmp_path / "imagenet.npz", silhouette=True)
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["acc"] == pytest.approx(metrics["acc"]) and -1 <= evaluation["silhouette"] <= 1
