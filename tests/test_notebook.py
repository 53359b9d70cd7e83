"""The notebooks run top to bottom through a real Jupyter kernel; any cell error fails the test. The detection
notebook aligns faces with the SENet the walk-through froze, so both run in one folder, walk-through first."""
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, folder: Path, check: str) -> dict:
    """Execute notebooks/NAME in folder with a last cell that prints json.dumps(check); returns what it printed."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(f"import json\nprint(json.dumps({check}))"))
    client = NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()
    return json.loads(notebook.cells[-1].outputs[-1]["text"])


@pytest.fixture(scope="module")
def notebook_folder(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("MPLBACKEND", "Agg")  # the kernel inherits it: figures render without a display
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def walkthrough(notebook_folder):
    return run_notebook("walkthrough.ipynb", notebook_folder,
                        '{"parity_ok": report["parity_ok"], "points_shape": list(points.shape)}')


def test_walkthrough_notebook_executes(walkthrough, notebook_folder):
    assert walkthrough["parity_ok"]
    assert walkthrough["points_shape"] == [68, 2]
    assert os.path.getsize(notebook_folder / "runs" / "notebook_senet" / "prediction.png") > 1000


def test_detection_notebook_executes(walkthrough, notebook_folder):
    found = run_notebook("detection.ipynb", notebook_folder,
                         '{"parity_ok": report["parity_ok"], "epochs": len(metrics["history"]["val_ap"]), '
                         '"faces": len(faces), "landmarks_shape": list(faces.landmarks_px.shape)}')
    assert found["parity_ok"] and found["epochs"] == 3
    assert found["landmarks_shape"] == [found["faces"], 68, 2]
    assert os.path.getsize(notebook_folder / "runs" / "notebook_dbface" / "pipeline.png") > 1000


def test_a_failing_cell_fails_the_run(tmp_path):
    from nbclient.exceptions import CellExecutionError

    path = tmp_path / "broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('cell 0')")]), path)
    with pytest.raises(CellExecutionError, match="cell 0"):
        NotebookClient(nbformat.read(path, as_version=4), timeout=60, kernel_name="python3").execute()
