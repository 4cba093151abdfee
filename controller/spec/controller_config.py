"""The controller's config file (`rollouts run --config FILE`): one pydantic model.

Same rules as a spec: camelCase keys, strict types, and an unknown key is an
error with file:line:col and a "did you mean" (`pollInteval` ->
`pollInterval`), never silently ignored. Every setting is optional here:
flags may supply it, and flags win (`controller/cli/controller.py` merges them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from controller.spec.durations import Duration
from controller.spec.fields import Strict
from controller.spec.load import Problem, load_settings_file


class TargetEntry(Strict):
    """A target as a mapping, or as the `--target` text "[NAME=]HOST:PORT[,METRICS_URL]"."""

    name: str = Field(default="", description="Display name; default: the gRPC address.")
    grpc: str = Field(min_length=1, description="HOST:PORT of the target's gRPC API.")
    metrics: str = Field(default="", description="Its Prometheus metrics URL or HOST:PORT.")

    @model_validator(mode="before")
    @classmethod
    def _from_flag_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        name, eq, rest = value.partition("=")
        if not eq:
            name, rest = "", value
        grpc, _, metrics = rest.partition(",")
        return {"name": name, "grpc": grpc, "metrics": metrics}

    def flag_text(self) -> str:
        """The same target as a `--target` value."""
        return (f"{self.name}=" if self.name else "") + self.grpc + (
            f",{self.metrics}" if self.metrics else "")


class GitAuthor(Strict):
    """Author and committer of the controller's verdict commits."""

    name: str = Field(min_length=1, description="e.g. Rollouts Bot")
    email: str = Field(min_length=3, pattern=r"^[^<>\s]+$", description="e.g. bot@example.com")


# The events of issue #16's list, in a rollout's order. `failed_held`: analysis failed
# and `analysis.onFailure: pause` holds the canary for a person (not a `paused`, which is
# a person's own pause); `ready_to_merge`: a pull-request canary passed; `aborted`: the
# controller carried out a person's `rollouts abort`.
NoticeEvent = Literal[
    "canary_started", "step_advanced", "paused", "failed_held", "ready_to_promote",
    "ready_to_merge", "promoted", "reverted", "aborted", "failed_to_apply", "write_back_failed",
]


class NotificationEntry(Strict):
    """Where to tell people what happened, in which shape, about which events."""

    url: str = Field(pattern=r"^https?://", description="The receiver's http(s) URL.")
    format: Literal["json", "slack"] = Field(
        default="json", description="json: our document; slack: an incoming-webhook text.")
    events: list[NoticeEvent] | None = Field(
        default=None, description="The events to send (default: every one).")
    secret_file: str | None = Field(
        default=None, description="File with an HMAC secret: X-Hub-Signature-256 on each.")


class ControllerConfig(Strict):
    repo: str | None = None
    branch: str | None = None
    specs_dir: str | None = None
    model_root: str | None = None
    targets: list[TargetEntry] = Field(default_factory=list)
    poll_interval: Duration | None = None
    reconcile_interval: Duration | None = None
    reconcile_deadline: Duration | None = None
    state_dir: str | None = None
    listen: str | None = None
    webhook_secret_file: str | None = None
    prometheus_url: str | None = None
    dashboard_token_file: str | None = None
    commit_url: str | None = None
    target_token_file: str | None = None
    target_ca_file: str | None = None
    target_cert_file: str | None = None
    target_key_file: str | None = None
    git_author: GitAuthor | None = None
    git_signing_key: str | None = None
    git_signing_format: Literal["ssh", "openpgp"] | None = None
    write_back: Literal["push", "branch"] | None = None
    targets_dns: list[str] = Field(
        default_factory=list, description="NAME:PORT[,METRICS_PORT] resolved every reconcile."
    )
    dns_server: str | None = None
    notifications: list[NotificationEntry] = Field(default_factory=list)
    pull_requests: str | None = Field(
        default=None,
        description="Run canaries from pull requests before merge: the remote refs of their "
        "heads, '*' for the number (+refs/pull/*/head, refs/merge-requests/*/head).",
    )

    def target_texts(self) -> list[str]:
        return [t.flag_text() for t in self.targets]


class ConfigFileError(ValueError):
    """The config file is invalid; `problems` says where, one per line in the message."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def read_controller_config(path: str) -> ControllerConfig:
    """Read and validate the config file, or raise ConfigFileError (or OSError)."""
    text = Path(path).read_text(encoding="utf-8")
    config, problems = load_settings_file(path, text, ControllerConfig)
    if problems or config is None:
        raise ConfigFileError(problems)
    return config
