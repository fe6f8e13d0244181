"""The request pipeline and the contracts the features build on.

``runtime`` (the compiled binds, listeners and routes a request walks), ``policy`` (the
``Policy`` interface, ``Deferred``, the chain order), ``backend`` (the ``Backend``
protocol), ``context`` (``Ctx``: per-request state and the operations a backend ends a
request with), ``relay`` (an upstream response to the client), ``pipeline`` (listener →
route → policies → backend). Policies and backends import from here; nothing here
imports a policy or a backend.
"""
