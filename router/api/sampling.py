"""OpenAI sampling fields -> SGLang sampling parameters, one set per requested choice."""

from __future__ import annotations

from typing import Any

from router.api import protocol as p
from router.api.grammar import request_constraint
from router.api.tools import ToolPlan
from router.errors import ApiError


def sampling_params(
    req: p.SamplingFields, stop_token_ids: list[int], max_n: int, tools: ToolPlan | None = None
) -> dict[str, Any]:
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, "max_tokens must be at least 1", param="max_tokens")
    if not 1 <= req.n <= max_n:
        raise ApiError(400, f"n must be between 1 and {max_n}", param="n")
    params: dict[str, Any] = {
        "max_new_tokens": max_tokens if max_tokens is not None else 128,
        "stop_token_ids": stop_token_ids,
        "temperature": 1.0 if req.temperature is None else req.temperature,
    }
    if req.top_p is not None:
        params["top_p"] = req.top_p
    if req.stop:
        params["stop"] = [req.stop] if isinstance(req.stop, str) else req.stop
    if req.seed is not None:
        params["sampling_seed"] = req.seed
    if req.ignore_eos:
        params["ignore_eos"] = True
    if req.stop_token_ids:
        params["stop_token_ids"] = sorted({*stop_token_ids, *req.stop_token_ids})
    params.update(_checked_extras(req))
    params.update(request_constraint(req, tools.constraint if tools else None))
    if tools is not None:  # the call markers may be special tokens: keep them for the parser
        params["skip_special_tokens"] = False
    return params


# OpenAI / SGLang field -> (SGLang sampling parameter, what is allowed, a check)
_RANGES: dict[str, tuple[str, str, Any]] = {
    "frequency_penalty": ("frequency_penalty", "between -2 and 2", lambda v: -2 <= v <= 2),
    "presence_penalty": ("presence_penalty", "between -2 and 2", lambda v: -2 <= v <= 2),
    "repetition_penalty": ("repetition_penalty", "above 0, at most 2", lambda v: 0 < v <= 2),
    "top_k": ("top_k", "-1 (off) or at least 1", lambda v: v == -1 or v >= 1),
    "min_p": ("min_p", "between 0 and 1", lambda v: 0 <= v <= 1),
    "min_tokens": ("min_new_tokens", "at least 0", lambda v: v >= 0),
}
_PASSED = ("skip_special_tokens", "spaces_between_special_tokens", "no_stop_trim")  # booleans, as named


def _checked_extras(req: p.SamplingFields) -> dict[str, Any]:
    """The penalties, top_k, min_p, min_tokens, token-level options and logit_bias, checked here
    (a 400 naming the field) rather than failing on one leg of the pair."""
    out: dict[str, Any] = {}
    for field, (name, allowed, ok) in _RANGES.items():
        value = getattr(req, field)
        if value is None:
            continue
        if not ok(value):
            raise ApiError(400, f"{field} must be {allowed}", param=field)
        out[name] = value
    out.update({field: value for field in _PASSED if (value := getattr(req, field)) is not None})
    if req.logit_bias:
        for token, bias in req.logit_bias.items():
            if not token.isdigit():
                raise ApiError(400, f"logit_bias: {token!r} is not a token id", param="logit_bias")
            if not -100 <= bias <= 100:
                raise ApiError(400, "logit_bias values must be between -100 and 100", param="logit_bias")
        out["logit_bias"] = dict(req.logit_bias)
    return out


def choice_params(
    req: p.SamplingFields, stop_token_ids: list[int], max_n: int, tools: ToolPlan | None = None
) -> list[dict[str, Any]]:
    """Parameters for each of the n choices: n independent PD requests (a given seed becomes seed,
    seed + 1, ...: the choices differ yet stay reproducible)."""
    params = sampling_params(req, stop_token_ids, max_n, tools)
    choices = [dict(params) for _ in range(req.n)]
    if req.seed is not None:
        for i, choice in enumerate(choices):
            choice["sampling_seed"] = req.seed + i
    return choices


MAX_TOP_LOGPROBS = 20


def logprob_fields(req: p.SamplingFields, chat: bool) -> dict[str, Any]:
    """SGLang request fields (beside sampling_params) for OpenAI's logprobs options; {} if off."""
    if chat:
        if req.top_logprobs is not None and req.logprobs is not True:
            raise ApiError(400, "top_logprobs needs logprobs=true", param="top_logprobs")
        if req.logprobs not in (None, True, False):
            raise ApiError(400, "logprobs must be true or false", param="logprobs")
        wanted, top = req.logprobs is True, req.top_logprobs or 0
    else:
        if isinstance(req.logprobs, bool):
            raise ApiError(400, "logprobs must be an integer (top tokens per position)", param="logprobs")
        wanted, top = req.logprobs is not None, req.logprobs or 0
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise ApiError(400, f"top logprobs must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs")
    if not wanted:
        return {}
    return {"return_logprob": True, "top_logprobs_num": top, "return_text_in_logprobs": True}
