"""Small architectures of every backbone family, shared by the unit tests
(fast on CPU; each per-stage setting differs where the tests need it)."""

# STViT: 4 stages, 64 input -> stage maps 16, 8, 4, 2
STVIT_TINY = dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 2, 1],
                  num_heads=[1, 2, 3, 4])

# SVT: 64 input -> stage maps 16, 8, 4, 2
SVT_TINY = dict(stem_channels=8, embed_dims=[16, 24, 32, 40],
                depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 5],
                mlp_ratios=[2, 2, 2, 2])

# SWAT ViT / Mixer / ResMLP (num_heads == token_channels, as the official
# ConvAttention requires)
SWAT_VIT_TINY = dict(embed_dims=32, num_layers=4, num_heads=2,
                     token_channels=2, sub_patch=4, stem_channels=16,
                     pos_map_size=4, mlp_ratio=2., mlp_kernel=3)
SWAT_MIXER_TINY = dict(embed_dims=32, num_layers=3, token_channels=2,
                       sub_patch=4, stem_channels=16, token_kernel=3,
                       channel_kernel=3)
SWAT_RESMLP_TINY = dict(embed_dims=48, num_layers=3, token_channels=3,
                        sub_patch=4, stem_channels=16, mlp_ratio=2.)

# SWAT Swin: widths 16, 32, 64, 128; every per-stage setting differs from
# its neighbours'; windows 4, 4, 2, 2
SWAT_SWIN_TINY = dict(
    depths=[2, 2, 2, 1], num_heads=[1, 2, 2, 4], window_size=[4, 4, 2, 2],
    shift=[True, True, True, False],
    attn_conv=[(4, 2, 2, 3), (2, 4, 4, 1), (4, 4, 4, 3), (2, 8, 8, 3)],
    mlp_dw_kernel=[3, 3, 5, 1],
    merge_conv=[(4, 2, 2, 3), (2, 4, 4, 3), (4, 4, 4, 1)],
    tokenizer=dict(stem_channels=16, out_channels=4), mlp_ratio=2.)

# every backbone family at unit-test size: class name in
# swat_mm.models.backbones, constructor kwargs, input side
FAMILY_CASES = {
    'stvit': ('STViT', dict(arch=STVIT_TINY, stoken_size=(4, 2, 1, 1)), 64),
    'svt': ('SVT', dict(arch=SVT_TINY, img_size=64), 64),
    'swat_vit': ('SWATViT', dict(arch=SWAT_VIT_TINY, img_size=32), 32),
    'swat_mixer': ('SWATMixer', dict(arch=SWAT_MIXER_TINY, img_size=32), 32),
    'swat_resmlp': ('SWATResMLP', dict(arch=SWAT_RESMLP_TINY, img_size=32),
                    32),
    'swat_swin': ('SWATSwin', dict(arch=SWAT_SWIN_TINY), 64),
}

# What each family promises at its FAMILY_CASES size, for
# tests/test_backbone_contract.py: extra constructor kwargs for NCHW maps,
# the input (H, W) to test at (odd sides where the family takes any input
# size; the one img_size of the fixed-token SWAT MLPs), and per stage (or
# block, for the single-stage families) the channels and the stride: a map
# is (B, channels[i], ceil(H / strides[i]), ceil(W / strides[i])).
#
# ``parts``: the module and parameter names (built with every out_index) of
# what ``frozen_stages`` freezes, step by step: parts[0] is what 0 freezes
# (the stem), parts[i + 1] what i + 1 adds: stage or block i with its
# output norm and the down-sampling the family groups with it (the one
# after the stage in STViT and SWATSwin, the one before it in SVT). Every
# parameter is in exactly one part.
#
# ``batch_norm``: the constructor overrides under which the tiny arch has
# batch norms (BN, SyncBN), for the ``norm_eval`` contract; ``{}`` where it
# has them as built, none where the family has LayerNorms only.
FAMILY_GEOMETRY = {
    'stvit': dict(
        extra={}, size=(67, 45), channels=(16, 32, 48, 64),
        strides=(4, 8, 16, 32),
        parts=(('patch_embed', ), ('layers.0', ), ('layers.1', ),
               ('layers.2', ), ('layers.3', )),
        batch_norm=({}, dict(norm_cfg=dict(type='SyncBN')))),
    'svt': dict(
        extra={}, size=(67, 45), channels=(16, 24, 32, 40),
        strides=(4, 8, 16, 32),
        # no norm4 without final_norm
        parts=(('patch_embed1', ), ('block1', 'norm1'),
               ('patch_embed2', 'block2', 'norm2'),
               ('patch_embed3', 'block3', 'norm3'),
               ('patch_embed4', 'block4')),
        # the stem's batch norms
        batch_norm=({}, dict(norm_cfg=dict(type='SyncBN')))),
    # tokens of 2 x 4 x 4 after the stride-2 stem: token stride 8
    'swat_vit': dict(
        extra=dict(out_type='featmap'), size=(37, 51), channels=(32, ) * 4,
        strides=(8, ) * 4,
        parts=(('patch_embed', 'pos_embed'), ('blocks.0', ), ('blocks.1', ),
               ('blocks.2', ), ('blocks.3', 'norm')),
        batch_norm=tuple(
            dict(arch=dict(SWAT_VIT_TINY, stem_norm_cfg=dict(type=t)))
            for t in ('BN', 'SyncBN'))),
    'swat_mixer': dict(
        extra={}, size=(32, 32), channels=(32, ) * 3, strides=(8, ) * 3,
        parts=(('stem', ), ('blocks.0', ), ('blocks.1', ),
               ('blocks.2', 'norm')),
        batch_norm=tuple(
            dict(arch=dict(SWAT_MIXER_TINY, stem_norm_cfg=dict(type=t)))
            for t in ('BN', 'SyncBN'))),
    'swat_resmlp': dict(
        extra={}, size=(32, 32), channels=(48, ) * 3, strides=(8, ) * 3,
        parts=(('stem', ), ('blocks.0', ), ('blocks.1', ),
               ('blocks.2', 'norm')),
        batch_norm=tuple(
            dict(arch=dict(SWAT_RESMLP_TINY, stem_norm_cfg=dict(type=t)))
            for t in ('BN', 'SyncBN'))),
    'swat_swin': dict(
        extra={}, size=(67, 45), channels=(16, 32, 64, 128),
        strides=(4, 8, 16, 32),
        # the last stage's output norm is the official final ``norm``
        parts=(('patch_embed', ), ('layers.0', 'norm0'),
               ('layers.1', 'norm1'), ('layers.2', 'norm2'),
               ('layers.3', 'norm')),
        batch_norm=()),
}
