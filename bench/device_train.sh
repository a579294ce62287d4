#!/usr/bin/env bash
# Train both DSen2 nets on the device machine (one GPU, Keras on JAX) from a scene bundle, then time the
# nets. Prepared here, run there: the bundle and the keras/namex/optree wheels travel in .devdata/.
#   python -c "from s2sr.training.sources import ...; save_bundle(...)"   (training + selection scenes)
#   MIN2=3 MIN6=1.5 bash bench/device_train.sh      (results under $OUT; SKIP_BENCH=1 skips the timing)
set -euo pipefail
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT/weights"
python3 -m pip install -q --no-index --no-deps .devdata/wheels/*.whl 2>&1 | tail -1 || true
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONPATH=src:blocks PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
for scale in 2 6; do
  minutes=$([ "$scale" = 2 ] && echo "${MIN2:-4}" || echo "${MIN6:-2.5}")
  lr=$([ "$scale" = 2 ] && echo "${LR2:-3e-4}" || echo "${LR6:-1e-4}")
  python3 -m s2sr.cli train --scale "$scale" --scenes .devdata/scenes.npz --run-dir "/tmp/runs/x$scale" \
    --minutes "$minutes" --lr "$lr" --batch "${BATCH:-64}" --steps 100 --patience "${PATIENCE:-25}" 2>&1 | tee -a "$OUT/train.log"
  cp /tmp/runs/x$scale/best/* "$OUT/weights/" && cp /tmp/runs/x$scale/state.json "$OUT/x${scale}_state.json"
done
[ -n "${SKIP_BENCH:-}" ] || python3 bench/nets_throughput.py --weights-dir "$OUT/weights" --batch 4 --scenes .devdata/scenes.npz 2>&1 | tee -a "$OUT/train.log" || true
