"""Load on the Voilà app: several visitors at once, in headless Chromium, against the book's app in the same run.

Scenarios, each on a fresh server started as `make app` starts it (`bear-app`, settings.ini as it is), once its
pool of warm kernels is ready:
- burst: N visitors (default 8) open the page at the same moment, upload a photo and click Classify;
- burst1: the same with `warm_kernels = 1` (what the pool of warm kernels is worth);
- waves: 20 visitors in waves of 5 (a wave starts when the previous one has left);
- cap: `max_visitors` pages held open, then one more visitor, who must get the busy page (HTTP 503);
- bots: N plain page requests at once (default 8: link previews, crawlers, `curl`; each reads the whole page and
  never connects), then 4 visitors at once, who press "Try again" every 2 s while they get the busy page; their
  request-to-usable time counts from their first try. bots_before: the same with `connect_timeout` = 3600 s, i.e. as
  the server behaved before pages had to connect (a place held until the unconnected page's kernel was culled).
Per visitor: page request -> usable widgets, Classify click -> label, failures (no widgets within the timeout,
which is what a dead page looks like, or no label). Server + kernel resident memory: peak, and after all have left.
The page's transfer size with and without compression comes from one visit (Chromium's encoded vs decoded bodies).
The baseline is the book's notebook (`bench/app.py`'s, load_learner + learn.predict) under plain Voilà, N at once.

Usage: .venv/bin/python bench/load.py [--visitors 8] [--bots 8] [--no-book] [--only burst,waves,bots]   (needs /usr/bin/chromium; BEAR_DATA's photos)"""
import argparse, asyncio, concurrent.futures, os, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.error, urllib.request
from pathlib import Path
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'bench'))
from app import book_notebook, BEAR_DATA   # the book's app, as bench/app.py serves it

CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']
TIMEOUT = 120_000   # ms a visitor waits for widgets, then for a label

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def serve(cmd, cwd, env, port, log):
    "Start a server; its output goes to the file `log`."
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.2): return proc
        except OSError: time.sleep(0.1)
    raise RuntimeError(f"server did not start: {cmd}")

def tree_rss(proc):
    "Resident memory of the server and every process under it (its kernels), MiB."
    try: ps = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess: return 0.0
    total = 0
    for p in ps:
        try: total += p.memory_info().rss
        except psutil.NoSuchProcess: pass
    return total / 2**20

class Memory:
    "Samples `tree_rss(proc)` every 0.2 s in a thread; `.peak` in MiB."
    def __init__(self, proc): self.proc, self.peak, self._stop = proc, 0.0, False
    def __enter__(self):
        def run():
            while not self._stop: self.peak = max(self.peak, tree_rss(self.proc)); time.sleep(0.2)
        self._t = threading.Thread(target=run, daemon=True); self._t.start(); return self
    def __exit__(self, *a): self._stop = True; self._t.join()

async def visit(browser, url, photo, label_prefix, hold=None, retry_busy=0):
    "One visitor: (usable s, label s, failure or None); with `hold`, keep the page open until `hold` is set; with "
    "`retry_busy`, ask again every 2 s for that many seconds while the answer is the busy page (`busy`: how often)."
    ctx = await browser.new_context()
    page = await ctx.new_page()
    out = {'usable': None, 'label': None, 'failure': None, 'busy': 0}
    try:
        t0 = time.perf_counter()
        r = await page.goto(url, timeout=TIMEOUT)
        while r.status == 503 and time.perf_counter() < t0 + retry_busy:
            out['busy'] += 1; await page.wait_for_timeout(2000); r = await page.goto(url, timeout=TIMEOUT)
        if r.status == 503: out['failure'] = 'busy page'; return out
        try: await page.locator('.widget-upload').wait_for(timeout=TIMEOUT)
        except Exception:
            text = ' '.join((await page.inner_text('body')).split())[:160]
            out['failure'] = 'dead page (no widgets)'; out['page'] = text; return out
        out['usable'] = time.perf_counter() - t0
        async with page.expect_file_chooser() as fc: await page.locator('.widget-upload').click()
        await (await fc.value).set_files(str(photo))
        await page.locator('.widget-upload:has-text("(1)")').wait_for(timeout=TIMEOUT)
        await page.locator('button:has-text("Classify"):not([disabled])').wait_for(timeout=TIMEOUT)
        await page.wait_for_timeout(300)   # the book's app gives no sign that the upload reached the kernel
        t1 = time.perf_counter()
        await page.locator('button:has-text("Classify")').click()
        try:
            await page.wait_for_function("p => p ? [...document.querySelectorAll('.widget-label')].some(e => e.innerText.startsWith(p))"
                                         "       : (document.querySelector('.bear-answer') || {innerText: ''}).innerText.trim().length > 0",
                                         arg=label_prefix, timeout=TIMEOUT, polling=20)
            out['label'] = time.perf_counter() - t1
        except Exception: out['failure'] = 'no label'
        if hold is not None: await hold.wait()
        return out
    finally:
        await page.goto('about:blank'); await ctx.close()

def p95(xs): return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)] if xs else float('nan')

def summary(name, results, peak, after):
    ok = [r for r in results if not r['failure']]
    us, ls = [r['usable'] for r in ok], [r['label'] for r in ok]
    fails = [r['failure'] for r in results if r['failure']]
    return (f"| {name} | {len(results)} | {statistics.median(us) if us else float('nan'):.1f} s | {p95(us):.1f} s | "
            f"{statistics.median(ls) if ls else float('nan'):.2f} s | {len(fails)}{' (' + ', '.join(sorted(set(fails))) + ')' if fails else ''} | "
            f"{peak:.0f} MiB | {after:.0f} MiB |")

async def settle(proc, seconds=20):
    "Memory once the visitors have left and their kernels ended (or `seconds` passed)."
    base = None
    for _ in range(seconds * 2):
        await asyncio.sleep(0.5)
        now = tree_rss(proc)
        if base is not None and abs(now - base) < 5: break
        base = now
    return tree_rss(proc)

async def burst(browser, proc, url, photo, n, prefix):
    with Memory(proc) as m:
        rs = await asyncio.gather(*[visit(browser, url, photo, prefix) for _ in range(n)])
    return rs, m.peak, await settle(proc)

async def waves(browser, proc, url, photo, total, size, prefix):
    rs = []
    with Memory(proc) as m:
        for _ in range(total // size):
            rs += await asyncio.gather(*[visit(browser, url, photo, prefix) for _ in range(size)])
    return rs, m.peak, await settle(proc)

def plain_get(url):
    "A plain GET, as a link preview or a crawler makes it (the whole page read, no script run): the HTTP status."
    try:
        with urllib.request.urlopen(url, timeout=300) as r: r.read(); return r.status
    except urllib.error.HTTPError as e: return e.code

async def bots_then_visitors(browser, proc, url, photo, n, visitors=4):
    "`n` plain GETs at once, then `visitors` real visitors at once, retrying on the busy page for up to 5 minutes."
    with Memory(proc) as m:
        with concurrent.futures.ThreadPoolExecutor(n) as ex:
            statuses = await asyncio.gather(*[asyncio.get_running_loop().run_in_executor(ex, plain_get, url) for _ in range(n)])
        rs = await asyncio.gather(*[visit(browser, url, photo, '', retry_busy=300) for _ in range(visitors)])
    return rs, statuses, m.peak, await settle(proc)

async def beyond_cap(browser, proc, url, photo, cap):
    "Hold `cap` pages open, then one more visitor: (its failure, peak MiB with the cap reached)."
    hold = asyncio.Event()
    with Memory(proc) as m:
        held = [asyncio.ensure_future(visit(browser, url, photo, '', hold)) for _ in range(cap)]
        for _ in range(600):   # every held page has its widgets (its kernel)
            await asyncio.sleep(0.5)
            if sum(1 for k in psutil.Process(proc.pid).children(recursive=True) if 'ipykernel' in ' '.join(k.cmdline())) >= cap:
                break
        await asyncio.sleep(5)
        extra = await visit(browser, url, photo, '')
        hold.set()
        await asyncio.gather(*held)
    return extra['failure'], m.peak

async def transfer(browser, url):
    "Bytes of one page visit as sent (compressed) and as decoded."
    ctx = await browser.new_context()
    page = await ctx.new_page()
    responses = []
    page.on('response', lambda r: responses.append(r))
    await page.goto(url)
    await page.locator('.widget-upload').wait_for(timeout=TIMEOUT)
    sent = decoded = 0
    for r in responses:
        try:
            sent += (await r.request.sizes())['responseBodySize']; decoded += len(await r.body())
        except Exception: pass
    await page.goto('about:blank'); await ctx.close()
    return sent, decoded

def failures(name, results, log):
    "Lines about what failed visitors saw, and the server log's warnings and errors."
    out = [f"  {name}: a dead page showed: {r['page']!r}" for r in results if r.get('page') is not None]
    if out or any(r['failure'] for r in results):
        out += [f"  {name} server log: {l.rstrip()}" for l in Path(log).read_text(errors='replace').splitlines()
                if ('WARNING' in l or 'ERROR' in l or 'Traceback' in l) and 'without encryption' not in l and 'not trusted' not in l]
    return out

async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--visitors', type=int, default=8)
    ap.add_argument('--waves', type=int, default=20, help='visitors in the waves scenario')
    ap.add_argument('--wave-size', type=int, default=5)
    ap.add_argument('--bots', type=int, default=8, help='plain page requests before the visitors in the bots scenario')
    ap.add_argument('--only', default='transfer,burst,burst1,waves,cap,bots,bots_before,book',
                    help='scenarios to run, comma-separated (burst1: the burst with warm_kernels = 1; bots_before: '
                         'the bots with connect_timeout = 3600 s)')
    ap.add_argument('--no-book', action='store_true', help="skip the book's app (the baseline)")
    a = ap.parse_args()
    only = set(a.only.split(',')) - ({'book'} if a.no_book else set())
    from playwright.async_api import async_playwright
    from bear_app.serve import app_settings
    from bear_app.testing import settings_copy
    photo = sorted((BEAR_DATA/'grizzly').iterdir())[0]
    settings = app_settings()
    cap, warm = settings['max_visitors'], min(settings['warm_kernels'], settings['max_visitors'])
    bin_ = Path(sys.executable).parent
    tmp = Path(tempfile.mkdtemp())   # the app's prediction log and the servers' logs, kept out of the repository
    env = {**os.environ, 'JUPYTER_PATH': str(ROOT/'share'/'jupyter'), 'BEAR_LOG': str(tmp/'predictions.sqlite')}
    rows, notes, idle = [], [], None
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path='/usr/bin/chromium', args=CHROMIUM_ARGS)
        async def ours(name, **app):
            "A fresh `bear-app` (settings.ini's `[app]`, with `app` replaced) once its pool has warmed up: (process, url, log)."
            port, log = free_port(), tmp/f'{name}.log'
            cmd = [sys.executable, '-c', 'from bear_app.serve import main; main()', f'--port={port}', '--no-browser', '--Voila.ip=127.0.0.1']
            (tmp/name).mkdir()
            proc = serve(cmd, ROOT, {**env, 'BEAR_SETTINGS': str(settings_copy(tmp/name, ROOT/'settings.ini', **app))}, port, open(log, 'w'))
            for _ in range(600):
                await asyncio.sleep(0.5)
                if log.read_text(errors='replace').count('is warmed up') >= min(cap, app.get('warm_kernels', warm)): break
            await asyncio.sleep(2)
            return proc, f'http://127.0.0.1:{port}/', log
        async def scenario(name, run, **app):
            proc, url, log = await ours(name, **app)
            try: return await run(proc, url), log
            finally: proc.terminate(); proc.wait(30)
        if 'transfer' in only:
            async def transfer_(proc, url):
                nonlocal idle
                idle = tree_rss(proc)
                return await transfer(browser, url)
            (sent, decoded), _ = await scenario('transfer', transfer_)
        if 'burst' in only:
            (rs, peak, after), log = await scenario('burst', lambda proc, url: burst(browser, proc, url, photo, a.visitors, ''))
            rows.append(summary(f'bear_app, {a.visitors} at once', rs, peak, after)); notes += failures('burst', rs, log)
        if 'burst1' in only and warm != 1:
            (rs, peak, after), log = await scenario('burst1', lambda proc, url: burst(browser, proc, url, photo, a.visitors, ''), warm_kernels=1)
            rows.append(summary(f'bear_app, {a.visitors} at once, warm_kernels = 1', rs, peak, after)); notes += failures('burst1', rs, log)
        if 'waves' in only:
            (rs, peak, after), log = await scenario('waves', lambda proc, url: waves(browser, proc, url, photo, a.waves, a.wave_size, ''))
            rows.append(summary(f'bear_app, {a.waves} in waves of {a.wave_size}', rs, peak, after)); notes += failures('waves', rs, log)
        for name, app in (('bots', {}), ('bots_before', {'connect_timeout': 3600})):
            if name not in only: continue
            (rs, statuses, peak, after), log = await scenario(name, lambda proc, url: bots_then_visitors(browser, proc, url, photo, a.bots), **app)
            rows.append(summary(f'bear_app, {a.bots} plain requests then 4 visitors' + (', `connect_timeout` = 3600 s (before)' if app else ''),
                                rs, peak, after))
            notes.append(f"  {name}: the {a.bots} plain requests got HTTP {', '.join(map(str, sorted(statuses)))}; the visitors "
                         f"met the busy page {', '.join(str(r['busy']) for r in rs)} times")
            notes += failures(name, rs, log)
        if 'cap' in only:
            (busy, cap_peak), _ = await scenario('cap', lambda proc, url: beyond_cap(browser, proc, url, photo, cap))
        if 'book' in only:
            with tempfile.TemporaryDirectory() as d:
                nb = book_notebook(Path(d))
                port = free_port()
                bproc = serve([str(bin_/'voila'), str(nb), f'--port={port}', '--no-browser', '--Voila.ip=127.0.0.1'], d,
                              dict(os.environ), port, open(tmp/'book.log', 'w'))
                try:
                    rs, peak, after = await burst(browser, bproc, f'http://127.0.0.1:{port}/', photo, a.visitors, 'Prediction')
                    rows.insert(0, summary(f"book's app, {a.visitors} at once", rs, peak, after))
                finally:
                    bproc.terminate(); bproc.wait(30)
        await browser.close()
    print(f"Load, headless Chromium on this machine ({os.cpu_count()} CPU cores, shared with the server), a fresh server "
          f"for each scenario; bear_app: max_visitors = {cap}, warm_kernels = {settings['warm_kernels']}")
    print("| scenario | visitors | request to usable (median) | p95 | Classify to label (median) | failures | server + kernels, peak | after all left |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows: print(r)
    for n in notes: print(n)
    if idle is not None: print(f"bear_app idle (server + {warm} pooled kernel(s)): {idle:.0f} MiB")
    if 'cap' in only:
        print(f"Beyond the cap ({cap} pages held open): the next visitor got {busy or 'the app (no busy page!)'}; "
              f"peak {cap_peak:.0f} MiB with the cap reached")
    if 'transfer' in only:
        print(f"One page visit transferred {sent/1e6:.2f} MB compressed, {decoded/1e6:.2f} MB decoded ({sent/decoded:.2f}x)")
    print(f"Server logs: {tmp}")

if __name__ == '__main__': asyncio.run(main())
