"""What this CPU-only server does with TF Serving flags it cannot honour.

tensorflow_model_server's flags for GPUs, TPUs, TF Lite and XLA:GPU are all
accepted (a deployment's argv must start unchanged); a value that asks for
something this build cannot do, or that does nothing beside the other flags,
gets one warning line saying what happens instead. None of these makes
serving wrong, so none stops the server; the ones that would (ALTS
credentials off Google Cloud) fail where they are used, with their own
one-line error. Pure: flags in, lines out.
"""

from __future__ import annotations

from serving.config.flags import ServerFlags


def unsupported_notes(flags: ServerFlags) -> list[str]:
    """One line per flag value this build ignores, saying what it does instead."""
    notes: list[str] = []
    if flags.per_process_gpu_memory_fraction > 0:
        notes.append(f"--per_process_gpu_memory_fraction={flags.per_process_gpu_memory_fraction}:"
                     " this build has no GPU; ignored")
    if flags.xla_gpu_compilation_enabled:
        notes.append("--xla_gpu_compilation_enabled: this build has no GPU; functions marked"
                     " jit_compile compile with XLA:CPU")
    if flags.mixed_precision:
        notes.append(f"--mixed_precision={flags.mixed_precision}: not applied; models run at"
                     " the precision they were saved with")
    if flags.prefer_tflite_model:
        notes.append("--prefer_tflite_model: this server has no TensorFlow Lite runtime; each"
                     " version's saved_model.pb is served (TF Serving's fallback when a version"
                     " has no model.tflite), and a version with only model.tflite never loads")
    if flags.thread_pool_factory_config_file:
        notes.append(f"--thread_pool_factory_config_file={flags.thread_pool_factory_config_file}:"
                     " TensorFlow's own inter- and intra-op pools run every request; per-request"
                     " thread pools are not applied")
    if flags.platform_config_file and (flags.enable_batching or flags.saved_model_tags != "serve"
                                       or flags.tensorflow_session_config_file
                                       or flags.enable_per_model_batching_parameters):
        notes.append("--platform_config_file replaces --enable_batching,"
                     " --batching_parameters_file, --enable_per_model_batching_parameters,"
                     " --saved_model_tags and the session flags; those are ignored"
                     " (as in TF Serving)")
    elif flags.enable_per_model_batching_parameters and not flags.enable_batching:
        notes.append("--enable_per_model_batching_parameters without --enable_batching: nothing"
                     " is batched and no batching_params.pbtxt is read (as in TF Serving)")
    return notes
