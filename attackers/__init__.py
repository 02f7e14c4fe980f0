"""Attack generators. Never imports ``sim`` or ``evolve``."""
