import itertools
from contextlib import aclosing

from agent.emotion import LexiconRecognizer
from agent.generation import GenerationRequest, TemplateGenerator
from agent.generation.templates import split_for_streaming
from agent.values import Action, Decision, Exchange, HistorySummary, Strategy, Tone


def _request(
    text: str,
    strategy: Strategy,
    *,
    action: Action = Action.REPLY,
    conversation: tuple[Exchange, ...] = (),
) -> GenerationRequest:
    from agent.language import detect_language

    return GenerationRequest(
        session_id="s",
        turn_id="t",
        text=text,
        language=detect_language(text),
        emotion=LexiconRecognizer().read(text),
        decision=Decision(
            action=action, strategy=strategy, tone=Tone.CALM, confidence=1.0, policy="test"
        ),
        history=HistorySummary.first_time(),
        conversation=conversation,
    )


async def _pieces(generator: TemplateGenerator, request: GenerationRequest) -> list[str]:
    async with aclosing(await generator.open(request)) as stream:
        assert stream.answered_by == "template"
        return [piece async for piece in stream]


async def test_a_reply_streams_the_composed_text_in_several_pieces() -> None:
    generator = TemplateGenerator()
    pieces = await _pieces(generator, _request("I am furious", Strategy.DE_ESCALATE))
    assert len(pieces) >= 2
    assert "angry" in "".join(pieces)


async def test_chinese_turns_get_chinese_replies() -> None:
    generator = TemplateGenerator()
    reply = "".join(await _pieces(generator, _request("我很难过", Strategy.EMPATHIZE)))
    assert any("\u4e00" <= c <= "\u9fff" for c in reply)
    assert "难过" in reply


def test_a_session_never_hears_the_same_sentence_twice_in_a_row() -> None:
    generator = TemplateGenerator()
    conversation: tuple[Exchange, ...] = ()
    replies = []
    for _ in range(6):
        reply = generator.compose(
            _request("Where is it", Strategy.INFORM, conversation=conversation)
        )
        conversation = (*conversation, Exchange(text="Where is it", reply=reply))
        replies.append(reply)
    assert all(a != b for a, b in itertools.pairwise(replies))


def test_the_rotation_is_per_session_and_kept_in_no_generator_state() -> None:
    generator = TemplateGenerator()
    first = generator.compose(_request("Where is it", Strategy.INFORM))
    # Another session's turns in between do not move this session's rotation.
    for _ in range(3):
        generator.compose(_request("Where is it", Strategy.INFORM))
    heard = (Exchange(text="Where is it", reply=first),)
    second = generator.compose(_request("Where is it", Strategy.INFORM, conversation=heard))
    assert second != first
    assert generator.compose(_request("Where is it", Strategy.INFORM)) == first


def test_handoff_replies_say_a_person_is_coming() -> None:
    reply = TemplateGenerator().compose(
        _request("human please", Strategy.DE_ESCALATE, action=Action.HANDOFF)
    )
    assert "team" in reply or "colleague" in reply


def test_split_keeps_every_character() -> None:
    for text, language in (("Hello there, friend.", "en"), ("你好世界，谢谢", "zh")):
        assert "".join(split_for_streaming(text, language)) == text  # type: ignore[arg-type]


def test_a_feeling_without_a_word_never_leaves_a_gap() -> None:
    generator = TemplateGenerator()
    for _ in range(4):
        reply = generator.compose(_request("thank you so much", Strategy.EMPATHIZE))
        assert "this way" not in reply


def test_every_template_set_has_a_variant_that_names_no_feeling() -> None:
    from agent.generation.template_text import ACTION_TEMPLATES, STRATEGY_TEMPLATES

    for variants in (*STRATEGY_TEMPLATES.values(), *ACTION_TEMPLATES.values()):
        assert any("{feeling}" not in v for v in variants), variants
