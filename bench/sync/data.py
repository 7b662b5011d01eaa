"""The sync bench's data: the two datasets and their 1 % changes, the check that a copy is
faithful, and each host's own journaled ext4 to hold them (bench/sync/run.py)."""
import math
import os
import random
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

from benchlib import Failed, log, run_local

MiB = 1 << 20
GiB = 1 << 30
SMALL_MIN, SMALL_MAX = 1024, 7 * 1024  # mean 4 KiB
CHANGE_BLOCK = MiB                      # large re-sync: changed bytes come in blocks of this
MTIME_BUMP_NS = 10 * 10**9             # a changed file's mtime moves by 10 s: rsync's quick check sees it


# ---------------------------------------------------------------------------------------------
# Datasets and their 1 % changes.

@dataclass
class Change:
    """One region of one file that a re-sync must carry over: original and new bytes."""
    path: Path
    offset: int
    old: bytes
    new: bytes


@dataclass
class Dataset:
    name: str            # "small" or "large"
    src: Path            # on the source host
    dst: Path            # on the target host
    files: int = 0
    bytes: int = 0
    changes: List[Change] = field(default_factory=list)
    times: Dict[Path, tuple] = field(default_factory=dict)  # (atime_ns, mtime_ns) before the change

    def apply_change(self) -> None:
        """Source: pre-change state -> changed state (same sizes, mtimes moved by 10 s)."""
        self._write(lambda c: c.new)
        for path, (atime, mtime) in self.times.items():
            os.utime(path, ns=(atime, mtime + MTIME_BUMP_NS))

    def revert_change(self) -> None:
        """Source: back to the exact pre-change state (content and times)."""
        self._write(lambda c: c.old)
        for path, (atime, mtime) in self.times.items():
            os.utime(path, ns=(atime, mtime))

    def _write(self, pick: Callable[[Change], bytes]) -> None:
        for c in self.changes:
            with open(c.path, "r+b") as f:
                f.seek(c.offset)
                f.write(pick(c))


def gen_small(ds: Dataset, count: int, per_dir: int, seed: int) -> None:
    """count files of 1-7 KiB in directories of per_dir, plus odd entries; pick 1 % to change."""
    rng = random.Random(seed)
    ds.src.mkdir(parents=True)
    dirs = max(1, math.ceil(count / per_dir))
    paths = []
    for i in range(count):
        d = ds.src / f"d{i // per_dir:0{len(str(dirs))}d}"
        if i % per_dir == 0:
            d.mkdir()
        p = d / f"f{i % per_dir:05d}.dat"
        data = rng.randbytes(rng.randint(SMALL_MIN, SMALL_MAX))
        p.write_bytes(data)
        paths.append(p)
        ds.bytes += len(data)
    ds.files = count
    # What a real service tree has and a careless copy loses.
    odd = ds.src / "odd"
    odd.mkdir()
    (odd / "empty").write_bytes(b"")
    (odd / "empty-dir").mkdir()
    (odd / "name with blanks & 'quotes'").write_bytes(b"blanks\n")
    run_sh = odd / "run.sh"
    run_sh.write_text("#!/bin/sh\necho hello\n")
    run_sh.chmod(0o755)
    secret = odd / "secret"
    secret.write_text("private\n")
    secret.chmod(0o600)
    (odd / "link").symlink_to("../" + paths[0].parent.name + "/" + paths[0].name)
    ds.files += 5  # the symlink counts as a file
    ds.bytes += 7 + len(run_sh.read_bytes()) + 8
    for p in sorted(rng.sample(paths, max(1, count // 100))):
        size = p.stat().st_size
        ds.changes.append(Change(p, 0, p.read_bytes(), rng.randbytes(size)))
        st = p.stat()
        ds.times[p] = (st.st_atime_ns, st.st_mtime_ns)


def gen_large(ds: Dataset, count: int, size: int, seed: int) -> None:
    """count files of size random bytes; change 1 % of each file's bytes in spread-out blocks."""
    rng = random.Random(seed)
    ds.src.mkdir(parents=True)
    chunk = 8 * MiB
    for i in range(count):
        p = ds.src / f"big{i}.img"
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(chunk, left)
                f.write(rng.randbytes(n))
                left -= n
        ds.files += 1
        ds.bytes += size
        total = max(4096, size // 100)
        block = min(CHANGE_BLOCK, total)
        blocks = math.ceil(total / block)
        with open(p, "rb") as f:
            for k in range(blocks):
                n = min(block, total - k * block)
                offset = ((k * size) // blocks + size // (2 * blocks)) // 4096 * 4096
                offset = min(offset, size - n)
                f.seek(offset)
                ds.changes.append(Change(p, offset, f.read(n), rng.randbytes(n)))
        st = p.stat()
        ds.times[p] = (st.st_atime_ns, st.st_mtime_ns)


# ---------------------------------------------------------------------------------------------
# Checking a copy.

def manifest(root: Path) -> Dict[str, tuple]:
    """Every entry under root: type, size, permission bits, mtime (s), symlink target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", oct(st.st_mode & 0o7777))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", st.st_size, oct(st.st_mode & 0o7777), st.st_mtime_ns // 10**9)
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


def verify(src: Path, dst: Path, timeout: float) -> str:
    """Raise Failed unless dst is a faithful copy of src; return a one-line summary."""
    a, b = manifest(src), manifest(dst)
    problems = [f"missing {k}" for k in sorted(a.keys() - b.keys())[:5]]
    problems += [f"extra {k}" for k in sorted(b.keys() - a.keys())[:5]]
    problems += [f"{k}: {a[k]} != {b[k]}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]][:5]
    if problems:
        raise Failed(f"target differs from source ({len(a)} vs {len(b)} entries): "
                     + "; ".join(problems[:8]))
    diff = subprocess.run(["diff", "-r", "-q", "--no-dereference", str(src), str(dst)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    if diff.returncode != 0:
        raise Failed(f"content differs: {diff.stdout[:600]}")
    files = sum(1 for v in a.values() if v[0] in ("file", "symlink"))
    size = sum(v[1] for v in a.values() if v[0] == "file")
    return f"{files} files, {size} bytes, identical"


def empty_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def copy_tree(src: Path, dst: Path, timeout: float) -> None:
    """dst := src with all metadata, locally (to prepare a re-sync; never timed)."""
    empty_dir(dst)
    run_local(["cp", "-a", f"{src}/.", f"{dst}/"], timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Where the data lives: each host's data/ on its own journaled ext4.
#
# Why: this project's machine runs on ext4 *without a journal*, where every inode allocation
# goes through ext4's recently_deleted() check. Creating 100k files there cost 2 to 35 s of
# kernel time from one run to the next (perf: >80 % of cp's CPU in recently_deleted), tar and
# cp far more than rsync: the small-file numbers measured the file system's state, not the
# tools. A loop-mounted journaled ext4 per host is what a server would have.

class DataFs:
    """A sparse image, its loop device (direct I/O: no second copy in the page cache) and
    the mount point; mount() raises when any step is impossible here."""

    def __init__(self, image: Path, mountpoint: Path, size: int):
        self.image, self.mountpoint, self.size = image, mountpoint, size
        self.mkfs_options: List[str] = []  # more mkfs.ext4 options (inline_data, inodes)
        self.device = ""
        self.mounted = False

    def mount(self) -> None:
        with open(self.image, "wb") as f:
            f.truncate(self.size)
        run_local(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                   *self.mkfs_options, self.image], timeout=300)
        self.device = run_local(["losetup", "-f", "--show", "--direct-io=on", self.image],
                                timeout=30).stdout.strip()
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        run_local(["mount", self.device, self.mountpoint], timeout=60)
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            for argv in (["umount", self.mountpoint], ["umount", "-l", self.mountpoint]):
                if run_local(argv, timeout=120, check=False).returncode == 0:
                    break
            self.mounted = False
        if self.device:
            run_local(["losetup", "-d", self.device], timeout=30, check=False)
            self.device = ""
        self.image.unlink(missing_ok=True)


def data_fs_size(small_files: int, large_bytes: int) -> int:
    """Room for one copy of both datasets on one host, plus what a re-sync writes aside:
    rsync's temporary copy of each big file, all of them at once with parallel rsyncs."""
    need = small_files * 8192 + 2 * large_bytes
    return int(need * 1.2) + 256 * MiB


def mount_data(lab, work: Path, args, size: int) -> List[DataFs]:
    """--fs ext4: give source and target their own data file system; --fs auto: the same
    when possible (root, loop devices, mkfs.ext4), else the work directory as it is."""
    if args.fs == "none":
        return []
    mounted: List[DataFs] = []
    try:
        for host in ("source", "target"):
            fs = DataFs(work / f"{host}-data.img", lab.host_dir(host) / "data", size)
            mounted.append(fs)
            fs.mount()
        return mounted
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        for fs in mounted:
            fs.unmount()
        if args.fs == "ext4":
            raise
        log(f"warning: no ext4 data file systems ({str(e).splitlines()[0]}): data stays in {work}")
        return []
