# mmdeploy deploy config: an mmseg segmentor (UperNet) to ONNX Runtime,
# dynamic batch, height and width (exact at any size with the adaptive
# pooling of tools/deployment/mmdeploy_compat.py). The graph ends in the
# logits (with_argmax=False): mmseg resizes them to the image before the
# arg-max, which export.py does with the segmentor's postprocess_result.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,
    optimize=False,
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        output={0: 'batch', 2: 'height', 3: 'width'}))
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=False)
backend_config = dict(type='onnxruntime')
