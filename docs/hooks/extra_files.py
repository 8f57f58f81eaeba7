"""mkdocs hook: publish the Markdown that lives beside what it describes, not in docs/.

``deploy/README.md``, the notes and learning-curve plots of ``benchmarks/results/`` and the
README of ``benchmarks/experiments/`` become pages and images of the site at their repository
paths, so the docs link to them and ``mkdocs build --strict`` checks those links.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PATTERNS = ("deploy/README.md", "benchmarks/results/*.md", "benchmarks/results/*.png", "benchmarks/results/seeds90/*.md",
            "benchmarks/results/seeds90/*.png", "benchmarks/experiments/README.md")


def on_files(files: Files, config: Any) -> Files:
    root = Path(config.config_file_path).parent
    for pattern in PATTERNS:
        for path in sorted(root.glob(pattern)):
            files.append(File(path.relative_to(root).as_posix(), str(root), config.site_dir, config.use_directory_urls))
    return files
