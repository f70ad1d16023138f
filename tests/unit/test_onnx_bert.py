"""The ONNX Runtime graph computes what the torch modules compute: the served reading is
the trained network's, within what the graph's float16 word table moves (about 1e-4)."""

from __future__ import annotations

import numpy as np
import torch

from agent.emotion.minilm import encoder_from_arrays, mean_pool
from agent.emotion.minilm_files import load_encoder_files
from agent.emotion.neural import ARTIFACT_DIR, load_runner, load_weights, predict_probabilities
from agent.emotion.neural_torch import TorchRunner
from agent.emotion.onnx_bert import OnnxBert, build_graph

TEXTS = [
    "This is ridiculous, I am absolutely furious with you!",
    "ok",
    "",
    "I can't log in — my password résumé 🙃 doesn't work!!!",
    "我的快递三天了还没到",
    "word " * 300,  # past max_length: truncated
]


def test_the_graph_pools_what_the_torch_encoder_pools() -> None:
    tokenizer, shape, weights = load_encoder_files(128)
    input_ids, mask = tokenizer.batch(TEXTS)
    served = OnnxBert(build_graph(shape, weights), threads=1).run(input_ids, mask)
    ids, attention = torch.from_numpy(input_ids), torch.from_numpy(mask)
    with torch.inference_mode():
        expected = mean_pool(encoder_from_arrays(shape, weights)(ids, attention), attention)
    assert set(served) == {"embedding"}
    np.testing.assert_allclose(served["embedding"], expected.numpy(), atol=1e-3)


def test_padding_does_not_change_a_row() -> None:
    tokenizer, shape, weights = load_encoder_files(128)
    session = OnnxBert(build_graph(shape, weights), threads=1)
    together = session.run(*tokenizer.batch(TEXTS))["embedding"]
    for n, text in enumerate(TEXTS):
        alone = session.run(*tokenizer.batch([text]))["embedding"][0]
        np.testing.assert_allclose(alone, together[n], atol=1e-5)


def test_the_trained_network_reads_the_same_in_both_runtimes() -> None:
    tokenizer, served = load_runner(ARTIFACT_DIR, precision="float32")
    weights = load_weights(ARTIFACT_DIR)
    in_torch = TorchRunner(weights.shape, weights.encoder, weights.head, torch.float32)
    assert served.precision == in_torch.precision == "float32"
    probabilities, embeddings = predict_probabilities(tokenizer, served, TEXTS)
    expected, expected_embeddings = predict_probabilities(tokenizer, in_torch, TEXTS)
    assert probabilities.shape == (len(TEXTS), 28)
    np.testing.assert_allclose(probabilities, expected, atol=1e-3)
    np.testing.assert_allclose(embeddings, expected_embeddings, atol=1e-3)


def test_bfloat16_runs_in_torch() -> None:
    tokenizer, runner = load_runner(ARTIFACT_DIR, precision="bfloat16")
    assert runner.precision == "bfloat16"
    probabilities, _ = predict_probabilities(tokenizer, runner, TEXTS[:2])
    assert probabilities.shape == (2, 28)


def test_int8_reads_close_to_float32() -> None:
    tokenizer, exact = load_runner(ARTIFACT_DIR, precision="float32")
    _, integer = load_runner(ARTIFACT_DIR, precision="int8")
    assert integer.precision == "int8"
    expected, _ = predict_probabilities(tokenizer, exact, TEXTS)
    probabilities, _ = predict_probabilities(tokenizer, integer, TEXTS)
    np.testing.assert_allclose(probabilities, expected, atol=0.1)
    assert probabilities[0].argmax() == expected[0].argmax()  # the one clear emotion: anger
