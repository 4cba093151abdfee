"""GitOps rollout controller: specs, validation, rendering, planning, git and the CLI."""
