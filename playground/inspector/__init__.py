"""The staff session inspector: live sessions, their upstream connections, and actions on them."""
