"""Framework-neutral serving core: version discovery, transition policies, the manager."""
