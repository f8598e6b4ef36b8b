#!/usr/bin/env bash
# Regenerates tests/fixtures/results: tiny real runs of the committed code (smoke scale, synthetic data)
# that the figure and report tests read. Run from the repository root: bash tests/fixtures_make.sh
set -euo pipefail
R=tests/fixtures/results
D=${SUPERCONV_FIXTURE_DATA:-outputs/fixture-data}
rm -rf "$R"
common=(scale=smoke model=resnet20 train.progress=false paths.results_dir=$R paths.data_dir=$D)
T=".venv/bin/python -m superconv.train"
for seed in 0 1; do
  $T "${common[@]}" experiment_name=fig1a schedule=clr seed=$seed schedule.max_lr=0.5
  $T "${common[@]}" experiment_name=fig1a schedule=multistep seed=$seed
done
for f in 0.5 1.0; do
  $T "${common[@]}" experiment_name=fig6a_fraction schedule=clr data.fraction=$f schedule.max_lr=0.5
  $T "${common[@]}" experiment_name=fig6a_fraction schedule=multistep data.fraction=$f
done
$T "${common[@]}" experiment_name=table1_maxlr schedule=clr schedule.max_lr=1e30   # diverges
$T "${common[@]}" experiment_name=table1_maxlr schedule=clr schedule.max_lr=1.0
RT=".venv/bin/python -m superconv.range_test"
$RT "${common[@]}" experiment_name=range_fig2b_5k schedule.max_lr=1.0 train.eval_every=2
$RT "${common[@]}" experiment_name=range_lrfind range_test.mode=loss range_test.num_it=30
# an unfinished run (no DONE), as a crash would leave it
mkdir -p $R/fig1a/unfinished && cp "$R/fig1a/model=resnet20,scale=smoke,schedule.max_lr=0.5,schedule=clr,seed=0/config.yaml" $R/fig1a/unfinished/
find $R -name checkpoint.pt -delete
