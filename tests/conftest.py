"Shared test set-up: the real data's location, and a guard that fails any test reaching past loopback."
import os, signal, socket
from pathlib import Path
import pytest

# The commands the tests start must take Ctrl-C as they do at a terminal. A test run started in the background by a
# shell without job control (`make test &`, a CI runner's `cmd &`) has SIGINT ignored, and an ignored signal stays
# ignored in every child: each command would then keep running through a Ctrl-C (as `bear_app.commands` means it to
# for a background job), and the Ctrl-C tests would test nothing. A Python handler is not inherited: children start
# with the default action.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN: signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
BEAR_DATA = Path(os.environ.get('BEAR_DATA', ROOT.parent/'shared'/'data'/'bears')).resolve()
needs_bear_data = pytest.mark.skipif(not BEAR_DATA.is_dir(), reason=f"real bear photos not found at {BEAR_DATA} (set BEAR_DATA)")
CASES = ROOT.parent/'shared'/'cases'
needs_cases = pytest.mark.skipif(not CASES.is_dir(), reason=f"the awkward-input cases are not at {CASES} (they sit beside the repository)")

_connect = socket.socket.connect
def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and host not in ('127.0.0.1', 'localhost', '::1') and not str(host).startswith('127.'):
        raise OSError(f"test tried to reach {host}: tests must not use the network")
    return _connect(self, address)

@pytest.fixture(autouse=True, scope='session')
def prediction_log_outside_the_checkout(tmp_path_factory):
    """Answers the tests' apps give (and the notebooks run by the tests) are logged in a temporary folder, never in
    the checkout's logs/, which may be a deployment's real prediction log. A test may still set its own BEAR_LOG."""
    before = os.environ.get('BEAR_LOG')
    os.environ['BEAR_LOG'] = str(tmp_path_factory.mktemp('log')/'predictions.sqlite')
    yield
    if before is None: os.environ.pop('BEAR_LOG', None)
    else: os.environ['BEAR_LOG'] = before

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    "Every test runs with the network cut (loopback and Unix sockets stay open)."
    monkeypatch.setattr(socket.socket, 'connect', _loopback_only)
