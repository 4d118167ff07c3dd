# mmdeploy deploy config: an mmpretrain classifier to ONNX Runtime, dynamic
# batch, height and width (every swat_mm backbone family but the fixed-token
# SWAT MLPs takes any size; tests/test_onnx_export.py). Self-contained:
# mmdeploy's pip wheel carries no configs to inherit from.
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
        output={0: 'batch'}))
codebase_config = dict(type='mmpretrain', task='Classification')
backend_config = dict(type='onnxruntime')
