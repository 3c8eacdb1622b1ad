"""The benchmarks study's bookkeeping: standard errors and paired gaps, its section of
docs/ACCURACY.md (placed, replaced, kept by the SmolLM2 study), and answers kept a batch at a
time (a stopped evaluation continues to the same answers; other settings start again)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sun_sglang import tasks
from sun_sglang.eval import study_benchmarks as sb
from sun_sglang.eval import study_benchmarks_page as page
from sun_sglang.eval.study_modules import Module
from sun_sglang.eval.study_page import NOTES_MARK, write_doc
from sun_sglang.eval.study_qsun import Scheme


def test_cells_give_binomial_and_paired_standard_errors() -> None:
    assert page.accuracy_cell([True, False] * 50) == "50.0 ± 5.0"  # sqrt(.25 / 100)
    assert page.accuracy_cell(None) == "not run"
    a = [True] * 10 + [False] * 10
    assert page.gap_cell(a, a) == "+0.0 ± 0.0"  # the same answers: no gap, no error
    b = [True] * 5 + [False] * 15  # a differs from b on 5 of 20, always a right
    mean, sd = 0.25, (5 * 0.75**2 + 15 * 0.25**2) / 19
    assert page.gap_cell(a, b) == f"{100 * mean:+.1f} ± {100 * sd**0.5 / 20**0.5:.1f}"


def test_the_section_is_placed_replaced_and_kept(tmp_path: Path) -> None:
    doc = tmp_path / "ACCURACY.md"
    doc.write_text("# SmolLM2 study\n\ntable\n\n" + NOTES_MARK + "\n## Reading\n\nmine\n")
    page.write_section(doc, f"{page.BEGIN}\nfirst\n{page.END}\n")
    text = doc.read_text()
    assert text.index("first") < text.index(NOTES_MARK) and text.endswith("mine\n")
    page.write_section(doc, f"{page.BEGIN}\nsecond\n{page.END}\n")
    text = doc.read_text()
    assert "second" in text and "first" not in text and text.count(page.BEGIN) == 1
    write_doc(doc, "# SmolLM2 study, rewritten\n")  # the other study rewrites its part
    text = doc.read_text()
    assert text.startswith("# SmolLM2 study, rewritten") and "second" in text and text.endswith("mine\n")


def test_answers_continue_where_they_stopped(tmp_path: Path) -> None:
    from sun_sglang.models import prepare

    base = str(prepare("tiny-qwen2"))
    _, test = tasks.train_test("bfcl", seed=0, n_test=4)
    args = argparse.Namespace(eval_batch=2, eval_dtype="float32")
    file = tmp_path / "answers" / "base.jsonl"
    key = {"prefill": {}, "decode": {}, "dtype": "float32", "n": 4}
    whole = sb.answers(file, key, base, base, test, args, 24)
    assert len(whole) == 4 and len(file.read_text().splitlines()) == 5
    lines = file.read_text().splitlines()
    file.write_text("\n".join(lines[:3]) + "\n")  # stopped after the first batch
    assert sb.answers(file, key, base, base, test, args, 24) == whole
    assert file.read_text().splitlines() == lines
    file.write_text("\n".join([lines[0], json.dumps("stale"), json.dumps("stale")]) + "\n")
    assert (
        sb.answers(file, {**key, "dtype": "other"}, base, base, test, args, 24) == whole
    )  # other settings: anew


def test_qsun_columns_one_per_width_and_each_against_sun() -> None:
    names = list(sb.configurations([Scheme.parse("w8-gptq-g64"), Scheme.parse("w4-awq-g128")]))
    assert names[-2:] == ["QSUN W8", "QSUN W4"]
    assert page.gaps(names)[-2:] == [("QSUN W8", "SUN"), ("QSUN W4", "SUN")]
    assert ("QSUN W4", "SUN") not in page.gaps(list(sb.configurations([Scheme.parse("w8-gptq-g64")])))
    with pytest.raises(ValueError, match="one per bit width"):
        sb.configurations([Scheme.parse("w4-gptq-g64"), Scheme.parse("w4-awq-g64")])


def test_kept_answers_need_no_model_and_only_runs_what_is_asked(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A configuration whose answers are kept (another session's) is scored without making any
    module; one left out by --only and not kept is not run, and not reported."""
    from sun_sglang.models import prepare

    base = str(prepare("tiny-qwen2"))
    built: list[str] = []

    def modules(*_: object) -> dict[str, Module]:
        def build(name: str) -> Module:
            return Module(base, {"m": name}, lambda: built.append(name) or {}, "")

        return {n: build(n) for n in ("base", "full", "sun", "lora")}

    monkeypatch.setattr(sb, "study_modules", modules)
    args = argparse.Namespace(
        qsun="", n_test={"gsm8k": 3}, results=tmp_path, only="SUN", eval_batch=3, eval_dtype="float32"
    )
    _, test = tasks.train_test("gsm8k", 0, 3)
    kept = tmp_path / "gsm8k" / "seed0"
    kept.mkdir(parents=True)
    key = {"prefill": {"m": "full"}, "decode": {"m": "full"}, "dtype": "float32", "n": 3}
    answers = [test[0].answer, "no number here", test[2].answer]
    (kept / "full_FT.jsonl").write_text("\n".join(json.dumps(x) for x in [key, *answers]) + "\n")
    result = sb.study_task("gsm8k", 0, base, tmp_path / "work", args)
    assert result["correct"]["full FT"] == [True, False, True]
    assert built == ["sun", "base"]  # SUN asked for: its prefill module and the base made; nothing else
    assert set(result["correct"]) == {"full FT", "SUN"}
