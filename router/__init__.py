"""The SUN gateway: per-task prefill pools, one shared decode pool, an OpenAI-compatible API."""
