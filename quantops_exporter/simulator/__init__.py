"""A simulated SEP stack: Valkey contents, the backend API, and named fault scenarios."""
