"""Faults of the machine's storage on real small filesystems: no room and read-only folders found before the
first tile, a disk that fills up mid-run, each a StorageError (exit 7 in run, block and batch), one line,
nothing of the run left behind."""

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import s2sr
from s2sr import phases
from s2sr.errors import StorageError, exit_code_for
from s2sr.storage import check_folders, free_bytes

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "3"}


def _mount(point: Path, size: str, readonly: bool = False) -> Path:
    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    if readonly:
        subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
    return point


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(name, size, readonly=False)`` -> a fresh tmpfs of that size under tmp_path, unmounted after."""
    mounted: list[Path] = []

    def make(name: str, size: str, readonly: bool = False) -> Path:
        mounted.append(_mount(tmp_path / name, size, readonly))
        return mounted[-1]

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _fill(folder: Path) -> None:
    """Another process's file takes every free byte of ``folder``'s filesystem."""
    with open(folder / "ballast", "wb", buffering=0) as f:
        for size in (2**20, 4096, 1):
            try:
                while True:
                    f.write(bytes(size))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    assert free_bytes(folder) == 0


def _run(product, out, weights, **kw):
    return s2sr.superresolve_product(product, out, weights_dir=weights, tile_size=36, **kw)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != "ballast" and p.name != "lost+found")


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("s2sr: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_the_check_names_folder_bytes_needed_and_free(tmpfs):
    small = tmpfs("small", "2m")
    with pytest.raises(StorageError) as caught:
        check_folders([(small / "not-yet" / "made", 5 * 2**20, "the output folder")])
    fault = caught.value
    assert fault.errno == errno.ENOSPC and exit_code_for(fault) == 7 and isinstance(fault, OSError)
    assert f"the output folder {small / 'not-yet' / 'made'} has {free_bytes(small)} bytes free, the run needs {5 * 2**20}" in str(fault)
    assert not (small / "not-yet").exists()  # the check makes nothing
    check_folders([(small, 2**20, "the output folder")])  # room enough
    assert _files(small) == []  # the probe is gone


def test_two_folders_on_one_filesystem_need_room_for_both(tmpfs):
    disk = tmpfs("disk", "3m")
    (disk / "a").mkdir()
    (disk / "b").mkdir()
    check_folders([(disk / "a", 2 * 2**20, "the staging folder")])  # each fits alone
    check_folders([(disk / "b", 2 * 2**20, "the output folder")])
    with pytest.raises(StorageError, match="needs 4194304 \\(with the other folders of this run on that filesystem\\)"):
        check_folders([(disk / "a", 2 * 2**20, "the staging folder"), (disk / "b", 2 * 2**20, "the output folder")])


def test_no_room_in_the_output_folder_exits_7_before_the_first_tile(tmpfs, build_product, tmp_path):
    small = tmpfs("out", "2m")
    product = build_product(size=120)
    cmd = [sys.executable, "-m", "s2sr.cli", "run", str(product), str(small / "o.tif"), "--tile-size", "36"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 7, proc.stderr
    line = _one_error_line(proc.stderr)
    assert f"the output folder {small} has" in line and "bytes free, the run needs" in line
    assert "tile 1/" not in proc.stderr  # found before the first tile
    assert _files(small) == []


def test_no_room_in_the_staging_folder_names_it(tmpfs, build_product, tiny_weights, tmp_path, monkeypatch):
    staging = tmpfs("staging", "2m")
    monkeypatch.setattr(tempfile, "tempdir", str(staging))  # what TMPDIR sets
    with pytest.raises(StorageError, match=f"the staging folder {staging} has [0-9]+ bytes free, the run needs [0-9]+;"):
        _run(build_product(size=120), tmp_path / "out" / "o.tif", tiny_weights)
    assert _files(staging) == [] and not (tmp_path / "out").exists()


def test_a_read_only_output_folder_is_found_before_any_work(tmpfs, build_product, tiny_weights):
    readonly = tmpfs("ro", "4m", readonly=True)
    with pytest.raises(StorageError, match=f"cannot write to the output folder {readonly}: read-only filesystem") as caught:
        _run(build_product(size=72), readonly / "o.tif", tiny_weights)
    assert caught.value.errno == errno.EROFS


@pytest.mark.parametrize("where,phase", [("staging", "tile written"), ("output", "tiles written"), ("output", "cog staged")])
def test_a_disk_that_fills_up_mid_run_ends_in_one_error_and_leaves_nothing(tmpfs, build_product, tiny_weights, tmp_path,
                                                                           monkeypatch, where, phase):
    disk = tmpfs(where, "40m")
    staging = disk if where == "staging" else tmp_path / "staging"
    out = disk / "out" if where == "output" else tmp_path / "out"
    staging.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    filled: list[str] = []

    def another_writer(name: str, target: Path) -> None:
        if name == phase and not filled:
            _fill(disk)
            filled.append(name)

    monkeypatch.setattr(phases, "hook", another_writer)
    with pytest.raises(StorageError) as caught:
        _run(build_product(size=240), out / "o.tif", tiny_weights)
    assert filled
    folder = staging if where == "staging" else out
    assert caught.value.errno == errno.ENOSPC and str(folder) in str(caught.value), caught.value
    assert _files(staging) == [] and (not out.exists() or _files(out) == [])


def _up42_input(tmp_path: Path, build_product) -> Path:
    input_dir = tmp_path / "input"
    product = build_product(size=72)
    (input_dir / "scene").mkdir(parents=True)
    product.rename(input_dir / "scene" / product.name)
    feature = {"type": "Feature", "id": "f0", "geometry": None, "properties": {"up42.data_path": f"scene/{product.name}"}}
    (input_dir / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return input_dir


@pytest.mark.parametrize("readonly", ["output", "quicklooks"])
def test_block_exits_7_on_a_read_only_folder_and_writes_nothing(tmpfs, build_product, tmp_path, readonly):
    input_dir = _up42_input(tmp_path, build_product)
    folders = {"output": tmp_path / "output", "quicklooks": tmp_path / "quicklooks"}
    folders[readonly] = tmpfs(readonly, "4m", readonly=True)
    cmd = [sys.executable, "-m", "s2sr.cli", "block", "--input-dir", str(input_dir), "--output-dir", str(folders["output"]),
           "--quicklook-dir", str(folders["quicklooks"]), "--tile-size", "36"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**ENV, "UP42_TASK_PARAMETERS": "{}"})
    assert proc.returncode == 7, proc.stderr
    assert f"{folders[readonly]}: read-only filesystem" in _one_error_line(proc.stderr)
    assert not any(f.exists() and _files(f) for f in folders.values())


def test_block_exits_7_when_the_output_folder_fills_up(tmpfs, build_product, tmp_path):
    input_dir = _up42_input(tmp_path, build_product)
    disk = tmpfs("output", "40m")
    script = f"""
import sys
from s2sr import phases
from s2sr_block.entrypoint import main

def fill(name, target):
    if name != "tiles written":
        return
    with open({str(disk / "ballast")!r}, "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(2**16))
        except OSError:
            pass

phases.hook = fill
sys.exit(main(["--input-dir", {str(input_dir)!r}, "--output-dir", {str(disk / "out")!r},
               "--quicklook-dir", {str(tmp_path / "ql")!r}, "--tile-size", "36"], {{"UP42_TASK_PARAMETERS": "{{}}"}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=ENV,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 7, proc.stderr
    assert f"the output folder {disk / 'out' / 'f0'} filled up while this run wrote to it" in _one_error_line(proc.stderr)
    assert _files(disk) in ([], ["out"]) and not (tmp_path / "ql").exists()


def test_batch_exits_7_on_a_read_only_output_folder(tmpfs, build_product, tmp_path):
    pytest.importorskip("ray")
    product = build_product(size=72)
    readonly = tmpfs("ro", "4m", readonly=True)
    cmd = [sys.executable, "-m", "s2sr.cli", "batch", str(product), "--output-dir", str(readonly / "batch"),
           "--tile-size", "36", "--workers", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 7, proc.stderr
    assert f"cannot write to the batch's output folder {readonly / 'batch'}: read-only filesystem" in _one_error_line(proc.stderr)


def test_a_folder_without_write_permission_is_eacces(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the check as another user (root itself bypasses permissions)")
    shared = Path(tempfile.mkdtemp(prefix="s2sr-eacces-", dir="/tmp"))
    target = shared / "locked" / "out"
    try:
        os.chmod(shared, 0o755)
        (shared / "locked").mkdir(mode=0o555)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: user nobody, the library already imported
            try:
                os.setgid(65534)
                os.setuid(65534)
                check_folders([(target, 0, "the output folder")])
                message = "no error"
            except BaseException as exc:
                message = f"{type(exc).__name__} {getattr(exc, 'errno', None)} {exc}"
            os.write(write, message.encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read) as answer:
            message = answer.read()
        assert message == (f"StorageError {errno.EACCES} cannot write to the output folder {target}: permission denied; "
                           "make it writable for this user or write elsewhere")
    finally:
        (shared / "locked").rmdir()
        shared.rmdir()


@pytest.mark.parametrize("code", [errno.EDQUOT, errno.EFBIG, errno.EIO])
def test_every_storage_errno_is_named(tmp_path, code):
    from s2sr.storage import as_storage_error

    fault = as_storage_error(OSError(code, os.strerror(code), str(tmp_path / "x")), tmp_path, "the output folder")
    assert isinstance(fault, StorageError) and fault.errno == code and exit_code_for(fault) == 7
    assert str(fault).startswith(f"cannot write to the output folder {tmp_path}: ")
    assert as_storage_error(OSError(errno.ENOENT, "missing"), tmp_path, "the output folder") is None  # not the machine's


def test_only_the_staging_folders_of_dead_runs_on_this_host_are_removed(tmp_path):
    from s2sr.storage import STAGING_PREFIX, remove_stale_staging, staging_prefix

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)  # exited: its pid names no process (unless reused since, then it is kept)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = staging_prefix()[len(STAGING_PREFIX):].rsplit("-", 2)[0]
        dead = tmp_path / f"{STAGING_PREFIX}{host}-{dead_pid}-abc"
        running = tmp_path / f"{STAGING_PREFIX}{host}-{live.pid}-def"
        mine = tmp_path / f"{staging_prefix()}ghi"
        other_host = tmp_path / f"{STAGING_PREFIX}elsewhere-{dead_pid}-jkl"
        unrelated = tmp_path / "s2sr-notes"
        for folder in (dead, running, mine, other_host, unrelated):
            folder.mkdir()
            (folder / "staging.tif").write_bytes(b"x" * 10)
        assert remove_stale_staging(tmp_path) == [dead]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (running, mine, other_host, unrelated))
    finally:
        live.kill()
        live.wait()
