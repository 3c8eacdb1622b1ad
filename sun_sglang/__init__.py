"""sun-sglang: SUN (shared decode module, per-task prefill modules) on SGLang."""

__version__ = "0.1.0"
