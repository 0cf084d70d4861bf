"""A tiny MLServer runtime for the tests: one ONNX graph run by ONNX Runtime (CPU), one input, one output.

MLServer (1.7) has no ONNX runtime of its own, so ``tests/test_kserve_v2.py`` serves the
project's tiny exported engine through this class (``"implementation":
"mlserver_runtime.OnnxRuntimeModel"`` in ``model-settings.json``, with this folder on
``PYTHONPATH``). ``parameters.uri`` is the ``.onnx`` file. ``parameters.extra.metadata_parameters``,
when given, is published as the ``parameters`` of the model metadata
(``GET /v2/models/NAME``), which is where a plain KServe v2 server can carry the ``mvd_edge.*``
settings; MLServer's own runtimes publish only ``content_type`` there.

Imported only inside the MLServer process (the test process needs no mlserver import for it).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse, Parameters


class OnnxRuntimeModel(MLModel):
    """``parameters.uri`` (an ``.onnx``) through an ONNX Runtime CPU session; JSON tensors in and out."""

    async def load(self) -> bool:
        params = self.settings.parameters
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the test machine's cores are shared
        self._session = ort.InferenceSession(str(params.uri), options, providers=["CPUExecutionProvider"])
        (inp,), (out,) = self._session.get_inputs(), self._session.get_outputs()
        self._input, self._output = inp.name, out.name
        self._published = dict((params.extra or {}).get("metadata_parameters") or {})
        return True

    async def metadata(self) -> MetadataModelResponse:
        meta = await super().metadata()
        if self._published:
            base = meta.parameters.model_dump(exclude_none=True) if meta.parameters else {}
            meta.parameters = Parameters(**base, **self._published)
        return meta

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if len(payload.inputs) != 1 or payload.inputs[0].name != self._input:
            raise InferenceError(f"expected one input named {self._input!r}, got "
                                 f"{[i.name for i in payload.inputs]}")
        x = NumpyCodec.decode_input(payload.inputs[0])
        if x.dtype != np.float32:
            raise InferenceError(f"input {self._input!r} must be FP32, got {payload.inputs[0].datatype}")
        (y,) = self._session.run([self._output], {self._input: x})
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output(self._output, y)])
