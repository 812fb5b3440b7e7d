"""notebooks/compare_runs.ipynb: committed without outputs, and it runs on real (tiny) ablation runs."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.training import REPO

NOTEBOOK = REPO / "notebooks" / "compare_runs.ipynb"


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebook_compares_the_ablation_runs(ablation_dir, monkeypatch):
    monkeypatch.setenv("MEDIVISION_RUNS", str(ablation_dir))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert "8 runs from" in text
    tables = [output.data["text/markdown"] for output in outputs if "text/markdown" in output.get("data", {})]
    assert len(tables) == 1 and tables[0].count("| cbam_ablation | model.generator.attention=") == 4
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 2  # the comparison chart and the learning curves
