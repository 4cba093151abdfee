"""The rollout spec: its pydantic model, durations, YAML loading with line:col, and
comment-keeping edits. Reads spec files; no git, no network."""
