"""Tools the agent can call: definitions per session, built-in implementations, the executor."""
