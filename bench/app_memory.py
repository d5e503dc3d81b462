"""Benchmark a page's kernel memory after many large photos: a real IPython kernel runs what the page's notebook runs
(`BearApp()` with its own predictor and prediction log), then 15 photos of ~14 MB are classified one per Classify
(as a phone's browser that cannot shrink them sends them: HEIC, TIFF), and the kernel process's resident memory is
read before and after. Each checkout gets a fresh kernel, one after the other, in the same run; `--baseline DIR`
names another checkout (e.g. `git archive` of an older commit) measured the same way.

Usage: .venv/bin/python bench/app_memory.py [--n 15] [--baseline DIR]"""
import argparse, io, os, sys, tempfile
from pathlib import Path
import numpy as np, psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

SETUP = """from bear_app.app import BearApp, upload_value
from pathlib import Path
app = BearApp()
settle = getattr(app, 'settled', lambda: None)   # (older checkouts log on the answer's path)
def classify(path):
    app.btn_upload.value = upload_value([(Path(path).name, Path(path).read_bytes())]); app.btn_run.click(); settle()
"""

def big_photo(dest:Path, seed:int, size=(4000, 3000))->Path:
    "A 12-megapixel JPEG of ~14 MB: a gradient with film grain."
    x, y = np.meshgrid(np.linspace(0, 255, size[0]), np.linspace(0, 255, size[1]))
    a = np.stack([x, y, 255 - x], -1) + np.random.default_rng(seed).integers(-24, 25, (size[1], size[0], 3))
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(dest, 'JPEG', quality=95, subsampling=0)
    return dest

def measure(checkout:Path, photos:list, log:Path)->tuple:
    "Kernel resident MiB after warming up and after classifying `photos`, in a fresh kernel running `checkout`."
    from jupyter_client.manager import start_new_kernel
    env = {**os.environ, 'PYTHONPATH': str(checkout), 'BEAR_LOG': str(log)}
    km, kc = start_new_kernel(kernel_name='python3', cwd=str(checkout), env=env)
    try:
        def run(code):
            r = kc.execute_interactive(code, timeout=600, output_hook=lambda m: None)
            assert r['content']['status'] == 'ok', r['content']
        rss = lambda: psutil.Process(km.provisioner.process.pid).memory_info().rss / 2**20
        run(SETUP); run(f"classify({str(photos[0])!r})")
        before = rss()
        for p in photos: run(f"classify({str(p)!r})")
        return before, rss()
    finally: kc.stop_channels(); km.shutdown_kernel(now=True)

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--n', type=int, default=15); ap.add_argument('--baseline')
    a = ap.parse_args()
    runs = ([('baseline', Path(a.baseline))] if a.baseline else []) + [('this checkout', ROOT)]
    with tempfile.TemporaryDirectory() as d:
        photos = [big_photo(Path(d)/f'big{i}.jpg', i) for i in range(a.n)]
        mb = sum(p.stat().st_size for p in photos) / len(photos) / 1e6
        for name, where in runs:
            before, after = measure(where, photos, Path(d)/f'{len(name)}.sqlite')
            print(f"{name}: {a.n} photos of {mb:.1f} MB, one per Classify: kernel {before:.0f} MiB before, {after:.0f} MiB after "
                  f"(+{after - before:.0f})")

if __name__ == '__main__': main()
