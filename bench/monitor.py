"""Benchmark what the prediction log costs per answer, on the app's path, with and without the log, in the same run.

The app's path for one uploaded photo: `Predictor.open(bytes)` (decode), `Predictor.predict(img)`; with the log,
`Monitor.record(answer, img, bytes)` as well: SHA-256 of the upload, perceptual hash of the decoded picture, the
photo's size from its header, one SQLite INSERT committed in WAL mode. No candidate model (shadow mode runs a second
model and costs what that model costs). Photos: the first N of BEAR_DATA, each as bytes in memory; the two variants
alternate photo by photo so that both see the same machine state. One model thread, as each app kernel uses.

Usage: .venv/bin/python bench/monitor.py [--n 120]"""
import argparse, os, statistics, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bear_app.images import visible_files
from bear_app.monitor import Monitor, MonitorSettings
from bear_app.predict import Predictor

BEAR_DATA = Path(os.environ.get('BEAR_DATA', ROOT.parent/'shared'/'data'/'bears'))

def p50(xs): return statistics.median(xs) * 1000

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--n', type=int, default=120)
    a = ap.parse_args()
    files = [f for f in visible_files([BEAR_DATA]) if f.parent.name in ('black', 'grizzly', 'teddy')][::3][:a.n]
    photos = [f.read_bytes() for f in files]
    pred = Predictor(threads=1)
    with tempfile.TemporaryDirectory() as d:
        ms = MonitorSettings(log=Path(d)/'predictions.sqlite', data=Path(d)/'data', inbox=Path(d)/'data'/'.inbox')
        mon = Monitor(pred, ms.log, settings=ms)
        for b in photos[:5]: mon.record(pred.predict(pred.open(b)), pred.open(b), b)     # warm-up (not counted)
        plain, logged, record = [], [], []
        for b in photos:
            t0 = time.perf_counter(); img = pred.open(b); pred.predict(img); plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); img = pred.open(b); r = pred.predict(img)
            t1 = time.perf_counter(); mon.record(r, img, b); t2 = time.perf_counter()
            logged.append(t2 - t0); record.append(t2 - t1)
        n_rows = mon.log.count()
    print(f"{len(photos)} photos from BEAR_DATA, one model thread, same run; {n_rows} rows logged")
    print(f"{'':32}{'p50 ms':>8}")
    print(f"{'answer without the log (baseline)':32}{p50(plain):8.2f}")
    print(f"{'answer with the log':32}{p50(logged):8.2f}")
    print(f"{'the logging step alone':32}{p50(record):8.2f}   (p90 {statistics.quantiles(record, n=10)[-1]*1000:.2f})")
    print(f"difference of the p50s: {p50(logged) - p50(plain):+.2f} ms (target: the logging step <= 2 ms p50)")

if __name__ == '__main__': main()
