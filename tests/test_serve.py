"""Visitor places on a real `bear-app` server (issue 22): plain page requests that never connect (link previews,
bots, reloads) give their place back within seconds, and the next real visitor gets the app. A real visitor here is
what a browser does after loading the page: it opens the page's kernel websocket and the kernel answers on it. No
browser is needed; the browser tests (test_browser.py) drive the same server code in Chromium."""
import asyncio, concurrent.futures, json, re, time, urllib.error, urllib.request, uuid
import pytest
from conftest import ROOT
from bear_app.testing import settings_copy
from test_browser import ARTIFACTS, free_port, server_env, start_server, stop_server, kernels

# unconnected_timeout stays long (as shipped): only connect_timeout can free the places within the test's 30 s
APP = {'max_visitors': 4, 'warm_kernels': 1, 'connect_timeout': 3, 'unconnected_timeout': 120, 'idle_timeout': 600}

@pytest.fixture(scope='module')
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp('places')
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    cmd = [__import__('sys').executable, '-c', 'from bear_app.serve import main; main()', f'--port={port}', '--no-browser',
           '--Voila.ip=127.0.0.1']
    proc = start_server(cmd, server_env(d, settings_copy(d, ROOT/'settings.ini', **APP)), port, ARTIFACTS/'places.log')
    yield proc, f'http://127.0.0.1:{port}/'
    stop_server(proc)

def get(url):
    "A plain GET, as a link preview or a crawler makes it: (status, headers, body), the body read to its end."
    try:
        with urllib.request.urlopen(url, timeout=120) as r: return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.headers, e.read().decode()

async def kernel_answers(base, kid, ws=None):
    "Open (or reuse) the page's kernel websocket as the page's script does, ask for kernel_info: (websocket, reply status)."
    from tornado.websocket import websocket_connect
    ws = ws or await websocket_connect(f"{base.replace('http', 'ws')}api/kernels/{kid}/channels?session_id={uuid.uuid4().hex}")
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({'header': {'msg_id': msg_id, 'msg_type': 'kernel_info_request', 'username': '', 'session': 'test',
                                            'date': '2026-01-01T00:00:00Z', 'version': '5.3'},
                                 'parent_header': {}, 'metadata': {}, 'content': {}, 'channel': 'shell', 'buffers': []}))
    while True:
        m = await asyncio.wait_for(ws.read_message(), 30)
        if m is None: return ws, 'closed'
        if isinstance(m, str) and msg_id in m and 'kernel_info_reply' in m: return ws, json.loads(m)['content']['status']

def page_kernel(html):
    return json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">\s*(.*?)\s*</script>', html, re.S).group(1))['kernelId']

def test_plain_requests_do_not_keep_the_places(server):
    proc, url = server
    with concurrent.futures.ThreadPoolExecutor(6) as ex: bots = list(ex.map(get, [url] * 6))   # 6 plain GETs at once
    done = time.time()
    statuses = sorted(s for s, _, _ in bots)
    assert statuses == [200] * 4 + [503] * 2, statuses                      # 4 places, the rest get the busy page
    assert all(h['Retry-After'] == '15' for s, h, _ in bots if s == 503)
    assert len(kernels(proc)) <= APP['max_visitors']
    while time.time() < done + 30:                                          # a real visitor, within 30 s
        status, _, html = get(url)
        if status == 200: break
        time.sleep(1)
    assert status == 200, "the places taken by the plain requests were not given back within 30 s"
    waited = time.time() - done
    kid = page_kernel(html)
    assert 'application/vnd.jupyter.widget-view+json' in html               # the app's widgets

    async def visitor():
        ws, status = await kernel_answers(url, kid)
        assert status == 'ok'
        await asyncio.sleep(APP['connect_timeout'] + 3)                      # a connected page keeps its kernel
        _, status = await kernel_answers(url, kid, ws)
        ws.close()
        return status
    assert asyncio.run(visitor()) == 'ok'
    assert len(kernels(proc)) <= APP['max_visitors']
    print(f"the visitor got the app {waited:.1f} s after the 6 plain requests")

def test_ctrl_c_ends_the_server_with_status_130(tmp_path):
    "Ctrl-C on `bear-app` stops serving, ends its kernels and says so in one line, with the status every command gives (130)."
    import signal, subprocess
    port = free_port()
    cmd = [__import__('sys').executable, '-c', 'from bear_app.serve import main; raise SystemExit(main())', f'--port={port}',
           '--no-browser', '--Voila.ip=127.0.0.1']
    log = tmp_path/'server.log'
    proc = start_server(cmd, server_env(tmp_path, settings_copy(tmp_path, ROOT/'settings.ini', warm_kernels=1)), port, log)
    try:
        deadline = time.time() + 120
        while 'is warmed up' not in log.read_text() and time.time() < deadline: time.sleep(0.5)   # a warm kernel to end
        kids = kernels(proc)
        assert kids, log.read_text()[-2000:]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130, log.read_text()[-2000:]
    finally: stop_server(proc)
    out = log.read_text()
    assert 'bear-app: interrupted' in out and 'Traceback' not in out, out[-2000:]
    assert not any(k.is_running() and k.status() != 'zombie' for k in kids), "a kernel outlived its server"
