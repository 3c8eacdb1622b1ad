"""Request and response bodies (msgspec): the OpenAI subset the gateway speaks, and errors."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class FunctionCall(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ChatMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A message as OpenAI clients send it: content a string, a list of parts, or null (an
    assistant turn that only calls tools)."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant
    tool_call_id: str | None = None  # tool


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class SamplingFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every field here reaches both PD legs (router/api/sampling.py); any other field is a 400 naming
    it (router/api/app.py), never silently dropped."""

    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    ignore_eos: bool = False  # SGLang's (and vLLM's) extension: generate exactly max_tokens
    logprobs: bool | int | None = None  # chat: true/false; completions: how many top tokens
    top_logprobs: int | None = None  # chat: how many top tokens per position (with logprobs=true)
    user: str | None = None  # the end user: a session key for prefill affinity (no session header)
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    # SGLang's extensions (its OpenAI layer takes them too)
    repetition_penalty: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    min_tokens: int | None = None
    logit_bias: dict[str, float] | None = None  # token id (as a string) -> bias added to its logit
    stop_token_ids: list[int] | None = None  # beside the model's own end-of-turn tokens
    skip_special_tokens: bool | None = None
    spaces_between_special_tokens: bool | None = None
    no_stop_trim: bool | None = None


class ChatRequest(SamplingFields, kw_only=True, forbid_unknown_fields=True):
    model: str
    messages: list[ChatMessage]


class CompletionRequest(SamplingFields, kw_only=True, forbid_unknown_fields=True):
    model: str
    prompt: str | list[int]


class GenerateRequest(msgspec.Struct, kw_only=True):
    """SGLang-native /generate with token ids; `model` names the task."""

    model: str
    input_ids: list[int]
    sampling_params: dict[str, Any] = {}
    stream: bool = False
    return_logprob: bool = False
    top_logprobs_num: int = 0
    return_text_in_logprobs: bool = False


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int  # prompt tokens served from the prefill server's prefix (radix) cache


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class ChatChoiceMessage(msgspec.Struct):
    role: str
    content: str


class TopLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


class ChatLogprobs(msgspec.Struct):
    content: list[TokenLogprob]


class CompletionLogprobs(msgspec.Struct):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class ChatChoice(msgspec.Struct):
    index: int
    message: ChatChoiceMessage
    finish_reason: str | None
    logprobs: ChatLogprobs | None = None


class ChatResponse(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    object: str = "chat.completion"


class CompletionChoice(msgspec.Struct):
    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class CompletionResponse(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    object: str = "text_completion"


class ModelCard(msgspec.Struct):
    id: str
    created: int
    owned_by: str = "sun-sglang"
    object: str = "model"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class ChatChunkChoice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: ChatLogprobs | None = None


class ChatChunk(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    object: str = "chat.completion.chunk"


class CompletionChunk(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    object: str = "text_completion"
