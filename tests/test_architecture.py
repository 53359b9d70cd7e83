"""The layout's contracts (pyproject.toml, checked by lint-imports in .ci/run) stay complete, and the choices that
depend on the machine are made as documented."""
import pkgutil
import re
import tomllib
from pathlib import Path

import facekit

ROOT = Path(__file__).resolve().parents[1]
WINGS = {"alignment", "detection", "profiling"}


def contracts() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["name"]: contract for contract in config["contracts"]}


def test_the_base_contract_lists_every_module_but_the_wings():
    children = {info.name for info in pkgutil.iter_modules(facekit.__path__)}
    listed = {name.split(".", 1)[1] for name in contracts()["the base imports neither wing"]["source_modules"]}
    assert WINGS <= children
    assert listed == children - WINGS, "add the new facekit module to the base contract in pyproject.toml"


def test_the_wings_are_declared_independent_and_the_runtime_tensorflow_free():
    named = contracts()
    assert set(named["the wings are independent"]["modules"]) == {f"facekit.{wing}" for wing in WINGS}
    assert named["the runtime never imports TensorFlow or Keras"]["forbidden_modules"] == ["tensorflow", "keras"]
    assert set(named["the baselines' packages stay out of the product"]["forbidden_modules"]) == {"mtcnn", "mediapipe"}
    assert "facekit" in named["no import cycles"]["ancestors"]


def test_input_threads_follow_the_machine(monkeypatch):
    import tensorflow as tf

    from facekit.alignment.data import input_threads

    assert input_threads(3) == 3 and input_threads(0) == 0  # a configured value wins
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert input_threads(None) == 1  # CPU only, 2 cores: a private pool of one thread
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert input_threads(None) == 0  # many cores: TensorFlow's shared pool
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert input_threads(None) == 0  # a GPU to feed


def readme_tree() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Where things are", 1)[1].split("```")[1]


def test_the_readme_tree_names_every_library_module_and_only_files_that_exist():
    tree = readme_tree()
    named_files = set(re.findall(r"\b\w+\.(?:py|ipynb)\b", tree))
    named_folders = set(re.findall(r"\b(\w+)/", tree))
    folders = ("facekit", "models", "tfrecords_tools", "training", "freeze", "benchmarks", "notebooks", "tests")
    code = [p for top in folders for p in (ROOT / top).rglob("*") if "__pycache__" not in p.parts]
    existing_files = {p.name for p in code if p.suffix in (".py", ".ipynb")}
    assert named_files <= existing_files, f"the README tree names missing files: {named_files - existing_files}"
    library = [p for p in code if p.parts[len(ROOT.parts)] == "facekit"]
    modules = {p.name for p in library if p.suffix == ".py" and p.name != "__init__.py"}
    assert modules <= named_files, f"add to the README tree: {sorted(modules - named_files)}"
    packages = {p.name for p in library if p.is_dir()}
    assert packages <= named_folders, f"add to the README tree: {sorted(packages - named_folders)}"
