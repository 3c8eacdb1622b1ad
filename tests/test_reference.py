"""The SUN reference generator: the oracle the serving path is checked against."""

from pathlib import Path

import pytest
import torch

from sun_sglang.reference import SunReference, left_pad, load_model, sun_generate

PROMPTS = [[1, 504, 3575, 282], [1, 9690, 314], [1, 2000, 3000, 4000, 5000, 6000, 77]]


def test_left_pad_aligns_right_and_rejects_empty() -> None:
    ids, mask = left_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        left_pad([[1], []], pad_id=0)


@pytest.mark.parametrize("model", ["tiny", "tiny-qwen2", "smollm2"])
def test_same_checkpoint_equals_plain_generate(
    model: str, tiny_base: Path, tiny_qwen2: Path, smollm2: Path
) -> None:
    path = str({"tiny": tiny_base, "tiny-qwen2": tiny_qwen2, "smollm2": smollm2}[model])
    ref = SunReference.load(path, path)
    got = ref.generate(PROMPTS, max_new_tokens=12)
    for prompt, tokens in zip(PROMPTS, got):
        plain = ref.decode.generate(
            torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=list(ref.stop_token_ids)
        )
        assert tokens == plain[0, len(prompt) :].tolist()


def test_batched_equals_one_by_one(tiny_base: Path, tiny_task: Path) -> None:
    ref = SunReference.load(str(tiny_task), str(tiny_base))
    batched = ref.generate(PROMPTS, max_new_tokens=10)
    assert batched == [ref.generate([p], max_new_tokens=10)[0] for p in PROMPTS]


def test_first_token_from_prefill_rest_from_decode(tiny_base: Path, tiny_task: Path) -> None:
    """Token 1 follows the prefill module's logits; token 2 the decode module's, on the
    prefill module's KV: recomputed here by hand with plain forwards."""
    prefill, decode = load_model(str(tiny_task)), load_model(str(tiny_base))
    prompt = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        out = prefill(prompt, use_cache=True)
        first = int(out.logits[0, -1].argmax())
        second = int(
            decode(torch.tensor([[first]]), past_key_values=out.past_key_values).logits[0, -1].argmax()
        )
    got = sun_generate(prefill, decode, [PROMPTS[0]], max_new_tokens=2)
    assert got == [[first, second]]


def test_stop_token_ends_row_and_is_kept(tiny_base: Path) -> None:
    ref = SunReference.load(str(tiny_base), str(tiny_base))
    free = ref.generate(PROMPTS[:1], max_new_tokens=8)[0]
    stop = free[3]
    got = sun_generate(ref.prefill, ref.decode, PROMPTS[:1], 8, stop_token_ids=[stop])[0]
    assert got == free[: free.index(stop) + 1]


def test_sun_logprobs_with_one_model_are_the_plain_forward(tiny_base: Path) -> None:
    from sun_sglang.reference import load_model, sun_logprobs

    model = load_model(str(tiny_base))
    prompt, output = [5, 6, 7, 8], [9, 10, 11]
    got = sun_logprobs(model, model, prompt, output)
    with torch.no_grad():
        table = torch.log_softmax(model(input_ids=torch.tensor([prompt + output])).logits[0], -1)
    want = [table[len(prompt) - 1 + i, t].item() for i, t in enumerate(output)]
    assert got == pytest.approx(want, abs=1e-5)
