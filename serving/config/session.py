"""TensorFlow's session settings from the command line, as server.cc builds them.

`--tensorflow_session_config_file` (a ConfigProto text file) is read first;
then `--tensorflow_session_parallelism` sets both thread counts, or
`--tensorflow_intra_op_parallelism` / `--tensorflow_inter_op_parallelism`
set them separately (either one set means both are taken from those two
flags, as in server.cc). The caller supplies the ConfigProto message, so
this module imports no TensorFlow. Pure apart from reading the file.
"""

from __future__ import annotations

from google.protobuf.message import Message

from serving.config.files import read_text_proto
from serving.config.flags import ServerFlags


def session_config(flags: ServerFlags, message: Message) -> Message | None:
    """`message` (an empty tensorflow.ConfigProto) filled from the flags, or
    None when no session flag is set (TensorFlow's defaults)."""
    intra, inter = flags.tensorflow_intra_op_parallelism, flags.tensorflow_inter_op_parallelism
    both = flags.tensorflow_session_parallelism
    if not (flags.tensorflow_session_config_file or intra > 0 or inter > 0 or both > 0):
        return None
    if flags.tensorflow_session_config_file:
        read_text_proto(flags.tensorflow_session_config_file, message)
    fields: dict[str, int] = {}
    if intra > 0 or inter > 0:
        fields = {"intra_op_parallelism_threads": intra, "inter_op_parallelism_threads": inter}
    elif both > 0:
        fields = {"intra_op_parallelism_threads": both, "inter_op_parallelism_threads": both}
    for name, value in fields.items():
        setattr(message, name, value)
    return message
