"""Request bodies (msgspec): the OpenAI subset the gateway accepts (answers: router/api/answers.py)."""

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
    index: int | None = None  # as answers number them; a call sent back keeps it (no effect)


class ChatMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A message as OpenAI clients send it: content a string, a list of parts, or null (an
    assistant turn that only calls tools)."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant
    tool_call_id: str | None = None  # tool


class StreamOptions(msgspec.Struct, forbid_unknown_fields=True):
    include_usage: bool = False


class JsonSchemaFormat(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    schema: dict[str, Any] | None = None  # None: any JSON object
    description: str | None = None
    strict: bool | None = None  # the schema is enforced either way (a grammar on both legs)


class ResponseFormat(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


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
    # Structured outputs: a grammar that both legs apply (router/api/grammar.py); at most one.
    response_format: ResponseFormat | None = None
    regex: str | None = None
    ebnf: str | None = None


class FunctionDef(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema of the arguments
    strict: bool | None = None  # constrain the arguments to it, with tool_choice auto too


class ToolDef(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    function: FunctionDef
    type: Literal["function"] = "function"


class NamedFunction(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class NamedToolChoice(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    function: NamedFunction
    type: Literal["function"] = "function"


class ChatRequest(SamplingFields, kw_only=True, forbid_unknown_fields=True):
    model: str
    messages: list[ChatMessage]
    # The tools as sent (key order kept: the template renders them as JSON); checked as ToolDef.
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    chat_template_kwargs: dict[str, Any] | None = None  # to the task's template (enable_thinking, ...)
    separate_reasoning: bool = True  # a reasoning task: thinking in reasoning_content (SGLang's)


class CompletionRequest(SamplingFields, kw_only=True, forbid_unknown_fields=True):
    model: str
    prompt: str | list[Any]  # a string, strings, token ids, or token-id lists (router/api/completions.py)
    echo: bool = False  # each choice's text starts with its prompt


class GenerateRequest(msgspec.Struct, kw_only=True):
    """SGLang-native /generate with token ids; `model` names the task."""

    model: str
    input_ids: list[int]
    sampling_params: dict[str, Any] = {}
    stream: bool = False
    return_logprob: bool = False
    top_logprobs_num: int = 0
    return_text_in_logprobs: bool = False
