"""The paper's claims as data: what each says, its numbers, which runs test it and how they are compared.

`CLAIMS` lists one `Claim` per claim of the paper (docs/PROTOCOL.md §7) (and our extensions, marked as such): its
paper artifact and number as printed (the only typed-in text of the report), the experiments whose runs
test it, the two groups it compares (filters on the runs' columns), the sweep the table shows, the
author's logs to read, the figure to look at and the arm whose convergence makes it testable. Judging
is `paper_figures.verdicts`; rendering `paper_figures.report`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .judging import Regime

__all__ = ["KINDS", "Claim", "Group", "Ref", "Where", "CLAIMS", "CLR", "PC", "MAX", "MIN", "BUDGET", "EQUAL", "SWEEP",
           "SWEEP_B"]

KINDS = ("better", "not_better", "range", "qualitative", "out_of_scope")

Where = tuple[tuple[str, object], ...]


def _w(**kw) -> Where:
    return tuple(sorted(kw.items()))


@dataclass(frozen=True)
class Group:
    """One side of a comparison: `column == value` filters; the value "@max" / "@min" means the largest /
    smallest value of that column among the claim's runs (e.g. the largest batch size tested)."""

    label: str
    where: Where = ()


@dataclass(frozen=True)
class Ref:
    """The paper's number and the author's log for the table rows whose filters include `where`."""

    where: Where
    paper: str = "-"
    author: str | None = None  # author log stem in the reference folder


@dataclass(frozen=True)
class Claim:
    id: str
    artifact: str  # the paper's figure/table (ICLR-2018 numbering)
    text: str
    paper: str  # the paper's number(s), as printed
    kind: str  # one of KINDS
    experiments: tuple[str, ...] = ()
    where: Where = ()  # filters applied to every run of the claim
    a: Group | None = None  # the side the claim says is better ("better"), or would be ("not_better")
    b: Group | None = None
    split: str | None = None  # judged separately per value of this column (then combined)
    split_known_only: bool = False  # only the split values the refs name (else also those run)
    sweep: str | None = None  # the table shows one row per value of this column (A and B among them)
    refs: tuple[Ref, ...] = ()
    figure: str | None = None  # figure stem (paper_figures/figures/<stem>.png) to look at
    rule: str = ""  # the claim's own rule, in words
    regime: Regime | None = None  # the arm that must have converged for the claim to be testable
    headline: str = ""  # the claim in a few words: README.md's results table (paper_figures.readme_table)
    metric: str | None = None  # a run metric the "ours" cell summarises instead of the final accuracy
    # ("lr_estimate": the estimate's start, middle, end and peak, `attach_estimates`)


CLR, PC = _w(schedule="clr"), _w(schedule="multistep")
LR_ESTIMATE_RULE = ("estimate curve: compare its values (ours) and the figure with the paper's; where minibatch noise "
                    "dominates the gradients, SGD with momentum 0.9 reads ~2.24x the LR in use whatever the curvature "
                    "(superconv.lr_estimate)")
MAX, MIN = "@max", "@min"
# CLR vs PC-LR at 1/8 of the budget: only testable where the CLR runs converged (final training accuracy).
BUDGET = Regime("the claim is that 1/8 of PC-LR's budget is enough for CLR to converge (the author's CLR runs end at "
                "~100% training accuracy); an underfit CLR run measures its own length, not the schedule")
# CLR vs PC-LR at CLR's own budget (our extension): testable where CLR converged in that budget.
EQUAL = Regime("at equal budget the question is which schedule converges better in the same number of steps; "
               "an underfit CLR run ends before it could")
# A sweep on the CLR run (batch, dropout, weight decay, momentum, max LR, stepsize) is about a converged CLR
# run: testable where its reference arm converged; the other arms are data, whatever they did.
SWEEP = Regime("a sweep on the CLR run asks what a setting does to a run that finished learning; with its "
               "reference arm underfit, the sweep measures how far each run got")
SWEEP_B = Regime(SWEEP.why, side="b")  # the reference arm is side B (no dropout)

CLAIMS: tuple[Claim, ...] = (
    Claim("fig1a_clr_vs_pclr", "Fig 1a", "CLR 0.1-3 for 10k iterations beats PC-LR 0.35 for 80k iterations",
          "92.4 vs 91.2", "better", ("fig1a",), a=Group("CLR", CLR), b=Group("PC-LR", PC),
          refs=(Ref(CLR, "92.4", "clr3SS5kFig1a"), Ref(PC, "91.2", "lr35Fig1a")), figure="fig1a_clr_vs_pclr",
          regime=BUDGET, headline="CLR (10k it) beats PC-LR (80k it)"),
    Claim("fig1a_curve", "Fig 1a", "CLR test accuracy stays ~65-80% while the LR is high, then rises to the "
          "end: 85.6 @9k, 90.5 @9.5k, 92.4 @10k", "65-80% at high LR; 85.6 / 90.5 / 92.4", "qualitative",
          ("fig1a",), where=CLR, refs=(Ref(CLR, "92.4 @10k", "clr3SS5kFig1a"),), figure="fig1a_clr_vs_pclr",
          rule="curve shape: compare the CLR curve with the author's in the figure",
          headline="CLR accuracy stays ~65-80% at high LR, then rises"),
    Claim("fig1a_equal_budget", "Fig 1a, extended (ours)", "Not in the paper: at equal budget (the CLR run's "
          "iterations for every schedule) CLR beats PC-LR; 1cycle (LR 0.1 -> 3 -> 0.1, then annihilation to 0.001, "
          "cyclical momentum 0.95-0.85) is shown beside", "not in the paper", "better", ("fig1a_equal_budget",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC), sweep="schedule", figure="fig1a_equal_budget", regime=EQUAL,
          headline="equal budget: CLR beats PC-LR (ours, not the paper's claim)"),
    Claim("table1_fraction", "Table 1 / Fig 6a", "CLR beats PC-LR on reduced training sets (40k/30k/20k/10k "
          "images = fraction 0.8/0.6/0.4/0.2); PC-LR 'has difficulties'",
          "91.1/89.6/87.9/80.6 vs 89.1/85.7/82.7/71.4", "better", ("fig6a_fraction",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC), split="fraction",
          refs=tuple(Ref(_w(schedule=s, fraction=f), p, f"{stem}Tr{k}kTab1")
                     for f, k, pc, pp in ((0.8, 40, "91.1", "89.1"), (0.6, 30, "89.6", "85.7"),
                                          (0.4, 20, "87.9", "82.7"), (0.2, 10, "80.6", "71.4"))
                     for s, p, stem in (("clr", pc, "clr3SS5k"), ("multistep", pp, "lr35"))),
          figure="sweep_fraction", regime=BUDGET, headline="CLR beats PC-LR on reduced training sets"),
    Claim("table1_maxlr", "Table 1", "The cycle's maximum LR can be large: the largest max LR tested (paper "
          "3.5) does at least as well as the smallest (paper 1.0)", "3.5/3/2.5/2/1.5/1: 92.1/92.4/92.3/91.7/90.9/91.3",
          "better", ("table1_maxlr",), where=CLR, a=Group("largest max LR", _w(max_lr=MAX)),
          b=Group("smallest max LR", _w(max_lr=MIN)), sweep="max_lr",
          refs=(Ref(_w(max_lr=3.5), "92.1"), Ref(_w(max_lr=3.0), "92.4", "clr3SS5kFig1a"), Ref(_w(max_lr=2.5), "92.3"),
                Ref(_w(max_lr=2.0), "91.7"), Ref(_w(max_lr=1.5), "90.9"), Ref(_w(max_lr=1.0), "91.3")),
          figure="table1_maxlr", regime=SWEEP, headline="the largest max LR does as well as the smallest"),
    Claim("table1_stepsize", "Table 1 / Fig 1b", "Longer cycles end higher, short ones still train: the longest "
          "run (stepsize 10k = 20k it) beats the shortest (stepsize 1k = 2k it)",
          "stepsize 10k/5k/4k/3k/2k/1k: 92.7/92.4/91.7/92.1/91.1/89.7", "better", ("fig1b_stepsize",),
          where=CLR, a=Group("longest run", _w(iterations=MAX)), b=Group("shortest run", _w(iterations=MIN)),
          sweep="iterations",
          refs=(Ref(_w(iterations=20000), "92.7"), Ref(_w(iterations=10000), "92.4", "clr3SS5kFig1a"),
                Ref(_w(iterations=8000), "91.7"), Ref(_w(iterations=6000), "92.1"), Ref(_w(iterations=4000), "91.1"),
                Ref(_w(iterations=2000), "89.7")), figure="fig1b_stepsize", regime=SWEEP,
          headline="the longest cycle beats the shortest"),
    Claim("fig2b_range_test", "Fig 2b", "LR range test 0 -> 3 (5k/20k/100k it): test accuracy 'remains "
          "consistently high' up to LR 3", "~70-80% over LR 0.3-3; peaks 81.6/83.1/86.5", "range",
          ("range_fig2b_5k", "range_fig2b_20k", "range_fig2b_100k"), split="experiment",
          refs=(Ref(_w(experiment="range_fig2b_5k"), "stays high, peak 81.6", "range3Iter5kFig2b"),
                Ref(_w(experiment="range_fig2b_20k"), "stays high, peak 83.1", "range3Iter20kFig2b"),
                Ref(_w(experiment="range_fig2b_100k"), "stays high, peak 86.5", "range3Iter100kFig2b")),
          figure="fig2b_range_test", headline="range-test accuracy stays high up to LR 3"),
    Claim("fig4_range_loss", "Fig 4", "In range tests (0 -> 2, ResNet-20/-110) the training loss rises while "
          "the test loss falls for LR ~0.2-2", "qualitative", "qualitative",
          ("range_fig4b_resnet20", "range_fig4b_resnet110"), split="experiment",
          refs=(Ref(_w(experiment="range_fig4b_resnet20"), "qualitative", "range2Res20Fig4b"),
                Ref(_w(experiment="range_fig4b_resnet110"), "qualitative", "range2Res110Fig4b")),
          figure="fig4_range_depth", rule="loss curves: read the figure",
          headline="range tests: training loss rises while test loss falls"),
    Claim("fig5a_lr_estimate", "Fig 5a", "Over the first 300 iterations of the Fig 1a CLR run (LR 0.1 -> 0.27) the "
          "Hessian-free estimate of the optimal LR (superconv.lr_estimate: summed absolute values, EMA 0.1) is 2-4",
          "2-4", "qualitative", ("fig5a_lr_estimate",), refs=(Ref((), "2-4"),), figure="fig5_lr_estimate",
          metric="lr_estimate",
          rule=LR_ESTIMATE_RULE,
          headline="Hessian-free LR estimate is 2-4 early in training"),
    Claim("fig5b_constant", "Fig 5b", "With a constant LR of 0.1 for 10k iterations the estimate spikes to ~3 early, "
          "then falls to ~0.2", "spikes ~3, ends ~0.2", "qualitative", ("fig5b_lr_estimate",),
          where=_w(schedule="constant"), refs=(Ref(_w(schedule="constant"), "spikes ~3, ends ~0.2"),),
          figure="fig5_lr_estimate", metric="lr_estimate",
          rule=LR_ESTIMATE_RULE,
          headline="constant LR 0.1: the estimate spikes ~3, falls to ~0.2"),
    Claim("fig5b_clr", "Fig 5b", "With CLR 0.1-3 for 10k iterations the estimate stays high and ends near 0.5",
          "stays high, ends ~0.5", "qualitative", ("fig5b_lr_estimate",), where=CLR,
          refs=(Ref(CLR, "stays high, ends ~0.5"),), figure="fig5_lr_estimate",
          metric="lr_estimate", rule=LR_ESTIMATE_RULE,
          headline="CLR: the estimate stays high, ends ~0.5"),
    Claim("fig6b_depth", "Fig 6b", "CLR beats PC-LR for ResNet-20 and ResNet-110 too",
          "ResNet-20 90.4 vs 88.6; ResNet-110 92.1 vs 91.0", "better", ("fig6b_depth",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC), split="depth",
          refs=(Ref(_w(schedule="clr", depth=20), "90.4", "clr3SS5kRes20Tab1"),
                Ref(_w(schedule="multistep", depth=20), "88.6", "lr35Res20Fig6b"),
                Ref(_w(schedule="clr", depth=110), "92.1", "clr3SS5kRes110Tab1"),
                Ref(_w(schedule="multistep", depth=110), "91.0", "lr35Res110Fig6b")), figure="fig6b_depth",
          regime=BUDGET, headline="CLR beats PC-LR for ResNet-20 and ResNet-110"),
    Claim("fig7a_cifar100_range", "Fig 7a", "CIFAR-100 LR range test 0 -> 3: accuracy stays high",
          "stays high", "range", ("range_fig7a_cifar100",), split="experiment",
          refs=(Ref(_w(experiment="range_fig7a_cifar100"), "stays high", "range3Cifar100kFig8"),),
          figure="fig7a_range_cifar100", headline="CIFAR-100 range-test accuracy stays high"),
    Claim("fig7b_cifar100", "Fig 7b", "CIFAR-100: CLR beats PC-LR", "68.6 vs 59.8", "better", ("fig7b_cifar100",),
          a=Group("CLR", CLR), b=Group("PC-LR", PC),
          refs=(Ref(CLR, "68.6", "clr3SS5kCifar100Fig8"), Ref(PC, "59.8", "lr35Cifar100Fig8")),
          figure="fig7b_cifar100", regime=BUDGET, headline="CIFAR-100: CLR beats PC-LR"),
    Claim("fig8_nesterov", "Fig 8", "With Nesterov momentum, CLR (10k it) beats PC-LR (80k it)", "92.1 vs 90.9",
          "better", ("fig8b_optimizers",), where=_w(optimizer="sgd", nesterov=True),
          a=Group("CLR + Nesterov", CLR), b=Group("PC-LR + Nesterov", PC),
          refs=(Ref(CLR, "92.1", "clr3SS5kNestFig9"), Ref(PC, "90.9", "lr35NestFig9")), figure="fig8b_optimizers",
          regime=BUDGET, headline="with Nesterov momentum, CLR beats PC-LR"),
    Claim("fig8_adaptive", "Fig 8", "Super-convergence with AdaDelta and AdaGrad: CLR beats PC-LR",
          "SC (CLR) vs no SC (PC-LR)", "better", ("fig8b_optimizers",), a=Group("CLR", CLR), b=Group("PC-LR", PC),
          split="optimizer", split_known_only=True,
          refs=(Ref(_w(schedule="clr", optimizer="adadelta"), "SC"),
                Ref(_w(schedule="multistep", optimizer="adadelta"), "no SC", "lr35AdaDeltaFig9"),
                Ref(_w(schedule="clr", optimizer="adagrad"), "SC"),
                Ref(_w(schedule="multistep", optimizer="adagrad"), "no SC", "lr35AdaGradFig9")),
          figure="fig8b_optimizers", regime=BUDGET, headline="AdaDelta and AdaGrad: CLR beats PC-LR"),
    Claim("fig8_adam", "Fig 8", "No super-convergence with Adam: CLR does not beat PC-LR", "no SC with Adam",
          "not_better", ("fig8b_optimizers",), where=_w(optimizer="adam"), a=Group("CLR + Adam", CLR),
          b=Group("PC-LR + Adam", PC), refs=(Ref(CLR, "no SC"), Ref(PC, "no SC", "lr35AdamFig9")),
          figure="fig8b_optimizers", regime=BUDGET, headline="Adam: CLR does not beat PC-LR"),
    Claim("fig9a_batch", "Fig 9a / Table 5", "Larger total batches do better: the largest batch tested beats the "
          "smallest (paper: 256 is clearly worst)", "1536/1000/512/256: 92.1/92.4/91.7/89.5", "better",
          ("fig9a_batch",), where=CLR, a=Group("largest batch", _w(batch_size=MAX)),
          b=Group("smallest batch", _w(batch_size=MIN)), sweep="batch_size",
          refs=(Ref(_w(batch_size=1536), "92.1"), Ref(_w(batch_size=1000), "92.4", "clr3SS5kFig1a"),
                Ref(_w(batch_size=512), "91.7"), Ref(_w(batch_size=256), "89.5")), figure="sweep_batch_size",
          regime=SWEEP, headline="the largest batch beats the smallest"),
    Claim("fig9a_batch_epochs", "Fig 9a, fixed epochs (ours)", "Not in the paper: with the epochs held instead of "
          "the iterations (every batch sees the same images), the largest batch still beats the smallest; tells "
          "the batch's effect from the extra epochs a larger batch gets in Fig 9a", "not in the paper", "better",
          ("fig9a_batch_epochs",), where=CLR, a=Group("largest batch", _w(batch_size=MAX)),
          b=Group("smallest batch", _w(batch_size=MIN)), sweep="batch_size", figure="sweep_batch_size_epochs",
          regime=SWEEP, headline="epochs held: the largest batch beats the smallest (ours)"),
    Claim("fig9b_dropout", "Fig 9b", "Dropout 0.2 gives a small improvement over no dropout", "qualitative: small gain",
          "better", ("fig9b_dropout",), where=CLR, a=Group("dropout 0.2", _w(dropout=0.2)),
          b=Group("no dropout", _w(dropout=0.0)), sweep="dropout",
          refs=(Ref(_w(dropout=0.2), "small gain"), Ref(_w(dropout=0.0), "-", "clr3SS5kFig1a")),
          figure="sweep_dropout", regime=SWEEP_B, headline="dropout 0.2 helps a little"),
    Claim("fig10a_momentum", "Fig 10a / Table 6", "Momentum 0.9 is best; 0.95 is clearly worse (judged: 0.9 beats 0.95)",
          "0.80/0.85/0.90/0.95: 92.1/91.9/92.4/90.7", "better", ("fig10a_momentum",), where=CLR,
          a=Group("momentum 0.9", _w(momentum=0.9)), b=Group("momentum 0.95", _w(momentum=0.95)), sweep="momentum",
          refs=(Ref(_w(momentum=0.8), "92.1", "clr3SS5kMom8Fig11"), Ref(_w(momentum=0.85), "91.9", "clr3SS5kMom85Fig11"),
                Ref(_w(momentum=0.9), "92.4", "clr3SS5kFig1a"), Ref(_w(momentum=0.95), "90.7", "clr3SS5kMom95Fig11")),
          figure="fig10a_momentum", regime=SWEEP, headline="momentum 0.9 beats 0.95"),
    Claim("fig10b_weight_decay", "Fig 10b", "Weight decay 1e-3 prevents super-convergence; 1e-4 (best), 1e-5 and "
          "1e-6 do not (judged: 1e-4 beats 1e-3, a diverged 1e-3 run counts as failing)",
          "1e-3 prevents SC; 1e-4 best", "better", ("fig10b_weight_decay",), where=CLR,
          a=Group("weight decay 1e-4", _w(weight_decay=1e-4)), b=Group("weight decay 1e-3", _w(weight_decay=1e-3)),
          sweep="weight_decay",
          refs=(Ref(_w(weight_decay=1e-3), "prevents SC", "clr3SS5kWD-3Fig11"),
                Ref(_w(weight_decay=1e-4), "best", "clr3SS5kFig1a"),
                Ref(_w(weight_decay=1e-5), "SC", "clr3SS5kWD-5Fig11"),
                Ref(_w(weight_decay=1e-6), "SC", "clr3SS5kWD-6Fig11")), figure="sweep_weight_decay",
          regime=SWEEP, headline="weight decay 1e-4 beats 1e-3"),
)
