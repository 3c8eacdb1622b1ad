"""QSUN: the shared decode module quantized once (weight-only GPTQ, llm-compressor), written twice:

- `packed/`: compressed-tensors pack-quantized, what SGLang's decode server loads on a GPU (low-bit
  weights, Marlin kernels, activations in the serving dtype);
- `dequantized/`: a plain checkpoint whose weights are the quantized values dequantized (numerically
  the quantized model): what the CPU decode server serves, and the frozen decoder that QSUN prefill
  modules are trained against.
"""

from pathlib import Path


def decode_module(path: str | Path, device: str) -> Path:
    """The checkpoint a decode server loads from `path`: a QSUN output folder gives packed/ on a GPU
    and dequantized/ elsewhere (SGLang has no low-bit CPU kernels without AMX); any other folder
    is itself."""
    folder = Path(path)
    if (folder / "packed").is_dir() and (folder / "dequantized").is_dir():
        return folder / ("packed" if device == "cuda" else "dequantized")
    return folder
