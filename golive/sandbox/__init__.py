"""The sandbox: the AWS control plane emulated by moto on loopback, run as background processes whose
state lives under .golive/ (GOLIVE_STATE_DIR overrides it)."""
