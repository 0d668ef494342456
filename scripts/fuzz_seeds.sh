#!/usr/bin/env bash
# Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*) from real files made
# by the release binary: a tiny model trained on the embedded data, its int8, weight-only and
# unstructured-pruned versions, a bundle, the shipped recipes, and small IDX files. Run from
# the repository root after `cargo build --release --workspace`; fuzzing grows the corpus.
set -euo pipefail
optkit="${CARGO_TARGET_DIR:-target}/release/optkit"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=fuzz/corpus
mkdir -p "$corpus"/{idx,sparse,qweights,int8,model_folder,pipeline_toml,manifest}

cat > "$work/tiny.toml" <<TOML
version = 1
[data]
source = "embedded"
train_limit = 300
test_limit = 50
[model]
arch = "cnn"
blocks = [4]
fc = 8
[train]
epochs = 1
[[stages]]
kind = "baseline"
[[stages]]
kind = "prune"
name = "sparse"
[stages.prune]
method = "unstructured"
target = 0.8
finetune_epochs = 0
[[stages]]
kind = "quantize"
name = "int8"
from = "baseline"
[stages.quantize.calibration]
samples = 32
[[stages]]
kind = "quantize"
name = "wq4"
from = "baseline"
[stages.quantize]
bits = 4
[report]
latency_runs = 2
warmup_runs = 1
throughput_batch = 16
throughput_runs = 1
TOML
RUST_LOG=warn "$optkit" pipeline --config "$work/tiny.toml" --out "$work/run" --backend flex >/dev/null
"$optkit" export --model "$work/run/baseline" --format onnx --out "$work/bundle" >/dev/null

cp "$work/run/sparse/weights.sparse" "$corpus/sparse/seed-cnn"
cp "$work/run/wq4/weights.wq" "$corpus/qweights/seed-cnn-4bit"
cp "$work/run/int8/model.int8" "$corpus/int8/seed-cnn"
cp "$work/bundle/manifest.json" "$corpus/manifest/seed-bundle"
for f in configs/*.toml "$work/tiny.toml"; do
  cp "$f" "$corpus/pipeline_toml/seed-$(basename "$f" .toml)"
done
# model_folder: a little-endian u32 length, model.json, then the weights file it names.
for stage in baseline sparse wq4; do
  python3 - "$work/run/$stage" "$corpus/model_folder/seed-$stage" <<'PY'
import json, pathlib, struct, sys
d = pathlib.Path(sys.argv[1])
meta = (d / "model.json").read_bytes()
weights = (d / json.loads(meta)["weights"]).read_bytes()
pathlib.Path(sys.argv[2]).write_bytes(struct.pack("<I", len(meta)) + meta + weights)
PY
done
# idx: images and labels, raw and gzip, and a truncated one.
python3 - "$corpus/idx" <<'PY'
import gzip, pathlib, struct, sys
out = pathlib.Path(sys.argv[1])
images = struct.pack(">I", 0x803) + struct.pack(">III", 3, 4, 4) + bytes(range(48))
labels = struct.pack(">I", 0x801) + struct.pack(">I", 3) + bytes([0, 1, 2])
(out / "seed-images").write_bytes(images)
(out / "seed-labels").write_bytes(labels)
(out / "seed-images-gz").write_bytes(gzip.compress(images))
(out / "seed-labels-gz").write_bytes(gzip.compress(labels))
(out / "seed-truncated").write_bytes(images[:20])
PY
echo "seeds written to $corpus"
