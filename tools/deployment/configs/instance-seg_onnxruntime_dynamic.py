# mmdeploy deploy config: an mmdet instance segmentor (Mask R-CNN) to ONNX
# Runtime, dynamic batch, height and width. The graph gives dets (x1, y1,
# x2, y2, score), labels and 28 x 28 mask probabilities per detection;
# pasting the masks into the image stays in Python (export_postprocess_mask
# False). post_processing: the second stage's NMS beyond the model's own
# test_cfg (which sets score_thr, the IoU and max_per_img).
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels', 'masks'],
    input_shape=None,
    optimize=False,
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        dets={0: 'batch', 1: 'num_dets'},
        labels={0: 'batch', 1: 'num_dets'},
        masks={0: 'batch', 1: 'num_dets', 2: 'height', 3: 'width'}))
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1,
        export_postprocess_mask=False))
backend_config = dict(type='onnxruntime')
