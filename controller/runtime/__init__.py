"""The running controller: the reconciler, the rollout driver, scheduled jobs, the
status document, and its HTTP surface (status, webhook)."""
