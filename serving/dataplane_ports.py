"""What the data plane needs from the rest of the server, as Protocols: the
core's handles, a servable, a batcher and the metrics sink. Fakes in unit
tests and the real server_core, batching and metrics all fit these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.core.status import Code


class TensorInfoLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> int: ...


class ServableLike(Protocol):
    @property
    def signatures(self) -> Mapping[str, Any]: ...

    def run(
        self,
        signature_key: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]: ...

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap: ...


class HandleLike(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def label(self) -> str | None: ...
    @property
    def servable(self) -> Any: ...


class CoreLike(Protocol):
    """The part of serving.server_core.ServerCore the data plane uses."""

    def handle(
        self,
        model: str,
        version: int | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float | None = None,
    ) -> AbstractContextManager[Any]: ...

    async def wait_for_version(
        self,
        model: str,
        version: int | None = None,
        label: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float | None = None,
    ) -> None: ...

    def list_models(self) -> Sequence[Any]: ...


class BatcherLike(Protocol):
    """serving.batching.Batcher (--enable_batching; a servable it does not
    batch comes back as it is) or serving.opportunistic.OpportunisticBatcher
    (--opportunistic_batching): wraps a servable so its `run` and `submit` are
    batched. `withdrawable`: a call whose awaiting caller is cancelled before
    it starts may be taken back."""

    withdrawable: bool

    def bind(self, servable: Any, model: str, version: int) -> Any: ...

    def joins(self, model: str) -> bool: ...


class MetricsLike(Protocol):
    def observe(
        self, model: str, version: int | None, label: str, api: str, entrypoint: str,
        status_code: Code, seconds: float,
    ) -> None: ...
