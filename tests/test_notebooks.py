"""The notebooks of ``notebooks/`` run top to bottom in a Jupyter kernel at a small scale and draw their figures.

Each notebook is executed by nbclient in a real ``python3`` kernel whose environment points at this checkout
(``PYTHONPATH`` and the working directory), with ``JAXCOLLAPSE_NOTEBOOK_SCALE`` shrinking the study and
``JAXCOLLAPSE_NOTEBOOK_OUT`` a temporary directory. A cell that raises fails the test, and so does a cell tagged
``figure`` whose outputs hold no ``image/png``. The committed notebooks must have no outputs.

The kernels compile at XLA's optimisation level of ``jaxcollapse reproduce`` below full scale
(``quick_xla_flags``: the notebooks run the same figures, and compiling dominates a small run; a level set in
``XLA_FLAGS`` is kept). Two kernels run at a time (the notebooks compile, one core each), with the session's JAX
compilation cache (``JAX_COMPILATION_CACHE_DIR``, set by ``tests/conftest.py`` unless the caller keeps one),
shared with the other tests and the processes they start.
"""

import concurrent.futures
import os
import pathlib
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCALE = "0.003"
#: Seconds a cell may take.
CELL_TIMEOUT = 300
WORKERS = 2


def test_there_is_a_notebook_per_figure():
    from jaxcollapse.studies.paper import FIGURES

    names = {p.stem.split("-")[0] for p in NOTEBOOKS}
    assert {f for f in FIGURES if f.startswith("fig")} <= names


def _kernel_env(out: pathlib.Path, cache: pathlib.Path) -> dict:
    from jaxcollapse.cli.reproduce import quick_xla_flags

    env = dict(os.environ)
    env["XLA_FLAGS"] = quick_xla_flags(env.get("XLA_FLAGS", ""))
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "JAXCOLLAPSE_NOTEBOOK_SCALE": SCALE, "JAXCOLLAPSE_NOTEBOOK_OUT": str(out), "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    })
    env.pop("MPLBACKEND", None)                       # the kernel's own (inline) backend
    return env


def _execute(path: pathlib.Path, out: pathlib.Path, cache: pathlib.Path):
    """Run one notebook; returns (notebook with outputs, error or None, seconds)."""
    nb = nbformat.read(path, as_version=4)
    out.mkdir(parents=True, exist_ok=True)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, allow_errors=False,
                                     resources={"metadata": {"path": str(ROOT)}})
    t0 = time.perf_counter()
    error = None
    try:
        client.execute(env=_kernel_env(out, cache), cwd=str(ROOT))
    except Exception as e:                            # CellExecutionError, DeadKernelError, CellTimeoutError
        error = e
    return nb, error, time.perf_counter() - t0


@pytest.fixture(scope="session")
def executed(request, tmp_path_factory):
    """Every notebook selected in this session, run two at a time: ``{path: (nb, error, seconds)}``."""
    wanted = []
    for item in request.session.items:
        spec = getattr(item, "callspec", None)
        if spec is not None and item.originalname == "test_notebook_runs":
            wanted.append(spec.params["path"])
    base = tmp_path_factory.mktemp("notebooks")
    cache = pathlib.Path(os.environ.get("JAX_COMPILATION_CACHE_DIR") or base / "jax-compilation-cache")
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = {p: pool.submit(_execute, p, base / p.stem, cache) for p in wanted}
        return {p: f.result() for p, f in futures.items()}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert cells and all(not c.outputs and c.execution_count is None for c in cells), \
        f"{path.name}: outputs must be stripped"
    assert any(c.cell_type == "markdown" and "What it shows" in c.source for c in nb.cells)
    assert any("figure" in c.metadata.get("tags", []) for c in cells), f"{path.name}: no cell tagged 'figure'"
    assert not any("imread" in c.source or "display.Image" in c.source for c in cells), \
        f"{path.name}: figures are drawn, not read back from PNG files"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, executed):
    nb, error, seconds = executed[path]
    assert error is None, f"{path.name} failed after {seconds:.0f} s:\n{error}"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.get("output_type") == "error"], f"{path.name}, cell {i}"
        if "figure" in cell.metadata.get("tags", []):
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert len(images) == 1, f"{path.name}, cell {i} (tagged figure) shows {len(images)} PNG images:\n" \
                                     f"{cell.source}"
            assert len(images[0]["data"]["image/png"]) > 5000, f"{path.name}, cell {i}: a near-empty image"
