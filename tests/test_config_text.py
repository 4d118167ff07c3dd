"""``import swat_mm`` makes mmengine format a config's text once per text
(``swat_mm.utils.config_text``): the same texts as yapf's, and a changed
config is formatted again."""
import os.path as osp

from mmengine.config import Config, config

import swat_mm  # noqa: F401
from swat_mm.utils.config_text import remembering

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'seg', 'stvit-small_upernet_ade20k.py')


def test_installed_at_import_and_answers_as_yapf():
    remembered = config.FormatCode
    assert remembered.swat_mm_remembering
    cfg = Config.fromfile(CONFIG)
    text = cfg.pretty_text
    try:
        config.FormatCode = remembered.__wrapped__  # yapf's own
        assert cfg.pretty_text == text
    finally:
        config.FormatCode = remembered


def test_same_text_formatted_once_and_a_change_seen():
    calls = []

    def fake_yapf(source, style_config=None, **kwargs):
        calls.append((source, style_config, kwargs))
        return source.upper(), True

    fmt = remembering(fake_yapf)
    style = dict(based_on_style='pep8', split=True)
    assert fmt('a = 1', style_config=style) == ('A = 1', True)
    assert fmt('a = 1', style_config=dict(style)) == ('A = 1', True)
    assert len(calls) == 1 and calls[0][1] == style  # the dict, rebuilt
    assert fmt('a = 1', style_config=style, verify=True) == ('A = 1', True)
    assert fmt('a = 2', style_config=style) == ('A = 2', True)
    assert len(calls) == 3 and calls[1][2] == {'verify': True}
    # an unhashable style is passed through, not remembered
    fmt('a = 1', style_config=dict(style, lst=[1]))
    fmt('a = 1', style_config=dict(style, lst=[1]))
    assert len(calls) == 5


def test_a_changed_config_gets_its_own_text():
    cfg = Config.fromfile(CONFIG)
    before = cfg.pretty_text
    cfg.model.decode_head.channels = 123
    after = cfg.pretty_text
    assert before != after and 'channels=123' in after.replace(' ', '')
    assert Config.fromstring(after, file_format='.py').model.decode_head \
        .channels == 123
