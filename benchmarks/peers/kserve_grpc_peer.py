"""KServe's ModelServer with its V2 gRPC protocol answering too (run in KServe's venv).

The shared peer (`../shared/peers/kserve_model_server.py`) serves KServe's V1
REST protocol; its `predict` reads `payload["instances"]`, which a V2 gRPC
`ModelInfer` call (an `InferRequest`) does not have. This wrapper keeps that
peer for REST and answers `InferRequest`s the way a KServe user's V2 model
would: first input as numpy, the signature call, first output back as a
binary tensor. So the benchmark compares gRPC with gRPC.

Run (KServe's venv, never the project's):
    python kserve_grpc_peer.py serve MODEL SAVED_MODEL_DIR HTTP_PORT GRPC_PORT
    python kserve_grpc_peer.py request MODEL FEATURES   # hex of a ModelInferRequest
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

SHARED_PEER = Path(__file__).resolve().parents[3] / "shared" / "peers" / "kserve_model_server.py"


def infer_request_hex(model: str, features: int) -> str:
    """The serialized ModelInferRequest for one instance (as harness.instances builds it)."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    row = [1.0] if features == 0 else [[round((i % 17) / 17.0, 4) for i in range(features)]]
    flat = row if features == 0 else row[0]
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="x", datatype="FP32",
                                shape=[1] if features == 0 else [1, features])
    tensor.contents.fp32_contents.extend(flat)
    return request.SerializeToString().hex()


def serve(model: str, saved_model: str, http_port: int, grpc_port: int) -> None:
    from kserve import InferOutput, InferRequest, InferResponse, ModelServer

    spec = importlib.util.spec_from_file_location("kserve_model_server", SHARED_PEER)
    assert spec is not None and spec.loader is not None
    shared = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shared)

    class V2Peer(shared.SavedModelPeer):  # type: ignore[name-defined]
        def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
            if not isinstance(payload, InferRequest):
                return super().predict(payload, headers, response_headers)
            x = payload.inputs[0].as_numpy()
            y = self.fn(**{self.input_name: x})[self.output_name].numpy()
            output = InferOutput(name=self.output_name, shape=list(y.shape), datatype="FP32")
            output.set_data_from_numpy(y, binary_data=True)
            return InferResponse(response_id=payload.id or "", model_name=self.name,
                                 infer_outputs=[output], from_grpc=payload.from_grpc)

    ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1).start(
        [V2Peer(model, saved_model)])


def main(argv: list[str]) -> int:
    if argv[:1] == ["request"] and len(argv) == 3:
        print(infer_request_hex(argv[1], int(argv[2])))
        return 0
    if argv[:1] == ["serve"] and len(argv) == 5:
        serve(argv[1], argv[2], int(argv[3]), int(argv[4]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
