"""The OpenAI-compatible HTTP gateway (a plain ASGI app)."""

from .app import create_app

__all__ = ["create_app"]
