"""JupyterLab for the sgpo-lab notebooks: the six tracked notebooks are never saved with outputs.

Launch from the repository root with this folder as the config dir (the teacher's guide, notebooks/README.md):

    JUPYTER_CONFIG_DIR=.jupyter .venv/bin/jupyter lab notebooks/

Saving (by hand or by autosave) one of ``notebooks/NN_*.ipynb`` then writes its cells without outputs, execution
counts or widget state, so the checkout stays clean (tests/test_notebooks.py checks the tracked files) while the
open notebook keeps its outputs on screen. A copy saved elsewhere (File > Save Notebook As..., e.g.
``notebooks/mine/01_quickstart.ipynb``) keeps its outputs: that is the student's own copy. Autosave itself is also
off in this configuration (``lab/user-settings``), so nothing is written until you save.
"""

import re
from pathlib import Path

TRACKED = Path(__file__).resolve().parents[1] / "notebooks"
TRACKED_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")


def is_tracked(path: Path) -> bool:
    """Whether ``path`` is one of the repository's own notebooks (``notebooks/NN_name.ipynb``)."""
    try:
        path = path.resolve()
    except OSError:
        return False
    return path.parent == TRACKED.resolve() and bool(TRACKED_NAME.match(path.name))


def strip_outputs(model, path, contents_manager=None, **kwargs):
    """``pre_save_hook``: a tracked notebook is saved without outputs, execution counts or widget state."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    root = Path(getattr(contents_manager, "root_dir", ".") or ".")
    if not is_tracked(root / str(path).lstrip("/")):
        return
    for cell in model["content"].get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    model["content"].get("metadata", {}).pop("widgets", None)


c = get_config()  # noqa: F821  (injected by Jupyter when it reads this file)
c.ContentsManager.pre_save_hook = strip_outputs  # every contents manager (jupytext's too)
