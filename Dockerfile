# The image the Kubernetes manifests name (python -m sun_sglang.launch k8s --image ...): SGLang's
# own GPU image plus this package, installed the way a GPU machine installs it. Not built or run
# here (no GPU, no registry access on the development machines): kept to the GPU install command.
#   docker build -t REGISTRY/sun-sglang:0.1.0 .
ARG SGLANG_IMAGE=lmsysorg/sglang:v0.5.23
FROM ${SGLANG_IMAGE}

WORKDIR /opt/sun-sglang
COPY pyproject.toml README.md ./
COPY sun_sglang ./sun_sglang
COPY router ./router
COPY patches ./patches
# sglang==0.5.23 is the image's own: pip keeps it; the transfer engines and the gateway's
# libraries come with the [gpu] extra. The self-check verifies the plugin hooks' targets.
RUN pip install --no-cache-dir ".[gpu]" \
    && python -m patches apply \
    && python -W ignore -m patches check

# Models live on a volume (the manifests mount it at /models); nothing is fetched at run time.
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ENTRYPOINT []
CMD ["python", "-m", "sun_sglang.launch", "--help"]
