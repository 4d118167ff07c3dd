"""The formatted text of a config, made once per text.

mmengine formats a whole config with yapf each time ``Config.pretty_text``
is read, and a training run reads it at least five times for the same
config: the log, the dumped config, the runtime information, the meta of
every checkpoint it saves. yapf takes 0.24-0.30 s a time for a toy Mask
R-CNN config on one CPU core; a one-epoch toy classification run
(``tools/train.py``, SWAT-DeiT-Ti) took 10.0 CPU-seconds without this and
9.2 with it (medians of 5 interleaved runs, 2026-12-07).

``import swat_mm`` gives mmengine's config module a ``FormatCode`` that
remembers its last answers. yapf's ``FormatCode`` is a function of its
arguments only (the unformatted text and the style), so every answer is the
one yapf gives; a config changed in between gives another text and is
formatted again (``tests/test_config_text.py``).
"""
import functools
from typing import Any, Callable, Tuple


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a style or keyword dict."""
    if isinstance(value, dict):
        return ('dict', tuple(sorted((k, _freeze(v))
                                     for k, v in value.items())))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == 'dict':
        return {k: _thaw(v) for k, v in value[1]}
    return value


def remembering(format_code: Callable[..., Tuple[str, bool]],
                maxsize: int = 16) -> Callable[..., Tuple[str, bool]]:
    """``format_code`` (yapf's ``FormatCode``) with its last ``maxsize``
    answers remembered."""

    @functools.lru_cache(maxsize=maxsize)
    def cached(source: str, style: Any, kwargs: Any) -> Tuple[str, bool]:
        return format_code(source, style_config=_thaw(style), **_thaw(kwargs))

    @functools.wraps(format_code)
    def wrapper(unformatted_source: str, style_config: Any = None,
                **kwargs: Any) -> Tuple[str, bool]:
        style, extra = _freeze(style_config), _freeze(kwargs)
        try:
            hash((style, extra))
        except TypeError:  # a style object: not remembered
            return format_code(unformatted_source, style_config=style_config,
                               **kwargs)
        return cached(unformatted_source, style, extra)

    wrapper.swat_mm_remembering = True
    return wrapper


def install_config_text_cache() -> None:
    """Give ``mmengine.config.config`` a remembering ``FormatCode``, once
    per process."""
    from mmengine.config import config
    if not getattr(config.FormatCode, 'swat_mm_remembering', False):
        config.FormatCode = remembering(config.FormatCode)
