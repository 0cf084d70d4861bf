"""Calibration and precision graphs (installed as ``mvd_edge.quant``).

Precision lives in the ONNX graph (see DESIGN.md): FP16 is an FP16 graph with FP32 I/O,
INT8 is a Q/DQ graph calibrated here. Modules:

* :mod:`~mvd_edge.quant.manifest` - calibration-set manifests (data-set train split,
  image folder, video crops); query/gallery/test data is refused.
* :mod:`~mvd_edge.quant.video` - MOT box files, HOG people detector, frame reading.
* :mod:`~mvd_edge.quant.ranges` - ranges with onnxruntime's calibrators, cached on disk.
* :mod:`~mvd_edge.quant.graph` - layers / head / input roles of a graph, placement report.
* :mod:`~mvd_edge.quant.qdq` - ``trt`` and ``cpu`` INT8 Q/DQ flavours from one set of ranges.
* :mod:`~mvd_edge.quant.fp16` - FP16 graph and its overflow report.
* :mod:`~mvd_edge.quant.sensitivity` - accuracy-guided fallback (per-layer sensitivity).
* :mod:`~mvd_edge.quant.api` - entry points ``quantize`` and ``to_fp16``.

Nothing is imported here, so ``import mvd_edge.quant`` stays cheap.
"""
