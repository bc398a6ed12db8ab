"""Durable functions that the engine's integration and crash tests run in real worker processes.

``tests/`` is on the workers' PYTHONPATH (``tests/procs.py``), so a worker is
started as ``dramatiq engine_funcs.worker``. The test process registers the same
functions with ``register(jobs)`` on its own runtime so its intake knows which
events start them, without building a runtime from its environment at import.
"""
