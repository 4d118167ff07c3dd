"""Deterministic, well-scaled weights for golden parity fixtures.

A full-size model's state dict is too large to commit, so its fixture stores
only the key names, shapes and a seed, and this function rebuilds the same
tensors anywhere: numpy's legacy ``RandomState`` has a frozen stream across
numpy versions. The values are spread away from initial defaults (BatchNorm
statistics, layer scales) so that every parameter moves the logits.
"""
from typing import Dict, Sequence, Tuple

import numpy as np
import torch


def synth_state_dict(shapes: Sequence[Tuple[str, Sequence[int]]],
                     seed: int) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}
    for idx, (key, shape) in enumerate(shapes):
        shape = tuple(int(s) for s in shape)
        rng = np.random.RandomState(seed * 100003 + idx)
        leaf = key.rsplit('.', 1)[-1]
        if leaf == 'num_batches_tracked':
            out[key] = torch.zeros(shape, dtype=torch.long)
            continue
        if key.endswith('fold.weights'):  # STViT's frozen identity kernels
            out[key] = torch.eye(9).reshape(shape)
            continue
        if leaf == 'running_var':
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == 'running_mean':
            value = 0.1 * rng.standard_normal(shape)
        elif leaf.startswith('gamma'):
            value = 0.1 + 0.05 * rng.standard_normal(shape)
        elif len(shape) <= 1 and leaf == 'weight':
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) <= 1:
            value = 0.05 * rng.standard_normal(shape)
        else:
            bound = 1.0 / np.sqrt(np.prod(shape[1:]))
            value = rng.uniform(-bound, bound, shape)
        out[key] = torch.from_numpy(np.asarray(value, dtype=np.float32))
    return out


def synth_input(shape: Sequence[int], seed: int) -> torch.Tensor:
    rng = np.random.RandomState(seed)
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
