"""The generator a role runs, built from the settings: templates, or an LLM with fallback."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from agent.config import Settings
from agent.generation.base import Generator
from agent.generation.fallback import FallbackGenerator
from agent.generation.guard import OutputGuard
from agent.generation.guarded import GuardedGenerator
from agent.generation.prompts import DEFAULT_SYSTEM_PROMPT, PromptBuilder, PromptSettings
from agent.generation.templates import TemplateGenerator
from agent.generation.vllm import VllmGenerator, VllmSettings
from agent.generation.vllm_engine import VllmEngineGenerator, VllmEngineSettings

__all__ = ["start_generator"]

# Tries of a served LLM before the first token (one retry); each gets an equal share
# of the first-token timeout, so the client's own timeouts fire (and its circuit
# breaker counts them) before the chain's bound does.
_RETRIES = 1
_CHAIN_MARGIN_S = 0.5


async def start_generator(stack: AsyncExitStack, settings: Settings) -> Generator:
    """The configured generator; an LLM client or model is entered on `stack`.

    The offline layer is the templates, answering from the FAQ knowledge file
    first when one is configured.

    ``vllm`` (a served LLM), ``vllm-engine`` (vLLM in this process, on a GPU)
    and ``local`` (a transformers model by path, for development): the LLM's
    prompt is built from the decision, the reading, the history and the
    conversation, its reply goes through the output guard, and the templates
    answer whenever it gives no first token within the first-token timeout.
    """
    templates: Generator = TemplateGenerator(token_delay=settings.token_delay)
    if settings.faq_file is not None:
        # the index's encoder needs torch: a process without a knowledge file never loads it
        from agent.generation.faq import FaqGenerator
        from agent.generation.faq_index import load_faq

        index = await asyncio.to_thread(load_faq, settings.faq_file)
        templates = FaqGenerator(index, templates, token_delay=settings.token_delay)
    if settings.generator == "templates":
        return templates
    prompts = PromptBuilder(
        PromptSettings(system_prompt=settings.system_prompt_file or DEFAULT_SYSTEM_PROMPT)
    )
    timeout = settings.first_token_timeout
    llm: Generator
    if settings.generator == "local":
        # transformers takes seconds to import: only this generator pays for it
        from agent.generation.local import LocalModelGenerator, LocalModelSettings

        assert settings.local_model is not None  # Settings refuses `local` without it
        llm = await stack.enter_async_context(
            LocalModelGenerator(
                LocalModelSettings(path=settings.local_model, first_token_timeout_s=timeout),
                build_messages=prompts.messages,
            )
        )
    elif settings.generator == "vllm-engine":
        assert settings.model  # Settings refuses `vllm-engine` without it
        llm = await stack.enter_async_context(
            VllmEngineGenerator(
                VllmEngineSettings(model=settings.model, first_token_timeout_s=timeout),
                build_messages=prompts.messages,
            )
        )
    else:
        assert settings.vllm_url  # Settings refuses `vllm` without either
        assert settings.model
        key = settings.vllm_api_key
        llm = await stack.enter_async_context(
            VllmGenerator(
                VllmSettings(
                    base_url=settings.vllm_url,
                    model=settings.model,
                    api_key=None if key is None else key.get_secret_value(),
                    max_connections=settings.vllm_max_connections,
                    retries=_RETRIES,
                    first_token_timeout_s=timeout / (_RETRIES + 1),
                ),
                build_messages=prompts.messages,
            )
        )
    chain = FallbackGenerator([llm, templates], first_token_timeout=timeout + _CHAIN_MARGIN_S)
    return GuardedGenerator(chain, OutputGuard(release=settings.guard_release))
