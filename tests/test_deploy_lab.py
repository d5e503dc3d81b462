"""`make lab`, the students' command: JupyterLab from the project's .venv, opened at nbs/, checked in headless Chromium;
running a notebook leaves nothing for the next `make` to reinstall (its stamp depends only on the install lists);
and a notebook run in JupyterLab (Run All) and saved is written as nbdev-clean writes it (nbdev's save hook), so
`git status` shows only the outputs that changed, never run counts or metadata."""
import json, os, re, shutil, signal, subprocess, sys, time, uuid
from pathlib import Path
import pytest
from conftest import ROOT
from test_browser import CHROMIUM, ARTIFACTS, browser, free_port, server_env, NOT_LOOPBACK  # noqa: F401 (browser: a fixture)

STAMP = ROOT/'.venv'/'.installed'
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
              pytest.mark.skipif(not STAMP.exists(), reason="make lab runs from the project's .venv (`make test` creates it)")]

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "`make lab` on a free port: (process, base URL, environment)."
    tmp = tmp_path_factory.mktemp('lab')
    port = free_port()
    env = {**server_env(tmp, ROOT/'settings.ini'), 'BEAR_LOG': str(tmp/'predictions.sqlite')}   # not in the repo
    ARTIFACTS.mkdir(exist_ok=True)
    proc = subprocess.Popen(['make', '-s', 'lab', f'LAB_ARGS=--port={port} --no-browser --IdentityProvider.token='], cwd=ROOT,
                            env=env, stdout=open(ARTIFACTS/'lab.log', 'wb'), stderr=subprocess.STDOUT, start_new_session=True)
    yield proc, f'http://127.0.0.1:{port}/', env
    os.killpg(proc.pid, signal.SIGTERM); proc.wait(30)

def open_lab(browser, lab, path='lab'):
    "A page on JupyterLab's `path`, once the server answers; requests off this machine recorded in `page.blocked`."
    proc, base, _ = lab
    ctx = browser.new_context(viewport={'width': 1200, 'height': 900})
    page = ctx.new_page()
    page.blocked = []
    ctx.on('request', lambda r: NOT_LOOPBACK.match(r.url) and page.blocked.append(r.url))
    for _ in range(120):
        try: page.goto(base + path); return page
        except Exception: time.sleep(0.5)
        assert proc.poll() is None, (ARTIFACTS/'lab.log').read_text()[-3000:]
    raise AssertionError(f'JupyterLab did not answer at {base}')

def test_run_all_and_save_leaves_the_notebook_as_nbdev_clean_writes_it(browser, lab):
    "Run All of a notebook (a copy of 00b_core, named so nbdev skips it) in JupyterLab, then save: no run counts, no metadata."
    name = f'_run_all_{uuid.uuid4().hex[:8]}.ipynb'
    nb, copy = ROOT/'nbs'/'00b_core.ipynb', ROOT/'nbs'/name
    shutil.copy(nb, copy)
    try:
        page = open_lab(browser, lab, f'lab/tree/{name}')
        page.locator('.jp-Notebook .jp-Cell').first.wait_for(timeout=90_000)
        page.get_by_text('Python 3 (ipykernel) | Idle').wait_for(timeout=90_000)   # the kernel is up
        time.sleep(3)   # JupyterLab may still swap the kernel it started for another
        mtime = copy.stat().st_mtime_ns
        page.locator('.lm-MenuBar-itemLabel', has_text='Run').click()
        page.get_by_text('Run All Cells', exact=True).click()
        last, idle = page.locator('.jp-CodeCell .jp-InputPrompt').last, page.get_by_text('Python 3 (ipykernel) | Idle')
        deadline = time.time() + 240
        while time.time() < deadline:   # the last cell has run (its count shown) and the kernel is idle again
            if re.fullmatch(r'\[\d+\]:', last.inner_text().strip()) and idle.count(): break
            time.sleep(1)
        assert re.fullmatch(r'\[\d+\]:', last.inner_text().strip()), f'Run All did not reach the last cell: {last.inner_text()!r}'
        page.screenshot(path=ARTIFACTS/'lab-run-all.png')
        assert not page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"] :text("Traceback")').count()
        page.keyboard.press('Control+s')
        deadline = time.time() + 30
        while copy.stat().st_mtime_ns == mtime and time.time() < deadline: time.sleep(0.2)
        assert copy.stat().st_mtime_ns != mtime, "the notebook was not saved"
        time.sleep(1)
        saved, orig = json.loads(copy.read_text()), json.loads(nb.read_text())
        assert saved['metadata'] == orig['metadata'], saved['metadata']
        assert [(c['id'], c['source'], c.get('execution_count'), c['metadata']) for c in saved['cells']] == \
               [(c['id'], c['source'], c.get('execution_count'), c['metadata']) for c in orig['cells']]
        assert any(c.get('outputs') for c in saved['cells'])     # it did run: outputs are kept, as the chapter's
        r = subprocess.run([str(Path(sys.executable).parent/'nbdev-clean'), '--fname', str(copy)], cwd=ROOT, capture_output=True)
        assert r.returncode == 0 and json.loads(copy.read_text()) == saved, "nbdev-clean would still change the saved notebook"
        page.context.close()
    finally: copy.unlink(missing_ok=True)

def test_make_lab_opens_the_notebooks_and_a_run_needs_no_reinstall(browser, lab, tmp_path):
    page = open_lab(browser, lab)
    page.locator('.jp-DirListing-item', has_text='05_app.ipynb').wait_for(timeout=60_000)
    page.screenshot(path=ARTIFACTS/'lab.png')
    names = page.locator('.jp-DirListing-itemText').all_inner_texts()
    assert 'app.ipynb' in names and not any(n in names for n in ('bear_app', 'Makefile')), names   # opened at nbs/
    page.context.close()
    env = lab[2]
    deps = next(l for l in (ROOT/'Makefile').read_text().splitlines() if l.startswith('$(STAMP):')).split(':', 1)[1].split()
    def state(): return {f: (ROOT/f).stat().st_mtime_ns for f in deps}, subprocess.run(['make', '-q', 'venv'], cwd=ROOT).returncode
    before = state()
    r = subprocess.run([str(Path(sys.executable).parent/'jupyter'), 'nbconvert', '--to', 'notebook', '--execute',
                        '--output-dir', str(tmp_path), 'nbs/05_app.ipynb'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert state() == before, (deps, before, state())   # the install lists untouched: `make` decides as before the run
