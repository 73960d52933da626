"""plot layer."""

__all__: list[str] = []
