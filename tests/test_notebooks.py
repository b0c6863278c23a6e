"""The tutorial notebooks: each runs end to end in fast mode, and none is stored with outputs.

Every notebook is executed with nbclient in a fresh kernel of *this* interpreter, from ``notebooks/`` (so the
notebooks' own search for the repository root is exercised), with ``SGPO_LAB_FAST=1``: fewer problems, samples and
steps, the live comparison of notebook 05 switched on with a tiny config, and the bad-input checks of the widgets
asserted inside the notebooks. A cell that raises fails the test with the cell and its traceback.
"""

import json
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
EXPECTED = ["01_quickstart", "02_token_shifts", "03_sgpo_step_by_step", "04_adaptive_weights",
            "05_compare_methods", "06_classroom_exercises"]
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 300  # seconds; the slowest fast-mode cell (a few training steps on tiny) takes well under a minute
KERNEL = "sgpo-lab-test-python"


def _ids(paths):
    return [p.stem for p in paths]


def test_the_six_notebooks_are_there():
    assert _ids(NOTEBOOKS) == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_clean(path):
    """No outputs, no execution counts, no saved widget state, no machine-specific paths in git."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have stored outputs; clear them before saving"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state; save it without"
    sources = "\n".join(c.source for c in nb.cells)
    assert "/tmp/" not in sources and "/work/" not in sources, f"{path.name} holds a machine-specific path"
    assert 'os.environ.get("SGPO_LAB_FAST", "0") == "1"' in sources, f"{path.name} has no fast-mode parameter"
    assert nb.cells[0].cell_type == "markdown" and "Learning goals" in nb.cells[0].source


@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """A kernelspec that starts *this* interpreter (the venv's), whatever other python3 kernels are installed."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec_dir = kernels / KERNEL
    spec_dir.mkdir()
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sgpo-lab tests", "language": "python"}))
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def _outputs_text(nb) -> str:
    return json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"], ensure_ascii=False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_fast_mode(path, kernel_specs, monkeypatch, tmp_path):
    monkeypatch.setenv("SGPO_LAB_FAST", "1")  # the kernel inherits this process's environment
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the runs a notebook trains land here, and pytest prunes them
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})  # cwd: notebooks/
    # nbclient mimics the Output widget by sending comm messages on the shell channel while it waits on that
    # channel for the execute reply; the wait then sometimes only returns at the timeout (jupyter/nbclient#312).
    # Without the mimic, what a widget callback prints lands in the cell's own outputs, where we check it.
    client.widget_registry = {}
    client.execute()  # raises CellExecutionError, naming the cell, on any error

    text = _outputs_text(nb)
    # Figures render offline: plotly's mimetype bundle, never a script fetched from a CDN.
    assert "cdn.plot.ly" not in text and "<script src=\\\"http" not in text
    if "guarded(" in "\n".join(c.source for c in nb.cells):
        # Text widgets answer bad input with a one-line message (the notebook asserts each one in fast mode).
        assert "⚠" in text and "Traceback" not in text, f"{path.name} printed no bad-input message"
    if path.stem == "03_sgpo_step_by_step":
        assert "Trainer.rl_step" in text, "the hand-vs-trainer comparison table is missing"
    if path.stem == "05_compare_methods":
        assert "live comparison" in text, "fast mode must run the live comparison"


def test_jupyter_config_saves_tracked_notebooks_without_outputs(tmp_path):
    """`.jupyter/jupyter_server_config.py` (JUPYTER_CONFIG_DIR=.jupyter): a save of a tracked notebook, by hand or by
    autosave, drops outputs; a student's copy elsewhere keeps them."""
    import types

    config = types.SimpleNamespace(ContentsManager=types.SimpleNamespace())
    space = {"get_config": lambda: config, "__file__": str(ROOT / ".jupyter" / "jupyter_server_config.py")}
    exec((ROOT / ".jupyter" / "jupyter_server_config.py").read_text(), space)
    hook = config.ContentsManager.pre_save_hook

    def model():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", execution_count=3, outputs=[
            nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)])])
        nb.metadata["widgets"] = {"state": {}}
        return {"type": "notebook", "content": json.loads(nbformat.writes(nb))}

    manager = types.SimpleNamespace(root_dir=str(ROOT))
    tracked = model()
    hook(tracked, "notebooks/01_quickstart.ipynb", manager)
    cell = tracked["content"]["cells"][0]
    assert cell["outputs"] == [] and cell["execution_count"] is None and "widgets" not in tracked["content"]["metadata"]
    copy = model()
    hook(copy, "notebooks/mine/01_quickstart.ipynb", manager)
    assert copy["content"]["cells"][0]["outputs"]  # the student's own copy keeps its outputs
    settings = ROOT / ".jupyter/lab/user-settings/@jupyterlab/docmanager-extension/plugin.jupyterlab-settings"
    assert '"autosave": false' in settings.read_text()
