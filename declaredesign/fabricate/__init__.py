"""fabricate layer."""

__all__: list[str] = []
