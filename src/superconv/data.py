"""CIFAR data for superconv: safe reading into whole-split tensors, and the synthetic stand-in.

What a training step draws from these tensors (the class-balanced subset, the batch order, the
augmentation) is in :mod:`superconv.sampling`.

Why it is built this way:

* **Restricted unpickler.** The CIFAR "python version" files are pickles. ``pickle.load`` on a file
  from a user-supplied data directory runs whatever the file tells it to (``os.system``, ``eval``,
  ...): pointing ``paths.data_dir`` at a downloaded folder would be enough to run someone else's
  code. The reader here admits only the globals the format needs (numpy's array/dtype
  reconstruction, ``_codecs.encode`` for latin-1 strings), checks their arguments, and refuses
  everything else with a :class:`DataError` *before* anything is called.
* **md5 is optional and off by default.** A copy built from an image-folder archive (``make data
  ARCHIVE=...``, :mod:`superconv.data_archive`; e.g. a JPEG copy of CIFAR-10) is re-encoded, so its md5
  sums never match the official release; ``verify_md5=True`` is for users who have the official files and
  want that guaranteed.
* **Provenance.** ``make data`` (and ``data.download=true``) leave ``superconv-source.json`` beside the
  batch files: the route (download, archive), the archive's sha256, whether it is the official release.
  :attr:`Split.source` carries it into every run's summary.json (``data_source``); data put there by
  other means is ``{"route": "unknown"}``.
* **The whole split is one uint8 tensor.** CIFAR is 150 MB as uint8: it is read once, kept on the
  device, and augmented there as batched tensor ops (:mod:`superconv.sampling`).
* **Synthetic data uses the real reader.** ``name="synthetic"`` writes a tiny learnable data set in
  exactly the CIFAR-10 on-disk format (py2-style protocol-2 pickles) and then reads it back through
  the same code path as the real data, so tests and smoke runs exercise the real loader.

Plain Python + numpy + torch only (no Hydra); the config keys named in messages
(``paths.data_dir``, ``data.*``, ``train.batch_size``) are the ones the training config uses.
"""

from __future__ import annotations

import _codecs
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DataError",
    "file_digest",
    "Split",
    "load_dataset",
    "write_synthetic",
]

DATASETS = ("cifar10", "cifar100", "synthetic")
AUGMENT_PROTOCOLS = ("paper", "standard")

IMAGE_SHAPE = (3, 32, 32)
ROW_LEN = 3 * 32 * 32

# Official md5 sums, copied from torchvision.datasets.CIFAR10 / CIFAR100 (train_list, test_list, meta;
# torchvision/datasets/cifar.py).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR100_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}

GET_DATA_HINT = ("run `make data` (downloads the official CIFAR-10, checksum verified) or `make data "
                 "ARCHIVE=path` (a local cifar-10-python.tar.gz, or an image-folder archive train/<class>/*.png)")


class DataError(Exception):
    """A data problem the user can fix. The message is one line: it names the path or key and what to do."""

    def __init__(self, message: str):
        super().__init__(_one_line(message))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------------------------
# Layouts


@dataclass(frozen=True)
class _Layout:
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    labels_key: bytes
    names_key: bytes
    md5: dict


_CIFAR10 = _Layout(
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    labels_key=b"labels",
    names_key=b"label_names",
    md5=CIFAR10_MD5,
)
_CIFAR100 = _Layout(
    title="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    labels_key=b"fine_labels",
    names_key=b"fine_label_names",
    md5=CIFAR100_MD5,
)


def _all_files(layout: _Layout) -> tuple[str, ...]:
    return layout.train_files + layout.test_files + (layout.meta_file,)


# ------------------------------------------------------------------------------------------------
# Restricted unpickling


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` in a pickle: only ``_reconstruct`` accepts it; it cannot be called."""


_INT_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"}


def _as_text(obj) -> str | None:
    if isinstance(obj, bytes):
        return obj.decode("latin1")
    if isinstance(obj, str):
        return obj
    return None


def _safe_reconstruct(cls, shape, typecode):
    # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') followed by __setstate__.
    if cls is not _NdarrayToken or tuple(shape) != (0,) or _as_text(typecode) != "b":
        raise pickle.UnpicklingError("unexpected numpy _reconstruct arguments")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _safe_dtype(obj, align=False, copy=False):
    text = _as_text(obj)
    core = text.lstrip("<>|=") if text is not None else None
    if core not in _INT_DTYPES:
        raise pickle.UnpicklingError(f"refused numpy dtype {obj!r} (only plain integer dtypes)")
    return np.dtype(core)


def _safe_frombuffer(buf, dtype, shape, order):
    # numpy >= 1.16 with pickle protocol 5 (used e.g. by Python >= 3.14's default protocol).
    if not isinstance(dtype, np.dtype) or dtype.kind not in "ui" or dtype.fields is not None:
        raise pickle.UnpicklingError("refused numpy _frombuffer dtype")
    if isinstance(buf, pickle.PickleBuffer):
        buf = buf.raw()
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise pickle.UnpicklingError("refused numpy _frombuffer buffer")
    order = _as_text(order) or "C"
    if order not in ("C", "F"):
        raise pickle.UnpicklingError("refused numpy _frombuffer order")
    return np.frombuffer(buf, dtype=dtype).reshape(tuple(shape), order=order).copy()


def _safe_codecs_encode(obj, encoding="utf-8", errors="strict"):
    # Python 3 writes bytes in protocol < 3 as _codecs.encode(<str>, 'latin1').
    if not isinstance(obj, str) or _as_text(encoding) not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError("refused _codecs.encode arguments")
    return _codecs.encode(obj, "latin1")


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy", "ndarray"): _NdarrayToken,
    ("numpy", "dtype"): _safe_dtype,
    ("numpy.core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("_codecs", "encode"): _safe_codecs_encode,
}


class _RefusedGlobal(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a CIFAR pickle holds; every other global is refused, never imported."""

    def find_class(self, module, name):  # noqa: D401 - pickle API
        obj = _ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return obj

    def persistent_load(self, pid):
        raise _RefusedGlobal(f"persistent id {pid!r}")


def _safe_unpickle(path: Path):
    """Load one pickle file with the restricted unpickler; DataError on anything unexpected."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; check the file and its permissions")
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _RefusedGlobal as e:
        raise DataError(
            f"refused to load {path}: it references the global {e.name}, which a CIFAR data file never "
            "contains (it may be malicious; nothing from it was executed); replace the file with a "
            "trusted copy"
        ) from None
    except DataError:
        raise
    except Exception as e:  # truncated / corrupt: EOFError, UnpicklingError, ValueError, ...
        raise DataError(
            f"{path} is corrupt or truncated ({type(e).__name__}: {e}); delete it and rebuild or "
            "re-download the data"
        ) from None


def _get(d: dict, key: bytes, path: Path):
    if key in d:
        return d[key]
    skey = key.decode()
    if skey in d:
        return d[skey]
    raise DataError(f"{path} has no {key!r} entry; it is not a CIFAR data file, replace it")


def _read_batch(path: Path, labels_key: bytes) -> tuple[np.ndarray, list]:
    d = _safe_unpickle(path)
    if not isinstance(d, dict):
        raise DataError(f"{path} holds a {type(d).__name__}, not a dict; it is not a CIFAR data file, replace it")
    data = _get(d, b"data", path)
    labels = _get(d, labels_key, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_LEN:
        desc = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' is {desc}, expected uint8 [k, {ROW_LEN}]; replace the file")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, (list, tuple)) or len(labels) != data.shape[0]:
        n = len(labels) if isinstance(labels, (list, tuple)) else type(labels).__name__
        raise DataError(f"{path}: {labels_key!r} has {n} entries for {data.shape[0]} images; replace the file")
    if not all(type(v) is int for v in labels):
        raise DataError(f"{path}: {labels_key!r} holds non-integer labels; replace the file")
    return data, labels


def _read_names(path: Path, names_key: bytes) -> list[str]:
    d = _safe_unpickle(path)
    if not isinstance(d, dict):
        raise DataError(f"{path} holds a {type(d).__name__}, not a dict; replace the file")
    names = _get(d, names_key, path)
    if not isinstance(names, (list, tuple)) or not names or any(_as_text(n) is None for n in names):
        raise DataError(f"{path}: {names_key!r} is not a list of class names; replace the file")
    return [_as_text(n) for n in names]


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """The hex digest of a file, read in 1 MiB blocks (the official release's md5s, archives' sha256)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# Provenance: superconv-source.json beside the batch files (written by superconv.data_archive, `make data`)

SOURCE_FILE = "superconv-source.json"
# The official files and their md5 (torchvision.datasets.CIFAR10 / CIFAR100: url, filename, tgz_md5).
URLS = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                 "eb9058c3a382ffc7106e4002c42a8d85"),
}


def _digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def read_source(folder: str | os.PathLike) -> dict:
    """The data folder's provenance record; `{"route": "unknown"}` when it has none (or it is unreadable)."""
    try:
        rec = json.loads((Path(folder) / SOURCE_FILE).read_text(encoding="utf-8"))
        return rec if isinstance(rec, dict) else {"route": "unknown"}
    except (OSError, ValueError):
        return {"route": "unknown"}


def write_source(folder: str | os.PathLike, record: dict) -> None:
    rec = {**record, "written_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    (Path(folder) / SOURCE_FILE).write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# Loading


@dataclass
class Split:
    """A whole dataset as tensors: images uint8 [N,3,32,32], labels int64 [N]."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    classes: list[str]
    source: dict = field(default_factory=lambda: {"route": "unknown"})  # superconv-source.json (provenance)


def _missing(folder: Path, layout: _Layout) -> list[str]:
    return [f for f in _all_files(layout) if not (folder / f).is_file()]


def _not_found_message(layout: _Layout, folder: Path, missing: list[str], name: str, extra: str = "") -> str:
    what = "not found" if len(missing) == len(_all_files(layout)) else f"incomplete (missing {', '.join(missing)})"
    hint = ""
    if (folder.parent / missing[0]).is_file():
        hint = f" (the files seem to be directly in {folder.parent}: point the data dir at its parent instead)"
    how = "set paths.data_dir or SUPERCONV_DATA to where it is, allow data.download=true"
    if name == "cifar10":
        how += f", or {GET_DATA_HINT}"
    else:
        how += ", or run `make data DATASET=cifar100` (download) or `make data DATASET=cifar100 ARCHIVE=path`"
    return f"{layout.title} {what} in {folder}{hint}{extra}: {how}"


def _download(name: str, root: Path, layout: _Layout, folder: Path) -> None:
    try:
        import torchvision.datasets as tvd

        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        root.mkdir(parents=True, exist_ok=True)
        cls(root=str(root), train=True, download=True)
        _record_download(name, root, folder)
    except Exception as e:  # network errors, permission errors, torchvision's integrity errors
        missing = _missing(folder, layout) or [layout.train_files[0]]
        raise DataError(
            _not_found_message(
                layout, folder, missing, name, extra=f"; downloading it failed ({type(e).__name__}: {e})"
            )
        ) from None


def _record_download(name: str, root: Path, folder: Path) -> None:
    """The provenance record of a torchvision download (its archive's sha256 when torchvision left it)."""
    url, filename, md5 = URLS[name]
    rec = {"dataset": name, "route": "download", "url": url, "archive": filename}
    if (root / filename).is_file():
        sha, got = _digests(root / filename)
        rec.update(archive_sha256=sha, official_md5=got == md5)
    if folder.is_dir():
        write_source(folder, rec)


def load_dataset(name: str, data_dir, *, download: bool = False, verify_md5: bool = False) -> Split:
    """Read a whole dataset into CPU tensors.

    ``name``: ``cifar10`` (``<data_dir>/cifar-10-batches-py``), ``cifar100``
    (``<data_dir>/cifar-100-python``) or ``synthetic`` (``<data_dir>/synthetic/cifar-10-batches-py``,
    written by :func:`write_synthetic` if missing; ``download`` is ignored). ``verify_md5`` compares
    every file with the official release's md5 first (a copy built from images and synthetic data fail
    this by design).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (data.name): choose one of {', '.join(DATASETS)}")
    root = Path(data_dir).expanduser().absolute()
    if name == "cifar100":
        layout = _CIFAR100
        folder = root / layout.folder
    else:
        layout = _CIFAR10
        folder = (root / "synthetic" if name == "synthetic" else root) / layout.folder

    missing = _missing(folder, layout)
    if missing and name == "synthetic":
        try:
            write_synthetic(folder.parent)
        except OSError as e:
            raise DataError(
                f"cannot write synthetic data to {folder} ({e.strerror or e}): set paths.data_dir or "
                "SUPERCONV_DATA to a writable directory"
            ) from None
        missing = _missing(folder, layout)
    elif missing and download:
        _download(name, root, layout, folder)
        missing = _missing(folder, layout)
    if missing:
        raise DataError(_not_found_message(layout, folder, missing, name))

    if verify_md5:
        for fname in _all_files(layout):
            got = file_digest(folder / fname)
            if got != layout.md5[fname]:
                raise DataError(
                    f"md5 mismatch for {folder / fname} (got {got}, official {layout.title} "
                    f"{layout.md5[fname]}): it is not the official release; a copy built from an image "
                    "archive (re-encoded) and synthetic data fail this check by "
                    "design; set data.verify_md5=false to use them, or obtain the official files"
                )

    classes = _read_names(folder / layout.meta_file, layout.names_key)

    def read(files):
        arrays, labels = [], []
        for f in files:
            a, lab = _read_batch(folder / f, layout.labels_key)
            arrays.append(a)
            labels.extend(lab)
        x = torch.from_numpy(np.concatenate(arrays, axis=0)).view(-1, *IMAGE_SHAPE)
        y = torch.tensor(labels, dtype=torch.int64)
        if len(labels) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise DataError(
                f"labels in {folder} lie outside 0..{len(classes) - 1} ({layout.meta_file} names "
                f"{len(classes)} classes); replace the data"
            )
        return x, y

    train_x, train_y = read(layout.train_files)
    test_x, test_y = read(layout.test_files)
    source = {"route": "synthetic"} if name == "synthetic" else read_source(folder)
    return Split(train_x, train_y, test_x, test_y, num_classes=len(classes), classes=classes, source=source)


# ------------------------------------------------------------------------------------------------
# Synthetic data, written in the CIFAR-10 python format


def _py2_str(b: bytes) -> bytes:
    # py2 `str` as SHORT_BINSTRING / BINSTRING, as in the official files.
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _py2_int(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    return b"J" + struct.pack("<i", n)


def _py2_obj(v) -> bytes:
    if isinstance(v, bytes):
        return _py2_str(v)
    if isinstance(v, int):
        return _py2_int(v)
    if isinstance(v, list):
        return b"](" + b"".join(_py2_obj(x) for x in v) + b"e" if v else b"]"
    if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 2:
        v = np.ascontiguousarray(v)
        return b"".join(
            [
                b"cnumpy.core.multiarray\n_reconstruct\n",
                b"cnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_str(b"b") + b"\x87R",
                b"(" + _py2_int(1) + _py2_int(v.shape[0]) + _py2_int(v.shape[1]) + b"\x86",
                b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R",
                b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + _py2_int(0) + b"tb",
                b"\x89" + _py2_str(v.tobytes()) + b"tb",
            ]
        )
    raise TypeError(f"cannot write {type(v).__name__}")


def _py2_pickle(d: dict) -> bytes:
    """A protocol-2 pickle in the style Python 2 wrote CIFAR with (bytes keys come back as bytes)."""
    return b"\x80\x02}(" + b"".join(_py2_str(k) + _py2_obj(v) for k, v in d.items()) + b"u."


def _hsv_palette(k: int) -> np.ndarray:
    """k well-separated RGB colours in 0..255 (hue steps; alternating value)."""
    h = np.arange(k) / k
    s = np.full(k, 0.7)
    v = np.where(np.arange(k) % 2 == 0, 0.85, 0.55)
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.stack([np.select([i == j for j in range(6)], [c[ch] for c in choices]) for ch in range(3)], 1)
    return rgb * 255.0


def _synthetic_images(labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Class = colour + stripe pattern (orientation, frequency), with per-image phase, brightness, noise."""
    n = len(labels)
    colour = _hsv_palette(num_classes)[labels]  # [n,3]
    freq = 1 + (labels // 2) % 4  # cycles per image
    vertical = (labels % 2).astype(bool)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    coord = np.where(vertical[:, None, None], xx[None], yy[None])  # [n,32,32]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    pattern = 35.0 * np.sin(2 * np.pi * freq[:, None, None] * coord / 32 + phase)
    img = colour[:, :, None, None] + pattern[:, None] + rng.normal(0, 12, size=(n, 1, 1, 1))
    img = img + rng.normal(0, 20, size=(n, 3, 32, 32))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8).reshape(n, ROW_LEN)


def write_synthetic(root, *, per_class_train=40, per_class_test=20, num_classes=10, seed=0) -> Path:
    """Write a tiny learnable data set to ``<root>/cifar-10-batches-py`` in the CIFAR-10 python format.

    Five ``data_batch_*`` files + ``test_batch`` + ``batches.meta``, py2-style protocol-2 pickles
    (bytes keys ``b"data"`` uint8 [k,3072], ``b"labels"``, ``b"batch_label"``, ``b"filenames"``).
    Deterministic from ``seed``. Written into a temporary directory that is renamed into place, so
    an interrupted write never leaves a partial data set. Returns the ``cifar-10-batches-py`` path.
    """
    if num_classes < 2 or num_classes > 256:
        raise ValueError(f"num_classes must be in 2..256, got {num_classes}")
    if per_class_train < 1 or per_class_test < 1:
        raise ValueError("per_class_train and per_class_test must be >= 1")
    root = Path(root).expanduser().absolute()
    final = root / _CIFAR10.folder
    rng = np.random.default_rng(seed)

    def make(per_class: int):
        labels = rng.permutation(np.repeat(np.arange(num_classes), per_class))
        return _synthetic_images(labels, num_classes, rng), labels

    train_data, train_labels = make(per_class_train)
    test_data, test_labels = make(per_class_test)
    names = [f"class{c}".encode() for c in range(num_classes)]
    if num_classes == 10:
        names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_CIFAR10.folder}.tmp-", dir=root))
    try:
        parts = np.array_split(np.arange(len(train_labels)), 5)
        files = [
            (f"data_batch_{b + 1}", f"training batch {b + 1} of 5", train_data[idx], train_labels[idx])
            for b, idx in enumerate(parts)
        ]
        files.append(("test_batch", "testing batch 1 of 1", test_data, test_labels))
        for fname, blabel, data, labels in files:
            d = {
                b"batch_label": blabel.encode(),
                b"labels": [int(v) for v in labels],
                b"data": data,
                b"filenames": [f"synthetic/{fname}/{i:05d}.png".encode() for i in range(len(labels))],
            }
            (tmp / fname).write_bytes(_py2_pickle(d))
        meta = {b"num_cases_per_batch": len(parts[0]), b"label_names": names, b"num_vis": ROW_LEN}
        (tmp / _CIFAR10.meta_file).write_bytes(_py2_pickle(meta))
        _install_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _install_dir(tmp: Path, final: Path) -> None:
    """Rename a finished directory into place, replacing an older one; tolerate a concurrent writer."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.rename(final, old / final.name)
    try:
        os.rename(tmp, final)
    except OSError:
        if final.is_dir() and not _missing(final, _CIFAR10):  # another process installed a complete copy
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
