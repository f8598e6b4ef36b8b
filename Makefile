# superconv: `make help` lists the targets.
SHELL := /bin/bash
PY ?= .venv/bin/python
SCALE ?= smoke
ONLY ?=
ARCHIVE ?=
DATASET ?= cifar10
REFERENCE ?=
# glibc's allocator settings for CPU training (keep freed activation buffers) are applied from inside
# the process by superconv.allocator, so direct `python -m superconv.train` runs and SLURM jobs get them too.

.DEFAULT_GOAL := help
.PHONY: help install lock test smoke train data figures bench cpu-bf16-check plan reproduce campaign aggregate sweep-fraction sweep-batch sweep-weight-decay sweep-dropout clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

.venv/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# every dependency at the version requirements.lock pins (torch 2.14.1 among them)
	$(PY) -m pip install --quiet -c requirements.lock -e ".[test]"
	touch $@

install: .venv/.installed ## create .venv and install the package with its test extras, pinned by requirements.lock (idempotent)
	@echo "installed into .venv"

lock: install ## rewrite requirements.lock from .venv (pip freeze, minus the project); after changing dependencies
	{ sed -n '/^#/p' requirements.lock; $(PY) -m pip freeze --exclude-editable | grep -viE '^(superconv|-e )'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

test: install ## the test suite (measured: 20 min on a 2-core CPU shared with two training runs, under 9 min on a quiet one; tests marked slow are left out)
	$(PY) -m pytest -q

smoke: install ## a scale=smoke run on synthetic data (measured: 55 s on a busy 2-core CPU); output under outputs/
	$(PY) -m superconv.train scale=smoke
	@echo "output: outputs/smoke/adhoc/scale=smoke/"

train: install ## one training run: make train ARGS="experiment=fig1a protocol=clr" or ARGS="model=resnet20 ..."; without ARGS it prints what it would run and its cost
ifeq ($(strip $(ARGS)),)
	@$(PY) -m experiments.plan --train
else
	$(PY) -m superconv.train $(ARGS)
endif

data: install ## CIFAR-10 into data/: the official release downloaded (md5 checked), or ARCHIVE=path (cifar-10-python.tar.gz or an image-folder .tar.gz/.zip); DATASET=cifar100
	$(PY) -m superconv.data_archive --dataset $(DATASET) $(if $(ARCHIVE),--archive $(ARCHIVE)) $(if $(FORCE),--force)

figures: install ## rebuild every figure, paper_figures/REPORT.md and README's results table from results/ and the author's runs table (measured: 30 s; trains nothing)
	$(PY) -m paper_figures $(if $(REFERENCE),--reference $(REFERENCE))

bench: install ## training images/s: this project's path, a tutorial DataLoader+PIL loop and the convolutions alone (an upper bound), appended to results/bench/ (~15 min on 2 cores; needs `make data`)
	$(PY) -m superconv.bench $(ARGS)

cpu-bf16-check: install ## on a CPU with bf16 instructions: bench x2, profile with and without the fused BN kernel, fp32-vs-bf16 runs (~45 min; refuses elsewhere)
	scripts/cpu_bf16_check.sh

plan: install ## the runs `make reproduce SCALE=...` would launch, how many are done, their cost on this machine
	$(PY) -m experiments.plan --scale $(SCALE)

reproduce: install ## every run of SCALE (smoke|mini|frontier|paper; ONLY=exp1,exp2 for some), then tables, figures, report; idempotent
	$(PY) -m experiments.reproduce --scale $(SCALE) $(if $(ONLY),--only $(ONLY)) $(if $(REFERENCE),--reference $(REFERENCE)) $(ARGS)

BUDGET ?= 540
campaign: install ## paper-scale runs by priority (experiments/campaign.yaml) for BUDGET seconds on a time-limited GPU, resumable: make campaign BUDGET=3300 ARGS=--dry-run
	$(PY) -m experiments.campaign --budget $(BUDGET) $(ARGS)

aggregate: install ## results/<experiment>.csv, one row per run, from the run directories
	$(PY) -m experiments.aggregate results

# The four sweeps are `make reproduce ONLY=<experiment>` at SCALE: SCALE=mini reproduces README's row
# (the mini suite's sweep values and seeds, experiments/suites.py), SCALE=paper the paper's whole sweep.
sweep-fraction: ## Table 1 / Fig 6a, training-set fraction, CLR vs PC-LR = make reproduce ONLY=fig6a_fraction (SCALE=smoke|mini|paper)
	@$(MAKE) --no-print-directory reproduce ONLY=fig6a_fraction

sweep-batch: ## Fig 9a, batch size = make reproduce ONLY=fig9a_batch (SCALE=smoke|mini|frontier|paper)
	@$(MAKE) --no-print-directory reproduce ONLY=fig9a_batch

sweep-weight-decay: ## Fig 10b, weight decay = make reproduce ONLY=fig10b_weight_decay (SCALE=smoke|mini|frontier|paper)
	@$(MAKE) --no-print-directory reproduce ONLY=fig10b_weight_decay

sweep-dropout: ## Fig 9b, dropout = make reproduce ONLY=fig9b_dropout (SCALE=smoke|mini|frontier|paper)
	@$(MAKE) --no-print-directory reproduce ONLY=fig9b_dropout

clean: ## remove ad-hoc outputs and caches (never results/ or data/)
	rm -rf outputs multirun .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
