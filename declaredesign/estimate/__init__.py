"""estimate layer."""

__all__: list[str] = []
