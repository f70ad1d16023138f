"""The generator a role runs, built from the settings: templates, or an LLM with fallback."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Literal

from agent.errors import ConfigError
from agent.generation.base import Generator
from agent.generation.fallback import FallbackGenerator
from agent.generation.guard import OutputGuard
from agent.generation.guarded import GuardedGenerator
from agent.generation.prompts import DEFAULT_SYSTEM_PROMPT, PromptBuilder, PromptSettings
from agent.generation.templates import TemplateGenerator
from agent.generation.vllm import VllmGenerator, VllmSettings

__all__ = ["GeneratorChoice", "start_generator"]

GeneratorChoice = Literal["templates", "vllm"]

# Tries of the LLM before the first token (one retry); each gets an equal share of the
# first-token timeout, so the client's own timeouts fire (and its circuit breaker
# counts them) before the chain's bound does.
_RETRIES = 1
_CHAIN_MARGIN_S = 0.5


async def start_generator(
    stack: AsyncExitStack,
    *,
    choice: GeneratorChoice,
    token_delay: float,
    vllm_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    first_token_timeout: float = 8.0,
    system_prompt: Path | None = None,
) -> Generator:
    """The generator for `choice`; an LLM client is entered on `stack`.

    ``vllm``: the LLM (its prompt built from the decision, the reading, the
    history and the conversation; its reply through the output guard), with
    the templates answering whenever it cannot give a first token within
    `first_token_timeout` seconds.
    """
    templates = TemplateGenerator(token_delay=token_delay)
    if choice == "templates":
        return templates
    if not vllm_url or not model:
        raise ConfigError(
            "--generator vllm needs --vllm-url (the server root, e.g. http://gpu-host:8000) "
            "and --model (the name `vllm serve` was given)"
        )
    prompts = PromptBuilder(PromptSettings(system_prompt=system_prompt or DEFAULT_SYSTEM_PROMPT))
    llm = await stack.enter_async_context(
        VllmGenerator(
            VllmSettings(
                base_url=vllm_url,
                model=model,
                api_key=api_key,
                retries=_RETRIES,
                first_token_timeout_s=first_token_timeout / (_RETRIES + 1),
            ),
            build_messages=prompts.messages,
        )
    )
    chain = FallbackGenerator(
        [llm, templates], first_token_timeout=first_token_timeout + _CHAIN_MARGIN_S
    )
    return GuardedGenerator(chain, OutputGuard())
