import os
import signal

from bermo_prune.signals import StopSignals


def test_a_stop_that_reached_an_enclosing_block_holds_in_a_nested_one():
    """A sweep worker's own handler (outer) can take SIGTERM while a run is being set up, before the run's handler
    (inner) is installed; the run must still see the stop, or it trains to its end past a preemption."""
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as outer:
        with StopSignals() as quiet:
            assert quiet.received is None  # nothing received yet: nothing inherited
        os.kill(os.getpid(), signal.SIGTERM)
        assert outer.received == "SIGTERM"
        with StopSignals() as inner:
            assert inner.received == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) == outer._handle
    assert signal.getsignal(signal.SIGTERM) == before
