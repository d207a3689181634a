"""notebooks/tour.ipynb runs end to end on tiny settings, so that it never rots; it is
stored without outputs."""

import nbformat
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "notebooks" / "tour.ipynb"


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_tour_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("VQA_TOUR_TINY", "1")
    monkeypatch.setenv("VQA_TOUR_DIR", str(tmp_path / "tour"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "elementwise: best epoch 1" in text and "concat-attention: best epoch 1" in text
    assert "how many people are there? ->" in text and "model: trained on" in text
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 3  # two explanations and the confusion matrix
    assert (tmp_path / "tour" / "runs" / "elementwise" / "metrics.json").is_file()
