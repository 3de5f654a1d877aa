"""Dataset loaders on tiny files written in the real formats (IDX, USPS libsvm bz2, UCI CSV, CIFAR pickles,
GTSRB folders), plus one real Fashion-MNIST check when Debian's dataset-fashion-mnist is installed."""

from __future__ import annotations

import bz2
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from brb.data import DATASETS, DataFileError, FetchOptions, load_prepared, prepare_dataset
from brb.data.sources import parse_idx, read_idx, write_idx
from brb.data.torchvision_sets import GTSRB_NAMES, gtsrb_image, parse_usps

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def options(mirror: Path, **kw) -> FetchOptions:
    kw.setdefault("cache_dir", mirror / "_cache")
    kw.setdefault("download", False)
    return FetchOptions(mirrors=[mirror], **kw)


def load(name: str, mirror: Path, **kw):
    return DATASETS[name].load(options(mirror, **kw))


@pytest.fixture(autouse=True)
def _no_env_mirrors(monkeypatch):
    monkeypatch.delenv("BRB_DATA_MIRRORS", raising=False)


# ----------------------------------------------------------------------------------------------------
# IDX


def write_mnist_like(directory: Path, n_train=5, n_test=3, gz=True, seed=0, first_labels=None):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    if first_labels is not None:
        arrays["train-labels-idx1-ubyte"][: len(first_labels)] = first_labels
    for stem, arr in arrays.items():
        write_idx(directory / (stem + (".gz" if gz else "")), arr)
    return arrays


def test_idx_header_and_values(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = write_idx(tmp_path / "a-idx3-ubyte", arr).read_bytes()
    # magic 0x00000803, then big-endian dims 2, 3, 4
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    assert raw[16:] == arr.tobytes()
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), arr)
    write_idx(tmp_path / "a.gz", arr)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
    ints = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    write_idx(tmp_path / "i", ints)
    out = read_idx(tmp_path / "i")
    assert out.dtype == np.int32 and out.tolist() == ints.tolist()


@pytest.mark.parametrize(
    "data, message",
    [
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 7]), "magic"),
        (bytes([0, 0, 7, 1, 0, 0, 0, 1, 7]), "type code"),
        (bytes([0, 0, 8, 2, 0, 0, 0, 1]), "truncated IDX header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 7]), "truncated"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 7, 7]), "trailing"),
        (b"\x00", "not an IDX"),
    ],
)
def test_parse_idx_rejects_malformed(data, message):
    with pytest.raises(DataFileError, match=message) as err:
        parse_idx(data, "some/file-idx1-ubyte")
    assert "some/file-idx1-ubyte" in str(err.value)


@pytest.mark.parametrize(
    "name, subdir, gz",
    [("mnist", "", True), ("mnist", "MNIST/raw", False), ("fmnist", "fashion-mnist", True),
     ("fmnist", "FashionMNIST/raw", True), ("kmnist", "KMNIST/raw", True), ("kmnist", "kmnist", False)],
)
def test_mnist_family_from_mirror(tmp_path, name, subdir, gz):
    arrays = write_mnist_like(tmp_path / subdir, gz=gz)
    raw = load(name, tmp_path)
    assert raw.x.shape == (8, 1, 28, 28) and raw.x.dtype == np.uint8
    expected_x = np.concatenate([arrays["train-images-idx3-ubyte"], arrays["t10k-images-idx3-ubyte"]])
    np.testing.assert_array_equal(raw.x[:, 0], expected_x)
    expected_y = np.concatenate([arrays["train-labels-idx1-ubyte"], arrays["t10k-labels-idx1-ubyte"]])
    np.testing.assert_array_equal(raw.y, expected_y)
    assert raw.y.dtype == np.int64
    names = {
        "mnist": [str(i) for i in range(10)],
        "fmnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"],
        "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    }[name]
    assert raw.class_names == names


def test_mirror_order_and_cache_searched_last(tmp_path):
    first, second = tmp_path / "m1", tmp_path / "m2"
    a = write_mnist_like(first / "mnist", seed=1)
    write_mnist_like(second, seed=2)
    write_mnist_like(tmp_path / "cache" / "MNIST" / "raw", seed=3)
    raw = DATASETS["mnist"].load(FetchOptions(mirrors=[first, second], cache_dir=tmp_path / "cache", download=False))
    np.testing.assert_array_equal(raw.x[0, 0], a["train-images-idx3-ubyte"][0])
    c = write_mnist_like(tmp_path / "only_cache" / "MNIST" / "raw", seed=4)
    raw = DATASETS["mnist"].load(
        FetchOptions(mirrors=[tmp_path / "empty"], cache_dir=tmp_path / "only_cache", download=False)
    )
    np.testing.assert_array_equal(raw.x[0, 0], c["train-images-idx3-ubyte"][0])


def test_truncated_idx_names_the_file(tmp_path):
    write_mnist_like(tmp_path / "mnist")
    bad = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    body = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(body[:-100]))  # valid gzip, short IDX payload
    with pytest.raises(DataFileError, match="truncated") as err:
        load("mnist", tmp_path)
    assert str(bad) in str(err.value)
    bad.write_bytes(gzip.compress(body)[:-30])  # cut gzip stream
    with pytest.raises(DataFileError) as err:
        load("mnist", tmp_path)
    assert str(bad) in str(err.value)


def test_inconsistent_idx_pair_rejected(tmp_path):
    arrays = write_mnist_like(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", arrays["train-labels-idx1-ubyte"][:-1])
    with pytest.raises(DataFileError, match="5 images but .* 4 labels"):
        load("mnist", tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(5, 10, dtype=np.uint8))
    with pytest.raises(DataFileError, match="label 10 outside"):
        load("mnist", tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 27), dtype=np.uint8))
    with pytest.raises(DataFileError, match=r"train-images-idx3-ubyte\.gz.*expected uint8 \(N, 28, 28\)"):
        load("mnist", tmp_path)


def test_missing_dataset_lists_every_place_searched(tmp_path):
    (tmp_path / "kmnist").mkdir()
    write_idx(tmp_path / "kmnist" / "train-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataFileError) as err:
        load("kmnist", tmp_path, cache_dir=tmp_path / "dl")
    msg = str(err.value)
    assert "downloading is disabled" in msg
    for place in [tmp_path, tmp_path / "KMNIST/raw", tmp_path / "dl", tmp_path / "dl" / "KMNIST/raw"]:
        assert f"\n  {place}\n" in msg or msg.endswith(f"\n  {place}") or f"\n  {place} (" in msg
    assert f"{tmp_path / 'kmnist'} (incomplete: lacks train-labels-idx1-ubyte" in msg


def test_other_family_member_is_rejected(tmp_path):
    # a full-size training label file starting like Fashion-MNIST's is not taken for MNIST
    write_mnist_like(tmp_path, n_train=2)
    labels = np.zeros(60000, dtype=np.uint8)
    labels[:10] = (9, 0, 0, 3, 0, 2, 7, 2, 5, 5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataFileError, match="holds Fashion-MNIST, not MNIST"):
        load("mnist", tmp_path)


def test_download_through_torchvision_into_cache(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeKMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_mnist_like(Path(root) / "KMNIST" / "raw", seed=9)

    monkeypatch.setattr(tvd, "KMNIST", FakeKMNIST)
    raw = load("kmnist", tmp_path / "mirror", cache_dir=tmp_path / "cache", download=True)
    assert calls == [(str(tmp_path / "cache"), True, True)]
    assert raw.x.shape == (8, 1, 28, 28)

    class FailingMNIST:
        def __init__(self, root, train, download):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(tvd, "MNIST", FailingMNIST)
    with pytest.raises(DataFileError, match="download into .* failed .*Error downloading") as err:
        load("mnist", tmp_path / "mirror", cache_dir=tmp_path / "cache2", download=True)
    assert str(tmp_path / "mirror" / "MNIST/raw") in str(err.value)


def test_prepare_and_load_prepared_round_trip(tmp_path):
    arrays = write_mnist_like(tmp_path / "mirror" / "MNIST" / "raw")
    out = prepare_dataset("mnist", tmp_path / "prepared" / "mnist.npz", mirrors=[tmp_path / "mirror"],
                          cache_dir=tmp_path / "cache", download=False)
    data = load_prepared(out)
    assert data.name == "mnist" and data.is_image and data.n_classes == 10 and len(data) == 8
    assert data.x.dtype == np.uint8 and data.x.shape == (8, 1, 28, 28)
    np.testing.assert_array_equal(data.x[5, 0], arrays["t10k-images-idx3-ubyte"][0])
    np.testing.assert_array_equal(data.y[:5], arrays["train-labels-idx1-ubyte"])


# ----------------------------------------------------------------------------------------------------
# USPS


def usps_line(label: int, values) -> str:
    return f"{label} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(values) if v is not None)


def write_usps(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    train = [
        usps_line(1, [-1.0] * 256),
        usps_line(10, [1.0] * 256),
        usps_line(5, [0.5] * 128 + [-0.5] * 128),
    ]
    sparse = [-1.0] * 256
    sparse[17] = None  # omitted in libsvm = 0
    test = [usps_line(3, sparse), usps_line(7, np.linspace(-1, 1, 256))]
    (directory / "usps.bz2").write_bytes(bz2.compress(("\n".join(train) + "\n").encode()))
    (directory / "usps.t.bz2").write_bytes(bz2.compress(("\n".join(test) + "\n").encode()))


def test_usps_values_and_labels(tmp_path):
    write_usps(tmp_path / "usps")
    raw = load("usps", tmp_path)
    assert raw.x.shape == (5, 1, 16, 16) and raw.x.dtype == np.uint8
    assert raw.y.tolist() == [0, 9, 4, 2, 6]
    assert (raw.x[0] == 0).all() and (raw.x[1] == 255).all()
    assert (raw.x[2, 0, :8] == 191).all() and (raw.x[2, 0, 8:] == 63).all()  # (v + 1) / 2 * 255, truncated
    assert raw.x[3, 0, 1, 1] == 127 and raw.x[3, 0].sum() == 127  # index 18 -> row 1, col 1
    row = raw.x[4, 0].ravel()
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row.astype(int)) >= 0).all()
    assert raw.class_names == [str(i) for i in range(10)]


def test_usps_matches_torchvision_reader(tmp_path):
    import torchvision.datasets as tvd

    write_usps(tmp_path)
    lines = [usps_line(2, np.random.default_rng(0).uniform(-1, 1, 256)) for _ in range(3)]
    (tmp_path / "usps.bz2").write_bytes(bz2.compress("\n".join(lines).encode()))
    raw = load("usps", tmp_path)
    ref = tvd.USPS(str(tmp_path), train=True)
    np.testing.assert_array_equal(raw.x[:3, 0], ref.data)
    assert raw.y[:3].tolist() == list(ref.targets)


@pytest.mark.parametrize(
    "content, message",
    [("11 1:0.5\n", "label 11"), ("3 1:0.5 2-0.5\n", "not index:value"), ("3 300:0.1\n", "index 300"),
     ("3 1:1.7\n", r"outside \[-1, 1\]"), ("", "no samples")],
)
def test_usps_corrupt_lines(tmp_path, content, message):
    write_usps(tmp_path)
    (tmp_path / "usps.t.bz2").write_bytes(bz2.compress(content.encode()))
    with pytest.raises(DataFileError, match=message) as err:
        load("usps", tmp_path)
    assert str(tmp_path / "usps.t.bz2") in str(err.value)


def test_usps_truncated_bz2(tmp_path):
    write_usps(tmp_path)
    path = tmp_path / "usps.bz2"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataFileError, match="truncated or corrupt") as err:
        load("usps", tmp_path)
    assert str(path) in str(err.value)


def test_usps_prepare_round_trip(tmp_path):
    write_usps(tmp_path / "m")
    data = load_prepared(prepare_dataset("usps", tmp_path / "usps.npz", mirrors=[tmp_path / "m"],
                                         cache_dir=tmp_path / "c", download=False))
    assert data.x.shape == (5, 1, 16, 16) and data.y.tolist() == [0, 9, 4, 2, 6]


def test_parse_usps_direct():
    x, y = parse_usps(b"2 1:-1 2:1\n\n", "mem")
    assert y.tolist() == [1] and x[0, 0, :3].tolist() == [0, 255, 127]


# ----------------------------------------------------------------------------------------------------
# OPTDIGITS


def test_optdigits(tmp_path):
    d = tmp_path / "optdigits"
    d.mkdir()
    tra = [list(range(16)) * 4 + [3], [16] * 64 + [9]]
    tes = [[8] * 63 + [1] + [0]]
    (d / "optdigits.tra").write_text("".join(",".join(map(str, r)) + "\r\n" for r in tra))
    (d / "optdigits.tes").write_bytes(gzip.compress("".join(",".join(map(str, r)) + "\n" for r in tes).encode()))
    raw = load("optdigits", tmp_path)
    assert raw.x.shape == (3, 1, 8, 8) and raw.x.dtype == np.uint8
    assert raw.y.tolist() == [3, 9, 0]
    assert raw.x[0, 0, 0, :4].tolist() == [0, 16, 32, 48] and raw.x[0, 0, 1, 7] == 239  # rint(15 * 255 / 16)
    assert (raw.x[1] == 255).all() and raw.x[2, 0, 0, 0] == 128 and raw.x[2, 0, 7, 7] == 16
    (d / "optdigits.tes").write_text("1,2,3\n")
    with pytest.raises(DataFileError, match="line 1: 3 values") as err:
        load("optdigits", tmp_path)
    assert "optdigits.tes" in str(err.value)


# ----------------------------------------------------------------------------------------------------
# CIFAR


def write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def test_cifar10(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    rng = np.random.default_rng(0)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        labels = [i % 10, (i + 3) % 10]
        # the real batches are Python 2 pickles: str keys; bytes keys (Python 3 bytes) are accepted too
        key = (lambda k: k.encode()) if i % 2 else (lambda k: k)
        write_pickle(d / name, {key("batch_label"): "x", key("labels"): labels, key("data"): data,
                                key("filenames"): ["a.png", "b.png"]})
        batches[name] = (data, labels)
    raw = load("cifar10", tmp_path)
    assert raw.x.shape == (12, 3, 32, 32) and raw.x.dtype == np.uint8
    first = batches["data_batch_1"][0]
    assert raw.x[0, 0, 0, 0] == first[0, 0] and raw.x[0, 0, 0, 1] == first[0, 1]
    assert raw.x[0, 0, 1, 0] == first[0, 32] and raw.x[0, 1, 0, 0] == first[0, 1024]
    assert raw.x[0, 2, 31, 31] == first[0, 3071]
    np.testing.assert_array_equal(raw.x[10:].reshape(2, -1), batches["test_batch"][0])
    assert raw.y.tolist() == [0, 3, 1, 4, 2, 5, 3, 6, 4, 7, 5, 8]
    assert raw.class_names[0] == "airplane" and raw.class_names[9] == "truck"
    write_pickle(d / "batches.meta", {"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072})
    assert load("cifar10", tmp_path).class_names == [f"c{i}" for i in range(10)]


def test_cifar_pickle_cannot_run_code(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    d = tmp_path / "cifar-10-batches-py"
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        write_pickle(d / name, {"data": np.zeros((1, 3072), np.uint8), "labels": [0]})
    write_pickle(d / "data_batch_3", {"data": Evil(), "labels": [0]})
    with pytest.raises(DataFileError, match=r"builtin__\.print is not allowed") as err:
        load("cifar10", tmp_path)
    assert "data_batch_3" in str(err.value) and "pwned" not in capsys.readouterr().out
    (d / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8)}, protocol=2)[:-20])
    with pytest.raises(DataFileError, match="data_batch_3"):
        load("cifar10", tmp_path)


def test_cifar100_20(tmp_path):
    d = tmp_path / "cifar-100-python"
    rng = np.random.default_rng(1)
    tr = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    te = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    write_pickle(
        d / "train", {"filenames": ["a"] * 3, "fine_labels": [99, 0, 50], "coarse_labels": [19, 0, 7], "data": tr}
    )
    write_pickle(d / "test", {"filenames": ["a"] * 2, "fine_labels": [1, 2], "coarse_labels": [3, 4], "data": te})
    raw = load("cifar100-20", tmp_path)
    assert raw.x.shape == (5, 3, 32, 32)
    assert raw.y.tolist() == [19, 0, 7, 3, 4]
    np.testing.assert_array_equal(raw.x.reshape(5, -1), np.concatenate([tr, te]))
    assert len(raw.class_names) == 20 and raw.class_names[0] == "aquatic_mammals"
    assert raw.class_names[19] == "vehicles_2"
    write_pickle(d / "test", {"fine_labels": [1, 2], "data": te})
    with pytest.raises(DataFileError, match="coarse_labels"):
        load("cifar100-20", tmp_path)


# ----------------------------------------------------------------------------------------------------
# GTSRB


def write_ppm(path: Path, size, seed: int) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(40, 120, (size[1], size[0], 3), dtype=np.uint8)  # low contrast
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    assert path.read_bytes()[:2] == b"P6"
    return arr


def write_gtsrb(root: Path):
    base = root / "gtsrb"
    train = base / "GTSRB" / "Training"
    for c, n in [(1, 2), (2, 2), (12, 1), (17, 1), (18, 1), (35, 2)]:
        for k in range(n):
            write_ppm(train / f"{c:05d}" / f"00000_{k:05d}.ppm", (30 + k, 35), seed=c * 10 + k)
        header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
        (train / f"{c:05d}" / f"GT-{c:05d}.csv").write_text(header)
    test = base / "GTSRB" / "Final_Test" / "Images"
    rows = [("00000.ppm", 35), ("00001.ppm", 14), ("00002.ppm", 2)]
    for i, (fn, _) in enumerate(rows):
        write_ppm(test / fn, (40, 44), seed=100 + i)
    (base / "GT-final_test.csv").write_text(
        "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
        + "".join(f"{fn};40;44;5;5;35;39;{c}\n" for fn, c in rows)
    )
    return base


def test_gtsrb_subset(tmp_path):
    base = write_gtsrb(tmp_path)
    raw = load("gtsrb", tmp_path)
    assert raw.x.shape == (9, 3, 32, 32) and raw.x.dtype == np.uint8
    assert raw.y.tolist() == [0, 0, 1, 2, 3, 4, 4, 4, 0]  # train by class (2, 12, 17, 18, 35), then test rows
    assert raw.class_names == GTSRB_NAMES and len(raw.class_names) == 5
    # equalised: every channel spans the full range despite the low-contrast input
    assert (raw.x.reshape(9, 3, -1).min(axis=2) == 0).all() and (raw.x.reshape(9, 3, -1).max(axis=2) == 255).all()
    np.testing.assert_array_equal(raw.x[0], gtsrb_image(base / "GTSRB/Training/00002/00000_00000.ppm"))
    np.testing.assert_array_equal(raw.x[-1], gtsrb_image(base / "GTSRB/Final_Test/Images/00002.ppm"))


def test_gtsrb_errors(tmp_path):
    base = write_gtsrb(tmp_path)
    (base / "GTSRB/Final_Test/Images/00002.ppm").write_bytes(b"P6\n40 44\n255\n\x00\x01")
    with pytest.raises(DataFileError, match="00002.ppm: cannot read image"):
        load("gtsrb", tmp_path)
    for p in (base / "GTSRB/Training/00017").iterdir():
        p.unlink()
    with pytest.raises(DataFileError, match="00017: no .ppm images"):
        load("gtsrb", tmp_path)
    (base / "GT-final_test.csv").unlink()
    with pytest.raises(DataFileError, match=r"gtsrb \(incomplete: lacks GT-final_test.csv\)"):
        load("gtsrb", tmp_path)


# ----------------------------------------------------------------------------------------------------
# Real data


@pytest.mark.skipif(
    not (REAL_FMNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"real Fashion-MNIST not installed at {REAL_FMNIST} (Debian package dataset-fashion-mnist)",
)
def test_real_fashion_mnist(tmp_path):
    out = prepare_dataset("fmnist", tmp_path / "fmnist.npz", mirrors=[REAL_FMNIST.parent],
                          cache_dir=tmp_path / "cache", download=False)
    data = load_prepared(out)
    assert data.x.shape == (70000, 1, 28, 28) and data.x.dtype == np.uint8
    assert np.bincount(data.y).tolist() == [7000] * 10
    assert data.y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert not (tmp_path / "cache").exists()
