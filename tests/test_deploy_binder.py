"""The app as Binder serves it: `binder/postBuild` run into a temporary prefix (its pip step skipped: the project is
already importable here), then `jupyter server` started with that prefix on its configuration and data paths, as
Binder starts it, and `/voila/render/nbs/app.ipynb` driven in headless Chromium. Checks that the server applies the
app's settings: a 16 MB photo the browser cannot shrink (TIFF) is classified (Tornado's default websocket limit is
10 MiB), no request leaves 127.0.0.1 (MathJax from a CDN, in this mode), the template is locked, and the kernel of a
page that was left is culled (a short timeout from the test's settings.ini), and no spare kernel is warmed beside
the only visitor's (one person per server)."""
import json, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT
from bear_app.testing import settings_copy
from test_browser import (CHROMIUM, ARTIFACTS, browser, free_port, server_env, start_server, stop_server,  # noqa: F401 (browser: a fixture)
                          open_app, kernel_id, upload_and_classify, photos, big_photo, answered, compressed)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
APP = {'max_visitors': 2, 'upload_limit_mb': 20, 'unconnected_timeout': 4, 'idle_timeout': 600}

@pytest.fixture(scope='module')
def binder(tmp_path_factory):
    d = tmp_path_factory.mktemp('binder')
    prefix = d/'prefix'
    r = subprocess.run(['bash', 'binder/postBuild'], cwd=ROOT, capture_output=True, text=True,
                       env={**server_env(d, d), 'BEAR_PREFIX': str(prefix), 'BEAR_SKIP_INSTALL': '1'})
    assert r.returncode == 0, r.stderr
    env = {**server_env(d, settings_copy(d, ROOT/'settings.ini', **APP)), 'JUPYTER_PATH': str(prefix/'share'/'jupyter'),
           'JUPYTER_CONFIG_PATH': str(prefix/'etc'/'jupyter')}
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    cmd = [str(Path(sys.executable).parent/'jupyter-server'), f'--port={port}', '--ServerApp.ip=127.0.0.1',
           '--IdentityProvider.token=', '--ServerApp.open_browser=False', '--allow-root', f'--ServerApp.root_dir={ROOT}']
    proc = start_server(cmd, env, port, ARTIFACTS/'binder-server.log')
    base = f'http://127.0.0.1:{port}/'
    for _ in range(100):   # the port answers before the Voilà extension is loaded
        try:
            with urllib.request.urlopen(base + 'api/status', timeout=5): break
        except OSError: time.sleep(0.2)
    yield proc, base
    stop_server(proc)

def kernel_ids(base):
    with urllib.request.urlopen(base + 'api/kernels', timeout=10) as r: return {k['id'] for k in json.load(r)}

def test_binder_applies_the_settings(binder, browser, tmp_path):
    from bear_app.serve import app_settings
    proc, base = binder
    url = base + 'voila/render/nbs/app.ipynb'
    blocked = []
    opened = time.time()
    page = open_app(browser, url, blocked)
    assert page.title() == app_settings()['title']
    photo, want = photos(tmp_path)
    big = big_photo(photo, tmp_path/'phone.tif', (2400, 2300), 'TIFF')
    assert big.stat().st_size > 16_000_000
    label = upload_and_classify(page, big)
    page.screenshot(path=ARTIFACTS/'binder-16mb.png', full_page=True)
    assert answered(label, want), label
    assert not page.locator('#bear-lost').count() and not page.locator('.bear-upload-notice').is_visible()
    kid = kernel_id(page)
    time.sleep(max(0, opened + 8 - time.time()))             # past the pool's refill delay (5 s after the request)
    assert kernel_ids(base) == {kid}, "a spare kernel was warmed beside the only visitor's (one person per server)"
    page.goto('about:blank'); page.context.close()            # the visitor leaves
    deadline = time.time() + 30
    while kid in kernel_ids(base) and time.time() < deadline: time.sleep(0.5)
    assert kid not in kernel_ids(base), "the kernel of a page that was left is still running 30 s later"
    lab = open_app(browser, url + '?template=lab', blocked)   # the template is locked in this mode too
    assert lab.evaluate('typeof bearGuards') == 'function'
    lab.goto('about:blank'); lab.context.close()
    assert blocked == [], blocked
    assert compressed(base + 'voila/static/voila.js')
