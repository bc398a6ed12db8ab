"""Async functions run by a real ``dramatiq`` worker process (tests/test_async_handlers.py)."""
