"""The GPU install pins exactly what the CPU install pins, TensorFlow's flavour aside."""
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..")


def pins(name: str) -> dict:
    """requirements file -> {package (extras dropped, lower case): version}; `-e .` and comments ignored."""
    found = {}
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        for line in f:
            match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line.strip())
            if match:
                found[match.group(1).lower()] = match.group(3)
    return found


def test_gpu_requirements_pin_the_same_versions():
    cpu, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    assert cpu.pop("tensorflow-cpu") == gpu.pop("tensorflow")  # tensorflow[and-cuda]
    assert cpu == gpu and len(cpu) >= 10
    with open(os.path.join(ROOT, "requirements-gpu.txt"), encoding="utf-8") as f:
        assert "tensorflow[and-cuda]==" in f.read()
