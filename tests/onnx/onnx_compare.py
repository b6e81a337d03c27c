#!/usr/bin/env python3
"""The onnxruntime half of the onnx.runtime test: runs DIR/<name>.onnx on
DIR/<name>.input.npy with onnxruntime's CPU provider and compares the result with forgery's
output DIR/<name>.output.npy (written by onnx_export_models), once as written and once with
onnxruntime's graph optimisations (fusions), as users run it. Fails unless every named model
is present and matches within 1e-5 both times (max abs difference, fp32).

    onnx_compare.py DIR NAME...
"""
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

TOLERANCE = 1e-5
LEVELS = {
    "as written": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "optimised": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def compare(directory: Path, name: str, level: str) -> float:
    model = directory / f"{name}.onnx"
    x = np.load(directory / f"{name}.input.npy")
    expected = np.load(directory / f"{name}.output.npy")
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta()
    if meta.producer_name != "forgery":
        raise AssertionError(f"{model}: producer {meta.producer_name!r}, expected 'forgery'")
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    if inp.shape[0] != "N" or out.shape[0] != "N":
        raise AssertionError(f"{model}: batch dimensions {inp.shape[0]!r}, {out.shape[0]!r}, expected 'N'")
    batch = x.shape[0]
    (y,) = session.run([out.name], {inp.name: x.reshape([batch] + list(inp.shape[1:])).astype(np.float32)})
    y = y.reshape(batch, -1)
    if y.shape != expected.shape:
        raise AssertionError(f"{model}: output {y.shape}, forgery's {expected.shape}")
    diff = float(np.max(np.abs(y.astype(np.float64) - expected.astype(np.float64))))
    print(f"{name} ({level}): batch {batch}, input {list(inp.shape)}, output {list(out.shape)}, "
          f"max |forgery| {float(np.max(np.abs(expected))):.4g}, max abs difference {diff:.3g}")
    return diff


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(sys.argv[1])
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}")
    failed = []
    for name in sys.argv[2:]:
        for level in LEVELS:
            diff = compare(directory, name, level)
            if not diff < TOLERANCE:
                failed.append(f"{name} at {level} ({diff:.3g})")
    if failed:
        print(f"FAILED: max abs difference not below {TOLERANCE} for: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(sys.argv) - 2} models within {TOLERANCE}, as written and optimised")
    return 0


if __name__ == "__main__":
    sys.exit(main())
