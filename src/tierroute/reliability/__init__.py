"""Reliability: choosing deployments, retrying and failing over."""
