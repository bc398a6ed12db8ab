"""Function modules the scheduler and dev-server tests load in their subprocesses (TENGO_FUNCTIONS)."""
