"""LLM gateway: the ``ai`` backend, provider translations and client-facing APIs.

Modules: ``ir`` (the internal representation), one module per provider (``openai``,
``anthropic``, ``bedrock``, ``gemini`` with Vertex, ``azure``), ``responses`` (the
Responses API for non-OpenAI providers), ``guards`` (prompt guards), ``tokens``
(prompt pre-count), ``compile`` (config → runtime), and the request flow: ``backend``
(the orchestration), ``models`` (the model table), ``shaping`` (provider requests and
their heads), ``answers`` and ``streaming`` (whole and streamed answers), ``errors``
(errors in the client's API shape, failover), ``metrics`` (metrics and token
accounting) and ``fast`` (the task-free call).
"""
