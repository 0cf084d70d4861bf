"""Files shipped with the package: ``person-synth.onnx``, the person detector that
``mvd-edge train-detector`` trained on synthetic scenes (``match --detector person-synth``),
and ``person-synth.json``, its training report (command, data, validation scores)."""
