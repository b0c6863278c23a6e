"""``sgpo_lab.trl``: SGPO on TRL's GRPOTrainer (``SGPOConfig``, ``SGPOTrainer``, ``train``), in ``sgpo_lab.trl_engine``.

Needs the extra: ``pip install -e ".[trl]"`` (TRL 1.16). Importing it without TRL raises one line saying so.
"""

if __name__ != "sgpo_lab.trl":
    # Imported as the top-level ``trl`` because sgpo_lab/ itself is on sys.path (``python sgpo_lab/x.py``): hand the
    # name back to the real TRL package instead of shadowing it.
    import importlib
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    del sys.modules[__name__]
    sys.modules[__name__] = importlib.import_module(__name__)
else:
    from sgpo_lab.trl_engine import (
        ENGINES,
        INSTALL,
        TRL_VERSION,
        EngineError,
        SGPOConfig,
        SGPOTrainer,
        TRLMissingError,
        bench_engines,
        build_trainer,
        check_supported,
        check_trl_version,
        load_config_file,
        problem_dataset,
        train,
        trl_section,
    )

    __all__ = ["ENGINES", "INSTALL", "TRL_VERSION", "EngineError", "SGPOConfig", "SGPOTrainer", "TRLMissingError",
               "bench_engines", "build_trainer", "check_supported", "check_trl_version", "load_config_file",
               "problem_dataset", "train", "trl_section"]
