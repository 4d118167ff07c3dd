"""Small, deterministic toy datasets in the real on-disk formats.

:func:`make_toy_data` writes up to three datasets under one root, each in the
layout the real OpenMMLab dataset classes read, so that a config differs from
the full-scale one only in its data root, sizes and schedule. The class names
are defined here only; the toy configs' dataset types
(:mod:`swat_mm.testing.toy_datasets`) take them from this module, which
imports nothing of OpenMMLab (``tools/make_toy_data.py`` runs it without
mmcv):

``imagenet`` (mmpretrain ``ImageNet`` / ``CustomDataset``)::

    imagenet/train/<class>/<class>_0000.JPEG     64x64 RGB
    imagenet/val/toy_val_00000000.JPEG
    imagenet/meta/train.txt                        "disc/disc_0000.JPEG 0"
    imagenet/meta/val.txt                          "toy_val_00000000.JPEG 0"
    imagenet/token_label/<class>/<class>_0000.pt   (2, 2, 8, 8) dense labels

    One shape per image (:data:`IMAGENET_CLASSES`: disc, square, triangle,
    ring, cross), random colour, size, position and rotation on a textured
    random background; the colour says nothing about the class. 40 train and
    10 val images per class (``imagenet_train_per_class`` writes more
    training images, a superset of the default ones). mmpretrain's ``ImageNet`` carries the 1000
    ImageNet names as its metainfo; the toy configs use its subclass
    :class:`~swat_mm.testing.toy_datasets.ToyImageNet`, whose metainfo is
    :data:`IMAGENET_CLASSES`::

        dataset=dict(type='swat_mm.ToyImageNet', data_root='data/toy/imagenet',
                     split='train')

    (``split`` picks ``train/`` and ``meta/train.txt``.) ``ImageNet`` with
    ``metainfo=dict(classes=IMAGENET_CLASSES)``, and ``CustomDataset`` with
    ``ann_file='meta/train.txt', data_prefix='train'`` and the same
    ``classes``, read it too. With 5 classes use
    ``val_evaluator=dict(type='Accuracy', topk=(1, ))``: top-5 is always 100%.

    ``token_label/`` holds dense labels for SVT's token-labelling training
    in the format of :mod:`swat_mm.datasets.token_label` (a teacher's top-2
    scores and class indices on an 8x8 grid over the image): the "teacher"
    is the generator itself, scoring the image's class by how much of each
    cell the shape covers.

``coco`` (mmdet ``CocoDataset``)::

    coco/train2017/000000000001.jpg ...            128x128 RGB
    coco/val2017/...
    coco/annotations/instances_{train,val}2017.json

    2 to 6 objects per image from :data:`COCO_CLASSES` (category ids 1..4),
    8 to 72 pixels across, so COCO's small / medium area ranges both occur
    (nothing is "large" at 128 px). Objects overlap; an object painted later
    hides the earlier ones, and every annotation describes only the visible
    part: ``segmentation`` is a list of polygons (one per visible piece, on
    the pixel-corner grid), ``area`` its pixel count, ``bbox`` its
    ``[x, y, w, h]`` extent, ``iscrowd`` 0. Placements that would leave a
    hidden object with a hole (which a COCO polygon cannot express), a
    fragment under 12 pixels or under a third of the object visible are
    redrawn. Each class has its own hue range (with jitter and texture), so a
    detector can learn it within minutes; the shape is the other cue. Read it
    with ``type='swat_mm.ToyCocoDataset'``
    (:class:`~swat_mm.testing.toy_datasets.ToyCocoDataset`, whose metainfo is
    :data:`COCO_CLASSES`), or ``CocoDataset`` with
    ``metainfo=dict(classes=COCO_CLASSES)``. 120 train, 30 val images.

``ade20k`` (mmseg ``ADE20KDataset``)::

    ade20k/images/{training,validation}/ADE_toy_{train,val}_00000000.jpg
    ade20k/annotations/{training,validation}/...png   128x128, uint8

    Label values follow ADE20K's files: 0 is "other" and ``reduce_zero_label``
    (``ADE20KDataset``'s default) maps it to 255, ignored; value ``k`` is
    ADE class ``k - 1``. A scene is a wall (top) over a floor (bottom), split
    by a slanted edge that stays unlabelled (0, as ADE leaves many boundaries),
    with 2 to 5 overlapping objects: painting (vivid blue-to-red textured
    rectangle, gilt frame), mirror (pale ellipse, dark frame), lamp (bright
    yellow triangle), plant (green star), plus 0-2 small unlabelled blobs.
    :data:`ADE_CLASSES` lists name, ADE index and PNG value. Every class occurs
    in the validation set (each val image carries object class ``i % 4``), so
    mmseg's ``IoUMetric``, which averages over the 150 ADE classes with
    ``nanmean``, reports the mean over exactly these 6 classes (classes absent
    from both ground truth and prediction give nan and drop out; a class the
    model predicts wrongly still counts as IoU 0). Stuff and object classes have
    their own texture and colour range; use ``ADE20KDataset`` unchanged.
    160 train, 32 val images.

Determinism: every image draws from its own ``numpy.random.RandomState``
seeded from (seed, dataset, split, index); the legacy generator's stream is
frozen across numpy versions. JSON is written with sorted keys. A second run
with the same numpy / Pillow (libjpeg, zlib) produces byte-identical files.

Each dataset is written into a temporary sibling folder and renamed into place
when complete, with a ``toy_data.json`` stamp; a folder whose stamp matches
is skipped, so an interrupted run never leaves a half-written dataset behind
and concurrent runs are harmless.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

#: Bumped whenever the generated bytes change; a stamp with another version
#: makes :func:`make_toy_data` regenerate that dataset.
TOY_DATA_VERSION = 3

DATASETS = ('imagenet', 'coco', 'ade20k')

# Sorted, so that a folder scan (CustomDataset without ann_file) gives the same
# labels as meta/*.txt, as ImageNet's sorted wnids do.
IMAGENET_CLASSES = ('cross', 'disc', 'ring', 'square', 'triangle')
COCO_CLASSES = ('disc', 'square', 'triangle', 'star')
#: (name, ADE20K class index, label value in the PNG = index + 1).
ADE_CLASSES = (
    ('wall', 0, 1),
    ('floor', 3, 4),
    ('plant', 17, 18),
    ('painting', 22, 23),
    ('mirror', 27, 28),
    ('lamp', 36, 37),
)

# Sizes per dataset: image side, train count, val count.
_SPEC = {
    'imagenet': dict(size=64, train=40 * len(IMAGENET_CLASSES),
                     val=10 * len(IMAGENET_CLASSES)),
    'coco': dict(size=128, train=120, val=30),
    'ade20k': dict(size=128, train=160, val=32),
}
_JPEG_QUALITY = 92
_STAMP = 'toy_data.json'

# Hue ranges (degrees) that tie COCO / ADE object classes to a colour family.
_COCO_HUES = {'disc': (0, 25), 'square': (100, 140), 'triangle': (200, 240),
              'star': (45, 65)}


# ---------------------------------------------------------------------------
# random helpers
# ---------------------------------------------------------------------------
def _rng(seed: int, *keys: object) -> np.random.RandomState:
    """A RandomState for one image, independent of every other image."""
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return np.random.RandomState(int.from_bytes(digest[:4], 'little'))


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """HSV (h in degrees, s and v in [0, 1]) to RGB in [0, 255]."""
    h = (h % 360) / 60.0
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c),
           (c, 0, x)][int(h) % 6]
    return (np.array(rgb) + (v - c)) * 255.0


def _random_colour(rng: np.random.RandomState,
                   avoid: Optional[np.ndarray] = None,
                   min_dist: float = 110.0) -> np.ndarray:
    """A random RGB colour at least ``min_dist`` (L1) from ``avoid``."""
    for _ in range(50):
        col = rng.uniform(0, 255, 3)
        if avoid is None or np.abs(col - avoid).sum() >= min_dist:
            return col
    return 255.0 - avoid  # the complement is always far enough


def _smooth_noise(rng: np.random.RandomState, h: int, w: int,
                  cells: int) -> np.ndarray:
    """(h, w) low-frequency noise in [-1, 1]: a random grid, bicubic upsampled."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    img = Image.fromarray(grid, mode='F').resize((w, h), Image.BICUBIC)
    return np.clip(np.asarray(img, dtype=np.float32), -1, 1)


def _texture(rng: np.random.RandomState, h: int, w: int, colour: np.ndarray,
             kind: str, amp: float = 30.0) -> np.ndarray:
    """(h, w, 3) float image around ``colour`` with a texture of ``kind``.

    Kinds: ``flat`` (fine noise only), ``blotch`` (low-frequency noise),
    ``stripes`` (sinusoid at a random angle), ``checker``, ``gradient``.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 'flat':
        mod = np.zeros((h, w), np.float32)
    elif kind == 'blotch':
        mod = _smooth_noise(rng, h, w, rng.randint(3, 7))
    elif kind == 'stripes':
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(4, 12)
        mod = np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi
                     / period + rng.uniform(0, 2 * np.pi))
    elif kind == 'checker':
        period = rng.randint(4, 12)
        mod = (((xx // period) + (yy // period)) % 2) * 2 - 1
    elif kind == 'gradient':
        ang = rng.uniform(0, 2 * np.pi)
        proj = xx * np.cos(ang) + yy * np.sin(ang)
        mod = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0) * 2 - 1
    else:
        raise ValueError(f'unknown texture {kind!r}')
    tint = rng.uniform(-1, 1, 3) * 0.5 + 1.0  # texture not exactly grey
    img = colour[None, None, :] + amp * mod[..., None] * tint[None, None, :]
    img += rng.normal(0, 6, (h, w, 3))
    return img.astype(np.float32)


# ---------------------------------------------------------------------------
# shapes: each a list of polygons (lists of (x, y)); the first is filled, the
# others (the hole of a ring) are cleared again.
# ---------------------------------------------------------------------------
def _rotate(points: np.ndarray, angle: float, cx: float,
            cy: float) -> List[Tuple[float, float]]:
    c, s = np.cos(angle), np.sin(angle)
    x, y = points[:, 0], points[:, 1]
    return list(zip((cx + c * x - s * y).tolist(), (cy + s * x + c * y).tolist()))


def _shape_polygons(kind: str, cx: float, cy: float, r: float, angle: float,
                    rng: np.random.RandomState) -> List[List[Tuple[float, float]]]:
    """Polygons of a shape of ``kind`` centred at (cx, cy), radius ~``r``."""
    if kind in ('disc', 'ring', 'ellipse'):
        aspect = rng.uniform(0.8, 1.25) if kind != 'ellipse' else rng.uniform(0.55, 0.8)
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        outer = np.stack([r * np.cos(t), r * aspect * np.sin(t)], 1)
        polys = [_rotate(outer, angle, cx, cy)]
        if kind == 'ring':
            polys.append(_rotate(outer * rng.uniform(0.45, 0.6), angle, cx, cy))
        return polys
    if kind in ('square', 'rectangle'):
        aspect = rng.uniform(0.8, 1.25) if kind == 'square' else rng.uniform(0.5, 0.75)
        half = r / np.sqrt(2) * 1.1
        pts = np.array([[-half, -half * aspect], [half, -half * aspect],
                        [half, half * aspect], [-half, half * aspect]])
        return [_rotate(pts, angle, cx, cy)]
    if kind == 'triangle':
        t = np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6])
        t = t + rng.uniform(-0.15, 0.15, 3)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], 1) * 1.1
        return [_rotate(pts, angle, cx, cy)]
    if kind == 'star':
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False) - np.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r * 1.1, r * rng.uniform(0.42, 0.55))
        pts = np.stack([rad * np.cos(t), rad * np.sin(t)], 1)
        return [_rotate(pts, angle, cx, cy)]
    if kind == 'cross':
        a, b = r, r * rng.uniform(0.3, 0.42)
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b],
                        [b, a], [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]])
        return [_rotate(pts, angle, cx, cy)]
    raise ValueError(f'unknown shape {kind!r}')


def _raster(polys: Sequence[Sequence[Tuple[float, float]]], h: int,
            w: int) -> np.ndarray:
    """Boolean (h, w) mask of the first polygon minus the others."""
    img = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(img)
    draw.polygon(list(polys[0]), fill=1)
    for hole in polys[1:]:
        draw.polygon(list(hole), fill=0)
    return np.asarray(img, dtype=bool)


def _random_shape_mask(kind: str, h: int, w: int, r: float,
                       rng: np.random.RandomState,
                       inside: float = 0.5) -> np.ndarray:
    """Mask of one shape of ``kind`` with radius ``r`` at a random place and
    rotation; its centre keeps ``inside * r`` from the image border. Only the
    largest 4-connected piece is kept (thin tips of small shapes can rasterise
    into loose pixels)."""
    cx = rng.uniform(r * inside, w - r * inside)
    cy = rng.uniform(r * inside, h - r * inside)
    polys = _shape_polygons(kind, cx, cy, r, rng.uniform(0, 2 * np.pi), rng)
    pieces = _components(_raster(polys, h, w))
    if not pieces:
        return np.zeros((h, w), bool)
    return max(pieces, key=lambda m: int(m.sum()))


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """4-neighbour binary erosion, ``steps`` times."""
    m = mask.copy()
    for _ in range(steps):
        e = m.copy()
        e[1:] &= m[:-1]
        e[:-1] &= m[1:]
        e[:, 1:] &= m[:, :-1]
        e[:, :-1] &= m[:, 1:]
        m = e
    return m


def _components(mask: np.ndarray) -> List[np.ndarray]:
    """The 4-connected pieces of a boolean mask, by flood filling with numpy
    (no scipy needed; the masks here are small)."""
    left = mask.copy()
    pieces = []
    while left.any():
        y, x = np.argwhere(left)[0]
        piece = np.zeros_like(left)
        piece[y, x] = True
        while True:
            grown = piece.copy()
            grown[1:] |= piece[:-1]
            grown[:-1] |= piece[1:]
            grown[:, 1:] |= piece[:, :-1]
            grown[:, :-1] |= piece[:, 1:]
            grown &= left
            if (grown == piece).all():
                break
            piece = grown
        pieces.append(piece)
        left &= ~piece
    return pieces


def _finish(img: np.ndarray) -> Image.Image:
    """Clip to uint8 and soften the aliased edges a little, as a camera would."""
    pil = Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8))
    return pil.filter(ImageFilter.GaussianBlur(0.6))


# ---------------------------------------------------------------------------
# mask -> COCO polygons
# ---------------------------------------------------------------------------
def _signed_area(loop: Sequence[Tuple[int, int]]) -> float:
    """Shoelace area; positive for loops clockwise on screen (y down)."""
    pts = np.asarray(loop, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _drop_collinear(loop: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Remove the vertices of a closed axis-parallel loop that do not turn."""
    n = len(loop)
    keep = []
    for i in range(n):
        (x0, y0), (x1, y1), (x2, y2) = loop[i - 1], loop[i], loop[(i + 1) % n]
        if (x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1) != 0:
            keep.append(loop[i])
    return keep


def mask_to_polygons(mask: np.ndarray) -> Tuple[List[List[float]], bool]:
    """Trace a binary mask's boundaries along the pixel edges.

    Vertices lie on the pixel-corner grid (pixel ``(r, c)`` spans
    ``[c, c + 1] x [r, r + 1]``). Foreground counts as 4-connected: where two
    pixels touch only at a corner, the boundary turns back around the pixel it
    came along, so every 4-connected piece gives exactly one outer loop and
    the area of that loop is its pixel count.

    Returns:
        ``(polygons, has_hole)``: one flat ``[x0, y0, x1, y1, ...]`` list per
        piece, and whether some loop encloses background, which a COCO polygon
        list cannot express (pycocotools unions the polygons).
    """
    m = np.pad(mask.astype(bool), 1)
    # Directed edges with the pixel on their right (clockwise on screen):
    # start corner -> [(end corner, owning pixel), ...].
    out: Dict[Tuple[int, int], List[Tuple[Tuple[int, int], Tuple[int, int]]]] = {}
    ys, xs = np.nonzero(m)
    for y, x in zip(ys.tolist(), xs.tolist()):
        c, r = x - 1, y - 1
        pix = (r, c)
        if not m[y - 1, x]:
            out.setdefault((c, r), []).append(((c + 1, r), pix))
        if not m[y, x + 1]:
            out.setdefault((c + 1, r), []).append(((c + 1, r + 1), pix))
        if not m[y + 1, x]:
            out.setdefault((c + 1, r + 1), []).append(((c, r + 1), pix))
        if not m[y, x - 1]:
            out.setdefault((c, r + 1), []).append(((c, r), pix))
    polygons: List[List[float]] = []
    has_hole = False
    for start in sorted(out):
        while out[start]:
            v, pix = out[start].pop(0)
            loop = [start]
            while True:
                cands = out[v]
                # At a corner where two diagonal pixels meet there are two
                # ways on; staying with the same pixel keeps pieces 4-connected.
                k = next((i for i, (_, p) in enumerate(cands) if p == pix), None)
                if v == start and k is None:
                    break  # the next edge would be the first one: closed
                loop.append(v)
                v, pix = cands.pop(0 if k is None else k)
            if _signed_area(loop) < 0:
                has_hole = True
                continue
            polygons.append([float(t) for pt in _drop_collinear(loop) for t in pt])
    return polygons, has_hole


def _polygon_area(flat: Sequence[float]) -> float:
    return abs(_signed_area(list(zip(flat[0::2], flat[1::2]))))


# ---------------------------------------------------------------------------
# ImageNet-style classification
# ---------------------------------------------------------------------------
_BG_KINDS = ('flat', 'blotch', 'stripes', 'checker', 'gradient')


def _imagenet_image(rng: np.random.RandomState, size: int,
                    label: int) -> Tuple[Image.Image, np.ndarray]:
    """One centred-ish shape of class ``label`` in a random colour on a random
    textured background; the shape stays fully inside the image. Returns the
    image and the shape's mask."""
    bg_col = rng.uniform(0, 255, 3)
    img = _texture(rng, size, size, bg_col, _BG_KINDS[rng.randint(5)],
                   amp=rng.uniform(8, 30))
    fg_col = _random_colour(rng, bg_col, min_dist=120)
    mask = _random_shape_mask(IMAGENET_CLASSES[label], size, size,
                              rng.uniform(0.22, 0.42) * size, rng, inside=1.0)
    fg = _texture(rng, size, size, fg_col, ('flat', 'blotch', 'gradient')[rng.randint(3)],
                  amp=rng.uniform(5, 20))
    return _finish(np.where(mask[..., None], fg, img)), mask


#: grid of the toy dense labels
TOKEN_LABEL_GRID = 8


def _token_label(mask: np.ndarray, label: int) -> torch.Tensor:
    """(2, 2, g, g) dense label of one image: top-2 scores and class indices
    per cell; the image's class scores 2 + 6 x the cell's shape coverage,
    the next class 1.0."""
    g = TOKEN_LABEL_GRID
    h, w = mask.shape
    cover = mask.reshape(g, h // g, g, w // g).mean(axis=(1, 3))
    scores = np.stack([2.0 + 6.0 * cover, np.ones_like(cover)])
    classes = np.stack([np.full_like(cover, label),
                        np.full_like(cover, (label + 1) % len(IMAGENET_CLASSES))])
    return torch.from_numpy(np.stack([scores, classes]).astype(np.float16))


def _write_imagenet(out: str, seed: int,
                    train_per_class: Optional[int] = None) -> Dict[str, int]:
    spec = _SPEC['imagenet']
    size, n_cls = spec['size'], len(IMAGENET_CLASSES)
    per_class = train_per_class or spec['train'] // n_cls
    os.makedirs(osp.join(out, 'meta'))
    lines = []
    for k in range(per_class):
        for label, name in enumerate(IMAGENET_CLASSES):
            rel = f'{name}/{name}_{k:04d}.JPEG'
            os.makedirs(osp.join(out, 'train', name), exist_ok=True)
            os.makedirs(osp.join(out, 'token_label', name), exist_ok=True)
            img, mask = _imagenet_image(
                _rng(seed, 'imagenet', 'train', label, k), size, label)
            img.save(osp.join(out, 'train', rel), quality=_JPEG_QUALITY)
            torch.save(_token_label(mask, label),
                       osp.join(out, 'token_label', name,
                                f'{name}_{k:04d}.pt'))
            lines.append(f'{rel} {label}')
    with open(osp.join(out, 'meta', 'train.txt'), 'w') as f:
        f.write('\n'.join(sorted(lines)) + '\n')
    os.makedirs(osp.join(out, 'val'))
    lines = []
    for i in range(spec['val']):
        label = i % n_cls
        rel = f'toy_val_{i:08d}.JPEG'
        _imagenet_image(_rng(seed, 'imagenet', 'val', i), size,
                        label)[0].save(osp.join(out, 'val', rel),
                                       quality=_JPEG_QUALITY)
        lines.append(f'{rel} {label}')
    with open(osp.join(out, 'meta', 'val.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return dict(train=per_class * n_cls, val=spec['val'], classes=n_cls)


# ---------------------------------------------------------------------------
# COCO instances
# ---------------------------------------------------------------------------
_MIN_PIECE = 12  # pixels; smaller visible fragments are not annotatable


def _visible_ok(vis: np.ndarray, full_area: int) -> bool:
    """Whether an object's visible part can be annotated as COCO polygons."""
    area = int(vis.sum())
    if area < max(_MIN_PIECE, full_area / 3):
        return False
    polys, has_hole = mask_to_polygons(vis)
    return not has_hole and all(_polygon_area(p) >= _MIN_PIECE for p in polys)


def _coco_image(rng: np.random.RandomState, size: int
                ) -> Tuple[Image.Image, List[Tuple[int, np.ndarray]]]:
    """A scene of 2-6 overlapping shapes; returns the image and, per object,
    (category index, visible mask), painting order."""
    bg_col = _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0, 0.3),
                         rng.uniform(0.2, 0.9))
    img = _texture(rng, size, size, bg_col, _BG_KINDS[rng.randint(5)],
                   amp=rng.uniform(8, 25))
    owner = np.full((size, size), -1, np.int64)  # painted object per pixel
    full_areas: List[int] = []
    cats: List[int] = []
    for j in range(rng.randint(2, 7)):
        cat = rng.randint(len(COCO_CLASSES))
        for _ in range(25):
            # log-uniform radius: many small objects, some large ones
            r = float(np.exp(rng.uniform(np.log(4.5), np.log(36))))
            mask = _random_shape_mask(COCO_CLASSES[cat], size, size, r, rng)
            if mask.sum() < 2 * _MIN_PIECE:
                continue
            trial = owner.copy()
            trial[mask] = j
            if all(_visible_ok(trial == i, full_areas[i]) for i in range(j)) \
                    and _visible_ok(mask, int(mask.sum())):
                break
        else:
            break  # the image is too crowded for another object
        owner = trial
        full_areas.append(int(mask.sum()))
        cats.append(cat)
        lo, hi = _COCO_HUES[COCO_CLASSES[cat]]
        col = _hsv_to_rgb(rng.uniform(lo, hi), rng.uniform(0.55, 1.0),
                          rng.uniform(0.45, 1.0))
        fg = _texture(rng, size, size, col, ('flat', 'blotch', 'gradient',
                                             'stripes')[rng.randint(4)],
                      amp=rng.uniform(5, 18))
        img = np.where(mask[..., None], fg, img)
    return _finish(img), [(c, owner == i) for i, c in enumerate(cats)]


def _write_coco(out: str, seed: int) -> Dict[str, int]:
    spec = _SPEC['coco']
    size = spec['size']
    os.makedirs(osp.join(out, 'annotations'))
    counts = {}
    ann_id = 0
    for split in ('train', 'val'):
        folder = f'{split}2017'
        os.makedirs(osp.join(out, folder))
        images, anns = [], []
        for i in range(spec[split]):
            img_id = i + 1
            img, objs = _coco_image(_rng(seed, 'coco', split, i), size)
            fname = f'{img_id:012d}.jpg'
            img.save(osp.join(out, folder, fname), quality=_JPEG_QUALITY)
            images.append(dict(id=img_id, file_name=fname, height=size,
                               width=size))
            for cat, vis in objs:
                ys, xs = np.nonzero(vis)
                polys, _ = mask_to_polygons(vis)
                ann_id += 1
                anns.append(dict(
                    id=ann_id, image_id=img_id, category_id=cat + 1,
                    segmentation=polys, area=float(vis.sum()),
                    bbox=[float(xs.min()), float(ys.min()),
                          float(xs.max() - xs.min() + 1),
                          float(ys.max() - ys.min() + 1)],
                    iscrowd=0))
        coco = dict(
            info=dict(description='swat_mm toy COCO', version=str(TOY_DATA_VERSION)),
            licenses=[], images=images, annotations=anns,
            categories=[dict(id=k + 1, name=n, supercategory='shape')
                        for k, n in enumerate(COCO_CLASSES)])
        with open(osp.join(out, 'annotations', f'instances_{folder}.json'), 'w') as f:
            json.dump(coco, f, sort_keys=True)
        counts[split] = len(images)
        counts[f'{split}_instances'] = len(anns)
    counts['classes'] = len(COCO_CLASSES)
    return counts


# ---------------------------------------------------------------------------
# ADE20K semantic segmentation
# ---------------------------------------------------------------------------
_ADE_VALUE = {name: value for name, _, value in ADE_CLASSES}
_ADE_OBJECTS = ('plant', 'painting', 'mirror', 'lamp')
_ADE_SHAPE = {'plant': 'star', 'painting': 'rectangle', 'mirror': 'ellipse',
              'lamp': 'triangle'}


def _ade_object_colour(rng: np.random.RandomState, name: str
                       ) -> Tuple[np.ndarray, str, float]:
    """(colour, texture kind, texture amplitude) typical of an object class."""
    if name == 'plant':
        return (_hsv_to_rgb(rng.uniform(90, 150), rng.uniform(0.5, 0.9),
                            rng.uniform(0.35, 0.8)), 'blotch', rng.uniform(15, 30))
    if name == 'painting':  # vivid blue to red, busy texture (and a frame);
        # the hues of plants and lamps are left out so colour alone is a cue
        return (_hsv_to_rgb(rng.uniform(170, 380), rng.uniform(0.7, 1.0),
                            rng.uniform(0.6, 1.0)),
                ('stripes', 'checker', 'blotch')[rng.randint(3)],
                rng.uniform(30, 50))
    if name == 'mirror':  # pale, bluish, shiny gradient
        return (_hsv_to_rgb(rng.uniform(190, 220), rng.uniform(0.05, 0.3),
                            rng.uniform(0.7, 0.95)), 'gradient', rng.uniform(20, 35))
    if name == 'lamp':  # warm and bright
        return (_hsv_to_rgb(rng.uniform(35, 60), rng.uniform(0.6, 1.0),
                            rng.uniform(0.8, 1.0)), 'flat', rng.uniform(5, 12))
    raise ValueError(name)


def _ade_image(rng: np.random.RandomState, size: int, must: Optional[str]
               ) -> Tuple[Image.Image, Image.Image]:
    """A wall-over-floor scene with overlapping objects; returns the RGB image
    and the label PNG (values as in ADE20K's annotation files)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    horizon = rng.uniform(0.35, 0.65) * size + rng.uniform(-0.25, 0.25) * (xx - size / 2)
    wall = _texture(rng, size, size,
                    _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0, 0.25),
                                rng.uniform(0.5, 0.85)),
                    ('blotch', 'flat', 'gradient')[rng.randint(3)],
                    amp=rng.uniform(8, 18))
    floor = _texture(rng, size, size,
                     _hsv_to_rgb(rng.uniform(15, 40), rng.uniform(0.3, 0.65),
                                 rng.uniform(0.3, 0.6)),
                     ('stripes', 'checker')[rng.randint(2)], amp=rng.uniform(15, 30))
    below = yy >= horizon
    img = np.where(below[..., None], floor, wall)
    label = np.where(below, _ADE_VALUE['floor'], _ADE_VALUE['wall']).astype(np.uint8)
    label[np.abs(yy + 0.5 - horizon) < 1.0] = 0  # unlabelled edge band
    names = [_ADE_OBJECTS[rng.randint(4)] for _ in range(rng.randint(2, 6))]
    if must is not None:
        names[0] = must
    for name in names:
        r = rng.uniform(13, 32)
        mask = _random_shape_mask(_ADE_SHAPE[name], size, size, r, rng)
        col, kind, amp = _ade_object_colour(rng, name)
        obj = _texture(rng, size, size, col, kind, amp)
        if name in ('mirror', 'painting'):
            # a frame, part of the object as in ADE: dark for mirrors, gilt
            # for paintings
            frame = mask & ~_erode(mask, 2)
            obj[frame] = (_hsv_to_rgb(rng.uniform(0, 40), 0.5, rng.uniform(0.15, 0.35))
                          if name == 'mirror' else
                          _hsv_to_rgb(rng.uniform(38, 50), 0.75, rng.uniform(0.6, 0.8)))
        img = np.where(mask[..., None], obj, img)
        label[mask] = _ADE_VALUE[name]
    for _ in range(rng.randint(0, 3)):  # unlabelled clutter
        mask = _random_shape_mask('disc', size, size, rng.uniform(3, 6), rng)
        img = np.where(mask[..., None],
                       _texture(rng, size, size, rng.uniform(0, 255, 3), 'flat'), img)
        label[mask] = 0
    return _finish(img), Image.fromarray(label, mode='L')


def _write_ade20k(out: str, seed: int) -> Dict[str, int]:
    spec = _SPEC['ade20k']
    counts = {}
    for split, folder in (('train', 'training'), ('val', 'validation')):
        os.makedirs(osp.join(out, 'images', folder))
        os.makedirs(osp.join(out, 'annotations', folder))
        for i in range(spec[split]):
            # every val image carries one object class in turn, so all classes
            # occur in the validation set and the mIoU averages over all six
            must = _ADE_OBJECTS[i % len(_ADE_OBJECTS)] if split == 'val' else None
            img, seg = _ade_image(_rng(seed, 'ade20k', split, i), spec['size'], must)
            stem = f'ADE_toy_{split}_{i:08d}'
            img.save(osp.join(out, 'images', folder, stem + '.jpg'),
                     quality=_JPEG_QUALITY)
            seg.save(osp.join(out, 'annotations', folder, stem + '.png'))
        counts[split] = spec[split]
    counts['classes'] = len(ADE_CLASSES)
    return counts


_WRITERS = {'imagenet': _write_imagenet, 'coco': _write_coco,
            'ade20k': _write_ade20k}


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------
def _read_stamp(folder: str) -> Optional[dict]:
    try:
        with open(osp.join(folder, _STAMP)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _stamp_ok(stamp: Optional[dict], name: str, seed: int,
              train: Optional[int] = None) -> bool:
    """Whether a stamp is this generator's for ``name`` and ``seed``, and,
    with ``train`` given, holds that many training images."""
    return bool(stamp) and stamp.get('dataset') == name and \
        stamp.get('version') == TOY_DATA_VERSION and \
        stamp.get('seed') == seed and \
        (train is None or (stamp.get('counts') or {}).get('train') == train)


def make_toy_data(root: str = 'data/toy',
                  which: Iterable[str] = DATASETS,
                  seed: int = 0,
                  force: bool = False,
                  imagenet_train_per_class: Optional[int] = None
                  ) -> Dict[str, str]:
    """Generate the toy datasets named in ``which`` under ``root``.

    Args:
        root: parent folder; dataset ``name`` goes to ``root/name``.
        which: any of ``'imagenet'``, ``'coco'``, ``'ade20k'``.
        seed: base seed; the same seed gives the same bytes.
        force: regenerate even when a complete folder is there.
        imagenet_train_per_class: training images per class of the toy
            ImageNet (default 40). Image ``k`` of a class is the same for
            every count, so a larger set holds the default one; the val
            split does not change.

    Returns:
        ``{name: absolute path of its folder}``.

    A dataset folder whose ``toy_data.json`` stamp matches this generator's
    version and ``seed`` (and, for ``imagenet``, the training-set size) is
    kept as is. A folder with another stamp is
    replaced; a folder without a stamp is not ours and raises
    :class:`FileExistsError`.
    """
    which = list(which)
    unknown = sorted(set(which) - set(DATASETS))
    if unknown:
        raise ValueError(f'unknown toy datasets {unknown}; choose from {DATASETS}')
    if imagenet_train_per_class is not None and (
            isinstance(imagenet_train_per_class, bool)
            or not isinstance(imagenet_train_per_class, int)
            or imagenet_train_per_class < 1):
        raise ValueError('imagenet_train_per_class must be a positive number '
                         f'of images, got {imagenet_train_per_class!r}; leave '
                         'it None for the default 40')
    per_class = imagenet_train_per_class or \
        _SPEC['imagenet']['train'] // len(IMAGENET_CLASSES)
    root = osp.abspath(root)
    os.makedirs(root, exist_ok=True)
    paths = {}
    for name in which:
        # the training-set size is checked for the toy ImageNet only, the
        # one dataset whose size is an option
        train = per_class * len(IMAGENET_CLASSES) \
            if name == 'imagenet' else None
        writer_args = (dict(train_per_class=per_class)
                       if name == 'imagenet' else {})
        final = osp.join(root, name)
        paths[name] = final
        if osp.exists(final):
            stamp = _read_stamp(final)
            if stamp is None:
                raise FileExistsError(
                    f'{final} exists but was not written by '
                    'swat_mm.testing.toy_data '
                    f'(no {_STAMP}); move it away or pick another root')
            if _stamp_ok(stamp, name, seed, train) and not force:
                continue
        tmp = tempfile.mkdtemp(prefix=f'.{name}.tmp-', dir=root)
        try:
            data = osp.join(tmp, name)
            counts = _WRITERS[name](data, seed, **writer_args)
            with open(osp.join(data, _STAMP), 'w') as f:
                json.dump(dict(dataset=name, version=TOY_DATA_VERSION,
                               seed=seed, counts=counts), f, sort_keys=True,
                          indent=1)
            if osp.exists(final):
                # an old version, or a concurrent run finished first
                if _stamp_ok(_read_stamp(final), name, seed, train) and \
                        not force:
                    continue
                os.rename(final, osp.join(tmp, 'old'))
            try:
                os.rename(data, final)
            except OSError:
                # a concurrent run renamed its copy first; keep that one
                if not _stamp_ok(_read_stamp(final), name, seed, train):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return paths
