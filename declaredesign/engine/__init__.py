"""engine layer."""

__all__: list[str] = []
