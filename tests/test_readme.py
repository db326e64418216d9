"""The README's tour runs as written (documentation that cannot drift from the code)."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_tour_runs_as_written():
    block = re.search(r"## A short tour\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(block, "README tour", "exec"), namespace)
    assert namespace["sharp"].dtype.name == "uint8" and namespace["fmap"].shape == (26, 26)
    assert namespace["y"].shape == (4, 32, 64, 64) and (namespace["y"] >= 0).all()  # relu
