"""The mining engine: pure Python/NumPy/SciPy, no Django import (see engine.py)."""
