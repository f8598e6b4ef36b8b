"""The solver and training network of one of the author's Caffe logs, for checking our configs against them.

`tests/test_author_solvers.py` compares every one of the author's logs (a copy of Results/ from
https://github.com/lnsmith54/super-convergence, folder named by SUPERCONV_AUTHOR_LOGS) with the composed
`scale=paper` config of the matching experiment. This module only reads a log; the comparison (which
field of ours answers which field of the log) lives in the test.

What a log holds, and why it is read the way it is:
- The solver parameters (`caffe_log._parse_solver`: the top-level `key: value` lines after
  "Initializing solver from parameters:") and the GPUs ("Using GPUs 0, 1, ..., 7": one solver each).
- Each net's definition (train, then test), printed as prototxt after "Initializing net from parameters:".
  glog cuts a message at 30,000 characters, so a ResNet-56 or -110 is printed only up to its ~30th conv
  layer (ResNet-20 in full). A layer cut in the middle is dropped.
- Then every layer of the net as Caffe builds it ("Creating Layer X", "X <- bottom", "X -> top"): the whole
  net, in order, but without layer types. A layer's type is its printed one; for a layer past the cut, the
  type of a printed layer with the same name up to its digits (L3_b9_cbr2_conv is typed like
  L1_b1_cbr2_conv); failing that, the suffix convention of the author's network files (`_conv`, `_FC`, ...).
  The training net's layers end at the first "Network initialization done".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .caffe_log import _HEADER, _PREFIX, _parse_solver, _read_lines, _value, log_name

__all__ = ["AuthorRun", "Layer", "read_author_run", "parse_prototxt"]

_GPUS = re.compile(r"Using GPUs ([\d, ]+)")
_CREATING = re.compile(r"Creating Layer (\S+)$")
_BOTTOM = re.compile(r"^(\S+) <- (\S+)$")
_TOP = re.compile(r"^(\S+) -> (\S+)(?: \(in-place\))?$")
_NET_HEADER = "Initializing net from parameters:"
_NET_DONE = "Network initialization done"
# The author's naming, for layers past the print cut whose digit-masked name was not printed either.
_SUFFIX_TYPES = (("_split", "Split"), ("_conv", "Convolution"), ("_bn", "BatchNorm"), ("_scale", "Scale"),
                 ("_relu", "ReLU"), ("_dropout", "Dropout"), ("_eltwise", "Eltwise"), ("_pool", "Pooling"),
                 ("_zeros", "DummyData"), ("_concat0", "Concat"), ("_FC", "InnerProduct"),
                 ("accuracy", "Accuracy"), ("loss", "SoftmaxWithLoss"))


def _scalar(text: str):
    text = text.strip()
    return {"true": True, "false": False}[text] if text in ("true", "false") else _value(text)


def parse_prototxt(lines: list[str]) -> tuple[dict, bool]:
    """Protobuf text into nested dicts of lists (every field may repeat); and whether the text was cut.

    A cut text (braces left open) loses its last, partial top-level message.
    """
    root: dict = {}
    stack = [root]
    for line in lines:
        s = line.strip()
        if s.endswith("{"):
            node: dict = {}
            stack[-1].setdefault(s[:-1].strip(), []).append(node)
            stack.append(node)
        elif s == "}":
            if len(stack) > 1:
                stack.pop()
        elif ":" in s and s.count('"') in (0, 2):
            key, _, value = s.partition(":")
            stack[-1].setdefault(key.strip(), []).append(_scalar(value))
    cut = len(stack) > 1
    if cut:
        top = next(k for k, v in root.items() if v and v[-1] is stack[1])
        root[top].pop()
    return root, cut


def _first(d: dict, key: str, default=None):
    values = d.get(key) or [default]
    return values[0]


def _masked(name: str) -> str:
    return re.sub(r"\d+", "#", name)


@dataclass
class Layer:
    name: str
    type: str | None
    bottoms: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    printed: dict | None = None  # its printed definition, None when past the print cut


@dataclass
class AuthorRun:
    """One author run: solver, GPU count, the training net's layers and the printed nets' definitions."""

    name: str
    solver: dict
    gpus: int | None
    layers: list[Layer]  # the training net, every layer, in creation order
    printed_train: list[dict]  # the printed layer definitions (up to the cut)
    printed_test: list[dict]
    train_cut: bool

    def _of_type(self, kind: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.type == kind]

    def _printed(self, kind: str, test: bool = False) -> list[dict]:
        return [p for p in (self.printed_test if test else self.printed_train) if _first(p, "type") == kind]

    @property
    def data(self) -> tuple[dict, dict]:
        """The training data layer's (transform_param, data_param)."""
        (data,) = self._printed("Data")
        return _first(data, "transform_param", {}), _first(data, "data_param", {})

    @property
    def per_replica_batch(self) -> int:
        return int(_first(self.data[1], "batch_size"))

    @property
    def test_batch(self) -> int | None:
        data = self._printed("Data", test=True)
        return int(_first(_first(data[0], "data_param", {}), "batch_size")) if data else None

    @property
    def source(self) -> str:
        return str(_first(self.data[1], "source"))

    @property
    def dataset(self) -> str:
        return "cifar100" if "cifar100" in self.source else "cifar10"

    @property
    def train_images(self) -> int:
        """The training-set size the data source names (`cifar10_train40k_lmdb`: 40,000); 50,000 otherwise."""
        m = re.search(r"train(\d+)k", self.source)
        return int(m.group(1)) * 1000 if m else 50_000

    @property
    def mirror(self) -> bool:
        return bool(_first(self.data[0], "mirror", False))

    @property
    def crop_size(self) -> int:
        return int(_first(self.data[0], "crop_size", 0))

    @property
    def mean_file(self) -> str | None:
        return _first(self.data[0], "mean_file")

    @property
    def bn_fractions(self) -> Counter:
        """moving_average_fraction of the printed training-net BatchNorm layers (Caffe's default 0.999)."""
        return Counter(float(_first(_first(p, "batch_norm_param", {}), "moving_average_fraction", 0.999))
                       for p in self._printed("BatchNorm"))

    @property
    def test_uses_running_stats(self) -> set[bool]:
        """use_global_stats of the printed test-net BatchNorm layers (Caffe's default in TEST: true)."""
        return {bool(_first(_first(p, "batch_norm_param", {}), "use_global_stats", True))
                for p in self._printed("BatchNorm", test=True)}

    @property
    def depth(self) -> int:
        """Convolution layers + the FC layer: the ResNet depth of a net without projection shortcuts."""
        return len(self._of_type("Convolution")) + len(self._of_type("InnerProduct"))

    @property
    def zero_channel_shortcut(self) -> bool:
        """The paper network's downsampling: average-pool shortcut, then concatenated zero channels."""
        return bool(self._of_type("DummyData")) and bool(self._of_type("Concat"))

    def param_mults(self, kind: str, index: int, key: str) -> set[float]:
        """`key` (lr_mult, decay_mult) of parameter `index` (0 weights, 1 bias) over the printed training-net
        layers of type `kind`; Caffe's default 1 where unset. Empty when no such layer was printed."""
        out = set()
        for p in self._printed(kind):
            params = p.get("param", [])
            out.add(float(_first(params[index], key, 1)) if len(params) > index else 1.0)
        return out

    @property
    def dropout_ratios(self) -> set[float]:
        """dropout_ratio of the printed Dropout layers (Caffe's default 0.5)."""
        return {float(_first(_first(p, "dropout_param", {}), "dropout_ratio", 0.5)) for p in self._printed("Dropout")}

    @property
    def dropout_at(self) -> str | None:
        """Where the dropout layers sit: `blocks` (one after every BatchNorm but the stem's, on its output),
        `fc` (one, feeding the FC layer), `other`; None without dropout."""
        drops = self._of_type("Dropout")
        if not drops:
            return None
        bns = self._of_type("BatchNorm")
        bn_tops = {top: bn.name for bn in bns for top in bn.tops}
        after = [bn_tops.get(d.bottoms[0]) for d in drops]
        if None not in after and sorted(after) == sorted(bn.name for bn in bns[1:]):
            return "blocks"
        fc_inputs = {b for fc in self._of_type("InnerProduct") for b in fc.bottoms}
        if len(drops) == 1 and set(drops[0].tops) & fc_inputs:
            return "fc"
        return "other"


def read_author_run(path: str | Path) -> AuthorRun:
    path = Path(path)
    lines = _read_lines(path)
    solver: dict = {}
    gpus = None
    nets: list[tuple[dict, bool]] = []
    layers: list[Layer] = []
    train_done = False
    for i, line in enumerate(lines):
        if not solver and _HEADER.search(line):
            solver = _parse_solver(lines, i)
        elif gpus is None and (m := _GPUS.search(line)):
            gpus = len([g for g in m.group(1).split(",") if g.strip()])
        elif _NET_HEADER in line:
            end = next((j for j in range(i + 1, len(lines)) if _PREFIX.match(lines[j])), len(lines))
            nets.append(parse_prototxt(lines[i + 1:end]))
        elif not train_done and nets:
            message = _PREFIX.sub("", line, count=1)
            if _NET_DONE in message:
                train_done = True
            elif m := _CREATING.search(message):
                layers.append(Layer(m.group(1), None))
            elif layers and (m := _BOTTOM.match(message)) and m.group(1) == layers[-1].name:
                layers[-1].bottoms.append(m.group(2))
            elif layers and (m := _TOP.match(message)) and m.group(1) == layers[-1].name:
                layers[-1].tops.append(m.group(2))
    if not solver or not nets or not layers:
        raise ValueError(f"{path}: no solver header, net definition or layer list: not an author training log")
    (train, cut), test = nets[0], (nets[1][0] if len(nets) > 1 else {})
    printed = {_first(p, "name"): p for p in train.get("layer", [])}
    by_pattern = {_masked(name): _first(p, "type") for name, p in printed.items()}
    for layer in layers:
        layer.printed = printed.get(layer.name)
        layer.type = _first(layer.printed, "type") if layer.printed else by_pattern.get(_masked(layer.name))
        if layer.type is None:
            layer.type = next((t for suffix, t in _SUFFIX_TYPES if layer.name.endswith(suffix)), None)
    return AuthorRun(name=log_name(path), solver=solver, gpus=gpus, layers=layers,
                     printed_train=train.get("layer", []), printed_test=test.get("layer", []), train_cut=cut)
