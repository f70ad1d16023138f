"""Reply generators behind one protocol: a reply opened as a cancellable stream."""

from agent.generation.base import GenerationRequest, Generator, ReplyStream
from agent.generation.templates import TemplateGenerator

__all__ = ["GenerationRequest", "Generator", "ReplyStream", "TemplateGenerator"]
