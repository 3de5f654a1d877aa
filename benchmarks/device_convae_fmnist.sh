#!/usr/bin/env bash
# Aljalbout et al.'s four table rows (k-means on pixels, AE, AE + k-means loss, AE + KL) on Fashion-MNIST with
# their MNIST network (`mnist_arch1`), their optimisers and k-means metric, on a GPU, through the console
# script (no Snakemake needed on the device machine); a longer schedule than workflow/presets/convae_fmnist_cpu.yaml.
#
# usage: benchmarks/device_convae_fmnist.sh PREPARED.npz OUT_DIR [PRETRAIN_EPOCHS (60)] [CLUSTER_EPOCHS (20)] [SEED (0)]
# env:   PYTHON (default python3), DEVICE (default cuda)
# writes OUT_DIR/<row>/metrics.json and OUT_DIR/rows.md (ACC, NMI, geometric NMI per row)
set -euo pipefail
DATA="$1"; OUT="$2"; PE="${3:-60}"; CE="${4:-20}"; SEED="${5:-0}"
PY="${PYTHON:-python3}"
BRB=("$PY" -m brb.cli)
RUN=(--data.normalize none --run.device "${DEVICE:-cuda}" --run.seed "$SEED")
NET=("${RUN[@]}" --quiet --model.arch conv --model.spec mnist_arch1)
mkdir -p "$OUT"
start=$(date +%s)
"${BRB[@]}" pretrain --data "$DATA" --out "$OUT/pretrain" "${NET[@]}" --pretrain.epochs "$PE" --pretrain.batch_size 100 \
    --pretrain.optimizer sgd --pretrain.lr 0.01 --pretrain.momentum 0.9 --pretrain.nesterov true \
    --pretrain.weight_decay 0.0001 --pretrain.lr_decay 0.9999
echo "pretraining: $(( $(date +%s) - start )) s" >&2
"${BRB[@]}" kmeans --data "$DATA" --out "$OUT/pixels" "${RUN[@]}" --cluster.kmeans_n_init 20 &
"${BRB[@]}" kmeans --data "$DATA" --out "$OUT/ae" --pretrained "$OUT/pretrain/model.pt" "${RUN[@]}" --cluster.kmeans_n_init 20 &
for alg in ae_kmeans ae_kl; do
    "${BRB[@]}" cluster --data "$DATA" --pretrained "$OUT/pretrain/model.pt" --out "$OUT/$alg" "${NET[@]}" \
        --cluster.algorithm "$alg" --cluster.epochs "$CE" --cluster.batch_size 100 --cluster.kmeans_n_init 20 &
done
wait
echo "total: $(( $(date +%s) - start )) s" >&2
"$PY" - "$OUT" "$PE" "$CE" <<'PYEOF'
import json, sys
from pathlib import Path
out, pe, ce = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
rows = [("pixels", "k-means on pixels"), ("ae", "AE (k-means on the pretrained code)"),
        ("ae_kmeans", "AE + k-means loss"), ("ae_kl", "AE + KL")]
lines = [f"Fashion-MNIST (70,000), mnist_arch1, {pe} pretraining + {ce} clustering epochs; k-means n_init 20 on the final embedding",
         "", "| row | ACC | NMI | NMI (geometric) | centroid ACC |", "|---|---:|---:|---:|---:|"]
for key, name in rows:
    m = json.loads((out / key / "metrics.json").read_text())
    cacc = m.get("centroid_acc")
    lines.append(f"| {name} | {100 * m['acc']:.2f} | {100 * m['nmi']:.2f} | {100 * m['nmi_geometric']:.2f} | "
                 + (f"{100 * cacc:.2f} |" if cacc is not None else "– |"))
text = "\n".join(lines) + "\n"
(out / "rows.md").write_text(text)
print(text)
PYEOF
