"Gathering against a loopback image host (200+ good images, 40+ bad answers), resuming, and the real scrape."
import mimetypes, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
from bear_app.gather import (gather, search_images, read_manifest, folder_items, urls_file_items, http_search_backend,
                             SearchUnavailable, http_pool, fetch_url)
from bear_app.images import near_duplicate_groups, verify_image
from bear_app.testing import LoopbackHost, make_image
from conftest import CASES, ROOT, needs_cases
KW = dict(timeout=(2, 1), deadline=2.5, max_bytes=300_000, workers=8, progress=False)  # slow hosts wait 3 s

@pytest.fixture(scope='module')
def host():
    with LoopbackHost(n_good=70, slow_s=3) as h: yield h

def items_of(host):
    return [r | dict(category=c) for c, q in host.categories.items() for r in search_images(q, 200, backend=http_search_backend(host.search_url))]

def state(dest):
    "Everything a run leaves behind: manifest (without timings) and the files on disk."
    recs = {f'{c} {u}': (r['status'], r['file'], r['reason'], r['sha256']) for (c, u), r in read_manifest(dest/'manifest.jsonl').items()}
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob('*') if p.is_file() and p.name != 'manifest.jsonl')
    return recs, files

@pytest.fixture(scope='module')
def first(host, tmp_path_factory):
    dest = tmp_path_factory.mktemp('first')/'bears'
    return dest, gather(items_of(host), dest, **KW)

def test_fixture_is_big_enough(host):
    good = [u for u, (st, _) in host.expect.items() if st == 'ok' and '/img/' in u]
    assert len(good) >= 200 and len(host.expect) - len(good) >= 30

def test_every_url_accounted_for(host, first):
    dest, rep = first
    recs = read_manifest(dest/'manifest.jsonl')
    assert {u for _, u in recs} == set(host.expect)
    for (cat, url), r in recs.items():
        st, what = host.expect[url]
        assert r['status'] == st, (url, r)
        if st == 'ok':
            assert r['file'] == f"{cat}/{Path(r['file']).name}" and r['file'].endswith('.' + what), r
            assert verify_image(dest/r['file'])['format'] == what
        else: assert what in r['reason'], (url, r['reason'], what)
        if st in ('duplicate', 'near_duplicate', 'invalid'): assert (dest/r['file']).exists() and r['file'].startswith('.')
        if st == 'failed': assert r['file'] is None
    assert rep.near_duplicates == 3 and rep.counts['duplicate'] == 3

def test_each_good_image_lands_once(host, first):
    dest, _ = first
    landed = [p for c in host.categories for p in (dest/c).iterdir()]
    n_ok = sum(st == 'ok' for st, _ in host.expect.values())
    assert len(landed) == n_ok
    shas = {r['sha256'] for r in read_manifest(dest/'manifest.jsonl').values() if r['status'] == 'ok'}
    assert len(shas) == n_ok
    assert not near_duplicate_groups(landed, max_distance=6)

def test_no_partial_files(first):
    dest, _ = first
    assert not list(dest.rglob('*.part'))
    for c in ('black', 'grizzly', 'teddy'):
        for p in (dest/c).iterdir(): verify_image(p)

def test_second_run_downloads_nothing(host, first):
    dest, _ = first
    before, hits = state(dest), host.hits
    rep = gather(items_of(host), dest, **KW)
    assert rep.new == 0 and host.hits == hits
    assert state(dest) == before

def _settings(tmp, host):
    cats = '\n'.join(f'{c} = {q}' for c, q in host.categories.items())
    (tmp/'settings.ini').write_text(f'[categories]\n{cats}\n[gather]\nimages_per_category = 200\nworkers = 8\n'
                                   f'max_bytes = 300000\n[paths]\ndata = bears\n')
    env = {k: v for k, v in os.environ.items() if k not in ('BEAR_DATA', 'BEAR_SMALL')}
    return env | dict(BEAR_SETTINGS=str(tmp/'settings.ini'))

CLI = [sys.executable, '-m', 'bear_app.gather', '--connect-timeout', '2', '--read-timeout', '1', '--deadline', '2.5', '--quiet']

def test_killed_cli_run_resumes_to_same_state(host, first, tmp_path):
    env, dest = _settings(tmp_path, host), tmp_path/'bears'
    args = CLI + ['--search-url', host.base + '/search']
    p = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20 and p.poll() is None:
        m = dest/'manifest.jsonl'
        if m.exists() and len(m.read_text().splitlines()) >= 60: break
        time.sleep(.02)
    assert p.poll() is None, f'finished before it could be killed: {p.stdout.read().decode()}'
    p.send_signal(signal.SIGKILL); p.wait()
    assert 0 < len(read_manifest(dest/'manifest.jsonl')) < len(host.expect)
    out = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=40)
    assert out.returncode == 1 and 'item(s) failed' in out.stderr and 'Traceback' not in out.stderr, out.stdout + out.stderr
    assert 'near-duplicates found: 3' in out.stdout
    assert state(dest) == state(first[0])

def test_exception_midway_then_rerun_same_state(host, first, tmp_path, monkeypatch):
    import bear_app.gather as g
    real, calls = g.verify_image, []
    def flaky(p):
        calls.append(p)
        if len(calls) == 40: raise KeyboardInterrupt('injected')
        return real(p)
    monkeypatch.setattr(g, 'verify_image', flaky)
    dest = tmp_path/'bears'
    with pytest.raises(KeyboardInterrupt): gather(items_of(host), dest, **KW)
    monkeypatch.setattr(g, 'verify_image', real)
    gather(items_of(host), dest, **KW)
    assert state(dest) == state(first[0])

def test_connections_reused_and_idle_closes_survived(tmp_path):
    "Downloads reuse keep-alive connections (at most one per worker); a connection the host closed while idle is replaced."
    h = LoopbackHost(n_good=12, bad=False)
    h.idle_timeout = .3
    with h:
        urls, pool = [u for us in h.urls.values() for u in us], http_pool()
        for u in urls[:10]: fetch_url(u, tmp_path/'a.part', pool=pool)
        assert h.connections == 1 and h.hits == 10
        time.sleep(1)  # the host drops the idle connection
        assert fetch_url(urls[10], tmp_path/'b.part', pool=pool)[0] == verify_image(tmp_path/'b.part')['format']
        assert h.connections == 2
        pool.clear()
        n = h.connections
        rep = gather([dict(category=c, url=u) for c, us in h.urls.items() for u in us], tmp_path/'bears', **KW | dict(workers=4))
        assert rep.counts == {'ok': 36} and h.connections - n <= 4

def test_urls_file_same_path(host, tmp_path):
    urls = host.urls
    (tmp_path/'urls.txt').write_text('# two good, one HTML page\n' + f"black {urls['black'][0]}\nteddy {urls['teddy'][1]}\n"
                                     f'grizzly {host.base}/bad/html/1.jpg\n')
    rep = gather(urls_file_items(tmp_path/'urls.txt'), tmp_path/'bears', **KW)
    assert rep.counts == {'ok': 2, 'failed': 1}

def test_search_unreachable_message():
    def down(q, n): raise ConnectionError('Network is unreachable')
    with pytest.raises(SearchUnavailable, match=r'image search unreachable: Network is unreachable.*pass --urls FILE or --from-folder DIR'):
        search_images('grizzly bear', 5, backend=down, retries=2, sleep=lambda s: None)

def test_cli_reports_unreachable_search(tmp_path, host):
    env = _settings(tmp_path, host)
    out = subprocess.run(CLI + ['--search-url', 'http://127.0.0.1:9/search', '--retries', '1', '--backoff', '.05'], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and 'pass --urls FILE or --from-folder DIR' in out.stderr, out.stderr

REAL = Path(os.environ.get('BEAR_DATA') or ROOT/'..'/'shared'/'data'/'bears')
REAL = REAL if REAL.is_absolute() else ROOT/REAL

@pytest.mark.skipif(not REAL.is_dir(), reason=f'no real scrape at {REAL} (set BEAR_DATA)')
def test_real_scrape_from_folder(tmp_path):
    src = tmp_path/'src'
    shutil.copytree(REAL, src, ignore=shutil.ignore_patterns('.*', 'manifest.jsonl'))
    a_jpg = sorted((src/'grizzly').glob('*.jpg'))[0]
    a_jpg.rename(a_jpg.with_name(a_jpg.name + ';w=960'))  # the name shape some hosts give
    rep = gather(folder_items(src), tmp_path/'bears', progress=False)
    recs = read_manifest(tmp_path/'bears'/'manifest.jsonl')
    mimetypes.init()
    img_exts = {k for k, v in mimetypes.types_map.items() if v.startswith('image/')}  # what get_image_files keeps
    webp_in = sum(verify_image(p)['format'] == 'webp' for p in src.rglob('*') if p.is_file())
    assert webp_in > 0 and rep.counts.get('ok', 0) > 0.9*len(recs)
    landed = [p for c in ('black', 'grizzly', 'teddy') for p in (tmp_path/'bears'/c).iterdir()]
    for p in landed: assert p.suffix in img_exts and p.suffix[1:] == verify_image(p)['format'], p
    assert (tmp_path/'bears'/'grizzly'/(a_jpg.stem + '.' + verify_image(a_jpg.with_name(a_jpg.name + ';w=960'))['format'])).exists()
    assert sum(p.suffix == '.webp' for p in landed) + sum(r['format'] == 'webp' and r['status'] != 'ok' for r in recs.values()) == webp_in
    assert rep.near_duplicates >= 2
    near = [r for r in recs.values() if r['status'] == 'near_duplicate']
    assert any('grizzly/00000006' in r['reason'] or 'grizzly/00000057' in r['file'] for r in near), near

# --- real-world input never breaks a run (issue 12: kinds 1, 2, 4, 7) ---

INTERNAL = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|Traceback")

def run_cli(args, env, cwd, timeout=60):
    out = subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert not INTERNAL.search(out.stderr), out.stderr
    return out

@pytest.mark.parametrize('status, words', [(403, 'refused (HTTP 403'), (202, 'rate-limited (HTTP 202')])
def test_cli_names_a_refused_or_throttled_search(tmp_path, status, words):
    with LoopbackHost(n_good=5, bad=False, search_status=status) as h:
        out = run_cli(['--search-url', h.search_url, '--retries', '2', '--backoff', '.05'], _settings(tmp_path, h), tmp_path)
        assert h.searches == 3                      # retried with backoff before giving up
    assert out.returncode == 1 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path/'bears'/'manifest.jsonl').exists()

def test_search_with_no_results_is_retried_then_refused():
    "ddgs reports a refused or throttled search as 'No results found': for a category that is never a real answer."
    calls = []
    def empty(q, n): calls.append(q); raise Exception('No results found.')
    with pytest.raises(SearchUnavailable, match='no results'): search_images('grizzly bear', 5, backend=empty, retries=2, sleep=lambda s: None)
    assert len(calls) == 3

def test_cli_exits_non_zero_naming_an_empty_category(tmp_path):
    with LoopbackHost(n_good=3, bad=True) as h:
        urls = h.urls
        (tmp_path/'urls.txt').write_text(f"black {urls['black'][0]}\ngrizzly {urls['grizzly'][0]}\nteddy {h.base}/bad/404/0.jpg\n")
        out = run_cli(['--urls', str(tmp_path/'urls.txt')], _settings(tmp_path, h), tmp_path)
    assert out.returncode == 1 and 'teddy ended empty' in out.stderr, out.stderr
    assert re.search(r'black\s+1 images', out.stdout) and re.search(r'teddy\s+0 images\s+EMPTY', out.stdout), out.stdout

@needs_cases
def test_non_ascii_and_space_urls_are_percent_encoded(tmp_path):
    with LoopbackHost(n_good=1, bad=False, fallback=make_image(5)) as h:
        text = (CASES/'gather'/'urls_non_ascii.txt').read_text(encoding='utf-8').replace('HOST', h.base.split('//')[1])
        (tmp_path/'urls.txt').write_text(text, encoding='utf-8')
        rep = gather(urls_file_items(tmp_path/'urls.txt'), tmp_path/'bears', **KW)
        assert '/img/oso_pe%C3%B1oles.jpg' in h.paths and '/img/oso%20negro.jpg' in h.paths, h.paths
    recs = read_manifest(tmp_path/'bears'/'manifest.jsonl')
    assert rep.failed == 0 and len(recs) == 3 and {r['status'] for r in recs.values()} <= {'ok', 'duplicate'}, recs

def test_urls_file_from_a_spreadsheet_bom_and_crlf(tmp_path):
    (tmp_path/'urls.txt').write_bytes('\ufeffblack http://127.0.0.1:9/a.jpg\r\n\r\n# c\r\nteddy http://127.0.0.1:9/b.jpg\r\n'.encode())
    assert [(i['category'], i['url']) for i in urls_file_items(tmp_path/'urls.txt')] == [('black', 'http://127.0.0.1:9/a.jpg'), ('teddy', 'http://127.0.0.1:9/b.jpg')]

def test_an_unexpected_exception_is_one_failed_item(host, tmp_path, monkeypatch):
    "A bug or plugin crash on one item is that item's failure; every other item is done and in the manifest."
    import bear_app.gather as g
    real, bad = g.verify_image, host.urls['black'][2]
    def crashes_once(p):
        if crashes_once.n == 0: crashes_once.n += 1; raise UnicodeEncodeError('ascii', 'ñ', 0, 1, 'ordinal not in range(128)')
        return real(p)
    crashes_once.n = 0
    monkeypatch.setattr(g, 'verify_image', crashes_once)
    items = [dict(category='black', url=u) for u in host.urls['black'][:3]]
    rep = gather(items, tmp_path/'bears', **KW)
    recs = read_manifest(tmp_path/'bears'/'manifest.jsonl')
    assert rep.failed == 1 and len(recs) == 3
    failed = [r for r in recs.values() if r['status'] == 'failed']
    assert len(failed) == 1 and 'could not be processed' in failed[0]['reason'] and not INTERNAL.search(failed[0]['reason'])

@needs_cases
def test_heic_from_a_folder_is_an_image(tmp_path):
    (tmp_path/'own'/'grizzly').mkdir(parents=True)
    shutil.copy(CASES/'gather'/'phone_photo.heic', tmp_path/'own'/'grizzly')
    (tmp_path/'own'/'grizzly'/'._phone_photo.heic').write_bytes(b'\x00\x05\x16\x07Mac fork')
    (tmp_path/'own'/'grizzly'/'.DS_Store').write_bytes(b'\x00\x00\x00\x01Bud1')
    rep = gather(folder_items(tmp_path/'own'), tmp_path/'bears', **KW)
    assert rep.counts == {'ok': 1} and (tmp_path/'bears'/'grizzly'/'phone_photo.heic').exists()

def test_cli_usage_errors_are_one_line_and_exit_2(tmp_path):
    with LoopbackHost(n_good=1, bad=False) as h: env = _settings(tmp_path, h)
    (tmp_path/'empty'/'black').mkdir(parents=True)
    cases = {'no such folder': ['--from-folder', str(tmp_path/'nowhere')], 'hold no files': ['--from-folder', str(tmp_path/'empty')],
             'no such file': ['--urls', str(tmp_path/'nowhere.txt')]}
    for words, args in cases.items():
        out = run_cli(args, env, tmp_path)
        assert out.returncode == 2 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
    (tmp_path/'settings.ini').write_text('[categories]\nblack = black bear\n[gather]\nworkers = eight\n')
    out = run_cli(['--from-folder', str(tmp_path/'empty')], env, tmp_path)
    assert out.returncode == 2 and 'settings.ini: [gather] workers' in out.stderr and 'a whole number' in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1

def test_cli_version():
    out = subprocess.run(CLI + ['--version'], capture_output=True, text=True)
    assert out.returncode == 0 and re.fullmatch(r'bear-gather \d+\.\d+\.\d+\n', out.stdout), out.stdout

def test_an_offline_search_says_so_without_the_engines_internals():
    "ddgs on a machine with no network raises its own exception with a DNS error and the engine's URL: the user reads 'offline'."
    from ddgs.exceptions import DDGSException
    from bear_app.gather import SearchUnavailable, search_images
    def offline(query, n):
        raise DDGSException("DNSError: DNSError('error sending request for url (https://www.bing.com/images/async?q=black+bear) > error resolving DNS')")
    with pytest.raises(SearchUnavailable) as e: search_images('black bear', backend=offline, retries=1, sleep=lambda s: None)
    said = str(e.value)
    assert 'offline' in said and 'DNSError' not in said and 'bing.com' not in said and '--from-folder' in said

def test_cli_names_each_failed_item_and_where_the_rest_are(tmp_path):
    "Each failed item on the console with its cause (the first ten), then how many more and the file that lists them all."
    with LoopbackHost(n_good=3, bad=True) as h:
        bad = [f'{h.base}/bad/404/{i}.jpg' for i in range(13)]
        (tmp_path/'urls.txt').write_text(''.join(f"{c} {h.urls[c][0]}\n" for c in ('black', 'grizzly', 'teddy')) + ''.join(f'teddy {u}\n' for u in bad))
        out = run_cli(['--urls', str(tmp_path/'urls.txt')], _settings(tmp_path, h), tmp_path)
    assert out.returncode == 1 and '13 item(s) failed (named above' in out.stderr, out.stderr
    named = re.findall(r'^  failed: teddy (\S+): (.+)$', out.stdout, re.M)
    assert [u for u, _ in named] == bad[:10] and all('404' in why for _, why in named), out.stdout
    assert re.search(r'^  and 3 more: \S*manifest.jsonl lists every item and why$', out.stdout, re.M), out.stdout
