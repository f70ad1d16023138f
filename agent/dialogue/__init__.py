"""The dialogue manager: one turn from event to reply."""

from agent.dialogue.manager import DialogueManager, ManagerSettings
from agent.dialogue.pipeline import PipelineSettings, Stages

__all__ = ["DialogueManager", "ManagerSettings", "PipelineSettings", "Stages"]
