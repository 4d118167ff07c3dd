"""SVT's classification head: class attention over [mean token; tokens],
final LayerNorm, linear classifier and the token-labelling auxiliary head;
and the token-labelling classifier with MixToken.

The modules keep the official names under ``head.``: ``post_network.0.*``
(the class-attention block), ``norm`` (the official ``norm{num_stages}``),
``head`` (linear classifier), ``aux_head`` (per-token classifier of token
labelling). ``tools/model_converters/svt_to_mmpretrain.py`` maps them.

Prediction (``forward``/``predict``): ``head(cls) + aux_scale * max over tokens
of aux_head(tokens)`` with ``aux_scale`` 0.5, exactly what the official model
returns in eval mode when it has the auxiliary head (``token_label=True``);
without it (``with_aux=False``), ``head(cls)``.

Training (``loss``), three cases:

* ``with_aux=False``: ``loss_module(cls_logits, target)``, the target being
  ``gt_score`` (soft labels of mmpretrain's Mixup/CutMix batch augments) or
  ``gt_label``; the official training without token labelling.
* ``with_aux=True``, data samples without dense labels: every token's
  auxiliary logits are also trained on the image's target,
  ``cls_weight * loss(cls) + dense_weight * loss(aux)`` (the official
  ``TokenLabelCrossEntropy`` given image-level targets).
* ``with_aux=True`` and data samples carrying ``token_label`` (token
  labelling; see :mod:`swat_mm.datasets.token_label` for the files and the
  pipeline producing it): ``token_label`` is a (num_classes, 1 + S*S) float
  tensor per sample, column 0 the soft target of the class prediction and
  columns 1.. the soft targets of the S x S last-stage tokens, row-major;
  the loss is ``cls_weight * CE(cls, column 0) + dense_weight * mean over
  tokens CE(aux, columns 1..)`` with soft-target cross entropy, as the
  official ``TokenLabelCrossEntropy``. S x S must equal the last stage's
  token grid (7 x 7 at 224).

MixToken (:mod:`swat_mm.models.layers.mix_token`): with
:class:`SVTTokenLabelClassifier` (the token-labelling configs' model, as the
official model with ``token_label=True``), training mixes the stem's tokens
in a box of the last stage's grid; ``loss(..., mix_box=box)`` then swaps the
auxiliary outputs inside the box back and mixes the class target by the
box's area, exactly as the official ``forward`` and
``TokenLabelCrossEntropy`` do (with dense labels, and with image-level
targets: one-hot ``gt_label`` or soft ``gt_score``).
"""
import math
from typing import Any, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample

from swat_mm.registry import MODELS
from ..layers.mix_token import (MixBox, mix_class_target, sample_mix_box,
                                unmix_token_outputs)


class ClassAttention(nn.Module):
    """The class token (first) attends to all tokens; (B, 1+N, C) ->
    (B, 1, C)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads '
                             f'{num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.kv = nn.Linear(dim, dim * 2)
        self.q = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        kv = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, d)
        q = self.q(x[:, :1]).reshape(B, self.num_heads, 1, self.head_dim)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        cls = (attn @ v).transpose(1, 2).reshape(B, 1, C)
        return self.proj(cls)


class ClassMlp(nn.Module):
    """Linear, GELU, linear."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ClassBlock(nn.Module):
    """Updates only the class token: ``cls + attn(norm1(x))``, then
    ``cls + mlp(norm2(cls))``; (B, 1+N, C) -> (B, 1+N, C)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ClassAttention(dim, num_heads)
        self.mlp = ClassMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = x[:, :1] + self.attn(self.norm1(x))
        cls = cls + self.mlp(self.norm2(cls))
        return torch.cat([cls, x[:, 1:]], dim=1)


@MODELS.register_module()
class SVTClsHead(ClsHead):
    """SVT classification head (see the module docstring).

    Args:
        num_classes: classes.
        in_channels: channels of the backbone's last stage.
        num_heads: heads of the class attention (the last stage's).
        mlp_ratio: hidden width over ``in_channels`` of the class block's MLP
            (the last stage's).
        with_aux: build the token-labelling ``aux_head`` (the official
            ``token_label=True`` models).
        aux_scale: weight of the auxiliary max-over-tokens logits in the
            prediction (0.5 officially).
        cls_weight: loss weight of the class prediction when ``with_aux``.
        dense_weight: loss weight of the token predictions when ``with_aux``
            (0.5, the official default).
        num_cls_blocks: class-attention blocks (1 officially).
        loss: mmpretrain loss for the class prediction (and, without dense
            labels, the token predictions).
        topk, cal_acc, init_cfg: as :class:`mmpretrain.models.heads.ClsHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 with_aux: bool = False,
                 aux_scale: float = 0.5,
                 cls_weight: float = 1.0,
                 dense_weight: float = 0.5,
                 num_cls_blocks: int = 1,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Tuple[int, ...] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss=loss, topk=topk, cal_acc=cal_acc,
                         init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.with_aux = with_aux
        self.aux_scale = aux_scale
        self.cls_weight = cls_weight
        self.dense_weight = dense_weight
        self.post_network = nn.ModuleList([
            ClassBlock(in_channels, num_heads, mlp_ratio)
            for _ in range(num_cls_blocks)
        ])
        self.norm = nn.LayerNorm(in_channels, eps=1e-6)
        self.head = nn.Linear(in_channels, num_classes)
        if with_aux:
            self.aux_head = nn.Linear(in_channels, num_classes)

    def strict_part_hint(self, state_dict: Mapping[str, Any],
                         prefix: str) -> Optional[str]:
        """Marks the head as a part whose keys must all load when mmengine
        loads a whole model (:mod:`swat_mm.utils.load_guard`): released SVT
        checkpoints carry the token-labelling head, which a model without
        it would drop with a log line (and the official inference adds
        it to the logits). Returns the config to use instead."""
        aux = any(k.startswith(prefix + 'aux_head.') for k in state_dict)
        if aux and not self.with_aux:
            return ('It holds the token-labelling head (aux_head; every '
                    'released SVT checkpoint has it): evaluate it with the '
                    'token-labelling config of its size, configs/cls/svt/'
                    'svt-h-<size>_8xb128_in1k-tl.py (head with_aux=True).')
        if not aux and self.with_aux:
            return ('It has no token-labelling head (aux_head): use the '
                    'plain config, configs/cls/svt/svt-h-<size>_8xb128_'
                    'in1k.py (head with_aux=False).')
        return None

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is not None:
            return
        for m in self.modules():  # the official init
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _tokens(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Last of ``feats`` (B, C, H, W) -> normalised (B, 1+H*W, C): the
        class token after the class blocks, then the patch tokens."""
        x = feats[-1]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SVTClsHead expects a (B, {self.in_channels}, '
                             f'H, W) map, got {tuple(x.shape)}')
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
        for block in self.post_network:
            x = block(x)
        return self.norm(x)

    def pre_logits(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The normalised class token, (B, C)."""
        return self._tokens(feats)[:, 0]

    def forward_train(
        self, feats: Tuple[torch.Tensor, ...]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Class logits (B, K) and token logits (B, H*W, K) (None without
        ``aux_head``)."""
        x = self._tokens(feats)
        cls = self.head(x[:, 0])
        aux = self.aux_head(x[:, 1:]) if self.with_aux else None
        return cls, aux

    def forward(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The prediction logits, (B, K)."""
        cls, aux = self.forward_train(feats)
        if aux is None:
            return cls
        return cls + self.aux_scale * aux.max(dim=1)[0]

    def loss(self, feats: Tuple[torch.Tensor, ...],
             data_samples: List[DataSample],
             mix_box: Optional[MixBox] = None, **kwargs) -> dict:
        """Training losses (see the module docstring).

        Args:
            feats: the backbone's maps, the last (B, C, h, w).
            data_samples: B samples with ``token_label`` (K, 1 + h*w), or
                ``gt_score`` (K,) / ``gt_label``.
            mix_box: the MixToken box on the (h, w) grid when the stem's
                tokens were mixed (needs ``with_aux``).

        Returns:
            ``loss`` (class prediction) and, with ``aux_head``,
            ``loss_aux`` (token predictions), already weighted.
        """
        cls, aux = self.forward_train(feats)
        if mix_box is not None:
            if aux is None:
                raise ValueError('MixToken needs the aux_head: set '
                                 'with_aux=True')
            aux = unmix_token_outputs(aux, mix_box, feats[-1].shape[-2:])
        if 'token_label' in data_samples[0]:
            return self._token_label_loss(cls, aux, data_samples, mix_box)
        if mix_box is None:
            losses = self._get_loss(cls, data_samples, **kwargs)
        if aux is None:
            return losses
        B, N, K = aux.shape
        if 'gt_score' in data_samples[0]:
            target = torch.stack([s.gt_score for s in data_samples])
        else:
            target = torch.cat([s.gt_label for s in data_samples])
        if mix_box is not None:
            # the official TokenLabelCrossEntropy with image-level targets
            if target.dim() == 1:
                target = F.one_hot(target, K)
            target = target.to(cls)
            losses = dict(loss=self.loss_module(
                cls, mix_class_target(target, mix_box, N), avg_factor=B,
                **kwargs))
        losses['loss'] = self.cls_weight * losses['loss']
        losses['loss_aux'] = self.dense_weight * self.loss_module(
            aux.reshape(B * N, K), target.repeat_interleave(N, dim=0),
            avg_factor=B * N, **kwargs)
        return losses

    def _token_label_loss(self, cls: torch.Tensor,
                          aux: Optional[torch.Tensor],
                          data_samples: List[DataSample],
                          mix_box: Optional[MixBox] = None) -> dict:
        if aux is None:
            raise ValueError('The data samples carry token labels but the '
                             'head has no aux_head: set with_aux=True')
        B, N, K = aux.shape
        target = torch.stack([s.token_label for s in data_samples]).to(cls)
        if target.shape[1] != K or target.shape[2] != N + 1:
            size = math.isqrt(max(target.shape[2] - 1, 0))
            raise ValueError(
                f'token_label of shape {tuple(target.shape[1:])} (classes, '
                f'1 + S*S, S={size}) does not fit {K} classes and the '
                f'{N} last-stage tokens; set label_size of '
                'swat_mm.MakeTokenLabel to the last stage\'s grid size')
        target_cls = target[:, :, 0]
        if mix_box is not None:
            target_cls = mix_class_target(target_cls, mix_box, N)
        loss_cls = _soft_ce(cls, target_cls)
        loss_aux = _soft_ce(aux.reshape(B * N, K),
                            target[:, :, 1:].transpose(1, 2).reshape(-1, K))
        return dict(loss=self.cls_weight * loss_cls,
                    loss_aux=self.dense_weight * loss_aux)


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``sum(-target * log_softmax(logits))``; (R, K)."""
    return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()


@MODELS.register_module()
class SVTTokenLabelClassifier(ImageClassifier):
    """mmpretrain's ``ImageClassifier`` with token labelling's MixToken in
    training, as the official SVT model with ``token_label=True`` (the
    model of every released SVT checkpoint and of the paper's * rows).

    In ``loss``, a box is drawn on the last stage's token grid
    (:func:`~swat_mm.models.layers.mix_token.sample_mix_box`), the
    backbone mixes the stem's tokens inside the box scaled to the stem's
    grid (``SVT.forward(x, mix_box=...)``), and the head un-mixes its token
    outputs and mixes the class target
    (:meth:`SVTClsHead.loss`). Prediction and the state dict are
    ``ImageClassifier``'s: checkpoints load into either.

    Args:
        mix_token: apply MixToken in training (True officially).
        mix_beta: the Beta(beta, beta) of the kept fraction (1.0).
        *args, **kwargs: as ``ImageClassifier`` (an SVT backbone, an
            :class:`SVTClsHead` with ``with_aux=True``, no neck).

    Raises:
        ValueError: MixToken with another backbone or head, or (in
            training) an input whose stem grid is not ``2**(stages - 1)``
            times the last stage's (the official model needs the same:
            224 -> 56 and 7).
    """

    def __init__(self, *args, mix_token: bool = True,
                 mix_beta: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mix_token = mix_token
        self.mix_beta = mix_beta
        if mix_token:
            from ..backbones.svt import SVT
            if not isinstance(self.backbone, SVT) or self.with_neck or \
                    not isinstance(self.head, SVTClsHead) or \
                    not self.head.with_aux:
                raise ValueError(
                    'MixToken needs an swat_mm.SVT backbone, no neck and an '
                    'swat_mm.SVTClsHead with with_aux=True (or set '
                    'mix_token=False)')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        """(B, 3, H, W) images -> losses, with MixToken if enabled."""
        if not self.mix_token:
            return super().loss(inputs, data_samples)
        stages = self.backbone.num_stages
        stem = [(s + 1) // 2 for s in inputs.shape[-2:]]
        stem = [(s + 1) // 2 for s in stem]
        scale = 2**(stages - 1)
        grid = [s // scale for s in stem]
        if any(g * scale != s for g, s in zip(grid, stem)):
            raise ValueError(
                f'MixToken: the stem grid {tuple(stem)} of a '
                f'{tuple(inputs.shape[-2:])} input is not {scale} times the '
                'last stage\'s grid; train at a size divisible by '
                f'{4 * scale}')
        box = sample_mix_box(tuple(grid), self.mix_beta)
        feats = self.backbone(inputs, mix_box=box.scaled(scale))
        return self.head.loss(feats, data_samples, mix_box=box)
