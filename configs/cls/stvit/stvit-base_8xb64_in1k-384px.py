# STViT-B fine-tuned at 384 from the 224 model: the recipe of
# stvit-small_8xb64_in1k-384px.py with STViT-B (drop path 0.4, as the
# official command; inert: the model trains in eval mode, see that config).
_base_ = ['./stvit-small_8xb64_in1k-384px.py']

model = dict(backbone=dict(arch='base', drop_path_rate=0.4))
