"""`rollouts demo`: the whole rollout lifecycle on an embedded default, for real.

- `models`     exports the demo's three SavedModel versions with TensorFlow
- `workspace`  the temporary GitOps world: bare remote, a person's clone, model root
- `traffic`    a bounded client load with hashed user ids, counted per version
- `view`       the live (rich) or plain-line progress display
- `run`        the orchestration: server, controller, the three stages, cleanup

`controller.cli.demo` is the command line in front of `run.run_demo`.
"""
