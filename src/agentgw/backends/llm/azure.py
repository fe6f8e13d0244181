"""Azure OpenAI: OpenAI's wire format on deployment URLs, keyed with ``api-key``.

``https://{resource}.openai.azure.com/openai/deployments/{deployment}/chat/completions
?api-version=...`` (``azureResourceType: foundry`` uses ``{resource}.services.ai.azure.com``);
``apiVersion: v1`` selects the version-less ``/openai/v1/...`` API where the model is
named in the body.
"""

from __future__ import annotations

from urllib.parse import quote

from .openai import OpenAIProvider

DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIProvider(OpenAIProvider):
    system = "azure.ai.openai"
    native = frozenset({"completions", "embeddings", "responses"})

    def key_headers(self, key: str) -> list:
        return [("api-key", key)]

    def native_path(self, api: str, stream: bool, model: str) -> str:
        if self.path_override and api == "completions":
            return self.path_override
        version = self.extra.get("api_version") or DEFAULT_API_VERSION
        sub = self._PATHS[api]
        if version in ("v1", "preview") or api == "responses":
            q = "" if version == "v1" else f"?api-version={version}"
            return f"/openai/v1{sub}{q}"
        deployment = quote(self.model or model, safe="")
        return f"/openai/deployments/{deployment}{sub}?api-version={version}"
