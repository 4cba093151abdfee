"""A request checked against the chosen signature, with TF Serving's texts
(predict_util.cc, classifier.cc, regressor.cc): input names and dtypes, the
output filter, the signature's method_name. Pure: no handle is taken here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from serving import tensor_codec as tc
from serving.core.status import Code, ServingError, failed_precondition, invalid_argument
from serving.example_results import SignatureLike

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"

# A request's inputs, or a function of the chosen signature that decodes them
# (REST can only parse its JSON once it knows the signature's dtypes).
Inputs = Mapping[str, np.ndarray] | Callable[[Any], Mapping[str, np.ndarray]]


def predict_missing_signature(name: str) -> ServingError:
    return failed_precondition(f'Serving signature key "{name}" not found.')


def check_input_names(signature: SignatureLike, names: Sequence[str]) -> None:
    """predict_util.cc VerifyRequestInputsSize, then unknown aliases."""
    sent, wanted = set(names), set(signature.inputs)
    if len(sent) != len(wanted):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(wanted)}"
            f" len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}})."
            f" Sent extra: {{{','.join(sorted(sent - wanted))}}}."
            f" Missing but required: {{{','.join(sorted(wanted - sent))}}}."
        )
    for alias in sorted(sent - wanted):
        raise invalid_argument(
            f"input tensor alias not found in signature: {alias}."
            f" Inputs expected to be in the set {{{','.join(sorted(wanted))}}}."
        )


def check_input_dtypes(signature: SignatureLike, tensors: Mapping[str, Any]) -> None:
    """Each input's dtype must be the signature's, as a TF Serving session insists
    (a gRPC TensorProto names its dtype; REST builds tensors in the signature's)."""
    for index, alias in enumerate(sorted(signature.inputs)):
        value = tensors.get(alias)
        if not isinstance(value, np.ndarray):
            continue
        try:
            given = tc.tf_dtype(value)
        except ValueError:
            continue  # a dtype without a name here: TensorFlow itself decides
        wanted = signature.inputs[alias].dtype
        if given != wanted:
            raise invalid_argument(
                f"Expects arg[{index}] to be {tc.dtype_name(wanted)} but "
                f"{tc.dtype_name(given)} is provided"
            )


def check_method_name(signature: Any, api: str) -> None:
    """--enable_signature_method_name_check: the signature's method_name must fit
    the call (predict_util.cc, classifier.cc, regressor.cc and their texts)."""
    method = getattr(signature, "method_name", "")
    if api == "Predict":
        if method not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError(
                Code.INTERNAL,
                f"Expected prediction signature method_name to be one of {{{PREDICT_METHOD}, "
                f"{CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {method}")
        return
    kind, wanted = (("classification", CLASSIFY_METHOD) if api == "Classify"
                    else ("regression", REGRESS_METHOD))
    if method != wanted:
        raise invalid_argument(
            f"Expected {kind} signature method_name to be {wanted}. Was: {method}")


def check_output_filter(signature: SignatureLike, output_filter: Sequence[str]) -> None:
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias}"
                f" Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)


def predict_inputs(h: Any, key: str, inputs: Inputs, output_filter: Sequence[str],
                   missing_signature: Callable[[str], ServingError],
                   method_name_check: bool = False) -> dict[str, Any]:
    """Predict's checked inputs for the handle's servable: its signature `key`
    must exist, and the inputs and output filter must name its tensors."""
    signature = h.servable.signatures.get(key)
    if signature is None:
        raise missing_signature(key)
    if method_name_check:
        check_method_name(signature, "Predict")
    tensors = inputs(signature) if callable(inputs) else inputs
    check_input_names(signature, list(tensors))
    check_input_dtypes(signature, tensors)
    check_output_filter(signature, output_filter)
    return dict(tensors)


def examples_signature(h: Any, key: str) -> Any:
    """Classify's and Regress's signature `key` of the handle's servable."""
    signature = h.servable.signatures.get(key)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {key}")
    return signature
