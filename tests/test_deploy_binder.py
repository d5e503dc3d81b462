"""Binder: what it installs covers every notebook's imports; the notebooks run (hermetic mode) in Binder's layout, the
data folder `data/` inside the working copy that `binder/start` names; and the app as Binder serves it: `binder/postBuild` run into a temporary prefix (its pip step skipped: the project is
already importable here), then `jupyter server` started with that prefix on its configuration and data paths, as
Binder starts it, and `/voila/render/nbs/app.ipynb` driven in headless Chromium. Checks that the server applies the
app's settings: a 16 MB photo the browser cannot shrink (TIFF) is classified (Tornado's default websocket limit is
10 MiB), no request leaves 127.0.0.1 (MathJax from a CDN, in this mode), the template is locked, and the kernel of a
page that was left is culled (a short timeout from the test's settings.ini), and no spare kernel is warmed beside
the only visitor's (one person per server)."""
import ast, importlib.metadata as md, json, os, shutil, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from conftest import ROOT
from bear_app.testing import settings_copy
from test_browser import (CHROMIUM, ARTIFACTS, browser, free_port, server_env, start_server, stop_server,  # noqa: F401 (browser: a fixture)
                          open_app, kernel_id, upload_and_classify, photos, big_photo, answered, gzipped)

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
APP = {'max_visitors': 2, 'upload_limit_mb': 20, 'unconnected_timeout': 4, 'idle_timeout': 600}

def notebook_imports(nb:Path)->set:
    "The top-level modules the code cells of the notebook `nb` import (IPython's magics and shell lines left out)."
    mods = set()
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] != 'code': continue
        code = '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.lstrip().startswith(('%', '!')))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import): mods |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level: mods.add(node.module.split('.')[0])
    return mods

def installed_by(requirements:Path)->set:
    "The distributions pip installs for `requirements` (this environment's metadata gives what each one requires)."
    todo = [Requirement(l.split('#')[0].strip()) for l in requirements.read_text().splitlines()
            if l.split('#')[0].strip() and not l.startswith('-')]
    seen = set()
    while todo:
        r = todo.pop()
        name = canonicalize_name(r.name)
        if name in seen: continue
        seen.add(name)
        try: reqs = md.distribution(name).requires or []
        except md.PackageNotFoundError: continue
        for q in map(Requirement, reqs):
            if q.marker is None or q.marker.evaluate({'extra': ''}): todo.append(q)
    return seen

def test_binder_installs_every_module_the_notebooks_import():
    dists = installed_by(ROOT/'binder'/'requirements.txt')
    # postBuild installs the project with --no-deps: its own dependencies must be listed too
    project = [Requirement(d) for d in __import__('tomllib').loads((ROOT/'pyproject.toml').read_text())['project']['dependencies']]
    missing_deps = [r.name for r in project if canonicalize_name(r.name) not in dists]
    assert not missing_deps, f"binder/requirements.txt does not install the project's dependencies {missing_deps}"
    by_module = md.packages_distributions()
    missing = {}
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for m in sorted(notebook_imports(nb)):
            if m in sys.stdlib_module_names or m == 'bear_app': continue
            owners = {canonicalize_name(d) for d in by_module.get(m, [])}
            assert owners, f"{nb.name} imports {m}, which no installed distribution provides"
            if not owners & dists: missing.setdefault(m, []).append(nb.name)
    assert not missing, f"modules the notebooks import that binder/requirements.txt does not install: {missing}"

NOTEBOOKS = sorted(p.name for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))

@pytest.fixture(scope='module')
def binder_checkout(tmp_path_factory):
    "The repository as Binder checks it out: the files git knows (tracked, and new ones not ignored), no data folder."
    repo = tmp_path_factory.mktemp('binder-home')/'repo'
    names = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, names.decode().split('\0')):
        src, dst = ROOT/name, repo/name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(src, dst)
    return repo

@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_notebook_runs_in_binders_layout(binder_checkout, nb):
    "Each notebook, hermetic (BEAR_SMALL=1, nbval), launched through binder/start: the data folder is data/ in the checkout, empty."
    repo = binder_checkout
    env = {k: v for k, v in os.environ.items() if k not in ('BEAR_DATA', 'BEAR_SETTINGS')}
    env.update(PYTHONPATH=str(repo), BEAR_SMALL='1', BEAR_LOG=str(repo.parent/'predictions.sqlite'))
    probe = subprocess.run(['bash', 'binder/start', sys.executable, '-c', 'from bear_app.config import get_settings; print(get_settings().data_path)'],
                           cwd=repo, env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == str(repo/'data'), probe.stdout + probe.stderr
    r = subprocess.run(['bash', 'binder/start', sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--nbval-lax', f'nbs/{nb}'],
                       cwd=repo, env=env, capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]

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

@needs_chromium
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
    assert gzipped(base + 'voila/static/voila.js')[0]['Content-Encoding'] == 'gzip'
