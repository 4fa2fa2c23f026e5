#!/usr/bin/env bash
# A prepared check for a machine with a GPU (not run by CI): everything it needs fits in the checkout
# (the tiny random model is built in memory). Run from the repository root with sarl installed:
#
#     bash benchmarks/gpu_check.sh            # about 3-5 minutes on one GPU
#
# It prints one line per check and a summary, and writes benchmarks/results/gpu_check.json.
#   1. CUDA and bf16 as sarl sees them (sarl doctor's precision line);
#   2. the fp32-vs-bf16-mixed test file on the GPU's precision path (tests/test_precision.py);
#   3. two SA-GRPO steps on the tiny model on cuda, bf16-mixed (fp32 master weights), timed;
#   4. the same with trainer.precision=fp32, for the step-time ratio;
#   5. the TRL engine (--engine trl --tiny) on cuda, if TRL is installed;
#   6. if vLLM is installed: one vLLM greedy evaluation of the tiny model's export, and two SA-GRPO steps
#      with rollout.backend=vllm (in-memory weight sync; rollout/logprob_diff in the metrics);
#   7. two processes with nccl (torchrun) if two GPUs exist: replicated (ddp) and sharded (trainer.strategy=fsdp).
set -u
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
DEV=${DEVICE:-cuda}   # DEVICE=cpu runs the same checks on the CPU (a dry run of this script)
OUT=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$OUT"
RES=benchmarks/results/gpu_check.json
declare -A STATUS
run() {  # run NAME COMMAND...: records ok/FAILED and the seconds it took
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$OUT/$name.log" 2>&1; then STATUS[$name]=ok; else STATUS[$name]=FAILED; fi
  local dt=$((SECONDS - t0))
  printf '%-22s %-7s %5ss  (log: %s)\n' "$name" "${STATUS[$name]}" "$dt" "$OUT/$name.log"
  echo "$name ${STATUS[$name]} $dt" >>"$OUT/summary.txt"
}

if [ "$DEV" = cuda ]; then
  $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA device: nothing to check (DEVICE=cpu for a dry run)"; exit 1; }
fi
run doctor            $PY -m sarl doctor
run test_precision    $PY -m pytest -q tests/test_precision.py
TINY="model.name=tiny-random model.device=$DEV data.train=chain_sum data.train_size=32 trainer.total_steps=2 \
trainer.prompts_per_step=4 rollout.n=4 data.max_response_length=64 actor.mini_batch_size=16 actor.micro_batch_size=16 \
trainer.tensorboard=false data.val=null"
run train_bf16        $PY -m sarl train cpu/sa_grpo $TINY trainer.precision=bf16-mixed trainer.out_dir=$OUT/bf16
run train_fp32        $PY -m sarl train cpu/sa_grpo $TINY trainer.precision=fp32 trainer.out_dir=$OUT/fp32
if $PY -c "import trl" 2>/dev/null; then
  run train_trl_engine $PY -m sarl train cpu/sa_grpo --engine trl --tiny model.name=tiny-random model.device=$DEV \
    data.train=chain_sum trainer.out_dir=$OUT/trl
fi
if $PY -c "import vllm" 2>/dev/null; then
  run eval_vllm $PY -m sarl eval --model $OUT/bf16/final --datasets chain_sum --limit 8 --backend vllm -o $OUT/eval
  # vLLM colocated in training: weights pushed after each update, rollout/logprob_diff logged (sleep mode on)
  run train_vllm      $PY -m sarl train cpu/sa_grpo $TINY trainer.precision=bf16-mixed rollout.backend=vllm \
    model.name=$OUT/bf16/final trainer.out_dir=$OUT/vllm
fi
if [ "$DEV" = cuda ] && [ "$($PY -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  run train_2gpu_nccl $PY -m torch.distributed.run --nproc-per-node 2 -m sarl train cpu/sa_grpo $TINY \
    trainer.precision=bf16-mixed trainer.out_dir=$OUT/ddp
  run train_2gpu_fsdp $PY -m torch.distributed.run --nproc-per-node 2 -m sarl train cpu/sa_grpo $TINY \
    trainer.precision=bf16-mixed trainer.strategy=fsdp trainer.out_dir=$OUT/fsdp
fi

$PY - "$OUT" "$RES" <<'EOF'
import json, sys
from pathlib import Path
out, res = Path(sys.argv[1]), Path(sys.argv[2])
rows = [l.split() for l in (out / "summary.txt").read_text().splitlines()]
summary = {n: {"status": s, "seconds": float(t)} for n, s, t in rows}
for arm in ("bf16", "fp32", "vllm"):
    m = out / arm / "metrics.jsonl"
    if m.exists():
        steps = [json.loads(l) for l in m.read_text().splitlines()]
        summary[f"train_{arm}"] = {**summary.get(f"train_{arm}", {}), "step_s": [s.get("time/step") for s in steps]}
try:
    ratio = sum(summary["train_bf16"]["step_s"][1:]) / sum(summary["train_fp32"]["step_s"][1:])
    summary["bf16_over_fp32_step_time_after_warmup"] = ratio
except (KeyError, ZeroDivisionError, TypeError):
    pass
res.parent.mkdir(parents=True, exist_ok=True)
res.write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
failed = [n for n, v in summary.items() if isinstance(v, dict) and v.get("status") == "FAILED"]
print("SUMMARY:", "all checks passed" if not failed else f"FAILED: {', '.join(failed)}")
sys.exit(1 if failed else 0)
EOF
