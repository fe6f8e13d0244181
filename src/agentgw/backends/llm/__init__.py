"""LLM gateway: the ``ai`` backend, provider translations and client-facing APIs.

Modules: ``ir`` (the internal representation), one module per provider (``openai``,
``anthropic``, ``bedrock``, ``gemini`` with Vertex, ``azure``), ``responses`` (the
Responses API for non-OpenAI providers), ``guards`` (prompt guards), ``tokens``
(prompt pre-count), ``backend`` (the request flow) and ``compile`` (config → runtime).
"""
