"""`stop_signals.sleep`: a signal caught by another thread is handled
within a quarter of a second, not after the sleep."""

import signal
import threading
import time

import pytest

from seq2seq.training import stop_signals


class _Woken(Exception):
    pass


def _raise_woken(signum, frame):
    del signum, frame
    raise _Woken()


@pytest.fixture
def sigusr1_raises():
    previous = signal.signal(signal.SIGUSR1, _raise_woken)
    yield
    signal.signal(signal.SIGUSR1, previous)


def _signal_from_another_thread(delay):
    """Delivers SIGUSR1 to a thread other than the main one after `delay`
    seconds, as the kernel may do with a process signal."""

    def deliver():
        time.sleep(delay)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    return thread


def test_a_signal_caught_by_another_thread_ends_the_sleep(sigusr1_raises):
    thread = _signal_from_another_thread(0.2)
    started = time.monotonic()
    with pytest.raises(_Woken):
        stop_signals.sleep(60)
    # time.sleep(60) would only return after the minute.
    assert time.monotonic() - started < 30
    thread.join()


def test_sleeps_the_whole_time_without_a_signal():
    started = time.monotonic()
    stop_signals.sleep(0.6)
    assert time.monotonic() - started >= 0.6
    stop_signals.sleep(0)
    stop_signals.sleep(-1)
