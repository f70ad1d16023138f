"""The event-stream parser and vLLM's chunk decoder: bytes in, events and items out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.generation.sse import (
    DONE,
    ChunkDelta,
    SseParser,
    StreamError,
    Usage,
    decode_chunk,
)

# What vLLM sends for a two-token reply with include_usage (one event per line pair).
VLLM_STREAM = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"content":"lo \xe4\xbd\xa0\xe5\xa5\xbd"},'
    b'"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,'
    b'"finish_reason":"stop","stop_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,'
    b'"model":"m","choices":[],"usage":{"prompt_tokens":9,"total_tokens":12,'
    b'"completion_tokens":3}}\n\n'
    b"data: [DONE]\n\n"
)


def parse_all(*chunks: bytes) -> list[str]:
    parser = SseParser()
    events: list[str] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


# -- the parser ---------------------------------------------------------------


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_ends_lines_and_events(end: bytes) -> None:
    stream = b"data: one" + end + end + b"data: two" + end + end
    assert parse_all(stream) == ["one", "two"]


def test_an_event_is_dispatched_only_at_its_blank_line() -> None:
    parser = SseParser()
    assert parser.feed(b"data: par") == []
    assert parser.feed(b"tial\n") == []
    assert parser.pending
    assert parser.feed(b"\n") == ["partial"]
    assert not parser.pending


def test_several_events_in_one_read() -> None:
    assert parse_all(b"data: a\n\ndata: b\n\ndata: c\n\n") == ["a", "b", "c"]


def test_comments_and_other_fields_are_ignored() -> None:
    stream = b": keep-alive\n\nevent: message\nid: 7\nretry: 100\ndata: x\nfoo: bar\n\n"
    assert parse_all(stream) == ["x"]


def test_multiline_data_is_joined_with_newlines() -> None:
    assert parse_all(b"data: first\ndata: second\ndata:\n\n") == ["first\nsecond\n"]


def test_one_space_after_the_colon_is_dropped_and_no_more() -> None:
    assert parse_all(b"data:tight\n\ndata:  spaced\n\n") == ["tight", " spaced"]


def test_a_data_line_without_colon_is_an_empty_value() -> None:
    assert parse_all(b"data\n\n") == [""]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert parse_all(b"\n\n\r\n: only a comment\n\n") == []


def test_an_unfinished_event_at_the_end_is_dropped() -> None:
    parser = SseParser()
    assert parser.feed(b"data: complete\n\ndata: cut off") == ["complete"]
    assert parser.pending
    assert parser.close() == []
    assert not parser.pending


def test_a_crlf_split_between_reads_is_one_line_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\n") == ["a"]


def test_a_lone_cr_at_the_end_of_the_stream_still_ends_its_line() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r\r") == []  # the last CR may yet be half a CRLF
    assert parser.close() == ["a"]


def test_utf8_split_inside_a_character_is_reassembled() -> None:
    encoded = "data: 你好\n\n".encode()
    cut = encoded.index("好".encode()) + 1
    assert parse_all(encoded[:cut], encoded[cut:]) == ["你好"]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert parse_all(b"data: \xff\xfeok\n\n") == ["\ufffd\ufffdok"]


def test_a_leading_bom_is_dropped() -> None:
    assert parse_all(b"\xef\xbb\xbfdata: x\n\n") == ["x"]
    assert parse_all(b"\xef\xbb", b"\xbfdata: x\n\n") == ["x"]


def test_the_vllm_stream_byte_by_byte() -> None:
    whole = parse_all(VLLM_STREAM)
    assert len(whole) == 6
    assert parse_all(*(VLLM_STREAM[i : i + 1] for i in range(len(VLLM_STREAM)))) == whole


# -- property: reads may split the stream anywhere -------------------------------

# Event data: any text without CR or LF per line (a line break inside the data
# is written as another `data:` line).
_line = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
    max_size=20,
)
_event = st.lists(_line, min_size=1, max_size=3).map("\n".join)
_ending = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def _stream(draw: st.DrawFn) -> tuple[list[str], bytes]:
    events = draw(st.lists(_event, max_size=6))
    text = ""

    def end() -> str:
        ending = draw(_ending)
        # CR then LF would be one CRLF: after a lone CR, end the next line with CRLF.
        return "\r\n" if ending == "\n" and text.endswith("\r") else ending

    for event in events:
        if draw(st.booleans()):
            text += ": comment"
            text += end()
        for line in event.split("\n"):
            text += "data: " + line
            text += end()
        text += end()
    return events, text.encode()


@given(_stream(), st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_splitting_a_stream_anywhere_yields_the_same_events(
    stream: tuple[list[str], bytes], cuts: list[int]
) -> None:
    events, raw = stream
    positions = sorted({cut % (len(raw) + 1) for cut in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *positions], [*positions, len(raw)], strict=True)]
    assert parse_all(raw) == events
    assert parse_all(*pieces) == events


# -- vLLM's chunks ------------------------------------------------------------


def test_the_vllm_stream_decodes_to_text_finish_usage_and_done() -> None:
    items = [decode_chunk(event) for event in parse_all(VLLM_STREAM)]
    assert items == [
        ChunkDelta(),
        ChunkDelta(text="Hel"),
        ChunkDelta(text="lo 你好"),
        ChunkDelta(finish_reason="stop"),
        ChunkDelta(usage=Usage(prompt_tokens=9, completion_tokens=3, total_tokens=12)),
        DONE,
    ]


def test_an_error_event_in_the_current_shape() -> None:
    data = json.dumps(
        {
            "error": {
                "message": "engine died",
                "type": "InternalServerError",
                "param": None,
                "code": 500,
            }
        }
    )
    assert decode_chunk(data) == StreamError(
        message="engine died", type="InternalServerError", code=500
    )


def test_an_error_event_in_the_older_shapes() -> None:
    bare = '{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}'
    assert decode_chunk(bare) == StreamError(message="bad", type="BadRequestError", code=400)
    nested = json.dumps({"error": {"object": "error", "message": "m", "type": "T", "code": 503}})
    assert decode_chunk(nested) == StreamError(message="m", type="T", code=503)


def test_an_error_with_a_string_code_or_no_details() -> None:
    assert decode_chunk('{"error":{"message":"m","type":"t","code":"rate_limited"}}') == (
        StreamError(message="m", type="t", code=None)
    )
    assert decode_chunk('{"error":"Unauthorized"}') == StreamError(
        message="Unauthorized", type="error"
    )


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[1, 2]",
        '{"id": "x"}',
        '{"choices": [{"index": 0, "delta": {"content": 5}}]}',
    ],
)
def test_unreadable_chunks_are_errors_not_exceptions(data: str) -> None:
    item = decode_chunk(data)
    assert isinstance(item, StreamError)
    assert item.type == "InvalidChunk"


def test_null_content_other_choices_and_partial_usage() -> None:
    data = json.dumps(
        {
            "choices": [
                {"index": 0, "delta": {"content": None, "tool_calls": []}},
                {"index": 1, "delta": {"content": "not ours"}},
            ],
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
    )
    assert decode_chunk(data) == ChunkDelta(
        usage=Usage(prompt_tokens=4, completion_tokens=0, total_tokens=4)
    )


def test_done_tolerates_surrounding_space() -> None:
    assert decode_chunk(" [DONE] ") is DONE
