"""design layer."""

__all__: list[str] = []
