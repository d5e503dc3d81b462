"""`make lab`, the students' command: JupyterLab from the project's .venv, opened at nbs/, checked in headless Chromium;
and running a notebook leaves nothing for the next `make` to reinstall (its stamp depends only on the install lists)."""
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import ROOT
from test_browser import CHROMIUM, ARTIFACTS, browser, free_port, server_env, NOT_LOOPBACK  # noqa: F401 (browser: a fixture)

STAMP = ROOT/'.venv'/'.installed'
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
              pytest.mark.skipif(not STAMP.exists(), reason="make lab runs from the project's .venv (`make test` creates it)")]

def test_make_lab_opens_the_notebooks_and_a_run_needs_no_reinstall(browser, tmp_path):
    port = free_port()
    env = {**server_env(tmp_path, ROOT/'settings.ini'), 'BEAR_LOG': str(tmp_path/'predictions.sqlite')}   # not in the repo
    ARTIFACTS.mkdir(exist_ok=True)
    proc = subprocess.Popen(['make', '-s', 'lab', f'LAB_ARGS=--port={port} --no-browser --IdentityProvider.token='], cwd=ROOT,
                            env=env, stdout=open(ARTIFACTS/'lab.log', 'wb'), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        blocked = []
        ctx = browser.new_context()
        ctx.on('request', lambda r: NOT_LOOPBACK.match(r.url) and blocked.append(r.url))
        page = ctx.new_page()
        for _ in range(120):
            try: page.goto(f'http://127.0.0.1:{port}/lab'); break
            except Exception: time.sleep(0.5)
            assert proc.poll() is None, (ARTIFACTS/'lab.log').read_text()[-3000:]
        page.locator('.jp-DirListing-item', has_text='05_app.ipynb').wait_for(timeout=60_000)
        page.screenshot(path=ARTIFACTS/'lab.png')
        names = page.locator('.jp-DirListing-itemText').all_inner_texts()
        assert 'app.ipynb' in names and not any(n in names for n in ('bear_app', 'Makefile')), names   # opened at nbs/
        ctx.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM); proc.wait(30)
    deps = next(l for l in (ROOT/'Makefile').read_text().splitlines() if l.startswith('$(STAMP):')).split(':', 1)[1].split()
    def state(): return {f: (ROOT/f).stat().st_mtime_ns for f in deps}, subprocess.run(['make', '-q', 'venv'], cwd=ROOT).returncode
    before = state()
    r = subprocess.run([str(Path(sys.executable).parent/'jupyter'), 'nbconvert', '--to', 'notebook', '--execute',
                        '--output-dir', str(tmp_path), 'nbs/05_app.ipynb'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert state() == before, (deps, before, state())   # the install lists untouched: `make` decides as before the run
