"""Check every sample of a config's datasets before a long run.

    python tools/misc/verify_dataset.py CONFIG [--split train val test]
        [--num-processes N] [--cfg-options k=v ...]

The datasets are the ``dataset`` entries of the config's
``<split>_dataloader`` (default: train and val; dataset wrappers such as
``ConcatDataset`` / ``RepeatDataset`` are looked through), built by the
config's own toolbox (``default_scope``). What is checked:

* mmpretrain (e.g. ``ImageNet`` / ``CustomDataset``): every image file exists
  and decodes (cv2), every label lies within the dataset's classes.
* mmdet ``CocoDataset`` (and subclasses): the annotation JSON is parsed here,
  not by mmdet (which silently drops or crashes on bad entries): image ids
  unique, annotation ids unique, every annotation's ``image_id`` known, its
  ``category_id`` among ``categories`` (and among the dataset's classes when
  the config's ``metainfo`` or a subclass's own ``METAINFO``, such as
  ``swat_mm.ToyCocoDataset``'s, restricts them), its ``bbox`` four finite
  numbers with ``w, h > 0`` inside the image (1 pixel of slack), its
  ``segmentation`` polygons (even-length lists of >= 6 numbers) or RLE of
  the image's size; every image exists, decodes and has the JSON's
  ``height`` / ``width``.
* mmseg (``ADE20KDataset`` / ``BaseSegDataset``): every image has its
  annotation map and every annotation map its image (when the dataset scans
  folders rather than reading an ``ann_file``), both decode, the map is
  single-channel, has the image's size and holds valid labels only: with
  ``reduce_zero_label`` the raw values 0..num_classes and 255, without it
  0..num_classes-1 and ``ignore_index``.

Every bad file is listed as ``path: reason``; the exit status is 1 when any
sample is bad, 2 when the tool's input is (no config, no such split, a data
root that does not exist) and 0 with ``<split>: OK: N samples`` otherwise.
The per-file checks run in ``--num-processes`` worker processes.
"""
import argparse
import importlib
import json
import math
import os
import os.path as osp
import sys
from collections import Counter
from copy import deepcopy
from typing import Any, Dict, List, Optional, Sequence, Tuple

# Run from a checkout without installing: the repository root first.
sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import mmcv  # noqa: E402
from mmengine import fileio  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.utils import (track_parallel_progress,  # noqa: E402
                            track_progress)
import numpy as np  # noqa: E402

import swat_mm  # noqa: E402,F401  (registers swat_mm's modules)
from swat_mm.engine import runner_utils as ru  # noqa: E402

#: One bad file: (path, reason).
Problem = Tuple[str, str]
#: What :func:`verify` returns per split: (number of samples, problems).
SplitResult = Tuple[int, List[Problem]]

SPLITS = ('train', 'val', 'test')
#: How far (pixels) a COCO bbox may reach past the image border; COCO's own
#: float boxes overshoot by rounding now and then, and mmdet clips them.
BBOX_SLACK = 1.0
#: How many bad label values one reason lists.
MAX_LISTED_VALUES = 10

DATA_ROOT_HINT = (
    'generate the toy data with `python tools/make_toy_data.py` '
    '($SWAT_MM_TOY_DATA picks its folder, default data/toy) or set the '
    'data root, e.g. --cfg-options {key}=PATH')


class VerifyError(Exception):
    """Bad input to the tool itself (not a bad sample)."""


# ---------------------------------------------------------------------------
# per-file checks (run in the worker processes)
# ---------------------------------------------------------------------------


def norm_path(path: str) -> str:
    """``path`` normalised, unless it is a URI (``s3://...``)."""
    return path if '://' in path else osp.normpath(path)


def read_file(path: str,
              backend_args: Optional[dict] = None
              ) -> Tuple[Optional[bytes], Optional[str]]:
    """The bytes of ``path``, or ``(None, reason)`` when there are none."""
    try:
        content = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        return None, 'file does not exist'
    except Exception as e:  # a folder, no permission, a remote error
        return None, f'cannot be read ({type(e).__name__})'
    if not content:
        return None, 'empty file (0 bytes)'
    return content, None


def decode_image(path: str, backend_args: Optional[dict] = None
                 ) -> Tuple[Optional[np.ndarray], List[Problem]]:
    """Decode an image as ``LoadImageFromFile`` does (cv2, colour).

    Returns:
        ``(image, [])``, or ``(None, [(path, reason)])``.
    """
    content, reason = read_file(path, backend_args)
    if content is None:
        return None, [(norm_path(path), reason)]
    try:
        img = mmcv.imfrombytes(content, flag='color', backend='cv2')
    except Exception:
        img = None
    if img is None or img.size == 0:
        return None, [(norm_path(path), 'cannot be decoded as an image')]
    return img, []


def decode_label_map(path: str, backend_args: Optional[dict] = None
                     ) -> Tuple[Optional[np.ndarray], List[Problem]]:
    """Decode a segmentation map as mmseg's ``LoadAnnotations`` does
    (pillow, unchanged)."""
    content, reason = read_file(path, backend_args)
    if content is None:
        return None, [(norm_path(path), reason)]
    try:
        seg = mmcv.imfrombytes(content, flag='unchanged', backend='pillow')
    except Exception:
        seg = None
    if seg is None or seg.size == 0:
        return None, [(norm_path(path), 'cannot be decoded as a label map')]
    return seg, []


def valid_label_text(reduce_zero_label: bool, num_classes: int,
                     ignore_index: int) -> str:
    """The valid raw values of a label map, in words."""
    if reduce_zero_label:
        return f'0..{num_classes} and 255 (reduce_zero_label=True)'
    return (f'0..{num_classes - 1} and {ignore_index} '
            '(reduce_zero_label=False)')


def invalid_labels(seg: np.ndarray, reduce_zero_label: bool,
                   num_classes: int, ignore_index: int) -> List[int]:
    """The distinct values of ``seg`` that are no valid raw label."""
    values = np.unique(seg)
    if reduce_zero_label:
        # 0 -> ignored, k -> class k - 1, 255 stays ignored
        ok = (values <= num_classes) | (values == 255)
    else:
        ok = (values < num_classes) | (values == ignore_index)
    ok &= values >= 0
    return [int(v) for v in values[~ok]]


def check_image_task(task: Dict[str, Any]) -> List[Problem]:
    """An image decodes and, when ``task['size']`` is given, has that
    (height, width)."""
    img, problems = decode_image(task['img_path'], task.get('backend_args'))
    size = task.get('size')
    if img is not None and size is not None and img.shape[:2] != size:
        problems.append(
            (norm_path(task['img_path']),
             f'decoded size {img.shape[0]}x{img.shape[1]} (HxW) differs '
             f'from height x width {size[0]}x{size[1]} in '
             f'{task["size_source"]}'))
    return problems


def check_seg_task(task: Dict[str, Any]) -> List[Problem]:
    """An image and its label map: both decode, same size, valid labels."""
    backend_args = task.get('backend_args')
    img, problems = decode_image(task['img_path'], backend_args)
    seg_path = task['seg_path']
    if seg_path is None:
        return problems
    seg, seg_problems = decode_label_map(seg_path, backend_args)
    if seg is None:
        reason = seg_problems[0][1]
        if reason == 'file does not exist':
            reason += f' (the annotation of {norm_path(task["img_path"])})'
        return problems + [(norm_path(seg_path), reason)]
    seg_path = norm_path(seg_path)
    if seg.ndim != 2:
        return problems + [(seg_path, f'has {seg.shape[2]} channels; a label '
                            'map needs one')]
    if img is not None and seg.shape != img.shape[:2]:
        problems.append(
            (seg_path, f'size {seg.shape[0]}x{seg.shape[1]} (HxW) differs '
             f'from its image\'s {img.shape[0]}x{img.shape[1]}'))
    bad = invalid_labels(seg, task['reduce_zero_label'], task['num_classes'],
                         task['ignore_index'])
    if bad:
        listed = ', '.join(str(v) for v in bad[:MAX_LISTED_VALUES])
        more = ', ...' if len(bad) > MAX_LISTED_VALUES else ''
        valid = valid_label_text(task['reduce_zero_label'],
                                 task['num_classes'], task['ignore_index'])
        problems.append((seg_path, f'invalid label values [{listed}{more}]; '
                         f'valid are {valid}'))
    return problems


def check_task(task: Dict[str, Any]) -> List[Problem]:
    """Entry point of the worker processes: one sample's file checks."""
    if task['kind'] == 'seg':
        return check_seg_task(task)
    return check_image_task(task)


def run_tasks(tasks: List[Dict[str, Any]], nproc: int) -> List[Problem]:
    """Run :func:`check_task` on every task, in ``nproc`` processes, with a
    progress bar; the problems come back in the order of the tasks."""
    if not tasks:
        return []
    if nproc > 1:
        chunks, extra = divmod(len(tasks), nproc * 8)
        results = track_parallel_progress(
            check_task, tasks, nproc, chunksize=max(1, chunks + bool(extra)))
    else:
        results = track_progress(check_task, tasks)
    return [p for problems in results for p in problems]


# ---------------------------------------------------------------------------
# COCO annotation JSON
# ---------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_segmentation(seg: Any, height: Any, width: Any) -> Optional[str]:
    """What is wrong with a COCO ``segmentation`` entry, or None."""
    if isinstance(seg, list):
        for i, poly in enumerate(seg):
            if not isinstance(poly, list) or len(poly) < 6 \
                    or len(poly) % 2:
                n = len(poly) if isinstance(poly, list) else type(poly)
                return (f'segmentation polygon {i} is not an even-length '
                        f'list of >= 6 numbers (got {n})')
            if not all(_is_number(v) for v in poly):
                return f'segmentation polygon {i} holds a non-finite number'
        return None
    if isinstance(seg, dict):
        if 'counts' not in seg or 'size' not in seg:
            return "segmentation RLE lacks 'counts' or 'size'"
        size = list(seg['size']) if isinstance(seg['size'],
                                               (list, tuple)) else None
        if size != [height, width]:
            return (f'segmentation RLE size {seg["size"]} differs from the '
                    f'image\'s [height, width] [{height}, {width}]')
        counts = seg['counts']
        if isinstance(counts, list) and sum(counts) != height * width:
            return (f'segmentation RLE counts sum to {sum(counts)}, not '
                    f'height * width = {height * width}')
        if not isinstance(counts, (list, str, bytes)):
            return 'segmentation RLE counts are neither a list nor a string'
        return None
    return f'segmentation is a {type(seg).__name__}, not polygons or RLE'


def check_coco_json(data: Any, ann_file: str, img_prefix: str,
                    classes: Optional[Sequence[str]] = None,
                    needs_masks: bool = False,
                    test_mode: bool = False,
                    backend_args: Optional[dict] = None
                    ) -> Tuple[int, List[Problem], List[Dict[str, Any]]]:
    """Check a parsed COCO instances JSON.

    Args:
        data: the parsed JSON.
        ann_file: its path (the path of the problems found here).
        img_prefix: the folder of the images (``data_prefix['img']``).
        classes: the dataset's classes when they are restricted (by the
            config's ``metainfo`` or a subclass's ``METAINFO``).
        needs_masks: the pipeline loads masks, so every annotation needs a
            non-empty ``segmentation``.
        test_mode: a JSON without ``annotations`` is fine (test-dev).

    Returns:
        ``(number of images, problems, image tasks)``: the tasks check that
        each image decodes with the JSON's height and width.
    """
    ann_file = norm_path(ann_file)
    problems: List[Problem] = []

    def bad(reason: str) -> None:
        problems.append((ann_file, reason))

    if not isinstance(data, dict):
        bad('is not a JSON object')
        return 0, problems, []
    required = ['images', 'categories']
    if not test_mode:
        required.append('annotations')
    for key in required:
        if not isinstance(data.get(key), list):
            bad(f'has no {key!r} list')
    if problems:
        return 0, problems, []

    categories: Dict[Any, str] = {}
    for i, cat in enumerate(data['categories']):
        if not isinstance(cat, dict) or 'id' not in cat or 'name' not in cat:
            bad(f"category #{i} lacks 'id' or 'name'")
        elif cat['id'] in categories:
            bad(f'category id {cat["id"]} appears more than once')
        else:
            categories[cat['id']] = cat['name']
    if classes is not None:
        names = set(categories.values())
        for name in classes:
            if name not in names:
                bad(f'class {name!r} of the config is not among the '
                    'categories')
    cat_ids = sorted(categories, key=str)

    images: Dict[Any, dict] = {}
    tasks: List[Dict[str, Any]] = []
    for i, img in enumerate(data['images']):
        if not isinstance(img, dict):
            bad(f'image #{i} is not an object')
            continue
        missing = [k for k in ('id', 'file_name', 'height', 'width')
                   if k not in img]
        if missing:
            bad(f'image #{i} ({img.get("file_name", "no file_name")}) has '
                f'no {", ".join(repr(k) for k in missing)}')
            continue
        if img['id'] in images:
            bad(f'image id {img["id"]} of {img["file_name"]} is used by '
                f'{images[img["id"]]["file_name"]} already')
            continue
        images[img['id']] = img
        size = None
        if all(isinstance(img[k], int) and img[k] > 0
               for k in ('height', 'width')):
            size = (img['height'], img['width'])
        else:
            bad(f'image {img["id"]} ({img["file_name"]}): height '
                f'{img["height"]!r} / width {img["width"]!r} are no positive '
                'integers')
        tasks.append(dict(kind='image',
                          img_path=osp.join(img_prefix, img['file_name']),
                          size=size, size_source=ann_file,
                          backend_args=backend_args))

    ann_ids = Counter(ann.get('id') for ann in data.get('annotations', [])
                      if isinstance(ann, dict))
    reported = set()
    for i, ann in enumerate(data.get('annotations', [])):
        if not isinstance(ann, dict):
            bad(f'annotation #{i} is not an object')
            continue
        name = f'annotation {ann["id"]}' if 'id' in ann else \
            f"annotation #{i} (no 'id')"
        if 'id' in ann and ann_ids[ann['id']] > 1 \
                and ann['id'] not in reported:
            reported.add(ann['id'])
            bad(f'{name} appears {ann_ids[ann["id"]]} times')
        if 'image_id' not in ann:
            bad(f"{name} has no 'image_id'")
            continue
        img = images.get(ann['image_id'])
        if img is None:
            bad(f'{name}: image_id {ann["image_id"]} is not among the images')
            continue
        prefix = f'{name} (image {img["file_name"]})'
        if 'category_id' not in ann:
            bad(f"{prefix} has no 'category_id'")
        elif ann['category_id'] not in categories:
            bad(f'{prefix}: category_id {ann["category_id"]} is not among '
                f'the categories {cat_ids}')
        elif classes is not None \
                and categories[ann['category_id']] not in classes:
            bad(f'{prefix}: category_id {ann["category_id"]} '
                f'({categories[ann["category_id"]]!r}) is not among the '
                "config's classes")
        if 'bbox' not in ann:
            bad(f"{prefix} has no 'bbox'")
        else:
            box = ann['bbox']
            if not isinstance(box, (list, tuple)) or len(box) != 4 \
                    or not all(_is_number(v) for v in box):
                bad(f'{prefix}: bbox {box!r} is not 4 finite numbers')
            else:
                x, y, w, h = box
                height, width = img['height'], img['width']
                if w <= 0 or h <= 0:
                    bad(f'{prefix}: bbox {box} has w or h <= 0')
                elif isinstance(height, int) and isinstance(width, int) \
                        and (x < -BBOX_SLACK or y < -BBOX_SLACK
                             or x + w > width + BBOX_SLACK
                             or y + h > height + BBOX_SLACK):
                    bad(f'{prefix}: bbox {box} reaches outside the '
                        f'{width}x{height} (WxH) image')
        seg = ann.get('segmentation')
        if seg is None or (isinstance(seg, list) and not seg):
            if needs_masks:
                bad(f"{prefix} has no 'segmentation' (the pipeline loads "
                    'masks)')
        else:
            reason = _check_segmentation(seg, img['height'], img['width'])
            if reason:
                bad(f'{prefix}: {reason}')
    return len(data['images']), problems, tasks


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------


def dataset_leaves(cfg: dict,
                   key: str = 'dataset') -> List[Tuple[str, dict]]:
    """The dataset configs under ``cfg`` with their config keys, looking
    through wrappers (``datasets=[...]`` of ``ConcatDataset``,
    ``dataset=...`` of ``RepeatDataset``, ``ClassBalancedDataset``,
    ``MultiImageMixDataset``)."""
    if isinstance(cfg.get('datasets'), (list, tuple)):
        return [leaf for i, sub in enumerate(cfg['datasets'])
                for leaf in dataset_leaves(sub, f'{key}.datasets.{i}')]
    if isinstance(cfg.get('dataset'), dict):
        return dataset_leaves(cfg['dataset'], f'{key}.dataset')
    return [(key, cfg)]


def split_dataset_cfg(cfg: Config, split: str) -> dict:
    """The ``dataset`` of ``<split>_dataloader``.

    Raises:
        VerifyError: the config has no such dataloader or dataset.
    """
    if split not in SPLITS:
        raise VerifyError(f'unknown split {split!r}; choose from {SPLITS}')
    loader = cfg.get(f'{split}_dataloader', None)
    if not loader or not loader.get('dataset'):
        have = [s for s in SPLITS if (cfg.get(f'{s}_dataloader', None) or
                                      {}).get('dataset')]
        raise VerifyError(f'the config has no {split}_dataloader.dataset '
                          f'(it has the splits {have})')
    return loader['dataset']


def check_data_root(ds_cfg: dict, key: str) -> None:
    """Raise :class:`VerifyError` when ``ds_cfg``'s local ``data_root`` does
    not exist (``key`` names it for the hint)."""
    root = ds_cfg.get('data_root')
    if root and '://' not in str(root) and not osp.isdir(root):
        raise VerifyError(f'data root {root!r} ({key}) does not exist; ' +
                          DATA_ROOT_HINT.format(key=key))


def _pipeline_loads_masks(pipeline: Any) -> bool:
    for t in pipeline or []:
        if isinstance(t, dict) and str(t.get('type', '')).rsplit(
                '.', 1)[-1] == 'LoadAnnotations' and t.get('with_mask'):
            return True
    return False


def build_lazy(ds_cfg: dict, toolbox: str) -> Any:
    """The toolbox's dataset for ``ds_cfg``, without its pipeline and before
    it reads any annotation (``lazy_init=True``).

    Raises:
        VerifyError: the dataset cannot be built from the config.
    """
    registry = importlib.import_module(f'{toolbox}.registry').DATASETS
    cfg = deepcopy(dict(ds_cfg))
    cfg['pipeline'] = []
    cfg['lazy_init'] = True
    try:
        return registry.build(cfg)
    except Exception as e:
        raise VerifyError(f'cannot build the dataset {ds_cfg.get("type")!r}: '
                          f'{type(e).__name__}: {e}') from e


def _full_init(dataset: Any, where: str) -> List[Problem]:
    """Load the dataset's sample list; a failure becomes a problem."""
    try:
        dataset.full_init()
    except Exception as e:
        return [(norm_path(where), f'cannot load the dataset: '
                 f'{type(e).__name__}: {e}')]
    return []


def _where(dataset: Any) -> str:
    return dataset.ann_file or dataset.data_root or '.'


def classification_tasks(dataset: Any, backend_args: Optional[dict] = None
                         ) -> Tuple[int, List[Problem], List[dict]]:
    """An mmpretrain dataset: labels within the classes (checked here) and
    one image task per sample."""
    problems = _full_init(dataset, _where(dataset))
    if problems:
        return 0, problems, []
    classes = dataset.metainfo.get('classes')
    num_classes = len(classes) if classes is not None else None
    tasks: List[dict] = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        path = info['img_path']
        label = info.get('gt_label')
        if label is not None and num_classes is not None:
            labels = np.asarray(label).reshape(-1).tolist()
            bad = [v for v in labels if not 0 <= v < num_classes]
            if bad:
                problems.append(
                    (norm_path(path), f'label {bad[0]} in '
                     f'{norm_path(_where(dataset))} is outside 0..'
                     f'{num_classes - 1} ({num_classes} classes)'))
        tasks.append(dict(kind='image', img_path=path,
                          backend_args=backend_args))
    return len(dataset), problems, tasks


def coco_tasks(dataset: Any, ds_cfg: dict
               ) -> Tuple[int, List[Problem], List[dict]]:
    """An mmdet COCO-format dataset: its JSON, then one task per image."""
    ann_file = dataset.ann_file
    content, reason = read_file(ann_file, dataset.backend_args)
    if content is None:
        return 0, [(norm_path(ann_file), reason)], []
    try:
        data = json.loads(content)
    except ValueError as e:
        return 0, [(norm_path(ann_file), f'is not valid JSON: {e}')], []
    # mmdet keeps only the annotations of the dataset's classes: the config
    # or a subclass (the toy COCO's) may narrow COCO's 80
    from mmdet.datasets import CocoDataset
    restricted = (ds_cfg.get('metainfo') or {}).get('classes') is not None \
        or type(dataset).METAINFO['classes'] != \
        CocoDataset.METAINFO['classes']
    return check_coco_json(
        data, ann_file, dataset.data_prefix.get('img', ''),
        classes=dataset.metainfo['classes'] if restricted else None,
        needs_masks=_pipeline_loads_masks(ds_cfg.get('pipeline')),
        test_mode=dataset.test_mode, backend_args=dataset.backend_args)


def segmentation_tasks(dataset: Any
                       ) -> Tuple[int, List[Problem], List[dict]]:
    """An mmseg dataset: one (image, label map) task per sample, and the
    label maps without an image (when the dataset scans folders)."""
    img_dir = dataset.data_prefix.get('img_path') or ''
    ann_dir = dataset.data_prefix.get('seg_map_path')
    scans = not (dataset.ann_file and osp.isfile(dataset.ann_file))
    if scans and '://' not in img_dir and not osp.isdir(img_dir):
        return 0, [(norm_path(img_dir), 'image folder does not exist')], []
    problems = _full_init(dataset, dataset.ann_file or img_dir)
    if problems:
        return 0, problems, []
    if dataset.label_map is not None:  # classes are a subset: raw ids
        num_classes = len(type(dataset).METAINFO['classes'])
    else:
        num_classes = len(dataset.metainfo['classes'])
    tasks = []
    seg_paths = set()
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        seg = info.get('seg_map_path')
        if seg is not None:
            seg_paths.add(norm_path(seg))
        tasks.append(dict(kind='seg', img_path=info['img_path'],
                          seg_path=seg,
                          reduce_zero_label=info['reduce_zero_label'],
                          num_classes=num_classes,
                          ignore_index=dataset.ignore_index,
                          backend_args=dataset.backend_args))
    if scans and ann_dir:
        if '://' not in ann_dir and not osp.isdir(ann_dir):
            problems.append((norm_path(ann_dir),
                             'annotation folder does not exist'))
        else:
            suffix = dataset.seg_map_suffix
            for rel in sorted(fileio.list_dir_or_file(
                    ann_dir, list_dir=False, suffix=suffix, recursive=True,
                    backend_args=dataset.backend_args)):
                seg = norm_path(osp.join(ann_dir, rel))
                if seg not in seg_paths:
                    img = osp.join(img_dir,
                                   rel[:-len(suffix)] + dataset.img_suffix)
                    problems.append((norm_path(img), 'file does not exist '
                                     f'(its annotation {seg} does)'))
    return len(dataset), problems, tasks


def verify_dataset(ds_cfg: dict, toolbox: str, nproc: int = 1,
                   key: str = 'dataset') -> SplitResult:
    """Check one dataset config (wrappers are looked through).

    Args:
        ds_cfg: a ``dataset`` entry of a dataloader.
        toolbox: ``'mmpretrain'``, ``'mmdet'`` or ``'mmseg'``.
        nproc: worker processes for the per-file checks.
        key: the config key of ``ds_cfg``, for messages.

    Returns:
        ``(number of samples, [(path, reason), ...])``.

    Raises:
        VerifyError: the data root does not exist, or the toolbox's dataset
        type is not supported.
    """
    leaves = dataset_leaves(ds_cfg, key)
    for leaf_key, leaf in leaves:
        check_data_root(leaf, f'{leaf_key}.data_root')
    total, problems, tasks = 0, [], []
    for _, leaf in leaves:
        dataset = build_lazy(leaf, toolbox)
        if toolbox == 'mmdet':
            from mmdet.datasets import CocoDataset
            if not isinstance(dataset, CocoDataset):
                raise VerifyError(
                    f'{type(dataset).__name__} is not supported; mmdet '
                    'datasets must be COCO-format (CocoDataset subclasses)')
            n, found, todo = coco_tasks(dataset, leaf)
        elif toolbox == 'mmseg':
            from mmseg.datasets import BaseSegDataset
            if not isinstance(dataset, BaseSegDataset):
                raise VerifyError(f'{type(dataset).__name__} is not a '
                                  'BaseSegDataset; it is not supported')
            n, found, todo = segmentation_tasks(dataset)
        else:
            n, found, todo = classification_tasks(
                dataset, getattr(dataset, 'backend_args', None))
        if n == 0 and not found:
            found = [(norm_path(_where(dataset)), 'the dataset has no '
                      'samples')]
        total += n
        problems += found
        tasks += todo
    types = ', '.join(str(leaf.get('type', '?')) for _, leaf in leaves)
    print(f'[{key}] {types}: '
          f'{total} samples, checking {len(tasks)} files '
          f'in {nproc} process(es)', flush=True)
    problems += run_tasks(tasks, nproc)
    return total, problems


def verify(cfg: Config, splits: Sequence[str] = ('train', 'val'),
           nproc: int = 1) -> Dict[str, SplitResult]:
    """Check the datasets of ``splits`` of a loaded config.

    Returns:
        ``{split: (number of samples, [(path, reason), ...])}``.

    Raises:
        VerifyError: bad input to the tool (see :func:`verify_dataset` and
        :func:`split_dataset_cfg`).
    """
    try:
        toolbox = ru.get_toolbox(cfg)
    except ValueError as e:
        raise VerifyError(str(e)) from e
    ru.register_toolbox(toolbox)
    init_default_scope(toolbox)
    # all dataloaders first: a missing split is an error before any work
    ds_cfgs = {split: split_dataset_cfg(cfg, split) for split in splits}
    return {split: verify_dataset(ds_cfg, toolbox, nproc,
                                  f'{split}_dataloader.dataset')
            for split, ds_cfg in ds_cfgs.items()}


def report(results: Dict[str, SplitResult]) -> bool:
    """Print the bad files and one summary line per split; True when all
    splits are clean."""
    ok = True
    for split, (num, problems) in results.items():
        if problems:
            ok = False
            print(f'\n{split}: bad files:')
            for path, reason in problems:
                print(f'  {path}: {reason}')
    print()
    for split, (num, problems) in results.items():
        if problems:
            print(f'{split}: FAILED: {len(problems)} problem(s) in {num} '
                  'samples')
        else:
            print(f'{split}: OK: {num} samples')
    return ok


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check every sample of a config\'s datasets (mmpretrain, '
        'mmdet COCO or mmseg config) before training')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', nargs='+', default=['train', 'val'],
                        choices=list(SPLITS),
                        help='dataloaders whose dataset to check (default: '
                        'train val)')
    parser.add_argument('--num-processes', type=int,
                        default=min(8, os.cpu_count() or 1),
                        help='worker processes for the file checks '
                        '(default: the CPU count, at most 8)')
    ru.add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    if args.num_processes < 1:
        parser.error('--num-processes must be at least 1')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Run the tool; returns the exit status (0 clean, 1 bad samples, 2 bad
    input to the tool)."""
    args = parse_args(argv)
    try:
        if not osp.isfile(args.config):
            raise VerifyError(f'config file {args.config!r} does not exist')
        cfg = ru.load_config(args.config, args.cfg_options)
        splits = list(dict.fromkeys(args.split))
        results = verify(cfg, splits, args.num_processes)
    except VerifyError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0 if report(results) else 1


if __name__ == '__main__':
    sys.exit(main())
