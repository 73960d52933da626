"""examples layer."""

__all__: list[str] = []
