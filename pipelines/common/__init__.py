"""Framework-free building blocks: params schema, atomic I/O, tracking, reports."""
