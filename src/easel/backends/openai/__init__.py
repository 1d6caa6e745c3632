"""The `openai` backend: easel as a gateway to an upstream OpenAI-compatible images server."""

from .backend import OpenAIBackend
from .options import OpenAIOptions

__all__ = ["OpenAIBackend", "OpenAIOptions"]
