"""Which results make which figure: the contract between experiment names and figures.

An experiment name is the folder under `results/` (the `experiment_name` an experiment config sets).
Each figure lists the experiments it draws, the run-level factor that tells its curves apart (`hue`,
a column of `paper_figures.load`), and the author's Caffe logs (by file stem: the `log` column of the
committed table paper_figures/author_runs/, or a file in a copy of the official repository's `Results/`) drawn beside ours,
each with the label its curve gets. Experiments not named here are still drawn, by `other_experiments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FigureSpec:
    name: str  # output file stem under paper_figures/figures/
    paper: str  # the paper artifact it reproduces (ICLR-2018 numbering)
    title: str
    experiments: tuple[str, ...]
    hue: str | None = None  # factor separating curves; None: every factor that varies
    style: str | None = None  # a second factor (line style)
    x: str | None = None  # sweeps: the factor on the x-axis
    reference: dict[str, str] = field(default_factory=dict)  # author log stem -> curve label


# Test accuracy against iteration.
CURVES = (
    FigureSpec("fig1a_clr_vs_pclr", "Fig 1a", "CLR (0.1-3, 10k) vs PC-LR (0.35, 80k), ResNet-56", ("fig1a",),
               hue="schedule", reference={"clr3SS5kFig1a": "author clr", "lr35Fig1a": "author multistep"}),
    FigureSpec("fig1a_equal_budget", "(our extension of Fig 1a)", "CLR vs PC-LR vs 1cycle at equal budget",
               ("fig1a_equal_budget",), hue="schedule"),
    FigureSpec("fig1b_stepsize", "Fig 1b / Table 1", "Stepsize (run = 2 x stepsize)", ("fig1b_stepsize",),
               hue="iterations"),
    FigureSpec("table1_maxlr", "Table 1", "Maximum learning rate of the cycle", ("table1_maxlr",), hue="max_lr"),
    FigureSpec("fig6a_fraction", "Fig 6a / Table 1", "Training-set size", ("fig6a_fraction",), hue="fraction",
               style="schedule",
               reference={"clr3SS5kTr40kTab1": "author clr 40k", "clr3SS5kTr20kTab1": "author clr 20k",
                          "lr35Tr40kTab1": "author multistep 40k", "lr35Tr20kTab1": "author multistep 20k"}),
    FigureSpec("fig6b_depth", "Fig 6b", "ResNet-20 and ResNet-110", ("fig6b_depth",), hue="depth", style="schedule",
               reference={"clr3SS5kRes20Tab1": "author clr 20", "lr35Res20Fig6b": "author multistep 20",
                          "clr3SS5kRes110Tab1": "author clr 110", "lr35Res110Fig6b": "author multistep 110"}),
    FigureSpec("fig7b_cifar100", "Fig 7b", "CIFAR-100", ("fig7b_cifar100",), hue="schedule",
               reference={"clr3SS5kCifar100Fig8": "author clr", "lr35Cifar100Fig8": "author multistep"}),
    FigureSpec("fig8b_optimizers", "Fig 8", "Optimizers", ("fig8b_optimizers",), hue="optimizer", style="schedule",
               reference={"clr3SS5kNestFig9": "author clr nesterov", "lr35NestFig9": "author multistep nesterov",
                          "lr35AdaGradFig9": "author multistep adagrad", "lr35AdaDeltaFig9": "author multistep adadelta",
                          "lr35AdamFig9": "author multistep adam"}),
    FigureSpec("fig9a_batch", "Fig 9a / Table 5", "Total batch size", ("fig9a_batch",), hue="batch_size"),
    FigureSpec("fig9a_batch_epochs", "(our control for Fig 9a)", "Total batch size at a fixed number of epochs",
               ("fig9a_batch_epochs",), hue="batch_size"),
    FigureSpec("fig9b_dropout", "Fig 9b", "Dropout", ("fig9b_dropout",), hue="dropout"),
    FigureSpec("fig10a_momentum", "Fig 10a / Table 6", "Momentum", ("fig10a_momentum",), hue="momentum",
               reference={"clr3SS5kMom8Fig11": "author 0.8", "clr3SS5kMom85Fig11": "author 0.85",
                          "clr3SS5kMom95Fig11": "author 0.95"}),
    FigureSpec("fig10b_weight_decay", "Fig 10b", "Weight decay", ("fig10b_weight_decay",), hue="weight_decay",
               reference={"clr3SS5kWD-3Fig11": "author 1e-3", "clr3SS5kWD-5Fig11": "author 1e-5",
                          "clr3SS5kWD-6Fig11": "author 1e-6"}),
    FigureSpec("modern", "(not in the paper)", "Modern: standard ResNet, pad-crop, 1cycle vs step", ("modern",),
               hue="schedule"),
)

# LR range tests: test accuracy (and losses) against LR.
RANGE = (
    FigureSpec("fig2b_range_test", "Fig 2b", "LR range test 0-3, ResNet-56",
               ("range_fig2b_5k", "range_fig2b_20k", "range_fig2b_100k"), hue="experiment",
               reference={"range3Iter5kFig2b": "author 5k", "range3Iter20kFig2b": "author 20k",
                          "range3Iter100kFig2b": "author 100k"}),
    FigureSpec("fig4_range_depth", "Fig 4", "LR range test 0-2, ResNet-20 and -110",
               ("range_fig4b_resnet20", "range_fig4b_resnet110"), hue="experiment",
               reference={"range2Res20Fig4b": "author ResNet-20", "range2Res110Fig4b": "author ResNet-110"}),
    FigureSpec("fig7a_range_cifar100", "Fig 7a", "LR range test, CIFAR-100", ("range_fig7a_cifar100",),
               hue="experiment", reference={"range3Cifar100kFig8": "author CIFAR-100"}),
    FigureSpec("range_standard", "(not in the paper)", "LR range test, standard ResNet-56",
               ("range_standard_resnet56",), hue="experiment"),
)

# Final test accuracy against a swept factor, CLR and PC-LR as two lines.
SWEEPS = (
    FigureSpec("sweep_fraction", "Table 1 / Fig 6a", "Final accuracy vs training-set fraction", ("fig6a_fraction",),
               hue="schedule", x="fraction"),
    FigureSpec("sweep_batch_size", "Fig 9a / Table 5", "Final accuracy vs batch size", ("fig9a_batch",),
               hue="schedule", x="batch_size"),
    FigureSpec("sweep_batch_size_epochs", "(our control for Fig 9a)", "Final accuracy vs batch size, epochs held",
               ("fig9a_batch_epochs",), hue="schedule", x="batch_size"),
    FigureSpec("sweep_weight_decay", "Fig 10b", "Final accuracy vs weight decay", ("fig10b_weight_decay",),
               hue="schedule", x="weight_decay"),
    FigureSpec("sweep_dropout", "Fig 9b", "Final accuracy vs dropout", ("fig9b_dropout",), hue="schedule",
               x="dropout"),
)


# The Hessian-free estimate of the optimal LR (metrics.csv column lr_estimate) against iteration: Fig 5a (the first
# 300 iterations of the Fig 1a CLR run) and Fig 5b (10k iterations, constant LR 0.1 vs CLR), one panel each.
LR_ESTIMATE = (
    FigureSpec("fig5_lr_estimate", "Fig 5", "Hessian-free estimate of the optimal LR",
               ("fig5a_lr_estimate", "fig5b_lr_estimate"), hue="schedule"),
)


# Drawn against budget, not iteration (paper_figures.frontier): the accuracy-versus-budget study.
BUDGET_EXPERIMENTS = ("frontier",)


def known_experiments() -> set[str]:
    return {e for spec in CURVES + RANGE + LR_ESTIMATE for e in spec.experiments} | set(BUDGET_EXPERIMENTS)


def other_experiments(present: set[str]) -> list[str]:
    """Experiments with results that no figure names: drawn with a generic figure each."""
    return sorted(present - known_experiments())
