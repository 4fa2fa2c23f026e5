"""Regression table of tricky answers; reference differences; timeouts in any thread."""

import threading
import time

import pytest

from sarl.grading import grade
from sarl.grading.math import answers_equal, extract_answer, extract_reference
from sarl.grading.timeouts import GradingTimeout, call_with_timeout

# (response, gold, correct, what sarl extracts)
TABLE = [
    ("The answer is 1,000.", "1000", True, "1000"),              # reference reads "000"
    ("Total: 1,234,567 apples", "1234567", True, "1234567"),
    ("so x = \\dfrac{1}{2}", "0.5", True, "\\frac{1}{2}"),         # reference reads "2"
    ("half of it: 1/2", "\\frac{1}{2}", True, "\\frac{1}{2}"),     # reference reads "2"
    ("She makes $18 every day.", "18", True, "18"),
    ("The answer is 18.", "18", True, "18"),
    ("\\boxed{18} which we found in step 3", "18", True, "18"),   # reference reads "3"
    ("It rose by 50%", "50", True, "50"),
    ("The temperature is -5 degrees", "-5", True, "-5"),
    ("0.5", "\\frac{1}{2}", True, "0.5"),
    ("x = 3.0", "3", True, "3.0"),
    ("\\boxed{\\frac{3}{4}}", "0.75", True, "\\frac{3}{4}"),
    ("12 apples", "13", False, "12"),
    ("no number at all", "5", False, ""),
    ("The answer is 7", "#### 7", True, "7"),                      # GSM8K-style gold
    ("-\\frac{2}{3}", "-2/3", True, "-\\frac{2}{3}"),
    ("it costs 2.50 dollars", "2.5", True, "2.50"),
]


@pytest.mark.parametrize("response,gold,correct,extracted", TABLE)
def test_regression_table(response, gold, correct, extracted):
    g = grade(response, gold)
    assert g.extracted == extracted
    assert g.correct is correct


def test_reference_extraction_bugs_are_documented():
    assert extract_reference("The answer is 1,000") == "000"
    assert extract_reference("\\dfrac{1}{2}") == "2"
    assert extract_reference("1/2") == "2"
    assert extract_answer("1,000") == "1000"


def test_model_text_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {marker}') the answer is 4"
    assert grade(evil, "4").correct
    assert not marker.exists()


def _slow(x):
    time.sleep(x)
    return x


def test_timeout_main_thread():
    with pytest.raises(GradingTimeout):
        call_with_timeout(_slow, 3, timeout=0.3)
    assert call_with_timeout(_slow, 0.01, timeout=2) == 0.01


def test_timeout_in_worker_thread():
    """math-verify's own signal.alarm cannot work here; ours must."""
    result = {}

    def work():
        t = time.perf_counter()
        try:
            call_with_timeout(_slow, 5, timeout=0.5)
        except GradingTimeout:
            result["timeout"] = time.perf_counter() - t
        result["ok"] = answers_equal("0.5", "\\frac{1}{2}")

    th = threading.Thread(target=work)
    th.start()
    th.join(60)
    assert result["timeout"] < 4
    assert result["ok"] is True
