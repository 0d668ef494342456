#!/usr/bin/env python3
"""Runs an ONNX file in onnxruntime (CPU) on a float32 batch and writes the logits.

    python3 scripts/onnx_run.py model.onnx input.f32 N C H W logits.f32

input.f32 holds N*C*H*W little-endian float32 values (NCHW); logits.f32 receives the first
output, little-endian float32. Prints the opset, the execution provider and the operator types
of the graph onnxruntime loaded, as JSON, on stdout.
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, inp, n, c, h, w, out = sys.argv[1:8]
    x = np.fromfile(inp, dtype="<f4").reshape(int(n), int(c), int(h), int(w))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (y,) = session.run(None, {name: x})
    y.astype("<f4").tofile(out)
    meta = session.get_modelmeta()
    print(json.dumps({
        "onnxruntime": ort.__version__,
        "providers": session.get_providers(),
        "input": name,
        "output_shape": list(y.shape),
        "metadata": meta.custom_metadata_map,
    }))


if __name__ == "__main__":
    main()
