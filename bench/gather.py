"""Images per second: bear_app's `gather` (all checks on) against fastai's `download_images`, same loopback host.

The host serves good images (some behind slow but working hosts) and the usual bad answers (404, 500, hosts slower
than the timeout, a trickling host, HTML with status 200, oversize files, redirect loops, truncated files...).
Both use the same number of worker threads and the same read timeout; ours also stops any single download after
DEADLINE seconds (a trickling host sends a byte every 0.6 s and never trips a read timeout). "Good images" are files
that decode as images (for fastai, counted after its run; it keeps whatever it downloaded). A second scenario has only
good hosts (throughput without the tail).

The host speaks HTTP/1.1 with keep-alive, as real image hosts do (`--http10` for the old HTTP/1.0 host); fastai's
urllib asks for `Connection: close` on every request, ours reuses connections per host. Each repetition runs the
downloaders in a rotated order; the summary gives medians over repetitions (this machine is shared and noisy).
Usage: python bench/gather.py [--n 150] [--reps 5] [--scenario good|mix|both] [--http10]
"""
import argparse, contextlib, io, multiprocessing as mp, shutil, statistics, tempfile, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
from PIL import Image
from fastai.vision.utils import download_images
from bear_app.gather import gather, search_images, http_search_backend
from bear_app.testing import LoopbackHost

def decodes(p):
    try:
        with Image.open(p) as im: im.load()
        return True
    except Exception: return False

def run_fastai(urls, dest, workers, timeout):
    "As the book does it: one `download_images` call per category."
    dest.mkdir(parents=True)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bars
        for c, us in urls.items(): download_images(dest/c, urls=us, n_workers=workers, timeout=timeout)
    dt = time.perf_counter() - t
    files = [p for p in dest.rglob('*') if p.is_file()]
    return dt, len(files), sum(map(decodes, files))

def run_fastai_one_call(urls, dest, workers, timeout):
    "All URLs in one call, so slow hosts of one category overlap with the next (no category folders)."
    dest.mkdir(parents=True)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        download_images(dest, urls=[u for us in urls.values() for u in us], n_workers=workers, timeout=timeout)
    dt = time.perf_counter() - t
    files = [p for p in dest.rglob('*') if p.is_file()]
    return dt, len(files), sum(map(decodes, files))

DEADLINE = 10.  # per download; fastai has none, so its trickling host holds a worker as long as it trickles

def run_ours(items, dest, workers, timeout):
    t = time.perf_counter()
    rep = gather(items, dest, workers=workers, timeout=(timeout, timeout), deadline=DEADLINE, progress=False)
    dt = time.perf_counter() - t
    return dt, rep.counts.get('ok', 0) + rep.counts.get('duplicate', 0) + rep.counts.get('near_duplicate', 0), rep.counts.get('ok', 0)

def _serve(kw, protocol, conn):
    "Run the host in its own process, as real hosts are: its threads do not compete with ours for the GIL."
    LoopbackHost.protocol_version = protocol
    with LoopbackHost(**kw) as h:
        conn.send((h.base, h.categories, h.urls, sum(st == 'ok' for st, _ in h.expect.values())))
        conn.recv()  # until told to stop

@contextlib.contextmanager
def remote_host(protocol, **kw):
    ours, theirs = mp.Pipe()
    p = mp.get_context('fork').Process(target=_serve, args=(kw, protocol, theirs), daemon=True); p.start()
    try: yield ours.recv()
    finally: ours.send('stop'); p.join(10)

OURS, BOOK, ONE = 'bear_app gather', 'fastai (book, per category)', 'fastai (one call)'

def bench(a, bad):
    protocol = 'HTTP/1.0' if a.http10 else 'HTTP/1.1'
    with remote_host(protocol, n_good=a.n, size=a.size, bad=bad, slow_s=a.timeout + 2, latency=.5, slow_every=10) as (base, cats, urls, n_good):
        search = http_search_backend(base + '/search')
        items = [r | dict(category=c) for c, q in cats.items() for r in search_images(q, 10_000, backend=search)]
        n_urls = sum(map(len, urls.values()))
        print(f'\n{"slow-host mix with bad answers" if bad else "good hosts only"}: {n_urls} URLs, '
              f'{n_good} good images, every 10th good one 0.5 s slow, {a.size}px, {protocol} host; '
              f'{a.workers} workers, {a.timeout:g} s timeout, our deadline {DEADLINE:g} s', flush=True)
        runs = [(OURS, run_ours, items), (BOOK, run_fastai, urls), (ONE, run_fastai_one_call, urls)]
        rates = {name: [] for name, *_ in runs}
        for rep in range(a.reps):
            for name, fn, arg in runs[rep % 3:] + runs[:rep % 3]:  # rotate who goes first
                tmp = Path(tempfile.mkdtemp())
                try: dt, saved, good = fn(arg, tmp/'bears', a.workers, a.timeout)
                finally: shutil.rmtree(tmp)
                rates[name].append(good/dt)
                print(f'  run {rep + 1}  {name:28} {dt:6.2f} s  {n_urls/dt:7.1f} URLs/s  {good/dt:7.1f} good images/s  '
                      f'({saved} files saved, {good} decode and are kept)', flush=True)
        ours = statistics.median(rates[OURS])
        for f in (BOOK, ONE):
            theirs = statistics.median(rates[f])
            paired = statistics.median(o/t for o, t in zip(rates[OURS], rates[f]))
            print(f'  median of {a.reps}: {f} {theirs:.1f} good images/s, bear_app {ours:.1f}; '
                  f'ratio bear_app/fastai {ours/theirs:.2f} (median of per-run ratios {paired:.2f})')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=150, help='good images per category')
    ap.add_argument('--size', type=int, default=320, help='image size in pixels')
    ap.add_argument('--workers', type=int, default=8)
    ap.add_argument('--timeout', type=float, default=4., help="read timeout (fastai's default is 4)")
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--scenario', choices=['good', 'mix', 'both'], default='both')
    ap.add_argument('--http10', action='store_true', help='serve HTTP/1.0 (one connection per request for everyone)')
    a = ap.parse_args()
    if a.scenario in ('mix', 'both'): bench(a, bad=True)
    if a.scenario in ('good', 'both'): bench(a, bad=False)

if __name__ == '__main__': main()
