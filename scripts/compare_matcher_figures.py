"""Compare two ``scripts/matcher_figures.sh`` outputs: every accuracy number in tracking.json and
site/site_eval.json must be identical. Ignored: timing fields (fps, seconds, wall_s, stage_ms,
steps_per_s, rss_mb), paths, and tracking.json's ``variants`` block (the settings each variant
changes, by name: their spelling is the config's, which a redesign may rename).
Usage: python scripts/compare_matcher_figures.py BASE_DIR NEW_DIR"""
import json
import sys
from pathlib import Path

SKIP = {"fps", "seconds", "wall_s", "stage_ms", "steps_per_s", "rss_mb", "label", "path", "engine", "out",
        "machine", "jobs", "runs", "source", "video", "events", "variants"}


def walk(a, b, where, diffs):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in SKIP:
                continue
            if k not in a or k not in b:
                diffs.append(f"{where}.{k}: only in {'base' if k in a else 'new'}")
                continue
            walk(a[k], b[k], f"{where}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{where}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{where}[{i}]", diffs)
    elif isinstance(a, float) and isinstance(b, float):
        if abs(a - b) > 1e-12 and not (a != a and b != b):
            diffs.append(f"{where}: {a} vs {b}")
    elif a != b:
        diffs.append(f"{where}: {a!r} vs {b!r}")


def _read(folder: Path, rel: str):
    """A matcher_figures.sh output folder, or a flat copy of its two JSON files (as docs/redesign/before)."""
    path = folder / rel if (folder / rel).is_file() else folder / Path(rel).name
    return json.loads(path.read_text())


def main():
    base, new = Path(sys.argv[1]), Path(sys.argv[2])
    diffs = []
    for rel in ("tracking/tracking.json", "site/site_eval.json"):
        walk(_read(base, rel), _read(new, rel), rel, diffs)
    print("\n".join(diffs[:60]) or "identical")
    print(f"{len(diffs)} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
