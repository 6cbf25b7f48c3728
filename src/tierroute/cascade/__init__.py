"""Cascades: answer with cheap models first, escalate to a strong one when their answers disagree.

``answers`` extracts the comparable final answer from a reply (shared by the offline evaluation and the
gateway); ``runtime`` runs a cascade for one non-streamed request.
"""
