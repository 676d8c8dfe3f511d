"""PNG encoding time and size at several zlib levels, on a run's own images.

Re-encodes the PNGs a run wrote (``overlay.png``, ``tissue.png``, ``heatmap.png`` of
every slide folder under ``RUN_FOLDER``) with PIL at each ``--levels`` value, in
memory, and reports the seconds (fastest of ``--repeat``) and the bytes of each. This
is what chose ``wsi.heatmap._png.PNG_COMPRESS_LEVEL``. Run from the repository root::

    python benchmarks/bench_png.py OUT --levels 6 3 1 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from _report import markdown_table  # benchmarks/ is on sys.path when run

COLUMNS = (
    "image",
    "pixels",
    "zlib level",
    "seconds",
    "MB",
    "x level-6 time",
    "x level-6 size",
)


def _encode(image: object, level: int, repeat: int) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        buffer = io.BytesIO()
        started = time.perf_counter()
        image.save(buffer, format="PNG", compress_level=level)  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - started)
        size = len(buffer.getvalue())
    return best, size


def main(argv: list[str] | None = None) -> None:
    """Print the table of every image at every level."""
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an output folder of wsi-heatmap")
    parser.add_argument("--levels", type=int, nargs="+", default=[6, 3, 1])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    names = ("overlay.png", "tissue.png", "heatmap.png")
    paths = sorted(p for p in args.run.rglob("*.png") if p.name in names)
    if not paths:
        parser.error(f"no {', '.join(names)} under {args.run}")
    rows = []
    for path in paths:
        with Image.open(path) as opened:
            image = opened.copy()
        base_s, base_b = _encode(image, 6, args.repeat)
        for level in args.levels:
            seconds, size = _encode(image, level, args.repeat)
            rows.append(
                {
                    "image": f"{path.parent.name}/{path.name}",
                    "pixels": f"{image.width}x{image.height}",
                    "zlib level": str(level),
                    "seconds": f"{seconds:.3f}",
                    "MB": f"{size / 1e6:.2f}",
                    "x level-6 time": f"{seconds / base_s:.2f}",
                    "x level-6 size": f"{size / base_b:.2f}",
                }
            )
    print(markdown_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
