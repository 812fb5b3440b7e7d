#!/usr/bin/env bash
# MediVision on one GPU in one short run (8 minutes at most): the tests that touch the GPU path; the research
# generator trained with the GPU recipe, then resumed from its last checkpoint; the benchmark's training and
# inference sections at batch 16, 64 and 128 in fp32 and bf16; validation PSNR in bf16 against fp32; a NaN batch
# skipped under 32-true, bf16-mixed and 16-mixed; the general recipe's training images/s on the GPU and the CPU.
# Each step runs under its own time limit, is recorded (pass/fail, exit code, seconds) and the next one follows.
# Writes $GPU_CHECK_OUT/gpu-<gpu name>-<date>.json and .txt.
#
#   bash benchmarks/gpu_check.sh          on the GPU machine; installs .whl/*.whl into /tmp/site first if .whl/ exists
#   bash benchmarks/gpu_check.sh --tiny   the CPU trial (or GPU_CHECK_TINY=1): every step with tiny nets, few batches
#
# GPU_CHECK_OUT     where the report goes (experiments/benchmarks; the trial: the work folder)
# GPU_CHECK_WORK    runs, data and caches (a new folder under /tmp)
# GPU_CHECK_LOGS    each step's log ($GPU_CHECK_WORK/logs); on the device machine $OUT/logs brings them back
# GPU_CHECK_BUDGET  seconds for all steps together (460; the trial 600); a step gets at most what is left, none
#                   under 15 s
# GPU_CHECK_PYTHON  the interpreter (.venv/bin/python where it exists, else python3)
set -u
cd "$(dirname "$0")/.."
[ "${1:-}" = --tiny ] && GPU_CHECK_TINY=1
TINY=${GPU_CHECK_TINY:-0}
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 WANDB_MODE=disabled
export GPU_CHECK_COMMAND="bash benchmarks/gpu_check.sh $*"
PY=${GPU_CHECK_PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
BUDGET=${GPU_CHECK_BUDGET:-$([ "$TINY" = 1 ] && echo 600 || echo 460)}
LOGS=${GPU_CHECK_LOGS:-$WORK/logs}
mkdir -p "$WORK" "$LOGS"
: > "$WORK/steps.tsv"
START=$SECONDS

# step NAME LIMIT COMMAND...: run COMMAND under LIMIT seconds (or what the budget has left), log and record it
step() {
  local name=$1 limit=$2 log=$LOGS/$1.log left=$((BUDGET - (SECONDS - START))) begin=$SECONDS code command
  shift 2
  command=$*
  command=${command//$'\n'/ }
  if [ "$left" -lt 15 ]; then
    printf '%s\tskipped\t0\t0\t%s\t%s\n' "$name" "$log" "$command" >> "$WORK/steps.tsv"
    echo "== $name: skipped, ${left} s of the budget left"
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (at most $limit s)"
  timeout -k 10 "$limit" "$@" > "$log" 2>&1
  code=$?
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$code" "$((SECONDS - begin))" "$limit" "$log" "$command" \
    >> "$WORK/steps.tsv"
  echo "   exit code $code after $((SECONDS - begin)) s"
  [ "$code" -ne 0 ] && tail -n 5 "$log" | sed 's/^/   | /'
  return "$code"
}

if [ -d .whl ]; then
  step wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl && export PYTHONPATH=/tmp/site
fi
step machine 60 "$PY" -m benchmarks.gpu_check machine "$WORK/machine.json"

CACHE=$WORK/cache
DATA=$CACHE/benchmark-images   # where the benchmark itself looks with paths.cache_dir=$CACHE
if [ "$TINY" = 1 ]; then
  export GPU_CHECK_MODE=cpu-trial
  NAME=cpu-trial
  RECIPE=(trainer=cpu trainer.precision=bf16-mixed data.on_device=true model.channels_last=true)
  NETS=(model.generator.blocks=1 model.generator.channels=8 model.generator.reduction=4
        model.discriminator.base_channels=4 model.loss.perceptual.layer=conv1_2)
  SYNTH=(48 16 256); BATCH=4; BATCHES=3; VAL_BATCHES=2; WARMUP=1
  BENCH_BATCHES=(2,4 "[2,4]"); BENCH_TURNS=(1 2 1); INFERENCE_IMAGES=8; GENERAL_COMPILE=false
  GENERAL_TIME=00:00:00:15; CPU_TIME=00:00:00:20; CPU_WARMUP=1
else
  export GPU_CHECK_MODE=gpu
  NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
  NAME=$(echo "${NAME:-cpu}" | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-|-$//g')
  RECIPE=(trainer=gpu_fast data.on_device=true model.channels_last=true)
  NETS=(model.generator.blocks=16 model.generator.channels=64 model.generator.attention=cbam
        model.loss.perceptual.layer=conv5_4)
  SYNTH=(5712 1311 512); BATCH=64; BATCHES=60; VAL_BATCHES=4; WARMUP=20
  BENCH_BATCHES=(16,64,128 "[16,64,128]"); BENCH_TURNS=(3 10 2); INFERENCE_IMAGES=256; GENERAL_COMPILE=true
  GENERAL_TIME=00:00:01:00; CPU_TIME=00:00:00:20; CPU_WARMUP=3
fi
OUT=${GPU_CHECK_OUT:-$([ "$TINY" = 1 ] && echo "$WORK" || echo experiments/benchmarks)}
STEM=$OUT/gpu-$NAME-$(date -u +%Y-%m-%d)
echo "GPU check ($GPU_CHECK_MODE), work folder $WORK, report $STEM.json/.txt"
throughput() { echo "+callbacks.throughput._target_=benchmarks.gpu_check.Throughput" \
  "+callbacks.throughput.output=$WORK/$1.json" "+callbacks.throughput.warmup=$2"; }

# 1. the tests of the GPU path: on-device batches, speed options, seeded LR on CPU and GPU, device names
step tests 75 "$PY" -m pytest -q -p no:cacheprovider -m "not slow" tests/test_speed.py \
  tests/test_degradations.py::test_seeded_lr_is_the_same_on_cpu_and_gpu \
  tests/test_bad_input.py::test_bad_devices_are_named_before_any_model_is_loaded

# 2. the research generator, discriminator and VGG19 (random weights) with the GPU recipe on the benchmark's
# synthetic Kaggle-layout set: 2 epochs of $BATCHES batches (GAN stage), then resumed from last.ckpt for a third
step data 60 "$PY" -c 'import sys; from pathlib import Path
from medivision.benchmarks.synthetic import write_kaggle_layout
write_kaggle_layout(Path(sys.argv[1]), *map(int, sys.argv[2:]))' "$DATA" "${SYNTH[@]}" 42
TRAIN=(data.root="$DATA" paths.cache_dir="$CACHE" data.batch_size=$BATCH "${RECIPE[@]}" model.compile=true
       "${NETS[@]}" model.loss.perceptual.weights=random model.pretrain_epochs=0 logger=csv test=false
       "~callbacks.sample_panels" +trainer.limit_train_batches=$BATCHES +trainer.limit_val_batches=$VAL_BATCHES
       trainer.num_sanity_val_steps=0 hydra.run.dir="$WORK/train")
step train 150 "$PY" -m medivision.train "${TRAIN[@]}" trainer.max_epochs=2 $(throughput train $WARMUP)
step resume 90 "$PY" -m medivision.train "${TRAIN[@]}" trainer.max_epochs=3 ckpt_path=last $(throughput resume 1)
step resumed_at_epoch_2 10 "$PY" -c 'import json, sys; run = json.load(open(sys.argv[1])); print(run)
sys.exit(run["first_global_step"] != int(sys.argv[2]) or run["batches"] != int(sys.argv[3]))' \
  "$WORK/resume.json" $((2 * 2 * BATCHES)) "$BATCHES"

# 3. the benchmark: training (Lightning and plain loop, GAN stage) per batch size and precision, one process;
# inference of the trained EMA generator at each batch size, eager fp32, channels_last, bf16 and compiled bf16
BENCH=(paths.cache_dir="$CACHE" benchmark.synthetic.train_images=${SYNTH[0]}
       benchmark.synthetic.test_images=${SYNTH[1]} benchmark.synthetic.size=${SYNTH[2]} "${RECIPE[@]}" "${NETS[@]}")
step bench_training 90 "$PY" -m medivision.benchmark -m "${BENCH[@]}" "benchmark.sections=[training]" \
  data.batch_size="${BENCH_BATCHES[0]}" trainer.precision=32-true,bf16-mixed \
  benchmark.training.warmup=${BENCH_TURNS[0]} benchmark.training.steps=${BENCH_TURNS[1]} \
  benchmark.training.rounds=${BENCH_TURNS[2]} hydra.sweep.dir="$WORK/bench-training"
LAST=$WORK/train/checkpoints/last.ckpt
step bench_inference 80 "$PY" -m medivision.benchmark "${BENCH[@]}" "benchmark.sections=[inference]" \
  "benchmark.inference.batch_sizes=${BENCH_BATCHES[1]}" \
  "benchmark.inference.variants=[eager,channels_last,bf16,compile_bf16]" benchmark.inference.images=$INFERENCE_IMAGES \
  $([ -f "$LAST" ] && echo "ckpt=$LAST") hydra.run.dir="$WORK/bench-inference"

# 4. bf16 against fp32 validation PSNR of the trained checkpoint; a NaN batch under three precisions
step psnr 60 "$PY" -m benchmarks.gpu_check psnr "$WORK/train" "$WORK/psnr.json"
step nan 60 "$PY" -m benchmarks.gpu_check nan "$WORK/nan.json" data.root="$DATA" paths.cache_dir="$CACHE" \
  data.batch_size=$BATCH "${RECIPE[@]}" "${NETS[@]}" model.loss.perceptual.weights=random paths.output_dir="$WORK/nan"

# 5. the general recipe (synthetic contrasts drawn on the batch's device) for a minute, then on the CPU
GENERAL=(+experiment=general paths.cache_dir="$CACHE" logger=csv test=false "~callbacks.sample_panels")
step general_device 110 "$PY" -m medivision.train "${GENERAL[@]}" "${RECIPE[@]}" model.compile=$GENERAL_COMPILE \
  +trainer.max_time=$GENERAL_TIME hydra.run.dir="$WORK/general-device" $(throughput general_device $WARMUP)
step general_cpu 75 "$PY" -m medivision.train "${GENERAL[@]}" +trainer.max_time=$CPU_TIME \
  hydra.run.dir="$WORK/general-cpu" $(throughput general_cpu $CPU_WARMUP)

# 6. the report
mkdir -p "$OUT"
timeout 60 "$PY" -m benchmarks.gpu_check report "$WORK" "$STEM"
code=$?
cat "$STEM.txt" 2>/dev/null
echo "written: $STEM.json, $STEM.txt; logs: $LOGS ($((SECONDS - START)) s in all)"
exit $code
