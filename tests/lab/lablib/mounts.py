"""Mount points a lab leaves under its directory (container storage) and their removal."""

import re
import subprocess
from pathlib import Path
from typing import List

from .core import is_root


def _unescape(field: str) -> str:
    """Decode the octal escapes (\\040 for a blank) of a /proc mountinfo path."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(directory: Path) -> List[str]:
    """Return the mount points at or below directory, deepest first."""
    top = str(directory)
    points = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                point = _unescape(line.split()[4])
                if point == top or point.startswith(top + "/"):
                    points.append(point)
    except OSError:
        return []
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def unmount_under(directory: Path) -> List[str]:
    """As root, unmount everything below directory (lazily if busy); return what is still mounted."""
    if not is_root():
        return []
    for point in mounts_under(directory):
        for argv in (["umount", point], ["umount", "-l", point]):
            if subprocess.run(argv, capture_output=True).returncode == 0:
                break
    return mounts_under(directory)
