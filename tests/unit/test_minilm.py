"""The plain-torch MiniLM computes what transformers' BertModel computes, without importing it;
the files it reads are read without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agent.emotion.minilm import BertEncoder, load_minilm, mean_pool
from agent.emotion.minilm_files import BertShape, WordPieceTokenizer, encoder_path, pad_batch
from agent.errors import ConfigError

TEXTS = [
    "This is ridiculous, I am absolutely furious with you!",
    "ok",
    "",
    "   ",
    "I can't log in — my password résumé 🙃 doesn't work!!!",
    "我的快递三天了还没到",
    "word " * 300,  # past max_length: truncated
]


@pytest.fixture(scope="module")
def native() -> tuple[WordPieceTokenizer, BertEncoder]:
    return load_minilm(max_length=128)


def test_tokens_are_transformers_tokens(native: tuple[WordPieceTokenizer, BertEncoder]) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(encoder_path(), local_files_only=True)
    tokenizer, _ = native
    expected = reference(TEXTS, truncation=True, max_length=128)["input_ids"]
    assert tokenizer.encode(TEXTS) == expected
    assert max(len(ids) for ids in expected) == 128


def test_hidden_states_are_transformers_hidden_states(
    native: tuple[WordPieceTokenizer, BertEncoder],
) -> None:
    from transformers import AutoModel

    reference = AutoModel.from_pretrained(encoder_path(), local_files_only=True).eval()
    tokenizer, encoder = native
    input_ids, mask = (torch.from_numpy(array) for array in tokenizer.batch(TEXTS))
    with torch.inference_mode():
        ours = encoder(input_ids, mask)
        theirs = reference(input_ids=input_ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4)
    assert torch.allclose(mean_pool(ours, mask), mean_pool(theirs, mask), atol=1e-4)


def test_padding_does_not_change_a_row(native: tuple[WordPieceTokenizer, BertEncoder]) -> None:
    tokenizer, encoder = native
    alone_ids, alone_mask = (torch.from_numpy(array) for array in tokenizer.batch(TEXTS[:1]))
    padded_ids, padded_mask = (torch.from_numpy(array) for array in tokenizer.batch(TEXTS))
    with torch.inference_mode():
        alone = mean_pool(encoder(alone_ids, alone_mask), alone_mask)[0]
        padded = mean_pool(encoder(padded_ids, padded_mask), padded_mask)[0]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_pad_batch_right_pads_and_masks() -> None:
    input_ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert input_ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_the_served_models_never_import_transformers_or_torch() -> None:
    """transformers costs seconds of start-up and torch about 160 MiB a serving process;
    only training, bfloat16 and the optional model kinds need them."""
    probe = (
        "import sys\n"
        "import agent.app\n"
        "from agent.emotion.catalog import models_for\n"
        "for model in models_for('auto').values(): model.predict(['hello'])\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'transformers', 'torch'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_act": "relu"}, "exact GELU"),
        ({"position_embedding_type": "relative_key"}, "absolute position"),
        ({"num_attention_heads": 5}, "multiple of the attention heads"),
        ({"vocab_size": "many"}, "malformed encoder config"),
    ],
)
def test_an_encoder_config_it_cannot_run_is_refused(
    change: dict[str, object], message: str
) -> None:
    raw = json.loads((encoder_path() / "config.json").read_text()) | change
    with pytest.raises(ConfigError, match=message):
        BertShape.from_config(raw, Path("config.json"))
