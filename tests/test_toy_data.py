"""swat_mm.testing.toy_data: deterministic bytes, and the real OpenMMLab
dataset classes read what it writes (mmpretrain ImageNet / CustomDataset,
mmdet CocoDataset, mmseg ADE20KDataset), as the toy configs' dataset types
(swat_mm.testing.toy_datasets) do with the generator's classes."""
import glob
import importlib
import json
import os
import os.path as osp
from typing import Dict

import numpy as np
import pytest

from swat_mm.testing import toy_data
from swat_mm.testing.toy_data import (ADE_CLASSES, COCO_CLASSES,
                                      IMAGENET_CLASSES, make_toy_data,
                                      mask_to_polygons)


def _tree_bytes(folder: str) -> Dict[str, bytes]:
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, folder)] = f.read()
    return out


# ---------------------------------------------------------------------------
# generator
# ---------------------------------------------------------------------------
def test_deterministic(toy_root, tmp_path):
    again = make_toy_data(str(tmp_path))
    for name in toy_data.DATASETS:
        a, b = _tree_bytes(osp.join(toy_root, name)), _tree_bytes(again[name])
        assert sorted(a) == sorted(b), name
        different = [k for k in a if a[k] != b[k]]
        assert not different, f'{name}: {different[:5]}'


def test_another_seed_differs(tmp_path):
    a = make_toy_data(str(tmp_path / 'a'), which=['imagenet'], seed=0)
    b = make_toy_data(str(tmp_path / 'b'), which=['imagenet'], seed=1)
    rel = osp.join('val', 'toy_val_00000000.JPEG')
    with open(osp.join(a['imagenet'], rel), 'rb') as fa, \
            open(osp.join(b['imagenet'], rel), 'rb') as fb:
        assert fa.read() != fb.read()


def test_complete_folders_are_kept(toy_root):
    stamp = osp.join(toy_root, 'ade20k', 'toy_data.json')
    before = os.stat(stamp).st_mtime_ns
    paths = make_toy_data(toy_root, which=['ade20k'])
    assert paths == {'ade20k': osp.join(toy_root, 'ade20k')}
    assert os.stat(stamp).st_mtime_ns == before
    # no temporary folders are left behind
    assert sorted(os.listdir(toy_root)) == sorted(toy_data.DATASETS)


def test_stale_stamp_regenerates_and_foreign_folder_raises(tmp_path):
    root = str(tmp_path)
    path = make_toy_data(root, which=['imagenet'])['imagenet']
    stamp_file = osp.join(path, 'toy_data.json')
    with open(stamp_file) as f:
        stamp = json.load(f)
    stamp['version'] = -1
    with open(stamp_file, 'w') as f:
        json.dump(stamp, f)
    make_toy_data(root, which=['imagenet'])
    with open(stamp_file) as f:
        assert json.load(f)['version'] == toy_data.TOY_DATA_VERSION
    os.makedirs(osp.join(root, 'coco'))
    with pytest.raises(FileExistsError):
        make_toy_data(root, which=['coco'])
    with pytest.raises(ValueError):
        make_toy_data(root, which=['cityscapes'])


def test_more_imagenet_training_images(toy_root, tmp_path):
    """imagenet_train_per_class: a superset of the default training set with
    the same val split; the stamp's size decides whether a folder is kept."""
    root = str(tmp_path)
    path = make_toy_data(root, which=['imagenet'],
                         imagenet_train_per_class=42)['imagenet']
    with open(osp.join(path, 'meta', 'train.txt')) as f:
        lines = f.read().split('\n')[:-1]
    assert len(lines) == 42 * len(IMAGENET_CLASSES)
    assert sorted(int(line.split()[1]) for line in lines) == \
        sorted(list(range(len(IMAGENET_CLASSES))) * 42)
    with open(osp.join(path, 'toy_data.json')) as f:
        assert json.load(f)['counts'] == dict(
            train=42 * len(IMAGENET_CLASSES), val=10 * len(IMAGENET_CLASSES),
            classes=len(IMAGENET_CLASSES))
    default = _tree_bytes(osp.join(toy_root, 'imagenet'))
    more = _tree_bytes(path)
    shared = [k for k in default if k != 'toy_data.json'
              and not k.startswith('meta')]
    assert set(shared) < set(more)
    assert [k for k in shared if default[k] != more[k]] == []
    assert more['meta/val.txt'] == default['meta/val.txt']
    # the same size is kept, another one regenerates
    stamp = osp.join(path, 'toy_data.json')
    before = os.stat(stamp).st_mtime_ns
    make_toy_data(root, which=['imagenet'], imagenet_train_per_class=42)
    assert os.stat(stamp).st_mtime_ns == before
    make_toy_data(root, which=['imagenet'])
    assert _tree_bytes(path) == default
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match='imagenet_train_per_class'):
            make_toy_data(root, which=['imagenet'],
                          imagenet_train_per_class=bad)


def test_mask_to_polygons():
    m = np.zeros((8, 8), bool)
    m[1:4, 1:4] = True
    polys, hole = mask_to_polygons(m)
    assert not hole
    assert polys == [[1.0, 1.0, 4.0, 1.0, 4.0, 4.0, 1.0, 4.0]]
    # pixels touching only at a corner are separate pieces
    d = np.zeros((4, 4), bool)
    d[0, 0] = d[1, 1] = True
    polys, hole = mask_to_polygons(d)
    assert len(polys) == 2 and not hole
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[3, 3] = False
    assert mask_to_polygons(ring)[1]


# ---------------------------------------------------------------------------
# mmpretrain
# ---------------------------------------------------------------------------
def test_imagenet_with_mmpretrain(toy_root):
    pytest.importorskip('mmpretrain')
    from mmengine.registry import init_default_scope
    from mmpretrain.datasets import CustomDataset, ImageNet
    init_default_scope('mmpretrain')
    root = osp.join(toy_root, 'imagenet')
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='RandomResizedCrop', scale=56),
                dict(type='PackInputs')]
    counts = {'train': 40, 'val': 10}
    for split, per_class in counts.items():
        ds = ImageNet(data_root=root, split=split, pipeline=pipeline,
                      metainfo=dict(classes=IMAGENET_CLASSES))
        assert ds.CLASSES == IMAGENET_CLASSES
        labels = ds.get_gt_labels()
        assert len(ds) == per_class * len(IMAGENET_CLASSES)
        assert np.bincount(labels).tolist() == [per_class] * len(IMAGENET_CLASSES)
        sample = ds[0]
        assert tuple(sample['inputs'].shape) == (3, 56, 56)
        assert 0 <= int(sample['data_samples'].gt_label) < len(IMAGENET_CLASSES)
    # the ann file and the folder order agree on the label of every image
    scanned = CustomDataset(data_root=root, data_prefix='train')
    assert tuple(scanned.CLASSES) == IMAGENET_CLASSES
    listed = CustomDataset(data_root=root, data_prefix='train',
                           ann_file='meta/train.txt', classes=IMAGENET_CLASSES)
    by_path = {d['img_path']: d['gt_label'] for d in listed.data_list}
    assert all(by_path[d['img_path']] == d['gt_label'] for d in scanned.data_list)
    for d in listed.data_list:
        assert osp.basename(osp.dirname(d['img_path'])) == \
            IMAGENET_CLASSES[d['gt_label']]


# ---------------------------------------------------------------------------
# mmdet
# ---------------------------------------------------------------------------
def test_coco_with_mmdet(toy_root):
    pytest.importorskip('mmdet')
    from mmengine.registry import init_default_scope
    from mmdet.datasets import CocoDataset
    from pycocotools import mask as mask_utils
    init_default_scope('mmdet')
    root = osp.join(toy_root, 'coco')
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='Resize', scale=(160, 160), keep_ratio=True),
                dict(type='PackDetInputs')]
    for split, n in (('train', 120), ('val', 30)):
        ds = CocoDataset(data_root=root,
                         ann_file=f'annotations/instances_{split}2017.json',
                         data_prefix=dict(img=f'{split}2017/'),
                         metainfo=dict(classes=COCO_CLASSES), pipeline=pipeline)
        assert len(ds) == n
        assert ds.metainfo['classes'] == COCO_CLASSES
        sample = ds[0]
        inst = sample['data_samples'].gt_instances
        assert len(inst) >= 2
        assert inst.masks.masks.shape[1:] == (160, 160)
        assert int(inst.labels.max()) < len(COCO_CLASSES)

        with open(osp.join(root, 'annotations', f'instances_{split}2017.json')) as f:
            coco = json.load(f)
        anns = coco['annotations']
        assert {c['name'] for c in coco['categories']} == set(COCO_CLASSES)
        assert {a['category_id'] for a in anns} == {1, 2, 3, 4}
        for a in anns:
            assert a['iscrowd'] == 0 and len(a['segmentation']) >= 1
            rles = mask_utils.frPyObjects(a['segmentation'], 128, 128)
            m = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
            ys, xs = np.nonzero(m)
            # the polygons rasterise to exactly the annotated pixels
            assert m.sum() == a['area']
            assert a['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                 ys.max() - ys.min() + 1]
        # sizes span COCO's small and medium ranges
        areas = np.array([a['area'] for a in anns])
        assert (areas < 32 ** 2).sum() > 10 and (areas >= 32 ** 2).sum() > 3
        # objects overlap: some earlier objects are partly hidden
        by_img = {}
        for a in anns:
            by_img.setdefault(a['image_id'], []).append(a)
        overlapping = 0
        for group in by_img.values():
            boxes = np.array([g['bbox'] for g in group])
            x2, y2 = boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]
            for i in range(len(group)):
                for j in range(i + 1, len(group)):
                    if min(x2[i], x2[j]) > max(boxes[i, 0], boxes[j, 0]) and \
                            min(y2[i], y2[j]) > max(boxes[i, 1], boxes[j, 1]):
                        overlapping += 1
        assert overlapping > n // 5


# ---------------------------------------------------------------------------
# mmseg
# ---------------------------------------------------------------------------
def test_ade20k_with_mmseg(toy_root):
    pytest.importorskip('mmseg')
    from mmengine.registry import init_default_scope
    from mmseg.datasets import ADE20KDataset
    init_default_scope('mmseg')
    root = osp.join(toy_root, 'ade20k')
    names = ADE20KDataset.METAINFO['classes']
    for name, index, value in ADE_CLASSES:
        assert names[index].strip() == name and value == index + 1
    expected = {index for _, index, _ in ADE_CLASSES}
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', reduce_zero_label=True),
                dict(type='PackSegInputs')]
    for split, folder, n in (('train', 'training', 160),
                             ('val', 'validation', 32)):
        ds = ADE20KDataset(
            data_root=root, pipeline=pipeline,
            data_prefix=dict(img_path=f'images/{folder}',
                             seg_map_path=f'annotations/{folder}'))
        assert len(ds) == n
        sample = ds[0]
        assert tuple(sample['inputs'].shape) == (3, 128, 128)
        seen, ignored = set(), 0
        for i in range(n):
            seg = ds[i]['data_samples'].gt_sem_seg.data.numpy()
            values = set(np.unique(seg).tolist())
            assert values <= expected | {255}
            seen |= values
            ignored += int((seg == 255).sum())
        if split == 'val':
            # every class is in the val set, so IoUMetric averages over all
            assert seen - {255} == expected
        assert ignored > 0  # reduce_zero_label: "other" pixels are ignored
    # the raw PNGs hold ADE values: 0 ("other") and the classes' index + 1
    from PIL import Image
    values = set()
    folder = osp.join(root, 'annotations', 'validation')
    for name in sorted(os.listdir(folder)):
        values |= set(np.unique(np.asarray(Image.open(osp.join(folder, name)))).tolist())
    assert values == {0} | {v for _, _, v in ADE_CLASSES}


# ---------------------------------------------------------------------------
# the toy configs
# ---------------------------------------------------------------------------
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'toy', '*.py')))
#: default scope -> the dataset type its toy configs use, and its classes
#: (None: the type's own, ADE20K's 150)
TOY_TYPES = {'mmpretrain': ('ToyImageNet', IMAGENET_CLASSES),
             'mmdet': ('ToyCocoDataset', COCO_CLASSES),
             'mmseg': ('ADE20KDataset', None)}


def _num_classes(node) -> list:
    """Every ``num_classes`` value in a (nested) config node."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == 'num_classes'] + [
            n for k, v in node.items() if k != 'num_classes'
            for n in _num_classes(v)]
    if isinstance(node, (list, tuple)):
        return [n for v in node for n in _num_classes(v)]
    return []


@pytest.mark.parametrize('path', TOY_CONFIGS, ids=osp.basename)
def test_toy_configs_take_the_generators_classes(path, toy_root, monkeypatch):
    """Each toy config's datasets, built through its toolbox's registry, are
    the toy types, whose classes are the generator's; every ``num_classes``
    of its model, data preprocessor and pipelines is their number."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    monkeypatch.setenv('SWAT_MM_TOY_DATA', toy_root)
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    registry = importlib.import_module(
        f'{cfg.default_scope}.registry').DATASETS
    type_name, classes = TOY_TYPES[cfg.default_scope]
    counts = _num_classes(cfg.model) + _num_classes(
        cfg.get('data_preprocessor'))
    for split in ('train', 'val', 'test'):
        ds_cfg = cfg[f'{split}_dataloader'].dataset
        counts += _num_classes(ds_cfg.pipeline)
        dataset = registry.build(dict(ds_cfg, pipeline=[], lazy_init=True))
        assert type(dataset).__name__ == type_name
        if classes is not None:
            assert dataset.metainfo['classes'] == classes
        assert set(counts) == {len(dataset.metainfo['classes'])}
