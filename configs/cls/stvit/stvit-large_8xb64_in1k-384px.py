# STViT-L fine-tuned at 384 from the 224 model: the recipe of
# stvit-small_8xb64_in1k-384px.py with STViT-L (drop path 0.6, as the
# official command; inert: the model trains in eval mode, see that config).
_base_ = ['./stvit-small_8xb64_in1k-384px.py']

model = dict(backbone=dict(arch='large', drop_path_rate=0.6),
             neck=dict(in_channels=640))
