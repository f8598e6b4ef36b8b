"""`python -m experiments.campaign --budget SECONDS` (`make campaign BUDGET=540`): paper-scale runs on
a time-limited GPU (a SLURM job with a time limit, a preemptible VM, a notebook session), highest priority
first, resumable across calls.

    python -m experiments.campaign --budget 540                 # train until ~540 s are spent
    python -m experiments.campaign --budget 540 --dry-run       # what it would do; trains and writes nothing
    python -m experiments.campaign --budget 540 --concurrent 2  # two runs side by side on the one GPU

The priority list is experiments/campaign.yaml (`--list` another). A call plans every entry (its run
directory, as `make reproduce SCALE=paper` would name it, and its status: done, partial = has a checkpoint,
todo), then keeps `--concurrent` runs going, each a `python -m superconv.train ...` subprocess in its own
process group, so that a crash or hang of one run never loses the campaign: the highest-priority unfinished
runs first, a new one only while at least `--min-run-seconds` are left. `--margin` seconds before the budget
ends, every run still going gets one SIGTERM: the training loop finishes its iteration, writes a checkpoint
and exits 143. One still alive 3 s before the end is killed (it then resumes from its last periodic
checkpoint). SIGTERM or SIGINT to the campaign itself does the same at once and exits 128+signal.

Everything lands in one folder, `--out` (default results/): finished runs as results/ holds them, and an
unfinished run's checkpoint.pt beside a `.gitignore` holding `!/checkpoint.pt`, the one exception to the
repository's `*.pt` rule, so that the checkpoint can be committed and the next call (on this machine or another)
resumes it. A run that finishes deletes its checkpoint (train.keep_checkpoint=false) and the campaign its
`.gitignore`. Each call appends one JSON line to `<out>/campaign.jsonl`: what ran, how far, exit codes, and
each stopped run's stop latency (SIGTERM to exit), the measured margin.

Concurrency: `--concurrent` defaults to the best number measured on this device by
`python -m experiments.concurrency` (results/bench/concurrency.jsonl), else 1.

Exit codes: 0 every run started finished or was carried; 1 a run failed (the others went on); 2 bad input
(one line on stderr, nothing written); 128+signal when stopped by SIGTERM/SIGINT.
"""

from __future__ import annotations

import time

_T0 = time.monotonic()  # the budget counts from here: before the imports and the planning

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRIORITIES = ROOT / "experiments" / "campaign.yaml"
CONCURRENCY_RECORD = ROOT / "results" / "bench" / "concurrency.jsonl"
CARRY_MARKER = ".gitignore"
CARRY_TEXT = ("# experiments.campaign: this run is unfinished; its checkpoint is committed so that the next GPU\n"
              "# window resumes it. Removed with the checkpoint when the run finishes.\n!/checkpoint.pt\n")
ENTRY_KEYS = {"experiment", "overrides", "sweep", "why", "name", "suite"}
KILL_RESERVE_S = 3.0  # a run still alive this long before the budget's end is killed
POLL_S = 0.1


class CampaignError(ValueError):
    """Bad input: one line, exit 2, nothing written."""


@dataclass(frozen=True)
class Entry:
    position: int  # 1-based, in the list
    experiment: str
    overrides: tuple[str, ...]
    sweep: bool
    why: str
    name: str | None


@dataclass
class Planned:
    """One run of the campaign: where it lives, what it costs, how far it is."""

    id: str  # <experiment_name>/<override_dirname>
    entry: Entry
    args: list[str]  # the run's overrides, as Hydra's sweeper writes them (every sweep key pinned)
    run_dir: Path
    job: str
    depth: int
    iterations: int
    batch_size: int
    status: str = "todo"  # done | partial (a checkpoint) | todo
    iteration: int = 0  # the checkpoint's, for a partial run

    @property
    def images_to_go(self) -> int:
        return max(0, self.iterations - self.iteration) * self.batch_size


@dataclass
class Attempt:
    """A run started by this call."""

    planned: Planned
    proc: subprocess.Popen
    log: Path
    started: float
    status_before: str
    iteration_before: int
    signalled: float | None = None
    killed: bool = False
    record: dict = field(default_factory=dict)


# ---------------------------------------------------------------- the list


def suite_entries(raw: dict, position: int, where: str) -> list[Entry]:
    """`suite: <scale>` (with `why`): every run of that scale's suite (experiments.suites), in the suite's order,
    one entry each with every sweep key pinned (`scale=<scale>` first; suites.job_runs), at this position of the
    list."""
    from .suites import SCALES, job_runs, suite

    scale = raw["suite"]
    if scale not in SCALES or scale in ("smoke", "paper"):
        raise CampaignError(f"{where}: suite must be one of mini, frontier (a curated suite), not {scale!r}")
    if set(raw) - {"suite", "why"}:
        raise CampaignError(f"{where}: a suite entry takes only suite and why")
    if not isinstance(raw.get("why"), str) or not raw["why"].strip():
        raise CampaignError(f"{where} (suite {scale}): needs a `why` (the reason for its place in the list)")
    out = []
    for job in suite(scale):
        for pinned in job_runs(job):
            out.append(Entry(position, job.experiment, (f"scale={scale}", *pinned), False,
                             " ".join(raw["why"].split()), None))
    return out


def load_list(path: Path) -> list[Entry]:
    """The entries of a priority list (YAML: a list of mappings); every problem is a CampaignError."""
    import yaml

    from .suites import all_experiments

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise CampaignError(f"--list {path}: unreadable ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise CampaignError(f"--list {path}: not YAML ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(data, list) or not data:
        raise CampaignError(f"--list {path}: must be a non-empty YAML list of entries")
    known = set(all_experiments())
    entries = []
    for i, raw in enumerate(data, start=1):
        where = f"--list {path}: entry {i}"
        if not isinstance(raw, dict):
            raise CampaignError(f"{where}: must be a mapping with experiment, overrides, why")
        unknown = sorted(set(raw) - ENTRY_KEYS)
        if unknown:
            raise CampaignError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(ENTRY_KEYS))}")
        if "suite" in raw:
            entries += suite_entries(raw, i, where)
            continue
        exp = raw.get("experiment")
        if exp not in known:
            raise CampaignError(f"{where}: unknown experiment {exp!r} (conf/experiment/ has {len(known)})")
        overrides = raw.get("overrides") or []
        if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
            raise CampaignError(f"{where}: overrides must be a list of key=value strings")
        if not isinstance(raw.get("why"), str) or not raw["why"].strip():
            raise CampaignError(f"{where} ({exp}): needs a `why` (the reason for its place in the list)")
        sweep = raw.get("sweep", False)
        if not isinstance(sweep, bool):
            raise CampaignError(f"{where}: sweep must be true or false")
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise CampaignError(f"{where}: name must be a string")
        entries.append(Entry(i, exp, tuple(overrides), sweep, " ".join(raw["why"].split()), name))
    return entries


def _jobs(entry: Entry, params: dict, extra: list[str]) -> list[list[str]]:
    """The runs an entry stands for: Hydra's BasicSweeper over the experiment's sweep params and the entry's
    overrides, exactly as `python -m superconv.train experiment=...` expands them (values re-serialized)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = [f"experiment={entry.experiment}", *entry.overrides, *extra]
    parser = OverridesParser.create()
    try:
        mine = parser.parse_overrides(given)
        sweepable = parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    except Exception as e:  # Hydra's parser errors are several types, all "bad override"
        raise CampaignError(f"entry {entry.position} ({entry.experiment}): {' '.join(str(e).split())[:200]}") from None
    if any(o.is_sweep_override() for o in mine):
        raise CampaignError(f"entry {entry.position} ({entry.experiment}): overrides must be single values, "
                            f"not sweeps: {' '.join(entry.overrides)}")
    return BasicSweeper.split_arguments([*sweepable, *mine], None)[0]


def sweep_params(conf_dir: Path, experiment: str) -> dict:
    """The sweep an experiment of `conf_dir` declares (suites.sweep_params)."""
    from .suites import sweep_params as declared

    return declared(experiment, Path(conf_dir) / "experiment")


def plan(entries: list[Entry], out: Path, extra: list[str]) -> list[Planned]:
    """Every run of the list, in priority order, each once (its first position), with its status."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from superconv.config import CONF_DIR, ConfigError, identity, validate
    from superconv.session import plain

    def composed(overrides: list[str], where: str):
        try:
            return compose("config", overrides=overrides, return_hydra_config=True)
        except Exception as e:  # Hydra and OmegaConf raise many types; all mean a bad override here
            raise CampaignError(f"{where}: {' '.join(str(e).split())[:240]}") from None

    def checked(cfg, what: str) -> dict:
        with open_dict(cfg):
            del cfg["hydra"]
        try:
            c = plain(cfg)
            validate(c)
        except ConfigError as e:
            raise CampaignError(f"{what}: {e}") from None
        return c

    planned: dict[str, Planned] = {}
    fixed = [f"paths.results_dir={out}"]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name="campaign"):
        for entry in entries:
            where = f"entry {entry.position} ({entry.experiment} {' '.join(entry.overrides)})".replace(" )", ")")
            params = sweep_params(CONF_DIR, entry.experiment)
            jobs = _jobs(entry, params, fixed)
            if len(jobs) != 1 and not entry.sweep:
                pinned = {o.split("=", 1)[0].lstrip("+~") for o in entry.overrides}
                free = [k for k in params if k.lstrip("+~") not in pinned]
                raise CampaignError(f"{where}: is a sweep of {len(jobs)} runs; pin {', '.join(free)} "
                                    f"or set sweep: true")
            # --set: speed and place only (train.compile, train.device, paths.data_dir ...), checked per run
            jobs_set = _jobs(entry, params, fixed + extra) if extra else jobs
            for job, job_set in zip(jobs, jobs_set):
                cfg = composed(job, where)
                dirname = cfg.hydra.job.override_dirname or "default"
                c = checked(cfg, where)
                if extra:
                    cfg_set = composed(job_set, where)
                    dirname_set = cfg_set.hydra.job.override_dirname or "default"
                    c_set = checked(cfg_set, where)
                    changed = [k for k in sorted(set(identity(c)) | set(identity(c_set)))
                               if identity(c).get(k) != identity(c_set).get(k)]
                    if changed or dirname_set != dirname:
                        raise CampaignError(f"--set {' '.join(extra)}: changes what a run computes or where it "
                                            f"lives ({', '.join(changed) or 'its directory'}); put it in the list")
                    c = c_set
                run_id = f"{c['experiment_name']}/{dirname}"
                if run_id in planned:
                    continue
                loss_mode = c["job"] == "range_test" and c["range_test"]["mode"] == "loss"
                p = Planned(id=run_id, entry=entry, args=list(job_set), run_dir=out / c["experiment_name"] / dirname,
                            job=c["job"], depth=c["model"]["depth"], batch_size=c["train"]["batch_size"],
                            iterations=c["range_test"]["num_it"] if loss_mode else c["train"]["iterations"])
                refresh(p)
                planned[run_id] = p
    return list(planned.values())


def refresh(p: Planned) -> None:
    """Read a run's status from its directory: done (DONE), partial (a checkpoint), todo."""
    from superconv.checkpoint import resume_iteration
    from superconv.results import RunDir

    rd = RunDir(p.run_dir)
    p.iteration = 0
    if rd.is_done():
        p.status, p.iteration = "done", p.iterations
    elif rd.checkpoint.exists():
        p.status, p.iteration = "partial", resume_iteration(rd.checkpoint)
    else:
        p.status = "todo"


def select(runs: list[Planned], only: list[str]) -> list[Planned]:
    """`--only`: runs by id (experiment/dirname), entry name, or list position; unknown ones are an error."""
    if not only:
        return runs
    chosen = []
    for key in only:
        hits = [r for r in runs if key in (r.id, r.entry.name, str(r.entry.position))]
        if not hits:
            raise CampaignError(f"--only {key}: no such entry; ids are like {runs[0].id}")
        chosen += [r for r in hits if r not in chosen]
    return [r for r in runs if r in chosen]  # priority order


# ---------------------------------------------------------------- concurrency


def device_name(extra: list[str]) -> str:
    """The device the runs will use, as superconv describes it ("cuda: NVIDIA H200", "cpu: ...")."""
    import torch

    from superconv.hardware import describe_device

    wanted = dict(o.split("=", 1) for o in extra if "=" in o).get("train.device", "auto")
    use_cuda = wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available())
    return describe_device(torch.device("cuda" if use_cuda else "cpu"))


def choose_concurrency(records: list[dict], device: str, tolerance: float = 0.05) -> tuple[int, str]:
    """The number of runs side by side that gave the most aggregate images/s on this device, in its latest
    measurement (records of experiments.concurrency); the fewest runs within `tolerance` of the best,
    since each extra run slows every run. No record for this device: 1."""
    same = [r for r in records if str(r.get("device", "")).split(",")[0] == device.split(",")[0]
            and isinstance(r.get("concurrent"), int) and r.get("aggregate_images_per_s")]
    if not same:
        return 1, f"no concurrency measurement for {device.split(',')[0]}"
    latest = max(r["utc"] for r in same)
    cell = sorted((r for r in same if r["utc"] == latest), key=lambda r: r["concurrent"])
    best = max(r["aggregate_images_per_s"] for r in cell)
    pick = next(r for r in cell if r["aggregate_images_per_s"] >= (1 - tolerance) * best)
    table = ", ".join(f"{r['concurrent']}: {r['aggregate_images_per_s']:,.0f}" for r in cell)
    return pick["concurrent"], f"measured {latest} (aggregate img/s {table})"


def read_records(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return [r for r in out if isinstance(r, dict)]


# ---------------------------------------------------------------- running


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setpgrp()  # a terminal's Ctrl-C reaches the campaign only, which then signals each run once
    try:  # the campaign killed outright: its runs get SIGTERM (and checkpoint) rather than run on
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:150]


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def set_carry_marker(run_dir: Path, carry: bool) -> None:
    """An unfinished run's `.gitignore` (`!/checkpoint.pt`), or none once it is done."""
    marker = Path(run_dir) / CARRY_MARKER
    if carry and Path(run_dir).is_dir():
        if not marker.exists() or marker.read_text(encoding="utf-8") != CARRY_TEXT:
            marker.write_text(CARRY_TEXT, encoding="utf-8")
    elif not carry and marker.exists() and marker.read_text(encoding="utf-8") == CARRY_TEXT:
        marker.unlink()


class Campaign:
    def __init__(self, args, runs: list[Planned], concurrent: int, clock, t0: float):
        self.args, self.runs, self.concurrent, self.clock = args, runs, concurrent, clock
        self.deadline = t0 + args.budget
        self.stop_at = self.deadline - args.margin
        self.kill_at = self.deadline - min(KILL_RESERVE_S, args.margin / 2)
        self.queue = [r for r in runs if r.status != "done"]
        self.running: list[Attempt] = []
        self.finished: list[dict] = []
        self.signum: int | None = None
        self.logs: Path | None = Path(args.logs) if args.logs else None

    # -- signals to the campaign itself
    def _on_signal(self, signum, frame):
        if self.signum is None:
            self.signum = signum
        else:  # a second signal: no more waiting
            for a in self.running:
                self._kill(a)

    def start(self, p: Planned) -> None:
        if self.logs is None:
            self.logs = Path(tempfile.mkdtemp(prefix="campaign-logs-"))
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{_safe(p.id)}.log"
        cmd = [sys.executable, "-m", "superconv.train", *p.args, "train.progress=false"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(x for x in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH")) if x)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log, "ab") as f:
            f.write(f"== {datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} {' '.join(cmd)}\n".encode())
            f.flush()
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    preexec_fn=_child_setup)
        print(f"campaign: start {p.id} ({p.status}, at iteration {p.iteration} of {p.iterations}; "
              f"{self.deadline - self.clock():.0f} s left)", file=sys.stderr, flush=True)
        self.running.append(Attempt(p, proc, log, self.clock(), p.status, p.iteration))

    def _term(self, a: Attempt) -> None:
        if a.signalled is None and a.proc.poll() is None:
            a.signalled = self.clock()
            try:
                a.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _kill(self, a: Attempt) -> None:
        if a.proc.poll() is None:
            a.killed = True
            try:
                a.proc.kill()
            except ProcessLookupError:
                pass

    def settle(self, a: Attempt) -> None:
        """Record how a run ended, from its directory (exit codes alone cannot tell a skipped run)."""
        from superconv.results import RunDir

        now = self.clock()
        rc = a.proc.returncode
        p = a.planned
        refresh(p)
        rd = RunDir(p.run_dir)
        if p.status == "done":
            try:
                outcome = rd.read_summary().get("status", "completed")
            except Exception:
                outcome = "completed"
            set_carry_marker(p.run_dir, False)
        elif p.status == "partial":
            outcome = "killed" if a.killed else "stopped" if a.signalled is not None and rc == 128 + signal.SIGTERM \
                else "crashed"
            set_carry_marker(p.run_dir, True)
        else:
            outcome = "killed" if a.killed else "stopped" if a.signalled is not None else "failed"
        rec = {"id": p.id, "run_dir": str(p.run_dir), "priority": p.entry.position, "status_before": a.status_before,
               "iteration_before": a.iteration_before, "outcome": outcome, "iteration_after": p.iteration,
               "iterations": p.iterations, "exit_code": rc, "seconds": round(now - a.started, 2),
               "log": str(a.log)}
        if a.signalled is not None:
            rec["signalled_after_s"] = round(a.signalled - a.started, 2)
            rec["stop_latency_s"] = round(now - a.signalled, 2)
        if outcome in ("failed", "crashed") or rc not in (0, 128 + signal.SIGTERM):
            rec["error"] = _last_line(a.log)
        self.finished.append(rec)
        extra = f", stop latency {rec['stop_latency_s']} s" if "stop_latency_s" in rec else ""
        print(f"campaign: {outcome} {p.id} at iteration {p.iteration} of {p.iterations} (exit {rc}{extra})"
              + (f": {rec['error']}" if rec.get("error") else ""), file=sys.stderr, flush=True)

    def loop(self) -> None:
        while True:
            now = self.clock()
            stopping = self.signum is not None or now >= self.stop_at
            while not stopping and self.queue and len(self.running) < self.concurrent \
                    and self.stop_at - now >= self.args.min_run_seconds:
                self.start(self.queue.pop(0))
            for a in list(self.running):
                if a.proc.poll() is not None:
                    self.running.remove(a)
                    self.settle(a)
            if not self.running and (stopping or not self.queue or self.stop_at - now < self.args.min_run_seconds):
                return
            if stopping:
                for a in self.running:
                    self._term(a)
                if now >= self.kill_at or (self.signum is not None and any(
                        a.signalled is not None and now - a.signalled >= self.args.margin for a in self.running)):
                    for a in self.running:
                        self._kill(a)
            time.sleep(POLL_S)


# ---------------------------------------------------------------- the command


def _estimate_s(p: Planned, device: str) -> float:
    from .suites import CPU_IMAGES_PER_S, H200_IMAGES_PER_S

    rates = H200_IMAGES_PER_S if device.startswith("cuda") else CPU_IMAGES_PER_S
    rate = rates.get(p.depth) or rates[56] * 56 / p.depth
    return p.images_to_go / rate


def print_plan(runs: list[Planned], args, concurrent: int, why: str, device: str, elapsed: float) -> None:
    """The dry run: every run in priority order, and which this call would start (at the rates of
    experiments/suites.py, one run alone; runs side by side go slower)."""
    usable = args.budget - args.margin - elapsed
    slots = [0.0] * concurrent
    verdict = {}
    for p in runs:
        if p.status == "done":
            continue
        i = min(range(concurrent), key=slots.__getitem__)
        if usable - slots[i] < args.min_run_seconds:
            break
        end = slots[i] + _estimate_s(p, device)
        verdict[p.id] = "finishes" if end <= usable else "carried"
        slots[i] = end
    print(f"campaign plan: budget {args.budget:g} s, margin {args.margin:g} s, {concurrent} at once ({why}); "
          f"device {device}; out {args.out}")
    print(f"{'#':>3} {'status':8} {'progress':>14} {'est. min':>8}  {'this call':9}  run")
    for p in runs:
        progress = f"{p.iteration}/{p.iterations}"
        print(f"{p.entry.position:>3} {p.status:8} {progress:>14} {_estimate_s(p, device) / 60:8.1f}  "
              f"{verdict.get(p.id, '-'):9}  {p.id}")
    todo = [p for p in runs if p.status != "done"]
    print(f"{len(runs)} runs: {len(runs) - len(todo)} done, {len(todo)} to go, "
          f"{sum(p.images_to_go for p in todo):,} images, ~{sum(_estimate_s(p, device) for p in todo) / 3600:.1f} h "
          f"at {'H200 bf16' if device.startswith('cuda') else 'CPU'} rates (experiments/suites.py)")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints the usage too)
        print(f"campaign: error: {message}", file=sys.stderr)
        sys.exit(2)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python -m experiments.campaign", description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, required=True, help="seconds this call may take, all included")
    p.add_argument("--out", default="results", help="the results folder runs are read from and written to")
    p.add_argument("--dry-run", action="store_true", help="print the plan; train and write nothing")
    p.add_argument("--list", default=str(PRIORITIES), help="the priority list (YAML)")
    p.add_argument("--only", nargs="+", default=[], metavar="ID", help="only these runs (id, name or position)")
    p.add_argument("--concurrent", type=int, default=None, help="runs side by side (default: measured, else 1)")
    p.add_argument("--margin", type=float, default=20.0,
                   help="seconds before the budget's end at which running runs get SIGTERM (default 20)")
    p.add_argument("--min-run-seconds", type=float, default=60.0,
                   help="start (or resume) a run only while this many seconds are left before the margin")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for every run that does not change what it computes "
                        "(train.compile=true, train.device=cpu, paths.data_dir=...)")
    p.add_argument("--logs", default=None, help="folder for each run's output (default: a new temporary folder)")
    p.add_argument("--concurrency-record", default=str(CONCURRENCY_RECORD),
                   help="measurements of runs side by side (experiments.concurrency)")
    args = p.parse_args(argv)
    if not args.budget > 0:
        p.error(f"--budget {args.budget:g}: must be a positive number of seconds")
    if args.margin < 0 or args.min_run_seconds < 0:
        p.error("--margin and --min-run-seconds must be >= 0")
    if args.concurrent is not None and args.concurrent < 1:
        p.error(f"--concurrent {args.concurrent}: must be >= 1")
    for s in args.set:
        if "=" not in s or s.startswith("="):
            p.error(f"--set {s}: must be KEY=VALUE")
    return args


def main(argv: list[str] | None = None, clock=time.monotonic, t0: float | None = None) -> int:
    """Run one campaign call. The budget counts from `t0` (default: now, on `clock`); `clock` (seconds,
    monotonic) is replaceable for tests."""
    t0 = clock() if t0 is None else t0
    args = parse(argv)
    out = Path(args.out)
    try:
        runs = select(plan(load_list(Path(args.list)), out, list(args.set)), args.only)
    except CampaignError as e:
        print(f"campaign: error: {e}", file=sys.stderr)
        return 2
    device = device_name(args.set)
    if args.concurrent is not None:
        concurrent, why = args.concurrent, "--concurrent"
    else:
        concurrent, why = choose_concurrency(read_records(Path(args.concurrency_record)), device)
    if args.dry_run:
        print_plan(runs, args, concurrent, why, device, clock() - t0)
        return 0

    extra = list(args.set)
    if device.startswith("cpu") and concurrent > 1 and not any(s.startswith("train.threads=") for s in extra):
        threads = max(1, (os.cpu_count() or 1) // concurrent)  # runs side by side share the cores
        for r in runs:
            r.args.append(f"train.threads={threads}")
    for r in runs:  # a run finished outside the campaign (or by an older call) carries nothing
        if r.status == "done":
            set_carry_marker(r.run_dir, False)
    camp = Campaign(args, runs, concurrent, clock, t0)
    started_utc = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"campaign: {sum(r.status != 'done' for r in runs)} of {len(runs)} runs unfinished; "
          f"{concurrent} at once ({why}); {camp.deadline - clock():.0f} s left", file=sys.stderr, flush=True)
    old = {}
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        for s in (signal.SIGTERM, signal.SIGINT):
            old[s] = signal.signal(s, camp._on_signal)
    try:
        camp.loop()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    from superconv.hardware import git_sha

    if camp.finished:
        record = {"utc_start": started_utc, "utc_end": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "budget_s": args.budget, "margin_s": args.margin, "concurrent": concurrent,
                  "concurrent_from": why, "device": device, "git_sha": git_sha(), "extra_overrides": extra,
                  "wall_s": round(clock() - t0, 2),
                  "stopped_by": signal.Signals(camp.signum).name if camp.signum else None, "runs": camp.finished}
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "campaign.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
    left = [r for r in runs if r.status != "done"]
    print(f"campaign: {sum(x['outcome'] in ('completed', 'diverged') for x in camp.finished)} finished, "
          f"{sum(x['outcome'] in ('stopped', 'killed', 'crashed') and x['iteration_after'] > 0 for x in camp.finished)} "
          f"carried, {len(left)} unfinished in the list; run logs in {camp.logs}", file=sys.stderr)
    if camp.signum is not None:
        return 128 + camp.signum
    return 1 if any(x["outcome"] in ("failed", "crashed") for x in camp.finished) else 0


if __name__ == "__main__":
    sys.exit(main(t0=_T0))
