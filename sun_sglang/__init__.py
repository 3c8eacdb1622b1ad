"""sun-sglang: SUN (shared decode module, per-task prefill modules) on SGLang."""

__version__ = "0.1.0"

from sun_sglang import demo_models as _demo_models  # noqa: E402, F401 (registers the trained models)
