#!/usr/bin/env python3
"""Accuracy of a bundle's model.onnx in onnxruntime on an IDX test set.

    python3 scripts/onnx_accuracy.py <bundle> <dir with t10k- (or test-) images-idx3-ubyte[.gz] and labels>

Normalizes the images as manifest.json says, runs the ONNX file on the CPU provider and prints
the accuracy as JSON, to compare with the accuracy optkit measured for the same model on the
same images (report.json of the run).
"""
import gzip
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort


def read_idx(path: pathlib.Path) -> np.ndarray:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(folder: pathlib.Path, kind: str) -> pathlib.Path:
    names = [f"{p}-{kind}{z}" for p in ("t10k", "test") for z in ("", ".gz")]
    for name in names:
        if (folder / name).exists():
            return folder / name
    sys.exit(f"{folder}: none of {', '.join(names)}")


def main() -> None:
    bundle, data = map(pathlib.Path, sys.argv[1:3])
    manifest = json.loads((bundle / "manifest.json").read_text())
    norm = manifest["input"]["normalization"]
    images = read_idx(find(data, "images-idx3-ubyte")).astype(np.float32)
    labels = read_idx(find(data, "labels-idx1-ubyte"))
    x = ((images / 255.0 - norm["mean"]) / norm["std"]).astype(np.float32)
    x = x.reshape(len(x), *manifest["input"]["shape"])
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [session.run(None, {"input": x[i : i + 1000]})[0] for i in range(0, len(x), 1000)]
    )
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    print(json.dumps({"model": manifest["name"], "kind": manifest["kind"],
                      "images": len(labels), "onnxruntime_accuracy": accuracy}))


if __name__ == "__main__":
    main()
