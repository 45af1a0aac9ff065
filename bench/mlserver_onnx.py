"""An ONNX Runtime model for MLServer, which ships no ONNX runtime of its own: the few lines a user serving an
.onnx file with MLServer writes. bench/bench_serving.py serves the same file with it as the peer to beat.

model-settings.json: {"name": ..., "implementation": "mlserver_onnx.OnnxRuntimeModel",
                      "parameters": {"uri": "./model.onnx"}}; ORT_THREADS sets ONNX Runtime's intra-op threads."""
import os

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("ORT_THREADS", "0"))
        self._session = ort.InferenceSession(await get_model_uri(self.settings), options,
                                             providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(self._outputs, feeds)
        return InferenceResponse(model_name=self.name,
                                 outputs=[NumpyCodec.encode_output(n, r) for n, r in zip(self._outputs, results)])
