"""The command line: argument parsing, output formats, exit codes, and the
composition root that builds the adapters for `rollouts run | plan | status`."""
