"""Benchmark the Voilà app against the book's app, in the same run, in headless Chromium.

For each app: time from the page request to the widgets being usable (the Classify button on screen), with the
server warm (one page view first, not counted); time from clicking Classify to the label; the kernel's resident
memory after the prediction. The book's app is the chapter-2 notebook (load_learner + learn.predict, with the
ipywidgets 8 fix), written to a temp dir and served by Voilà's defaults.

Usage: .venv/bin/python bench/app.py [--runs 3]   (needs /usr/bin/chromium; uses BEAR_DATA's first grizzly photo)"""
import argparse, os, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import nbformat, psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BEAR_DATA = Path(os.environ.get('BEAR_DATA', ROOT.parent/'shared'/'data'/'bears'))

BOOK_CELLS = [
"""from fastai.vision.all import *
from fastai.vision.widgets import *""",
"""learn_inf = load_learner(MODEL)""",
"""btn_upload = widgets.FileUpload()
out_pl = widgets.Output()
lbl_pred = widgets.Label()
def on_click_classify(change):
    img = PILImage.create(btn_upload.value[-1]['content'].tobytes())
    out_pl.clear_output()
    with out_pl: display(img.to_thumb(128,128))
    pred,pred_idx,probs = learn_inf.predict(img)
    lbl_pred.value = f'Prediction: {pred}; Probability: {probs[pred_idx]:.04f}'
btn_run = widgets.Button(description='Classify')
btn_run.on_click(on_click_classify)
VBox([widgets.Label('Select your bear!'), btn_upload, btn_run, out_pl, lbl_pred])"""]

def book_notebook(d:Path)->Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell(c.replace('MODEL', repr(str(ROOT/'models'/'bear_model.pkl')))) for c in BOOK_CELLS]
    nbformat.write(nb, d/'bear_classifier.ipynb')
    return d/'bear_classifier.ipynb'

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def kernels(proc):
    return [k for k in psutil.Process(proc.pid).children(recursive=True) if 'ipykernel' in ' '.join(k.cmdline())]

def serve(nb, cwd, env, voila=(str(BIN/'voila'),)):
    "Serve `nb` with `voila` (plain Voilà by default; bear_app's is `bear-app`, Voilà with bear_app.serve's settings)."
    port = free_port()
    proc = subprocess.Popen([*voila, str(nb), f'--port={port}', '--no-browser', '--Voila.ip=127.0.0.1'],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.2): return proc, f'http://127.0.0.1:{port}/'
        except OSError: time.sleep(0.1)
    raise RuntimeError(f"Voilà did not start for {nb}")

def one_run(browser, proc, url, photo):
    "usable (s), label (s), kernel RSS (MiB) for one page view."
    ctx = browser.new_context()
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.locator('button:has-text("Classify")').wait_for(timeout=120_000)
    page.locator('.widget-upload').wait_for(timeout=120_000)
    usable = time.perf_counter() - t0
    with page.expect_file_chooser() as fc: page.locator('.widget-upload').click()
    fc.value.set_files(str(photo))
    page.locator('.widget-upload:has-text("(1)")').wait_for(timeout=60_000)
    page.wait_for_timeout(int(os.environ.get("BENCH_PAUSE_MS", 300)))   # let the upload reach the kernel (the book's app gives no other signal)
    t1 = time.perf_counter()
    page.locator('button:has-text("Classify")').click()
    page.wait_for_function("() => [...document.querySelectorAll('.widget-label, .bear-answer')].some(e => e.innerText.startsWith('Prediction'))",
                           timeout=120_000, polling=10)
    label = time.perf_counter() - t1
    kid = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
    rss = sum(k.memory_info().rss for k in kernels(proc) if kid in ' '.join(k.cmdline())) / 2**20
    page.goto('about:blank'); ctx.close()
    return usable, label, rss

def measure(browser, nb, cwd, env, photo, runs, **kw):
    proc, url = serve(nb, cwd, env, **kw)
    try:
        one_run(browser, proc, url, photo)          # warm the server (first import, first kernel)
        rs = [one_run(browser, proc, url, photo) for _ in range(runs)]
    finally:
        proc.terminate(); proc.wait(30)
    return [statistics.median(x) for x in zip(*rs)]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--ours-only', action='store_true', help='skip the baseline (for quick checks)')
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    photo = sorted((BEAR_DATA/'grizzly').iterdir())[0]
    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        browser = p.chromium.launch(executable_path='/usr/bin/chromium', args=['--no-sandbox', '--disable-gpu', '--disable-background-networking'])
        book = [float('nan')]*3 if a.ours_only else measure(browser, book_notebook(Path(d)), d, dict(os.environ), photo, a.runs)
        ours = measure(browser, ROOT/'nbs'/'app.ipynb', ROOT, {**os.environ, 'JUPYTER_PATH': str(ROOT/'share'/'jupyter'),
                       'BEAR_LOG': str(Path(d)/'predictions.sqlite')}, photo, a.runs,
                       voila=(sys.executable, '-c', 'from bear_app.serve import main; main()'))
        browser.close()
    print(f"Voilà app, {a.runs} page views each (median), server warm, {os.cpu_count()} CPU cores")
    print(f"| measure | book's app | bear_app | ratio |\n|---|---|---|---|")
    for name, unit, b, o in zip(['page request to usable widgets', 'Classify to label', 'kernel resident memory'],
                                ['s', 's', 'MiB'], book, ours):
        fmt = '.0f' if unit == 'MiB' else '.2f'
        print(f"| {name} | {b:{fmt}} {unit} | {o:{fmt}} {unit} | {o/b:.2f}x |")

if __name__ == '__main__': main()
