"""Provider presets: OpenAI-compatible services known by name (``provider: groq``).

Each preset is a default base URL, the client APIs the service speaks natively, and for
some of them a path of their own for one API (Cohere's compatibility endpoints). A preset
is an OpenAI-compatible provider in every other way: ``Authorization: Bearer <apiKey>``,
chat completions as the common language. A call in an API the service does not speak
(an Anthropic Messages call to Groq, say) is translated to chat completions, as for any
OpenAI-compatible provider; ``params.baseUrl`` replaces the default address (and path
prefix), never the per-API paths.
"""

from __future__ import annotations

from .ir import TranslationError
from .openai import OpenAIProvider

#: preset -> (default base URL, APIs spoken natively, {api: path} replacing prefix + default path)
PRESETS: dict[str, tuple[str, frozenset, dict[str, str]]] = {
    "cohere": (
        "https://api.cohere.ai",
        frozenset({"completions", "embeddings"}),
        {"completions": "/compatibility/v1/chat/completions", "embeddings": "/compatibility/v1/embeddings"},
    ),
    "ollama": ("http://localhost:11434/v1", frozenset({"completions", "responses", "embeddings"}), {}),
    "baseten": ("https://inference.baseten.co/v1", frozenset({"completions"}), {}),
    "cerebras": ("https://api.cerebras.ai/v1", frozenset({"completions"}), {}),
    "deepinfra": ("https://api.deepinfra.com/v1/openai", frozenset({"completions", "embeddings"}), {}),
    "deepseek": ("https://api.deepseek.com/v1", frozenset({"completions", "responses"}), {}),
    "groq": ("https://api.groq.com/openai/v1", frozenset({"completions", "responses"}), {}),
    "huggingface": ("https://router.huggingface.co/v1", frozenset({"completions", "responses"}), {}),
    "mistral": ("https://api.mistral.ai/v1", frozenset({"completions", "embeddings"}), {}),
    "openrouter": ("https://openrouter.ai/api/v1", frozenset({"completions", "responses", "embeddings"}), {}),
    "togetherai": ("https://api.together.xyz/v1", frozenset({"completions", "embeddings"}), {}),
    "xai": ("https://api.x.ai/v1", frozenset({"completions", "responses"}), {}),
    "fireworks": ("https://api.fireworks.ai/inference/v1", frozenset({"completions", "responses", "embeddings"}), {}),
}


class PresetProvider(OpenAIProvider):
    """An OpenAI-compatible service of ``PRESETS``; ``system`` is the preset's name (the
    ``gen_ai.provider.name`` of its metrics)."""

    def __init__(self, *args, preset: str, **kw):
        super().__init__(*args, **kw)
        _, native, paths = PRESETS[preset]
        self.system = preset
        self.native = native
        self.paths = paths

    def native_path(self, api: str, stream: bool, model: str) -> str:
        if self.path_override and api == "completions":
            return self.path_override
        own = self.paths.get(api)
        if own is not None:
            return own
        return self.prefix + self._PATHS[api]

    def embeddings(self, req: dict):
        if "embeddings" not in self.native:
            raise TranslationError(f"{self.system} does not offer embeddings")
        return super().embeddings(req)
