"""The app in a real browser: Voilà started as `make app` starts it (repository root, so voila.json applies), headless
Chromium with every non-loopback request blocked and recorded. Uploads a bear photo, a broken file and a 15 MB photo,
reads the answers; then opens and leaves the page 5 times and checks the kernels do not pile up.
Screenshots go to test-artifacts/ (git-ignored)."""
import io, json, os, re, socket, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import ROOT, BEAR_DATA

CHROMIUM = Path('/usr/bin/chromium')
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
ARTIFACTS = ROOT/'test-artifacts'

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def voila_command(port):
    "The app command (as in the Makefile), on another port."
    return [str(Path(sys.executable).parent/'voila'), 'nbs/app.ipynb', f'--port={port}', '--no-browser', '--Voila.ip=127.0.0.1']

def kernels(proc):
    "Kernel processes started by the Voilà server `proc`."
    import psutil
    try: kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess: return []
    out = []
    for k in kids:
        try:
            if 'ipykernel' in ' '.join(k.cmdline()) and k.status() != psutil.STATUS_ZOMBIE: out.append(k)
        except psutil.NoSuchProcess: pass
    return out

@pytest.fixture(scope='module')
def prediction_log(tmp_path_factory): return tmp_path_factory.mktemp('log')/'predictions.sqlite'

@pytest.fixture(scope='module')
def server(prediction_log):
    port = free_port()
    env = {**os.environ, 'JUPYTER_PATH': str(ROOT/'share'/'jupyter'), 'BEAR_LOG': str(prediction_log)}  # the app logs here, not in the repo
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS/'voila.log', 'wb')
    proc = subprocess.Popen(voila_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    for _ in range(300):
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.2): break
        except OSError: time.sleep(0.1)
        assert proc.poll() is None, (ARTIFACTS/'voila.log').read_text()[-3000:]
    yield proc, url
    proc.terminate()
    try: proc.wait(20)
    except subprocess.TimeoutExpired: proc.kill()
    log.close()

@pytest.fixture(scope='module')
def browser():
    sync_playwright = pytest.importorskip('playwright.sync_api').sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=['--no-sandbox', '--disable-gpu', '--disable-background-networking'])
        yield b
        b.close()

NOT_LOOPBACK = re.compile(r'^(?!(http|ws)://127\.0\.0\.1[:/]|data:|blob:|about:)')  # every URL but the app's own

def open_app(browser, url, blocked, intercept=True):
    "A new page on the app, with every request that would leave the machine recorded and (`intercept`) aborted."
    ctx = browser.new_context(viewport={'width': 900, 'height': 900})
    def block(r): blocked.append(r.request.url); r.abort()
    if intercept: ctx.route(NOT_LOOPBACK, block)
    else: ctx.on('request', lambda r: NOT_LOOPBACK.match(r.url) and blocked.append(r.url))
    page = ctx.new_page()
    page.goto(url)
    page.get_by_role('button', name='Classify').wait_for(timeout=60_000)
    return page

def leave(page):
    "Leave the app as a visitor closing the tab does: the page's beforeunload asks Voilà to shut its kernel down."
    page.goto('about:blank')   # Playwright's page.close() tears the page down before its shutdown beacon is sent
    page.context.close()

def upload_and_classify(page, path):
    "Choose `path` with the Upload button, wait until the kernel has it (Classify enabled), click Classify, return the label."
    with page.expect_file_chooser() as fc: page.locator('.widget-upload').click()
    fc.value.set_files(str(path))
    page.locator('button:has-text("Classify"):not([disabled])').wait_for(timeout=60_000)
    page.get_by_role('button', name='Classify').click()
    answer = page.locator('.bear-answer')
    page.wait_for_function("() => { const a = document.querySelector('.bear-answer'); return a && a.innerText.trim().length > 0 }",
                           timeout=60_000)
    return answer.inner_text().strip()

def photos(tmp):
    "A bear photo with its expected label (a BEAR_DATA grizzly if present, else a generated picture and None)."
    if (BEAR_DATA/'grizzly').is_dir(): return sorted((BEAR_DATA/'grizzly').iterdir())[0], 'grizzly'
    p = tmp/'generated.png'
    x, y = np.meshgrid(np.linspace(0, 255, 400), np.linspace(0, 255, 300))
    Image.fromarray(np.stack([x, y, 255-x], -1).astype(np.uint8)).save(p)
    return p, None

def big_photo(src, dest):
    "A ~15 MB JPEG made from `src`: upscaled to 12 MP with film grain, saved at high quality."
    img = Image.open(src).convert('RGB').resize((4000, 3000), Image.BICUBIC)
    a = np.asarray(img, dtype=np.int16) + np.random.default_rng(0).integers(-24, 25, (3000, 4000, 3), dtype=np.int16)
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(dest, 'JPEG', quality=97, subsampling=0)
    return dest

def test_upload_classify_broken_file_and_big_photo(server, browser, tmp_path):
    from bear_app.predict import Predictor
    from bear_app.config import get_settings
    vocab = get_settings().vocab
    proc, url = server
    blocked = []
    page = open_app(browser, url, blocked)
    assert page.locator('.widget-label').first.inner_text() == get_settings().title
    page.screenshot(path=ARTIFACTS/'1-loaded.png')

    photo, want = photos(tmp_path)
    label = upload_and_classify(page, photo)
    page.screenshot(path=ARTIFACTS/'2-grizzly.png', full_page=True)
    if want: assert label.startswith(f'Prediction: {want};'), label
    else: assert any(f'{v} (' in label or f'Prediction: {v};' in label for v in vocab), label
    assert page.locator('.bear-result img').count() == 1

    broken = tmp_path/'broken.jpg'
    broken.write_bytes(photo.read_bytes()[:500] if photo.suffix.lower() in ('.jpg', '.jpeg') else b'\xff\xd8\xff\xe0' + b'\0' * 300)
    label = upload_and_classify(page, broken)
    page.screenshot(path=ARTIFACTS/'3-broken.png', full_page=True)
    assert label.startswith('broken.jpg: ') and ('damaged' in label or 'not an image' in label), label
    assert page.locator('.bear-result img').count() == 0      # the previous photo is gone

    big = big_photo(photo, tmp_path/'big.jpg')
    assert big.stat().st_size > 14_000_000, big.stat().st_size
    label = upload_and_classify(page, big)
    page.screenshot(path=ARTIFACTS/'4-big.png', full_page=True)
    expected = Predictor().predict(big)
    assert label.startswith(f"This doesn't look like" if expected.get('ood') else f"Prediction: {expected['label']};"), label
    assert proc.poll() is None
    assert blocked == [], blocked
    leave(page)

def test_feedback_controls_and_version_footer(server, browser, tmp_path, prediction_log):
    "Under the answer: Right? and the share box; the footer names the model version; a click lands in the log."
    from bear_app.monitor import PredictionLog
    proc, url = server
    blocked = []
    page = open_app(browser, url, blocked)
    card = json.loads((ROOT/'models'/'bear_model.json').read_text())
    assert f"version {card['pkl_sha256'][:12]}" in page.locator('.bear-footer').inner_text()
    photo, _ = photos(tmp_path)
    upload_and_classify(page, photo)
    fb = page.locator('.bear-feedback')
    fb.wait_for(timeout=30_000)
    assert 'Right?' in fb.inner_text() and fb.get_by_role('checkbox').count() == 1
    fb.get_by_role('button', name='yes').click()
    page.get_by_text('Thanks!').wait_for(timeout=30_000)
    page.screenshot(path=ARTIFACTS/'5-feedback.png', full_page=True)
    rows = PredictionLog(prediction_log).rows()
    assert rows and rows[-1]['truth'] is not None and rows[-1]['shared'] is None
    assert blocked == [], blocked
    leave(page)

def test_kernels_do_not_pile_up(server, browser):
    proc, url = server
    blocked = []
    time.sleep(1)
    before = len(kernels(proc))
    for _ in range(5):   # (Chromium drops the unload beacon of an intercepted page, so these pages are only watched)
        page = open_app(browser, url, blocked, intercept=False)
        leave(page)
    peak = len(kernels(proc))
    deadline = time.time() + 30
    while len(kernels(proc)) > before and time.time() < deadline: time.sleep(0.5)
    assert len(kernels(proc)) <= before, f"{len(kernels(proc))} kernels 30 s after closing 5 pages ({before} before, {peak} at the peak)"
    assert blocked == [], blocked
