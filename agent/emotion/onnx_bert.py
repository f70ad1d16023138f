"""MiniLM-L6 as an ONNX graph run by ONNX Runtime: how a serving process reads English.

The graph is built here from the encoder's weights (and a trained model's merged
LoRA deltas and head), so nothing exported is shipped and a serving process
never imports torch, which alone costs about 160 MiB of memory. ONNX Runtime
reads a lone sentence in float32 in less CPU than torch does in bfloat16, and
batches as fast (docs/models.md).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agent.emotion.minilm_files import BertShape

__all__ = ["OnnxBert", "build_graph"]

_OPSET = 20  # Gelu and LayerNormalization are plain ONNX operators here
_MASKED = -1e9  # added to attention scores of padding: exp() of it is 0 in float32


class _Graph:
    """Nodes and initializers, named in order as they are added."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def weight(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, kind: str, *inputs: str, **attributes: Any) -> str:
        return self.ops(kind, 1, *inputs, **attributes)[0]

    def ops(self, kind: str, count: int, *inputs: str, **attributes: Any) -> list[str]:
        """A node with `count` outputs; their names."""
        from onnx import helper

        self._count += 1
        outputs = [f"{kind.lower()}_{self._count}_{n}" for n in range(count)]
        self.nodes.append(helper.make_node(kind, list(inputs), outputs, **attributes))
        return outputs


def build_graph(
    shape: BertShape,
    weights: Mapping[str, np.ndarray],
    head: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    int8: bool = False,
) -> bytes:
    """The serialized model: token ids and mask in; the mean-pooled embedding out, and the
    sigmoid of `head` (weight, bias) applied to it as ``probabilities`` when given.

    `weights` carry BERT's parameter names, float32. The query projection is scaled by
    1/√(head size) here, so the graph does not scale the scores. With `int8`, the
    encoder's linear layers multiply in integers: weights in int8 with a scale per output
    column, their input quantized to uint8 on each call (about half the CPU a reading).
    """
    from onnx import TensorProto, helper

    graph = _Graph()
    size, heads = shape.hidden_size, shape.heads
    eps = shape.layer_norm_eps

    def layer_norm(x: str, prefix: str) -> str:
        gamma = graph.weight(f"{prefix}.weight", weights[f"{prefix}.weight"])
        beta = graph.weight(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return graph.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=eps)

    quantized_inputs: dict[str, list[str]] = {}

    def integer_product(x: str, matrix: np.ndarray, name: str) -> str:
        steps = np.abs(matrix).max(axis=0) / 127.0
        steps[steps == 0] = 1.0
        w = graph.weight(name, np.round(matrix / steps).astype(np.int8))
        if x not in quantized_inputs:  # query, key and value read the same input
            quantized_inputs[x] = graph.ops("DynamicQuantizeLinear", 3, x)
        codes, step, zero = quantized_inputs[x]
        product = graph.op("Cast", graph.op("MatMulInteger", codes, w, zero), to=TensorProto.FLOAT)
        column_steps = graph.weight(f"{name}.steps", steps.astype(np.float32))
        return graph.op("Mul", product, graph.op("Mul", step, column_steps))

    def linear(x: str, prefix: str, scale: float = 1.0) -> str:
        matrix = weights[f"{prefix}.weight"].T * scale
        b = graph.weight(f"{prefix}.bias", weights[f"{prefix}.bias"] * scale)
        if int8:
            return graph.op("Add", integer_product(x, matrix, f"{prefix}.weight"), b)
        return graph.op("Add", graph.op("MatMul", x, graph.weight(f"{prefix}.weight", matrix)), b)

    one = graph.weight("one", np.array(1.0, dtype=np.float32))
    width = graph.op("Shape", "input_ids", start=1, end=2)
    first = graph.weight("axis_0", np.array([0], dtype=np.int64))
    table = graph.weight("position", weights["embeddings.position_embeddings.weight"])
    # The word table is half the weights: float16 keeps 23 MiB out of every process
    # and moves a reading by about 1e-4 (tests/unit/test_onnx_bert.py).
    words = graph.weight("word", weights["embeddings.word_embeddings.weight"].astype(np.float16))
    segment = graph.weight("segment", weights["embeddings.token_type_embeddings.weight"][0])
    positions = graph.op("Slice", table, first, width, first)  # the first `width` rows
    embedded = graph.op(
        "Add",
        graph.op(
            "Add",
            graph.op("Cast", graph.op("Gather", words, "input_ids"), to=TensorProto.FLOAT),
            positions,
        ),
        segment,
    )
    hidden = layer_norm(embedded, "embeddings.LayerNorm")

    real = graph.op("Cast", "attention_mask", to=TensorProto.FLOAT)  # (batch, width)
    padding = graph.op(
        "Mul",
        graph.op("Sub", one, real),
        graph.weight("masked", np.array(_MASKED, dtype=np.float32)),
    )
    score_bias = graph.op(
        "Unsqueeze", padding, graph.weight("axes_1_2", np.array([1, 2], dtype=np.int64))
    )
    split_heads = graph.weight(
        "split_heads", np.array([0, 0, heads, size // heads], dtype=np.int64)
    )
    merge_heads = graph.weight("merge_heads", np.array([0, 0, size], dtype=np.int64))

    def heads_of(projection: str, perm: list[int]) -> str:
        return graph.op("Transpose", graph.op("Reshape", projection, split_heads), perm=perm)

    for n in range(shape.layers):
        prefix = f"encoder.layer.{n}"
        query = heads_of(
            linear(hidden, f"{prefix}.attention.self.query", 1 / math.sqrt(size // heads)),
            [0, 2, 1, 3],
        )
        key = heads_of(linear(hidden, f"{prefix}.attention.self.key"), [0, 2, 3, 1])
        value = heads_of(linear(hidden, f"{prefix}.attention.self.value"), [0, 2, 1, 3])
        scores = graph.op("Add", graph.op("MatMul", query, key), score_bias)
        mixed = graph.op("MatMul", graph.op("Softmax", scores, axis=-1), value)
        merged = graph.op("Reshape", graph.op("Transpose", mixed, perm=[0, 2, 1, 3]), merge_heads)
        attended = graph.op("Add", linear(merged, f"{prefix}.attention.output.dense"), hidden)
        hidden = layer_norm(attended, f"{prefix}.attention.output.LayerNorm")
        inner = graph.op("Gelu", linear(hidden, f"{prefix}.intermediate.dense"))
        hidden = layer_norm(
            graph.op("Add", linear(inner, f"{prefix}.output.dense"), hidden),
            f"{prefix}.output.LayerNorm",
        )

    axis_1 = graph.weight("axis_1", np.array([1], dtype=np.int64))
    weight_of_token = graph.op(
        "Unsqueeze", real, graph.weight("axis_2", np.array([2], dtype=np.int64))
    )
    summed = graph.op("ReduceSum", graph.op("Mul", hidden, weight_of_token), axis_1, keepdims=0)
    counted = graph.op("Max", graph.op("ReduceSum", weight_of_token, axis_1, keepdims=0), one)
    nodes_out = [(graph.op("Div", summed, counted), "embedding", size)]
    if head is not None:
        head_weight, head_bias = head
        logits = graph.op(
            "Add",
            graph.op("MatMul", nodes_out[0][0], graph.weight("head.weight", head_weight.T)),
            graph.weight("head.bias", head_bias),
        )
        nodes_out.append((graph.op("Sigmoid", logits), "probabilities", head_weight.shape[0]))

    outputs = []
    for internal, name, columns in nodes_out:
        graph.nodes.append(helper.make_node("Identity", [internal], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", columns]))
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "width"])
        for name in ("input_ids", "attention_mask")
    ]
    model = helper.make_model(
        helper.make_graph(graph.nodes, "minilm", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", _OPSET)],
    )
    return bytes(model.SerializeToString())


class OnnxBert:
    """An ONNX Runtime session over `build_graph`'s model.

    `threads` is the width of its compute pool: ``OMP_NUM_THREADS`` when set (what
    `serve --workers` gives each serving process), else ONNX Runtime's default. Its
    threads wait passively, like OpenMP's in a serving process: a server shares its
    cores with its event loop. A session may be run from several threads at once.
    """

    def __init__(self, model: bytes, *, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _threads() if threads is None else threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Its own arena keeps the largest batch's buffers for good (about 22 MiB) and
        # measured no faster than the C library's allocator.
        options.enable_cpu_mem_arena = False
        # From a file, not the bytes: a session made from bytes keeps them (90 MB) for good.
        with tempfile.TemporaryDirectory(prefix="heartline-onnx-") as folder:
            path = Path(folder) / "model.onnx"
            path.write_bytes(model)
            del model
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        self.outputs: tuple[str, ...] = tuple(o.name for o in self._session.get_outputs())

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        """Each output by name, one row per input row."""
        values = self._session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        return dict(zip(self.outputs, values, strict=True))


def _threads() -> int:
    configured = os.environ.get("OMP_NUM_THREADS", "")
    return int(configured) if configured.isdigit() else 0
