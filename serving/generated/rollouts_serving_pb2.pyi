from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransitionPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSITION_POLICY_UNSPECIFIED: _ClassVar[TransitionPolicy]
    AVAILABILITY_PRESERVING: _ClassVar[TransitionPolicy]
    RESOURCE_PRESERVING: _ClassVar[TransitionPolicy]
TRANSITION_POLICY_UNSPECIFIED: TransitionPolicy
AVAILABILITY_PRESERVING: TransitionPolicy
RESOURCE_PRESERVING: TransitionPolicy

class SetTransitionPolicyRequest(_message.Message):
    __slots__ = ("model_name", "policy")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    policy: TransitionPolicy
    def __init__(self, model_name: _Optional[str] = ..., policy: _Optional[_Union[TransitionPolicy, str]] = ...) -> None: ...

class SetTransitionPolicyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetConfigResponse(_message.Message):
    __slots__ = ("model_server_config", "transition_policies", "splits")
    class TransitionPoliciesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: TransitionPolicy
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[TransitionPolicy, str]] = ...) -> None: ...
    MODEL_SERVER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_POLICIES_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    model_server_config: str
    transition_policies: _containers.ScalarMap[str, TransitionPolicy]
    splits: _containers.RepeatedCompositeFieldContainer[Split]
    def __init__(self, model_server_config: _Optional[str] = ..., transition_policies: _Optional[_Mapping[str, TransitionPolicy]] = ..., splits: _Optional[_Iterable[_Union[Split, _Mapping]]] = ...) -> None: ...

class HeaderMatch(_message.Message):
    __slots__ = ("header", "value")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    header: str
    value: str
    def __init__(self, header: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Split(_message.Message):
    __slots__ = ("model_name", "stable_label", "canary_label", "canary_weight_bp", "hash_key", "salt", "match", "shadow")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    STABLE_LABEL_FIELD_NUMBER: _ClassVar[int]
    CANARY_LABEL_FIELD_NUMBER: _ClassVar[int]
    CANARY_WEIGHT_BP_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    stable_label: str
    canary_label: str
    canary_weight_bp: int
    hash_key: str
    salt: str
    match: _containers.RepeatedCompositeFieldContainer[HeaderMatch]
    shadow: Shadow
    def __init__(self, model_name: _Optional[str] = ..., stable_label: _Optional[str] = ..., canary_label: _Optional[str] = ..., canary_weight_bp: _Optional[int] = ..., hash_key: _Optional[str] = ..., salt: _Optional[str] = ..., match: _Optional[_Iterable[_Union[HeaderMatch, _Mapping]]] = ..., shadow: _Optional[_Union[Shadow, _Mapping]] = ...) -> None: ...

class Shadow(_message.Message):
    __slots__ = ("sample", "tolerance", "outputs")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    sample: float
    tolerance: float
    outputs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sample: _Optional[float] = ..., tolerance: _Optional[float] = ..., outputs: _Optional[_Iterable[str]] = ...) -> None: ...

class SetSplitRequest(_message.Message):
    __slots__ = ("split",)
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    split: Split
    def __init__(self, split: _Optional[_Union[Split, _Mapping]] = ...) -> None: ...

class SetSplitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClearSplitRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class ClearSplitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version", "state", "error_code", "error_message")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: str
    error_code: str
    error_message: str
    def __init__(self, version: _Optional[int] = ..., state: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "base_path", "platform", "transition_policy", "versions", "labels", "split", "has_split")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_PATH_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_POLICY_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    HAS_SPLIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    base_path: str
    platform: str
    transition_policy: TransitionPolicy
    versions: _containers.RepeatedCompositeFieldContainer[VersionInfo]
    labels: _containers.ScalarMap[str, int]
    split: Split
    has_split: bool
    def __init__(self, name: _Optional[str] = ..., base_path: _Optional[str] = ..., platform: _Optional[str] = ..., transition_policy: _Optional[_Union[TransitionPolicy, str]] = ..., versions: _Optional[_Iterable[_Union[VersionInfo, _Mapping]]] = ..., labels: _Optional[_Mapping[str, int]] = ..., split: _Optional[_Union[Split, _Mapping]] = ..., has_split: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
