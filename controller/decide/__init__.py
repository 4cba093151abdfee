"""Pure decisions: desired state, the plan, canary gates and progression, analysis,
verdict wording and trailers, the one ModelServerConfig renderer. No I/O here: every
input (specs, observations, the clock) is an argument; contracts in `make lint`."""
