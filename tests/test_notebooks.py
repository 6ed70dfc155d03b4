"""The notebooks of ``notebooks/`` run, top to bottom, at a small scale.

Each code cell is executed in order in one namespace (what "Run all" does in Jupyter, without needing a
Jupyter kernel), with ``JAXCOLLAPSE_NOTEBOOK_SCALE`` shrinking the study and the figure files written to a
temporary directory. Outputs must be stripped from the committed notebooks.
"""

import json
import pathlib

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCALE = "0.003"


def test_there_is_a_notebook_per_figure():
    from jaxcollapse.studies.paper import FIGURES

    names = {p.stem.split("-")[0] for p in NOTEBOOKS}
    assert {f for f in FIGURES if f.startswith("fig")} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert cells and all(not c["outputs"] and c["execution_count"] is None for c in cells), \
        f"{path.name}: outputs must be stripped"
    assert any(c["cell_type"] == "markdown" and "What it shows" in "".join(c["source"]) for c in nb["cells"])
    monkeypatch.setenv("JAXCOLLAPSE_NOTEBOOK_SCALE", SCALE)
    monkeypatch.setenv("JAXCOLLAPSE_NOTEBOOK_OUT", str(tmp_path))
    namespace = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        exec(compile("".join(cell["source"]), f"{path.name}[code cell {i}]", "exec"), namespace)
    name = path.stem.split("-")[0]
    for suffix in ("png", "csv", "json"):
        assert (tmp_path / f"{name}.{suffix}").stat().st_size > 0
    plt.close("all")
