"""imagededup, importable where torchvision is not: `imagededup.methods` imports its CNN, which
imports torchvision (PyPI's needs CUDA libraries; it cannot sit beside a CPU torch here). Where
torchvision is missing, the CNN modules are stubbed before import; the hashing code never uses
them (bench/quality.py says the CNN was not run and why)."""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
import warnings


def prepare() -> None:
    """Call before importing anything from imagededup."""
    if importlib.util.find_spec("torchvision") is None:
        sys.modules.setdefault("imagededup.methods.cnn", types.SimpleNamespace(CNN=None))
        sys.modules.setdefault("imagededup.utils.models", types.SimpleNamespace(CustomModel=None))
    logging.getLogger("imagededup").setLevel(logging.WARNING)
    for name in ("imagededup.methods.hashing", "imagededup.handlers.search.retrieval"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Parameter num_enc_workers has no effect")


def phash_class():
    """imagededup's PHash class."""
    prepare()
    from imagededup.methods import PHash

    return PHash
