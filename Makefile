# superconv: `make help` lists the targets.
SHELL := /bin/bash
PY ?= .venv/bin/python
SCALE ?= smoke
SWEEP_SCALE ?= paper
# glibc's allocator settings for CPU training (keep freed activation buffers) are applied from inside
# the process by superconv.allocator, so direct `python -m superconv.train` runs and SLURM jobs get them too.

.DEFAULT_GOAL := help
.PHONY: help install test smoke train data figures bench cpu-bf16-check plan reproduce campaign aggregate sweep-fraction sweep-batch sweep-weight-decay sweep-dropout clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision pinned to the releases on the development machines' disk (a plain `torch`
	# may pull a multi-GB build); any torch >= 2.4 works elsewhere.
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: .venv/.installed ## create .venv and install the package with its test extras (idempotent)
	@echo "installed into .venv"

test: install ## run the test suite (about 7 minutes on 2 cores; tests marked slow are left out)
	$(PY) -m pytest -q

smoke: install ## a scale=smoke run on synthetic data (seconds); output under outputs/
	$(PY) -m superconv.train scale=smoke
	@echo "output: outputs/smoke/adhoc/scale=smoke/"

train: install ## the paper's Fig 1a CLR run, or any overrides: make train ARGS="model=resnet20"
	$(PY) -m superconv.train $(ARGS)

REFERENCE ?=
figures: install ## rebuild every figure, paper_figures/REPORT.md and README's results table from results/ and the author's runs table (seconds; trains nothing)
	$(PY) -m paper_figures $(if $(REFERENCE),--reference $(REFERENCE))

bench: install ## training images/s: this project's path, a tutorial DataLoader+PIL loop and the convolutions alone (an upper bound), appended to results/bench/ (~15 min on 2 cores; needs `make data`)
	$(PY) -m superconv.bench $(ARGS)

cpu-bf16-check: install ## issue 15's check on a CPU with bf16 instructions: bench x2, profile before/after the fused BN kernel, fp32-vs-bf16 runs (~45 min; refuses elsewhere)
	scripts/cpu_bf16_check.sh

plan: install ## the runs `make reproduce SCALE=...` would launch, how many are done, their cost
	$(PY) -m experiments.plan --scale $(SCALE)

reproduce: install ## every run of SCALE (smoke|mini|paper), then tables, figures, report; idempotent
	$(PY) -m experiments.reproduce --scale $(SCALE) $(if $(REFERENCE),--reference $(REFERENCE)) $(ARGS)

BUDGET ?= 540
campaign: install ## paper-scale runs by priority (experiments/campaign.yaml) for BUDGET seconds, resumable across GPU windows: make campaign BUDGET=540 ARGS=--dry-run
	$(PY) -m experiments.campaign --budget $(BUDGET) $(ARGS)

aggregate: install ## results/<experiment>.csv, one row per run, from the run directories
	$(PY) -m experiments.aggregate results

sweep-fraction: install ## Table 1 / Fig 6a: training-set fraction, CLR and PC-LR (SCALE=paper by default)
	$(PY) -m superconv.train experiment=fig6a_fraction scale=$(SWEEP_SCALE) $(ARGS)

sweep-batch: install ## Fig 9a: batch size 1536/1000/512/256
	$(PY) -m superconv.train experiment=fig9a_batch scale=$(SWEEP_SCALE) $(ARGS)

sweep-weight-decay: install ## Fig 10b: weight decay 1e-3..1e-6
	$(PY) -m superconv.train experiment=fig10b_weight_decay scale=$(SWEEP_SCALE) $(ARGS)

sweep-dropout: install ## Fig 9b: dropout 0/0.1/0.2
	$(PY) -m superconv.train experiment=fig9b_dropout scale=$(SWEEP_SCALE) $(ARGS)

data: install ## build the development copy of CIFAR-10 into data/ (needs ../shared/data)
	$(PY) ../shared/data/make_cifar10.py data

clean: ## remove ad-hoc outputs and caches (never results/ or data/)
	rm -rf outputs multirun .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
