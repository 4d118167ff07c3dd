"""The official STViT (``hhb072/STViT``), built from a clone for the
benchmark comparison."""
import os.path as osp

import torch
import torch.nn as nn

from .loading import import_file, load_matching


class _OfficialSTViTBackbone(nn.Module):
    """The official STViT up to its last stage (stem and ``layers``, each
    with its down-sampling), i.e. our backbone's last output map."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.model.patch_embed(x)
        for layer in self.model.layers:
            x = layer(x)
        return x


def build_official_stvit(repo: str, ours: nn.Module) -> nn.Module:
    """Official ``models/stvit.py`` STViT with our backbone's settings and
    weights (the official keys are ours plus the identity unfold/fold
    kernels and the classifier tail, which this path does not run)."""
    official = import_file(osp.join(repo, 'models', 'stvit.py'),
                           'official_stvit')
    arch = ours.arch_settings
    num_stages = len(arch['depths'])
    drop_path = [m.drop_prob for m in ours.modules()
                 if hasattr(m, 'drop_prob')]
    model = official.STViT(
        embed_dim=list(arch['embed_dims']), depths=list(arch['depths']),
        num_heads=list(arch['num_heads']), n_iter=list(ours.n_iter),
        stoken_size=[tuple(s) for s in ours.stoken_size], projection=1024,
        num_classes=1000,
        layerscale=list(arch.get('layer_scale', [False] * num_stages)),
        init_values=arch.get('layer_scale_init_value', 1e-5),
        drop_path_rate=max(drop_path, default=0.))
    load_matching(
        model, ours, lambda k: k.endswith(('.unfold.weights',
                                           '.fold.weights')) or
        k.split('.')[0] in ('proj', 'norm', 'head'))
    return _OfficialSTViTBackbone(model)
