import io
import os

from s2sr.progress import ProgressReporter
from s2sr.terminal import Terminal, filtered_stderr, is_noise, quiet_environment

# Lines TensorFlow 2.21 printed on this machine while loading, before the edge filtered them.
LOADING_NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796154494.533021    5691 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.\n",
    "I1201 19:48:14.570109    5691 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n",
]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tensorflow_loading_lines_are_noise_and_others_are_not():
    assert all(is_noise(line) for line in LOADING_NOISE)
    for line in ("s2sr: nets: Keras 3.15.1 on tensorflow, CPU\n", "E0000 00:00:17.1 1 gpu.cc:1] CUDA failed\n",
                 "W0000 00:00:17.1 1 x.cc:1] a warning\n", "Traceback (most recent call last):\n", "I0000 not absl\n"):
        assert not is_noise(line), line


def test_filtered_stderr_drops_what_c_code_writes_to_fd_2_and_keeps_the_rest(capfd):
    with filtered_stderr(lambda line: not is_noise(line)):
        for line in LOADING_NOISE + ["a real error\n"]:
            os.write(2, line.encode())
    err = capfd.readouterr().err
    assert err == "a real error\n"


def test_quiet_environment_keeps_what_the_user_set():
    env = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    quiet_environment(env)
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "0"}
    env = {}
    quiet_environment(env)
    assert env == {"TF_CPP_MIN_LOG_LEVEL": "2"}


def test_progress_is_lines_off_a_terminal():
    stream = io.StringIO()
    terminal = Terminal(stream)
    progress = terminal.progress("feature 1/2")
    progress(1, 2)
    progress(2, 2)
    lines = stream.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["s2sr: feature 1/2: tile 1/2", "s2sr: feature 1/2: tile 2/2"]
    assert "\r" not in stream.getvalue() and "#" not in stream.getvalue()


def test_progress_is_one_bar_redrawn_on_a_terminal_and_a_log_line_ends_it():
    stream = _Tty()
    terminal = Terminal(stream)
    progress = terminal.progress(unit="tile")
    progress(1, 4)
    terminal.log("a message")  # starts on a line of its own
    progress(2, 4)
    progress(4, 4)
    terminal.log("done")
    text = stream.getvalue()
    assert text.startswith("\rs2sr: [######..................] tile 1/4")
    assert "\x1b[K\ns2sr: a message\n\rs2sr: [############............] tile 2/4" in text
    assert "\rs2sr: [########################] tile 4/4" in text and text.endswith("\x1b[K\ns2sr: done\n")


def test_bar_of_an_empty_total_is_full():
    reporter = ProgressReporter(lambda _: None, bar=True, clock=iter([0.0, 1.0]).__next__)
    assert reporter.describe(0, 0).startswith("[" + "#" * 24 + "] tile 0/0")


def test_without_a_temporary_folder_nothing_is_filtered(capfd, monkeypatch):
    import tempfile

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_space)
    with filtered_stderr(lambda line: False):
        os.write(2, LOADING_NOISE[0].encode())
    assert capfd.readouterr().err == LOADING_NOISE[0]
