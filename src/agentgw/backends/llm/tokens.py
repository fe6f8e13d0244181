"""Prompt token pre-count (``tokenize: true``): tiktoken when it and its encoding files
are available, otherwise an estimate of one token per four characters."""

from __future__ import annotations

import logging

_enc = None
_tried = False


def _encoding():
    global _enc, _tried
    if not _tried:
        _tried = True
        try:
            import tiktoken

            _enc = tiktoken.get_encoding("o200k_base")
        except Exception as exc:
            logging.getLogger("agentgw.llm").info(
                "tiktoken unavailable (%s); estimating prompt tokens from length", exc
            )
            _enc = None
    return _enc


def count(texts: list[str]) -> int:
    enc = _encoding()
    if enc is not None:
        return sum(len(enc.encode(t, disallowed_special=())) for t in texts) + 3 * len(texts)
    return sum((len(t) + 3) // 4 for t in texts) + 3 * len(texts)
