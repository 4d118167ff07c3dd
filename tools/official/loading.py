"""Loading the official code from a clone, and our weights into it.

Every builder of this package goes through these two functions, so that a
clone is imported one way (by path, nothing of it copied into this
repository) and a weight mismatch is refused one way.
"""
import importlib.util
import os.path as osp
import sys
from typing import Any, Callable, Dict

import torch.nn as nn

_IMPORTED: Dict[str, Any] = {}


def import_file(path: str, name: str):
    """Import a file of an official clone by path (nothing copied), once."""
    path = osp.abspath(path)
    if path in _IMPORTED:
        return _IMPORTED[path]
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: pass the root of a clone of the official '
            'repository')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # timm's register_model looks it up
    spec.loader.exec_module(module)
    _IMPORTED[path] = module
    return module


def load_matching(official: nn.Module, ours: nn.Module,
                  allowed_missing: Callable[[str], bool]) -> None:
    """Copy ``ours``'s weights into ``official`` (same key names), refusing
    anything but the listed official-only keys."""
    result = official.load_state_dict(ours.state_dict(), strict=False)
    missing = [k for k in result.missing_keys if not allowed_missing(k)]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f'{type(ours).__name__} -> official: missing {missing}, '
            f'unexpected {result.unexpected_keys}')
