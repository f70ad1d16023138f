"""Reply generators behind one streaming, cancellable protocol."""

from agent.generation.base import GenerationRequest, Generator
from agent.generation.templates import TemplateGenerator

__all__ = ["GenerationRequest", "Generator", "TemplateGenerator"]
