"""The app behind JupyterHub as deploy/jupyterhub/jupyterhub_config.py configures it: a real hub (`jupyterhub`, the
`configurable-http-proxy` that `.ci/run` installs into deploy/jupyterhub/node_modules) on 127.0.0.1, with the
config's own knobs turned down (a cap of 2 servers, 15 idle seconds). Six plain GETs (bots) start no server. Anonymous
visitors in headless Chromium, each its own browser context: two get a server each and an answer from the app; a third, over the cap, gets the busy
page; the first leaves and its server ends, and the third visitor's busy page opens the app by itself; the second
stays without using the app, and its server is culled with its temporary user, whose page then says it has closed.
Never more than 2 visitor servers run at once. Also: deploy/jupyterhub/values.yaml (Kubernetes) says the same."""
import importlib.util, shutil, socket, sqlite3, sys, threading, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT
from bear_app.testing import settings_copy
from test_browser import CHROMIUM, ARTIFACTS, browser, server_env, start_server, stop_server, photos, upload_and_classify, answered, NOT_LOOPBACK

HUB = ROOT/'deploy'/'jupyterhub'
PROXY = HUB/'node_modules'/'.bin'/'configurable-http-proxy'
NEEDS = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
    pytest.mark.skipif(importlib.util.find_spec('jupyterhub') is None or importlib.util.find_spec('tmpauthenticator') is None
                       or importlib.util.find_spec('jupyterhub_idle_culler') is None,
                       reason="needs jupyterhub, jupyterhub-tmpauthenticator and jupyterhub-idle-culler (requirements.txt)"),
    pytest.mark.skipif(not PROXY.exists() and shutil.which('configurable-http-proxy') is None,
                       reason="needs configurable-http-proxy (`npm ci --prefix deploy/jupyterhub`, as .ci/run does)")]
APP = {'max_visitors': 2, 'upload_limit_mb': 8, 'unconnected_timeout': 30, 'idle_timeout': 600}
IDLE = 15   # seconds without activity before the hub culls a visitor's server

def free_ports(n=3)->int:
    "A port with the `n - 1` after it free too (the config puts the proxy's API and the hub there)."
    for _ in range(50):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
        try:
            for p in range(port, port + n):
                with socket.socket() as t: t.bind(('127.0.0.1', p))
            return port
        except OSError: continue
    raise RuntimeError("no free ports")

def visitor_servers(hub)->dict:
    "The visitor servers the hub `hub` runs now: {user name: process}."
    import psutil
    out = {}
    for p in psutil.Process(hub.pid).children(recursive=True):
        try:
            if 'jupyterhub.singleuser' in ' '.join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                out[p.environ().get('JUPYTERHUB_USER')] = p
        except psutil.NoSuchProcess: pass
    return out

def hub_users(state:Path)->set:
    "The users the hub's database holds."
    with sqlite3.connect(f'file:{state}/jupyterhub.sqlite?mode=ro', uri=True) as con:
        return {name for name, in con.execute('SELECT name FROM users')}

@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    d = tmp_path_factory.mktemp('hub')
    port = free_ports()
    env = {**server_env(d, settings_copy(d, ROOT/'settings.ini', **APP)), 'BEAR_LOG': str(d/'predictions.sqlite'),
           'BEAR_HUB_PORT': str(port), 'BEAR_HUB_STATE': str(d/'state'), 'BEAR_HUB_SERVERS': '2',
           'BEAR_HUB_IDLE': str(IDLE), 'BEAR_HUB_CHECK': '2', 'BEAR_HUB_RETRY': '2'}
    ARTIFACTS.mkdir(exist_ok=True)
    cmd = [sys.executable, '-m', 'jupyterhub', '-f', str(HUB/'jupyterhub_config.py')]
    proc = start_server(cmd, env, port, ARTIFACTS/'hub.log', cwd=d)
    base = f'http://127.0.0.1:{port}/'
    for _ in range(150):   # the proxy answers before the hub has told it the routes
        try:
            with urllib.request.urlopen(base + 'hub/api/', timeout=5): break
        except OSError: time.sleep(0.2)
    most, seen = [], {}      # visitor servers running at once, watched all along; every one seen
    def watch():
        while proc.poll() is None:
            now = visitor_servers(proc); seen.update(now); most.append(len(now)); time.sleep(0.3)
    threading.Thread(target=watch, daemon=True).start()
    yield proc, base, most, d/'state'
    stop_server(proc)
    for p in seen.values():   # the hub stops its visitors' servers; any it left behind ends here
        if p.is_running(): p.kill()

def arrive(browser, base, blocked, log):
    "A new anonymous visitor (a browser context of its own) asking for the hub's front page."
    ctx = browser.new_context(viewport={'width': 900, 'height': 900})
    ctx.on('request', lambda r: NOT_LOOPBACK.match(r.url) and blocked.append(r.url))
    page = ctx.new_page()
    page.on('response', lambda r: log.append((r.status, r.url)))
    page.goto(base, wait_until='commit')
    return page

def usable(page, timeout=90):
    page.get_by_role('button', name='Classify').wait_for(timeout=timeout*1000)
    return page

def user_of(page)->str: return page.url.split('/user/')[1].split('/')[0]

def needs_hub(f):
    for m in NEEDS: f = m(f)
    return f

@needs_hub
def test_two_visitors_answered_a_third_waits_culling_frees_a_place(hub, browser, tmp_path):
    from bear_app.serve import app_settings
    proc, base, most, state = hub
    for _ in range(6):       # plain GETs (a link preview, a bot: no script runs) each get a temporary user, no server
        with urllib.request.build_opener(urllib.request.HTTPCookieProcessor()).open(base, timeout=30) as r:
            assert r.status == 200 and 'Opening the app' in r.read().decode()
    time.sleep(1)
    assert not visitor_servers(proc)
    blocked, log, t0 = [], [], time.monotonic()
    first, second = arrive(browser, base, blocked, log), arrive(browser, base, blocked, log)
    photo, want = photos(tmp_path)
    for page in (first, second):
        usable(page)
        assert page.url.endswith('/voila/render/app.ipynb'), page.url   # each visitor's default URL is the app
        assert page.title() == app_settings()['title']
        assert page.evaluate('typeof bearGuards') == 'function'       # the app's locked template: binder/'s settings apply
        label = upload_and_classify(page, photo)
        assert answered(label, want), label
    mine = f'{base}user/{user_of(first)}/'                          # what else a visitor's server shows them
    names = {f['name'] for f in first.request.get(mine + 'api/contents/').json()['content']}
    assert 'app.ipynb' in names and not names & {'settings.ini', 'logs', 'models', 'deploy'}, names
    assert first.request.get(mine + 'lab').status == 404 and first.request.get(mine + 'api/terminals').status == 404
    users = {user_of(first), user_of(second)}
    assert len(users) == 2 and set(visitor_servers(proc)) == users  # one server each, run by the hub
    mb = [sum(p.memory_info().rss for p in [s, *s.children(recursive=True)]) / 2**20 for s in visitor_servers(proc).values()]
    print(f"two visitors answered {time.monotonic() - t0:.1f} s after arriving; their servers hold "
          + ', '.join(f'{m:.0f}' for m in mb) + ' MB (server and kernel)')
    third = arrive(browser, base, blocked, log)
    third.locator('#bear-busy').wait_for(timeout=30_000)
    third.screenshot(path=ARTIFACTS/'hub-busy.png', full_page=True)
    text = third.locator('body').inner_text()
    assert 'Busy right now' in text and 'asks again by itself' in text, text
    assert not any(w in text for w in ('Traceback', '429', 'Active user limit')), text
    assert any(s == 429 and '/hub/spawn' in u for s, u in log)
    assert len(visitor_servers(proc)) == 2
    left, stays = user_of(first), user_of(second)
    first.goto('about:blank'); first.context.close()                  # the first visitor leaves; the second stays, idle
    t_left = time.monotonic()
    def ended(user, within):
        while user in visitor_servers(proc) and time.monotonic() < t_left + within: time.sleep(0.5)
        return user not in visitor_servers(proc)
    assert ended(left, IDLE + 30), f"the server of a visitor who left still runs {IDLE + 30} s later"
    print(f"the server of the visitor who left ended {time.monotonic() - t_left:.1f} s later (idle timeout {IDLE} s)")
    usable(third)                                                    # the busy page asked again and got the place
    third.screenshot(path=ARTIFACTS/'hub-third.png', full_page=True)
    assert ended(stays, IDLE + 40), f"the server of a page unused for {IDLE + 40} s was not culled"
    assert stays not in hub_users(state), "the temporary user of a culled server was not removed"
    second.reload()                                                   # back on a culled page: told so, offered the app
    second.locator('#bear-gone').wait_for(timeout=30_000)
    assert 'Open the app again' in second.locator('body').inner_text()
    assert user_of(third) not in users
    assert max(most) <= 2, max(most)
    assert blocked == [], blocked

def test_kubernetes_values_are_the_same_configuration(tmp_path, monkeypatch):
    "values.yaml (Zero to JupyterHub) says what jupyterhub_config.py says, for pods made from binder/'s image."
    import yaml
    from traitlets.config.loader import PyFileConfigLoader
    monkeypatch.setenv('BEAR_HUB_STATE', str(tmp_path))
    c = PyFileConfigLoader('jupyterhub_config.py', path=str(HUB)).load_config()
    v = yaml.safe_load((HUB/'values.yaml').read_text())
    hub = v['hub']['config']['JupyterHub']
    for k in ('authenticator_class', 'redirect_to_server', 'implicit_spawn_seconds', 'template_vars'):
        assert hub[k] == c.JupyterHub[k], k
    assert v['hub']['config']['Authenticator']['allow_all'] is c.Authenticator.allow_all is True
    assert hub['active_server_limit'] > 0
    culler = c.JupyterHub.services[0]['command']
    assert v['cull']['enabled'] and v['cull']['users'] and '--cull-users=True' in culler
    assert f"--timeout={v['cull']['timeout']}" in culler
    local_only = {'--allow-root', '--BearKernelManager.pool_path='}   # the local server's root is nbs/, a pod's the repository
    assert v['hub']['config']['KubeSpawner']['args'] == [a for a in c.Spawner.args if a not in local_only]
    url = v['singleuser']['defaultUrl']                    # the image's working folder is the repository, as on Binder
    assert url == '/voila/render/nbs/' + c.Spawner.default_url.removeprefix('/voila/render/')
    assert (ROOT/url.removeprefix('/voila/render/')).is_file()
    assert 'binder/jupyter_server_config.py' in (ROOT/'binder'/'postBuild').read_text()   # the image gets the app's settings
    assert v['singleuser']['storage']['type'] == 'none'
    mounted = {Path(f['mountPath']) for f in v['hub']['extraFiles'].values()}
    assert {m.parent for m in mounted} == set(map(Path, hub['template_paths']))
    assert {m.name for m in mounted} == {t.name for t in (HUB/'templates').iterdir()}   # every template, nothing else
    assert all(f"hub.extraFiles.{k}.stringData=deploy/jupyterhub/templates/{Path(f['mountPath']).name}"
               in (HUB/'values.yaml').read_text() for k, f in v['hub']['extraFiles'].items())
