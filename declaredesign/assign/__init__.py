"""assign layer."""

__all__: list[str] = []
