"""tierroute: an OpenAI-compatible model router."""
