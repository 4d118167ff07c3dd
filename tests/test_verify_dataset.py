"""tools/misc/verify_dataset.py on the real toy datasets.

The toy configs' datasets (``swat_mm.ToyImageNet`` and
``swat_mm.ToyCocoDataset``, the toolboxes' ImageNet and CocoDataset with the
toy classes, and mmseg's ADE20KDataset) read the toy data of
``swat_mm.testing.toy_data`` (the session's ``toy_root``); faults are
injected into a copy under ``tmp_path`` and the tool must name exactly the
faulty file and the reason. The checks run in 2 worker processes; one run
goes through the command line.
"""
import importlib.util
import json
import os
import os.path as osp
import shutil
import sys
from pathlib import Path
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import pytest
from PIL import Image

from tests.forked_tools import run_python

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / 'tools' / 'misc' / 'verify_dataset.py'
CONFIGS = {
    'imagenet': 'configs/toy/stvit-small_toy-in1k.py',
    'coco': 'configs/toy/mask-rcnn_stvit-small_toy-coco.py',
    'ade20k': 'configs/toy/stvit-small_upernet_toy-ade20k.py',
}
#: samples of the clean toy data per split
COUNTS = {'imagenet': (200, 50), 'coco': (120, 30), 'ade20k': (160, 32)}
NPROC = 2

Problem = Tuple[str, str]


@pytest.fixture(scope='module')
def vd():
    """The tool, imported by path (it is a script, not a package module);
    registered in ``sys.modules`` so the worker processes find its
    functions."""
    spec = importlib.util.spec_from_file_location('verify_dataset', TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules['verify_dataset'] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop('verify_dataset', None)


def root_options(root: str, splits: Sequence[str]) -> Dict[str, str]:
    """--cfg-options that point the toy config's splits at ``root``."""
    return {f'{s}_dataloader.dataset.data_root': root for s in splits}


def run_verify(vd, name: str, root: str,
               splits: Sequence[str] = ('val', )) -> dict:
    cfg = vd.ru.load_config(str(REPO / CONFIGS[name]),
                            root_options(root, splits))
    return vd.verify(cfg, splits, NPROC)


@pytest.fixture
def copy_of(toy_root, tmp_path) -> Callable[[str], str]:
    def copy(name: str) -> str:
        dst = str(tmp_path / name)
        shutil.copytree(osp.join(toy_root, name), dst)
        return dst
    return copy


# ---------------------------------------------------------------------------
# clean data
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('name', ['imagenet', 'coco', 'ade20k'])
def test_clean_toy_data_passes(vd, toy_root, name, capsys):
    root = osp.join(toy_root, name)
    opts = []
    for key, value in root_options(root, ('train', 'val')).items():
        opts.append(f'{key}={value}')
    rc = vd.main([str(REPO / CONFIGS[name]), '--num-processes', str(NPROC),
                  '--cfg-options', *opts])
    out = capsys.readouterr().out
    n_train, n_val = COUNTS[name]
    assert rc == 0
    lines = out.splitlines()
    assert lines[-2:] == [f'train: OK: {n_train} samples',
                          f'val: OK: {n_val} samples']
    assert 'bad files' not in out


# ---------------------------------------------------------------------------
# injected faults
# ---------------------------------------------------------------------------


def truncate(path: str) -> None:
    open(path, 'wb').close()


def test_cls_faults(vd, copy_of):
    """A zero-byte image and a label outside the 5 classes."""
    root = copy_of('imagenet')
    empty = osp.join(root, 'val', 'toy_val_00000007.JPEG')
    truncate(empty)
    ann = osp.join(root, 'meta', 'val.txt')
    with open(ann) as f:
        lines = f.read().splitlines()
    name = lines[3].split()[0]
    lines[3] = f'{name} 7'
    with open(ann, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    assert run_verify(vd, 'imagenet', root) == {'val': (50, [
        (osp.join(root, 'val', name),
         f'label 7 in {ann} is outside 0..4 (5 classes)'),
        (empty, 'empty file (0 bytes)'),
    ])}


def ade_paths(root: str, index: int) -> Tuple[str, str]:
    name = f'ADE_toy_val_{index:08d}'
    return (osp.join(root, 'images', 'validation', name + '.jpg'),
            osp.join(root, 'annotations', 'validation', name + '.png'))


def _wrong_size(img: str, seg: str) -> None:
    Image.fromarray(np.ones((64, 96), np.uint8)).save(seg)


def _bad_label(img: str, seg: str) -> None:
    arr = np.array(Image.open(seg))
    assert arr.ndim == 2 and arr.max() < 151
    arr[10, 20] = 200
    arr[11, 20] = 151
    Image.fromarray(arr).save(seg)


def _garbage(img: str, seg: str) -> None:
    with open(seg, 'wb') as f:
        f.write(b'this is not a PNG file')


BAD_LABEL = ('invalid label values [151, 200]; valid are 0..150 and 255 '
             '(reduce_zero_label=True)')

#: fault: (inject(img, seg), expected problems(img, seg)); fault i goes to
#: validation sample 2 * i + 1
ADE_FAULTS = {
    'zero-byte image': (lambda img, seg: truncate(img),
                        lambda img, seg: [(img, 'empty file (0 bytes)')]),
    'zero-byte annotation': (
        lambda img, seg: truncate(seg),
        lambda img, seg: [(seg, 'empty file (0 bytes)')]),
    'corrupt annotation': (
        _garbage,
        lambda img, seg: [(seg, 'cannot be decoded as a label map')]),
    'deleted annotation': (
        lambda img, seg: os.remove(seg),
        lambda img, seg: [(seg, f'file does not exist (the annotation of '
                           f'{img})')]),
    'wrong size': (
        _wrong_size,
        lambda img, seg: [(seg, "size 64x96 (HxW) differs from its image's "
                           '128x128')]),
    'invalid label': (_bad_label, lambda img, seg: [(seg, BAD_LABEL)]),
}


def test_ade_faults(vd, copy_of):
    """Each fault in its own sample; one more image is deleted (reported
    first, from the folder scan; the others in sample order)."""
    root = copy_of('ade20k')
    img, seg = ade_paths(root, 30)
    os.remove(img)
    expected = [(img, f'file does not exist (its annotation {seg} does)')]
    for i, (inject, problems) in enumerate(ADE_FAULTS.values()):
        img, seg = ade_paths(root, 2 * i + 1)
        inject(img, seg)
        expected += problems(img, seg)
    assert run_verify(vd, 'ade20k', root) == {'val': (31, expected)}


def _ann(data: dict, i: int) -> Tuple[dict, str]:
    """Annotation ``i`` and the name the tool gives it."""
    ann = data['annotations'][i]
    img = next(im for im in data['images'] if im['id'] == ann['image_id'])
    return ann, f'annotation {ann["id"]} (image {img["file_name"]})'


def test_coco_faults(vd, copy_of):
    """An unknown category_id, an annotation without bbox and one without
    category_id (the JSON is named), and an image whose width in the JSON
    is wrong (the image is named)."""
    root = copy_of('coco')
    ann_file = osp.join(root, 'annotations', 'instances_val2017.json')
    with open(ann_file) as f:
        data = json.load(f)
    ann, unknown = _ann(data, 4)
    ann['category_id'] = 99
    ann, no_bbox = _ann(data, 9)
    del ann['bbox']
    ann, no_category = _ann(data, 17)
    del ann['category_id']
    img = data['images'][6]
    img['width'] += 16  # wider: every bbox stays inside
    with open(ann_file, 'w') as f:
        json.dump(data, f)
    assert run_verify(vd, 'coco', root) == {'val': (30, [
        (ann_file, f'{unknown}: category_id 99 is not among the categories '
         '[1, 2, 3, 4]'),
        (ann_file, f"{no_bbox} has no 'bbox'"),
        (ann_file, f"{no_category} has no 'category_id'"),
        (osp.join(root, 'val2017', img['file_name']),
         'decoded size 128x128 (HxW) differs from height x width 128x144 in '
         f'{ann_file}'),
    ])}


def test_wrapped_datasets(vd, toy_root, tmp_path):
    """Wrappers are looked through; each wrapped dataset is checked."""
    cfg = vd.ru.load_config(str(REPO / CONFIGS['imagenet']))
    inner = cfg.val_dataloader.dataset
    inner.data_root = osp.join(toy_root, 'imagenet')
    gone = str(tmp_path / 'gone')
    cfg.val_dataloader.dataset = dict(
        type='RepeatDataset', times=3,
        dataset=dict(type='ConcatDataset',
                     datasets=[inner, dict(inner, data_root=gone)]))
    with pytest.raises(vd.VerifyError) as info:
        vd.verify(cfg, ['val'], NPROC)
    assert str(info.value).startswith(
        f"data root '{gone}' (val_dataloader.dataset.dataset.datasets.1."
        'data_root) does not exist; ')
    cfg.val_dataloader.dataset.dataset.datasets[1].data_root = \
        inner.data_root
    assert vd.verify(cfg, ['val'], NPROC) == {'val': (100, [])}


def test_coco_json_checks(vd):
    """The JSON checks on their own: ids, bbox, polygons, RLE, classes."""
    data = {
        'categories': [{'id': 1, 'name': 'disc'}, {'id': 2, 'name': 'cat'}],
        'images': [
            {'id': 1, 'file_name': 'a.jpg', 'height': 10, 'width': 20},
            {'id': 1, 'file_name': 'b.jpg', 'height': 10, 'width': 20},
            {'id': 2, 'file_name': 'c.jpg', 'height': 10},
        ],
        'annotations': [
            {'id': 1, 'image_id': 1, 'category_id': 1,
             'bbox': [0, 0, 20, 10], 'segmentation': [[0, 0, 5, 0, 5, 5]]},
            {'id': 2, 'image_id': 1, 'category_id': 1,
             'bbox': [0, 0, 0, 5], 'segmentation': [[0, 0, 5, 0, 5]]},
            {'id': 3, 'image_id': 1, 'category_id': 1,
             'bbox': [15, 0, 8, 5],
             'segmentation': {'size': [20, 10], 'counts': 'abc'}},
            {'id': 4, 'image_id': 1, 'category_id': 2,
             'bbox': [0, 0, 1, float('nan')]},
            {'id': 5, 'image_id': 7, 'category_id': 1, 'bbox': [0, 0, 1, 1]},
            {'id': 5, 'image_id': 1, 'category_id': 1, 'bbox': [0, 0, 1, 1],
             'segmentation': {'size': [10, 20], 'counts': [100, 99]}},
        ],
    }
    n, problems, tasks = vd.check_coco_json(
        data, '/d/ann.json', '/d/img', classes=('disc', 'square'),
        needs_masks=True)
    a = 'annotation {} (image a.jpg)'
    assert n == 3
    assert [p for p, _ in problems] == ['/d/ann.json'] * len(problems)
    assert [r for _, r in problems] == [
        "class 'square' of the config is not among the categories",
        'image id 1 of b.jpg is used by a.jpg already',
        "image #2 (c.jpg) has no 'width'",
        a.format(2) + ': bbox [0, 0, 0, 5] has w or h <= 0',
        a.format(2) + ': segmentation polygon 0 is not an even-length list '
        'of >= 6 numbers (got 5)',
        a.format(3) + ': bbox [15, 0, 8, 5] reaches outside the 20x10 (WxH) '
        'image',
        a.format(3) + ": segmentation RLE size [20, 10] differs from the "
        "image's [height, width] [10, 20]",
        a.format(4) + ": category_id 2 ('cat') is not among the config's "
        'classes',
        a.format(4) + ': bbox [0, 0, 1, nan] is not 4 finite numbers',
        a.format(4) + " has no 'segmentation' (the pipeline loads masks)",
        'annotation 5 appears 2 times',
        'annotation 5: image_id 7 is not among the images',
        a.format(5) + ': segmentation RLE counts sum to 199, not height * '
        'width = 200',
    ]
    assert tasks == [dict(kind='image', img_path='/d/img/a.jpg',
                          size=(10, 20), size_source='/d/ann.json',
                          backend_args=None)]


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------


def test_cli_reports_bad_file_and_exit_code(copy_of):
    root = copy_of('ade20k')
    img, seg = ade_paths(root, 5)
    _bad_label(img, seg)
    opts = [f'{k}={v}' for k, v in root_options(root, ('train',
                                                       'val')).items()]
    proc = run_python(
        [TOOL, REPO / CONFIGS['ade20k'], '--num-processes', NPROC,
         '--cfg-options', *opts], cwd=REPO, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert f'  {seg}: {BAD_LABEL}' in lines
    assert lines[-2:] == ['train: OK: 160 samples',
                          'val: FAILED: 1 problem(s) in 32 samples']


def last_err_line(capsys) -> str:
    """The tool's error line (mmengine's logger may write to stderr
    too)."""
    return capsys.readouterr().err.splitlines()[-1]


def test_bad_input_to_the_tool(vd, toy_root, tmp_path, capsys):
    config = str(REPO / CONFIGS['imagenet'])
    assert vd.main([str(tmp_path / 'nope.py')]) == 2
    assert last_err_line(capsys) == (
        f"error: config file '{tmp_path / 'nope.py'}' does not exist")

    missing = str(tmp_path / 'no_data')
    assert vd.main([config, '--cfg-options',
                    f'train_dataloader.dataset.data_root={missing}']) == 2
    assert last_err_line(capsys) == (
        f"error: data root '{missing}' (train_dataloader.dataset.data_root) "
        'does not exist; generate the toy data with `python '
        'tools/make_toy_data.py` ($SWAT_MM_TOY_DATA picks its folder, '
        'default data/toy) or set the data root, e.g. --cfg-options '
        'train_dataloader.dataset.data_root=PATH')

    root = osp.join(toy_root, 'imagenet')
    assert vd.main([config, '--split', 'test', '--cfg-options',
                    'test_dataloader=None',
                    f'val_dataloader.dataset.data_root={root}']) == 2
    assert last_err_line(capsys) == (
        'error: the config has no test_dataloader.dataset (it has the '
        "splits ['train', 'val'])")
