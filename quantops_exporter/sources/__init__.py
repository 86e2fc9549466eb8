"""Read-only I/O toward the stack: Valkey and its HTTP APIs."""
