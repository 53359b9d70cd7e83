"""The walk-through notebook runs top to bottom (code cells executed in order in one namespace)."""
import json
import os
from pathlib import Path

import matplotlib

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_notebook_executes(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    namespace = {"__name__": "__notebook__"}
    for index, cell in enumerate(cells):
        exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}[code cell {index}]", "exec"), namespace)
    assert namespace["report"]["parity_ok"]
    assert namespace["points"].shape == (68, 2)
    assert os.path.getsize(tmp_path / "runs" / "notebook_senet" / "prediction.png") > 1000
