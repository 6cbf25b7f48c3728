"""Client-facing API dialects other than chat completions, each translated to and from a chat-completions body.

One module per dialect; each is pure translation, and the server routes the translated request through the same
:class:`~tierroute.router.Router` as ``/v1/chat/completions``, so routing, limits, failover and the ledger apply.
"""
