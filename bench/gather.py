"""Images per second: bear_app's `gather` (all checks on) against fastai's `download_images`, same loopback host, one run.

The host serves good images (some behind slow but working hosts) and the usual bad answers (404, 500, hosts slower
than the timeout, a trickling host, HTML with status 200, oversize files, redirect loops, truncated files...).
Both use the same number of worker threads and the same read timeout; ours also stops any single download after
DEADLINE seconds (a trickling host sends a byte every 0.6 s and never trips a read timeout). "Good images" are files that decode as images
(for fastai, counted after its run; it keeps whatever it downloaded). A second scenario has only good hosts (throughput without the tail). Usage: python bench/gather.py [--n 150] [--reps 1]
"""
import argparse, contextlib, io, multiprocessing as mp, shutil, tempfile, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
from PIL import Image
from fastai.vision.utils import download_images
from bear_app.gather import LoopbackHost, gather, search_images, http_search_backend

def decodes(p):
    try:
        with Image.open(p) as im: im.load()
        return True
    except Exception: return False

def run_fastai(host, urls, dest, workers, timeout):
    "As the book does it: one `download_images` call per category."
    dest.mkdir(parents=True)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bars
        for c, us in urls.items(): download_images(dest/c, urls=us, n_workers=workers, timeout=timeout)
    dt = time.perf_counter() - t
    files = [p for p in dest.rglob('*') if p.is_file()]
    return dt, len(files), sum(map(decodes, files))

def run_fastai_one_call(host, urls, dest, workers, timeout):
    "All URLs in one call, so slow hosts of one category overlap with the next (no category folders)."
    dest.mkdir(parents=True)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        download_images(dest, urls=[u for us in urls.values() for u in us], n_workers=workers, timeout=timeout)
    dt = time.perf_counter() - t
    files = [p for p in dest.rglob('*') if p.is_file()]
    return dt, len(files), sum(map(decodes, files))

DEADLINE = 10.  # per download; fastai has none, so its trickling host holds a worker as long as it trickles

def run_ours(host, items, dest, workers, timeout):
    t = time.perf_counter()
    rep = gather(items, dest, workers=workers, timeout=(timeout, timeout), deadline=DEADLINE, progress=False)
    dt = time.perf_counter() - t
    return dt, rep.counts.get('ok', 0) + rep.counts.get('duplicate', 0) + rep.counts.get('near_duplicate', 0), rep.counts.get('ok', 0)

def _serve(kw, conn):
    "Run the host in its own process, as real hosts are: its threads do not compete with ours for the GIL."
    with LoopbackHost(**kw) as h:
        conn.send((h.base, h.categories, h.urls, sum(st == 'ok' for st, _ in h.expect.values())))
        conn.recv()  # until told to stop

@contextlib.contextmanager
def remote_host(**kw):
    ours, theirs = mp.Pipe()
    p = mp.get_context('fork').Process(target=_serve, args=(kw, theirs), daemon=True); p.start()
    try: yield ours.recv()
    finally: ours.send('stop'); p.join(10)

def bench(a, bad):
    with remote_host(n_good=a.n, size=a.size, bad=bad, slow_s=a.timeout + 2, latency=.5, slow_every=10) as (base, cats, urls, n_good):
        search = http_search_backend(base + '/search')
        items = [r | dict(category=c) for c, q in cats.items() for r in search_images(q, 10_000, backend=search)]
        n_urls, host = sum(map(len, urls.values())), None
        print(f'\n{"slow-host mix with bad answers" if bad else "good hosts only"}: {n_urls} URLs, '
              f'{n_good} good images, every 10th good one 0.5 s slow, {a.size}px; '
              f'{a.workers} workers, {a.timeout:g} s timeout, our deadline {DEADLINE:g} s')
        best = {}
        for rep in range(a.reps):
            for name, fn, arg in [('fastai (book, per category)', run_fastai, urls), ('fastai (one call)', run_fastai_one_call, urls),
                                  ('bear_app gather', run_ours, items)]:
                tmp = Path(tempfile.mkdtemp())
                try: dt, saved, good = fn(host, arg, tmp/'bears', a.workers, a.timeout)
                finally: shutil.rmtree(tmp)
                print(f'  run {rep + 1}  {name:28} {dt:6.2f} s  {n_urls/dt:7.1f} URLs/s  {good/dt:7.1f} good images/s  '
                      f'({saved} files saved, {good} decode and are kept)')
                if name not in best or dt < best[name][0]: best[name] = (dt, good)
        (od, og) = best['bear_app gather']
        for f in ('fastai (book, per category)', 'fastai (one call)'):
            fd, fg = best[f]
            print(f'  best of {a.reps}: {f} {fg/fd:.1f} good images/s, bear_app {og/od:.1f}; '
                  f'ratio bear_app/fastai {(og/od)/(fg/fd):.2f} (wall time {fd:.2f} s vs {od:.2f} s)')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=150, help='good images per category')
    ap.add_argument('--size', type=int, default=320, help='image size in pixels')
    ap.add_argument('--workers', type=int, default=8)
    ap.add_argument('--timeout', type=float, default=4., help="read timeout (fastai's default is 4)")
    ap.add_argument('--reps', type=int, default=1)
    a = ap.parse_args()
    bench(a, bad=True)
    bench(a, bad=False)

if __name__ == '__main__': main()
