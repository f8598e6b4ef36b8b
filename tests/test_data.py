"""Tests for superconv.data and superconv.sampling. Uses only synthetic data written by the tests (no real CIFAR needed)."""

import builtins
import hashlib
import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest
import torch

import superconv.data as data
from superconv.data import DataError, load_dataset, write_synthetic
from superconv.sampling import Augment, BatchOrder, stratified_indices

torch.set_num_threads(2)

FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """A data root holding synthetic/cifar-10-batches-py (written once for the module; do not modify)."""
    root = tmp_path_factory.mktemp("data")
    load_dataset("synthetic", root)
    return root


@pytest.fixture
def cifar_copy(synth_root, tmp_path):
    """A private, modifiable data root with the synthetic files in the cifar10 layout."""
    dst = tmp_path / "root"
    shutil.copytree(synth_root / "synthetic" / "cifar-10-batches-py", dst / "cifar-10-batches-py")
    return dst


@pytest.fixture(scope="module")
def split(synth_root):
    return load_dataset("synthetic", synth_root)


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


# --------------------------------------------------------------------------------------------- loading


def test_synthetic_round_trip(split, synth_root):
    s = split
    assert s.train_x.dtype == torch.uint8 and s.train_x.shape == (400, 3, 32, 32)
    assert s.test_x.dtype == torch.uint8 and s.test_x.shape == (200, 3, 32, 32)
    assert s.train_y.dtype == torch.int64 and s.train_y.shape == (400,)
    assert s.test_y.dtype == torch.int64 and s.test_y.shape == (200,)
    assert s.num_classes == 10 and len(s.classes) == 10 and all(isinstance(c, str) for c in s.classes)
    assert torch.bincount(s.train_y, minlength=10).tolist() == [40] * 10
    assert torch.bincount(s.test_y, minlength=10).tolist() == [20] * 10
    # classes are mixed within a batch file (shuffled), not sorted
    assert len(set(s.train_y[:80].tolist())) == 10
    # images are not constant and differ between classes (class-dependent colour)
    per_class = torch.stack([s.train_x[s.train_y == c].double().mean((0, 2, 3)) for c in range(10)])
    assert torch.cdist(per_class, per_class).fill_diagonal_(1e9).min() > 5
    # the second load reuses the files rather than rewriting them
    folder = synth_root / "synthetic" / "cifar-10-batches-py"
    before = {f: (folder / f).stat().st_mtime_ns for f in FILES}
    again = load_dataset("synthetic", synth_root)
    assert {f: (folder / f).stat().st_mtime_ns for f in FILES} == before
    assert torch.equal(again.train_x, s.train_x) and torch.equal(again.test_y, s.test_y)


def test_synthetic_files_have_the_cifar_python_format(synth_root):
    folder = synth_root / "synthetic" / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    raw = (folder / "data_batch_1").read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2
    assert b"numpy.core.multiarray\n_reconstruct" in raw  # py2-style, like the official files
    with open(folder / "data_batch_1", "rb") as f:
        d = pickle.load(f, encoding="bytes")
    assert set(d) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert d[b"data"].dtype == np.uint8 and d[b"data"].shape == (80, 3072)
    assert isinstance(d[b"labels"], list) and len(d[b"labels"]) == 80
    with open(folder / "batches.meta", "rb") as f:  # what torchvision does
        meta = pickle.load(f, encoding="latin1")
    assert meta["label_names"][0] == "airplane"


def test_write_synthetic_deterministic(tmp_path):
    a = write_synthetic(tmp_path / "a", per_class_train=3, per_class_test=2, seed=1)
    b = write_synthetic(tmp_path / "b", per_class_train=3, per_class_test=2, seed=1)
    c = write_synthetic(tmp_path / "c", per_class_train=3, per_class_test=2, seed=2)
    assert a == tmp_path / "a" / "cifar-10-batches-py"
    for f in FILES:
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert (a / "test_batch").read_bytes() != (c / "test_batch").read_bytes()
    # rewriting in place replaces the old copy completely
    write_synthetic(tmp_path / "a", per_class_train=5, per_class_test=2, seed=1)
    assert load_dataset("cifar10", tmp_path / "a").train_x.shape[0] == 50
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["cifar-10-batches-py"]


def test_write_synthetic_interrupted_leaves_nothing(tmp_path, monkeypatch):
    real = data._py2_pickle
    calls = []

    def flaky(d):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(d)

    monkeypatch.setattr(data, "_py2_pickle", flaky)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic(tmp_path, per_class_train=2, per_class_test=1)
    assert list(tmp_path.iterdir()) == []


def _exploit_payloads(marker):
    class OsSystem:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    class BuiltinsExec:
        def __reduce__(self):
            return (builtins.exec, (f"open({str(marker)!r}, 'w').close()",))

    class Popen:
        def __reduce__(self):
            return (subprocess.Popen, (["touch", str(marker)],))

    class Eval:
        def __reduce__(self):
            return (builtins.eval, (f"open({str(marker)!r}, 'w').close()",))

    return {"os.system": OsSystem, "builtins.exec": BuiltinsExec, "subprocess.Popen": Popen, "builtins.eval": Eval}


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "subprocess.Popen", "builtins.eval"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_code_executing_pickle_is_refused(cifar_copy, tmp_path, kind, protocol):
    marker = tmp_path / "pwned"
    evil = _exploit_payloads(marker)[kind]
    target = cifar_copy / "cifar-10-batches-py" / "data_batch_2"
    payload = pickle.dumps({b"data": evil(), b"labels": [0]}, protocol=protocol)
    target.write_bytes(payload)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", cifar_copy)
    msg = _one_line(err)
    assert str(target) in msg and "refused" in msg
    module, name = kind.split(".")
    assert name in msg  # the refused global (os.system is pickled as posix.system)
    assert not marker.exists()


def test_exploit_payload_is_live_under_plain_pickle(tmp_path):
    """Guards the test above against a vacuous payload: plain pickle really runs it."""
    for kind in ("os.system", "builtins.exec"):
        marker = tmp_path / f"pwned-{kind}"
        pickle.loads(pickle.dumps(_exploit_payloads(marker)[kind](), protocol=2))
        assert marker.exists()


def test_object_arrays_are_refused(cifar_copy):
    target = cifar_copy / "cifar-10-batches-py" / "data_batch_1"
    arr = np.empty((1, 3072), dtype=object)
    target.write_bytes(pickle.dumps({b"data": arr, b"labels": [0]}, protocol=2))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", cifar_copy)
    assert str(target) in _one_line(err)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_pickles_of_uint8_arrays_load(cifar_copy, protocol):
    """Files re-pickled by Python 3 / numpy (str keys, any protocol) are still accepted."""
    folder = cifar_copy / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "rb") as f:
        d = pickle.load(f, encoding="latin1")
    (folder / "data_batch_1").write_bytes(pickle.dumps(d, protocol=protocol))
    s = load_dataset("cifar10", cifar_copy)
    assert s.train_x.shape == (400, 3, 32, 32)
    assert torch.equal(s.train_x[:80].reshape(80, -1), torch.from_numpy(d["data"]))


def test_missing_dir_one_line_names_dir(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path / "nowhere")
    msg = _one_line(err)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "SUPERCONV_DATA" in msg and "make data" in msg and "ARCHIVE=" in msg and "download" in msg
    with pytest.raises(DataError) as err:
        load_dataset("cifar100", tmp_path)
    assert str(tmp_path / "cifar-100-python") in _one_line(err)


def test_incomplete_dir_names_missing_file(cifar_copy):
    (cifar_copy / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", cifar_copy)
    msg = _one_line(err)
    assert "test_batch" in msg and str(cifar_copy / "cifar-10-batches-py") in msg


def test_pointing_at_the_batches_folder_itself_gives_a_hint(cifar_copy):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", cifar_copy / "cifar-10-batches-py")
    assert "parent" in _one_line(err)


def test_unknown_dataset(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("imagenet", tmp_path)
    assert "imagenet" in _one_line(err)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file(cifar_copy, damage):
    target = cifar_copy / "cifar-10-batches-py" / "data_batch_3"
    raw = target.read_bytes()
    damaged = {"truncate": raw[: len(raw) // 2], "garbage": b"\x00\xffnot a pickle\n" * 9, "empty": b""}
    target.write_bytes(damaged[damage])
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", cifar_copy)
    assert str(target) in _one_line(err)


def test_wrong_array_shape_is_refused(cifar_copy):
    target = cifar_copy / "cifar-10-batches-py" / "data_batch_1"
    target.write_bytes(data._py2_pickle({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", cifar_copy)
    msg = _one_line(err)
    assert str(target) in msg and "3072" in msg


def test_out_of_range_labels_are_refused(cifar_copy):
    target = cifar_copy / "cifar-10-batches-py" / "test_batch"
    target.write_bytes(data._py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", cifar_copy)
    assert "0..9" in _one_line(err)


def test_md5_check_fails_on_synthetic(synth_root, monkeypatch):
    with pytest.raises(DataError) as err:
        load_dataset("synthetic", synth_root, verify_md5=True)
    msg = _one_line(err)
    assert "md5" in msg and "data_batch_1" in msg and "verify_md5" in msg
    # with the table pointing at these files' sums, the check passes
    folder = synth_root / "synthetic" / "cifar-10-batches-py"
    for f in FILES:
        monkeypatch.setitem(data.CIFAR10_MD5, f, hashlib.md5((folder / f).read_bytes()).hexdigest())
    assert load_dataset("synthetic", synth_root, verify_md5=True).train_x.shape[0] == 400


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution\nsecond line")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path, download=True)
    msg = _one_line(err)
    assert "download" in msg and str(tmp_path / "cifar-10-batches-py") in msg


def test_download_path_reads_what_was_downloaded(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    seen = {}

    def fake_cifar10(root, train=True, download=False, **kwargs):
        seen.update(root=root, download=download)
        write_synthetic(root, per_class_train=2, per_class_test=1)

    monkeypatch.setattr(tvd, "CIFAR10", fake_cifar10)
    s = load_dataset("cifar10", tmp_path, download=True)
    assert seen == {"root": str(tmp_path), "download": True}
    assert s.train_x.shape[0] == 20 and s.test_x.shape[0] == 10


# ------------------------------------------------------------------------------------------ stratified


def test_stratified_equal_counts_and_reproducible(split):
    y = split.train_y
    a = stratified_indices(y, 0.5, seed=3)
    assert a.dtype == torch.int64 and torch.equal(a, torch.sort(a).values)
    assert len(torch.unique(a)) == len(a) == 200
    assert torch.bincount(y[a], minlength=10).tolist() == [20] * 10
    assert torch.equal(a, stratified_indices(y, 0.5, seed=3))
    assert not torch.equal(a, stratified_indices(y, 0.5, seed=4))
    assert torch.equal(stratified_indices(y, 1.0, seed=0), torch.arange(400))
    tiny = stratified_indices(y, 0.001, seed=0)  # at least one per class
    assert torch.bincount(y[tiny], minlength=10).tolist() == [1] * 10


def test_stratified_cifar_sized_fractions():
    y = torch.arange(50000) % 10
    for frac, per_class in [(0.8, 4000), (0.6, 3000), (0.4, 2000), (0.2, 1000)]:
        idx = stratified_indices(y, frac, seed=0)
        assert torch.bincount(y[idx]).tolist() == [per_class] * 10


def test_stratified_imbalanced_stays_equal():
    y = torch.tensor([0] * 50 + [1] * 5 + [2] * 45)
    idx = stratified_indices(y, 0.9, seed=0)
    assert torch.bincount(y[idx]).tolist() == [5, 5, 5]


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_stratified_fraction_validation(bad):
    with pytest.raises(ValueError) as err:
        stratified_indices(torch.arange(10) % 2, bad, seed=0)
    assert "data.fraction" in str(err.value) and "(0, 1]" in str(err.value)


# --------------------------------------------------------------------------------------- augmentation


def _asym_images(n=64, seed=0):
    """Images whose mean image is far from left-right symmetric (so flip(x-m) != flip(x)-m)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    x[:, :, :, :8] = torch.randint(200, 256, (n, 3, 32, 8), generator=g, dtype=torch.uint8)
    return x


def test_paper_mean_image_and_eval():
    x = _asym_images()
    aug = Augment("paper", x)
    assert aug.mean.dtype == torch.float32 and aug.mean.shape == (3, 32, 32) and aug.std is None
    torch.testing.assert_close(aug.mean, (x.double().mean(0) / 255).float(), rtol=0, atol=1e-6)
    out = aug.eval(x)
    assert out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, x.float() / 255 - aug.mean)


def test_paper_is_flip_and_mean_subtraction_only():
    x = _asym_images(128)
    aug = Augment("paper", x)
    out = aug.train(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float32 and out.is_contiguous()
    plain = x.float() / 255 - aug.mean
    mirrored = plain.flip(3)  # Caffe: mirror(x - mean), the mean taken at the source pixel
    is_plain = (out == plain).flatten(1).all(1)
    is_mirror = (out == mirrored).flatten(1).all(1)
    assert bool((is_plain | is_mirror).all())  # no crop, no std, nothing else
    assert 30 < int(is_mirror.sum()) < 98  # p = 0.5 per sample (128 samples)
    # and a mirrored sample is not flip(x) - mean (that would differ where the mean image is asymmetric)
    naive = x.flip(3).float() / 255 - aug.mean
    assert not bool((out == naive).flatten(1).all(1)[is_mirror & ~is_plain].any())


def _window(img, dy, dx, flip):
    w = img[:, dy : dy + 32, dx : dx + 32]
    return w.flip(2) if flip else w


def test_standard_pad_crop_flip_normalize():
    g0 = torch.Generator().manual_seed(1)
    x = torch.randint(1, 256, (48, 3, 32, 32), generator=g0, dtype=torch.uint8)  # no zeros: padding is visible
    aug = Augment("standard", x)
    assert aug.mean.shape == (3, 1, 1) and aug.std.shape == (3, 1, 1)
    torch.testing.assert_close(aug.mean.flatten(), (x.double() / 255).mean((0, 2, 3)).float())
    torch.testing.assert_close(aug.std.flatten(), (x.double() / 255).std((0, 2, 3), unbiased=False).float())
    ev = aug.eval(x)
    torch.testing.assert_close(ev.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(ev.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)

    out = aug.train(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float32 and out.is_contiguous()
    padded = torch.zeros(48, 3, 40, 40, dtype=torch.uint8)
    padded[:, :, 4:36, 4:36] = x
    norm_pad = (padded.float() / 255 - aug.mean) / aug.std
    found = []
    for i in range(48):
        match = [
            (dy, dx, f)
            for dy in range(9)
            for dx in range(9)
            for f in (False, True)
            if torch.equal(out[i], _window(norm_pad[i], dy, dx, f))
        ]
        assert match, f"sample {i} is not a pad-crop(-flip) of its input"
        found.append(match[0])
    assert len({(dy, dx) for dy, dx, _ in found}) > 10  # per-sample offsets
    assert 0 < sum(f for _, _, f in found) < 48  # per-sample flips
    assert any((dy, dx) != (4, 4) for dy, dx, _ in found)  # shifted crops show the zero padding


def test_augment_reproducible_from_generator_seed():
    x = _asym_images(32)
    for protocol in ("paper", "standard"):
        aug = Augment(protocol, x)
        a = aug.train(x, torch.Generator().manual_seed(7))
        b = aug.train(x, torch.Generator().manual_seed(7))
        c = aug.train(x, torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)
        g = torch.Generator().manual_seed(7)
        first, second = aug.train(x, g), aug.train(x, g)
        assert torch.equal(first, a) and not torch.equal(first, second)


def test_augment_validation():
    x = _asym_images(4)
    with pytest.raises(ValueError) as err:
        Augment("cutout", x)
    assert "data.augment" in str(err.value) and "paper" in str(err.value) and "standard" in str(err.value)
    aug = Augment("paper", x)
    with pytest.raises(ValueError):
        aug.train(x.float(), torch.Generator())
    with pytest.raises(ValueError):
        aug.eval(x[:, :, :28, :28])


# --------------------------------------------------------------------------------------- batch order


def test_batch_order_covers_each_epoch_and_crosses_epochs():
    n, bs = 10, 3
    order = BatchOrder(n, bs, seed=0)
    batches = [order.next_indices() for _ in range(10)]  # 30 indices = 3 epochs exactly
    assert all(b.dtype == torch.int64 and b.device.type == "cpu" and len(b) == bs for b in batches)
    flat = torch.cat(batches)
    epochs = flat.view(3, n)
    for e in range(3):
        assert sorted(epochs[e].tolist()) == list(range(n))
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled every epoch
    # batch 4 (indices 9..11) crosses the first epoch end: last of epoch 0, first two of epoch 1
    assert batches[3].tolist() == [epochs[0, 9].item(), epochs[1, 0].item(), epochs[1, 1].item()]
    assert order.state_dict()["epoch_index"] == 3 and order.state_dict()["position"] == 0
    other = BatchOrder(n, bs, seed=0)
    other.next_indices()
    assert (other.state_dict()["epoch_index"], other.state_dict()["position"]) == (0, 3)
    assert not torch.equal(torch.cat([BatchOrder(n, bs, seed=1).next_indices() for _ in range(10)]), flat)


def test_batch_order_resume_is_identical():
    reference = BatchOrder(50, 7, seed=5)
    expected = [reference.next_indices() for _ in range(40)]
    first = BatchOrder(50, 7, seed=5)
    for _ in range(13):
        first.next_indices()
    state = dict(first.state_dict())
    assert set(state) == {"seed", "n", "batch_size", "epoch_index", "position"}
    resumed = BatchOrder(50, 7, seed=5)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == first.state_dict()
    for i in range(13, 40):
        assert torch.equal(resumed.next_indices(), expected[i])


def test_batch_order_returned_tensor_is_not_the_cache():
    order = BatchOrder(8, 4, seed=0)
    a = order.next_indices()
    a.fill_(0)
    reference = BatchOrder(8, 4, seed=0)
    reference.next_indices()
    assert torch.equal(order.next_indices(), reference.next_indices())


def test_batch_order_validation():
    for bad in (0, 11, -1):
        with pytest.raises(ValueError) as err:
            BatchOrder(10, bad, seed=0)
        assert "train.batch_size" in str(err.value)
    BatchOrder(10, 10, seed=0).next_indices()
    order = BatchOrder(10, 2, seed=0)
    with pytest.raises(ValueError):
        order.load_state_dict({**order.state_dict(), "n": 11})
    with pytest.raises(ValueError):
        order.load_state_dict({**order.state_dict(), "seed": 1})
