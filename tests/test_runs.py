"""Runs that overlap or are interrupted: one run per folder (a second waits or is refused, naming the first), Ctrl-C
ends bear-gather, bear-clean apply and bear-train within 2 s with exit 130 and no traceback, the manifest, journal
and model stay consistent, and a rerun finishes the job."""
import csv, errno, json, os, shutil, signal, subprocess, sys, time
from collections import Counter
from pathlib import Path
import pytest
from bear_app.bundle import FILES, ModelBundle
from bear_app.clean import journal_moves, journal_path, tree_state
from bear_app.core import read_jsonl
from bear_app.gather import gather, read_manifest
from bear_app.runs import LOCK, run_lock
from bear_app.testing import LoopbackHost, toy_dataset
from conftest import ROOT

BIN = Path(sys.executable).parent
ENV = {k: v for k, v in os.environ.items() if k not in ('BEAR_DATA', 'BEAR_SMALL')}

def wait_for(cond, timeout:float=30., what:str='')->None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f'gave up waiting for {what}'
        time.sleep(.02)

def interrupt(p:subprocess.Popen)->tuple: # (seconds to exit, stdout, stderr)
    "SIGINT `p` as Ctrl-C does; how long it took to end."
    t0 = time.monotonic(); p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    return time.monotonic() - t0, out, err

def lines(p:Path)->int: return len(p.read_text().splitlines()) if p.exists() else 0

# ---------------------------------------------------------------- bear-gather
def gather_env(tmp:Path, host, workers:int=8)->dict:
    cats = '\n'.join(f'{c} = {q}' for c, q in host.categories.items())
    (tmp/'settings.ini').write_text(f'[categories]\n{cats}\n[gather]\nworkers = {workers}\n[paths]\ndata = bears\n')
    return ENV | {'BEAR_SETTINGS': str(tmp/'settings.ini')}

def urls_file(path:Path, host, part=slice(None))->Path:
    path.write_text(''.join(f'{c} {u}\n' for c, us in host.urls.items() for u in us[part]))
    return path

def gather_cli(env, tmp, *args):
    return subprocess.Popen([sys.executable, '-m', 'bear_app.gather', '--quiet', '--read-timeout', '5', *map(str, args)],
                            env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def consistent(dest:Path)->dict:
    "The manifest's records, after checking every line is whole and the image files on disk are exactly its `ok` records'."
    m = dest/'manifest.jsonl'
    assert all(json.loads(l) for l in m.read_text().splitlines())            # no torn line
    recs = read_manifest(m)
    ok = {r['file'] for r in recs.values() if r['status'] == 'ok'}
    on_disk = {p.relative_to(dest).as_posix() for p in dest.glob('*/*') if p.is_file() and not p.name.startswith('.')}
    assert on_disk == ok, (on_disk ^ ok)
    return recs

def test_a_second_gather_into_the_same_folder_is_refused_naming_the_first_and_nothing_is_lost(tmp_path):
    with LoopbackHost(n_good=20, bad=False, latency=1., slow_every=1) as h:
        env, dest = gather_env(tmp_path, h, workers=3), tmp_path/'bears'     # the first run takes about 12 s
        first = gather_cli(env, tmp_path, '--urls', urls_file(tmp_path/'a.txt', h, slice(0, 12)))
        wait_for(lambda: (dest/LOCK).exists() and f'"pid": {first.pid}' in (dest/LOCK).read_text(), what='the first run to start')
        second = gather_cli(env, tmp_path, '--urls', urls_file(tmp_path/'b.txt', h, slice(12, None)))
        out, err = second.communicate(timeout=60)
        assert first.poll() is None, 'the first run ended before the second tried: make the host slower'
        assert second.returncode == 2 and len(err.strip().splitlines()) == 1, err
        assert f'process {first.pid}' in err and 'bear-gather' in err and 'a.txt' in err and 'Traceback' not in err
        assert first.wait(timeout=60) == 0, first.stderr.read()
        again = gather_cli(env, tmp_path, '--urls', tmp_path/'b.txt')                 # once the first is done
        assert again.wait(timeout=60) == 0, again.stderr.read()
    recs = consistent(dest)
    assert len(recs) == 60 and Counter(r['status'] for r in recs.values()) == {'ok': 60}

def test_ctrl_c_ends_gather_at_once_with_a_consistent_manifest_and_a_rerun_resumes(tmp_path):
    with LoopbackHost(n_good=40, bad=False, latency=.5, slow_every=1) as h:
        env, dest = gather_env(tmp_path, h), tmp_path/'bears'
        urls = urls_file(tmp_path/'u.txt', h)
        p = gather_cli(env, tmp_path, '--urls', urls)
        wait_for(lambda: lines(dest/'manifest.jsonl') >= 8, what='some downloads')
        secs, out, err = interrupt(p)
        assert secs < 2 and p.returncode == 130, (secs, p.returncode, err)
        assert 'Traceback' not in err and 'interrupted' in err and len(err.strip().splitlines()) == 1, err
        done = consistent(dest)
        assert 8 <= len(done) < 120 and all(r['status'] == 'ok' for r in done.values())   # nothing recorded failed by the stop
        rerun = gather_cli(env, tmp_path, '--urls', urls)
        assert rerun.wait(timeout=60) == 0, rerun.stderr.read()
        assert f'{120 - len(done)} new, {len(done)} already' in rerun.stdout.read()
    assert Counter(r['status'] for r in consistent(dest).values()) == {'ok': 120}

def test_items_that_failed_for_a_passing_cause_are_retried_by_the_next_run(tmp_path, monkeypatch):
    "A full disk (or a vanished file) fails an item for now, not for good: a plain rerun tries it again."
    import bear_app.gather as g
    with LoopbackHost(n_good=4, bad=False) as h:
        items = [{'category': c, 'url': u} for c, us in h.urls.items() for u in us]
        real, full = g.fetch_url, {items[1]['url'], items[5]['url']}
        def disk_full(url, *a, **kw):
            if url in full: raise OSError(errno.ENOSPC, 'No space left on device')
            return real(url, *a, **kw)
        monkeypatch.setattr(g, 'fetch_url', disk_full)
        rep = gather(items, tmp_path/'bears', progress=False)
        assert (rep.failed, rep.retry) == (2, 2) and 'No space left on device' in read_manifest(rep.manifest)[('black', items[1]['url'])]['reason']
        monkeypatch.setattr(g, 'fetch_url', real)
        rep = gather(items, tmp_path/'bears', progress=False)
    assert (rep.new, rep.failed, rep.counts) == (2, 0, {'ok': 12})

# ---------------------------------------------------------------- bear-clean
def decisions(path:Path, rows:list)->Path:
    with open(path, 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['file', 'action', 'category']); w.writerows(rows)
    return path

def clean(*args, wait=True):
    p = subprocess.Popen([str(BIN/'bear-clean'), *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait: return p
    out, err = p.communicate(timeout=120)
    return p.returncode, err

def test_two_clean_applies_at_once_lose_nothing_and_undo_restores_all(tmp_path):
    toy = tmp_path/'toy'; files = toy_dataset(toy, n=20)
    before = tree_state(toy, hidden=True)
    rel = [f.relative_to(toy).as_posix() for f in files]
    a = decisions(tmp_path/'a.csv', [(f, 'relabel', 'teddy') for f in rel[0:20]] + [(f, 'delete', '') for f in rel[20:30]])
    b = decisions(tmp_path/'b.csv', [(f, 'relabel', 'black') for f in rel[40:60]] + [(f, 'delete', '') for f in rel[30:40]])
    with run_lock(toy, 'a test holding the folder'):        # both start while the folder is busy: both wait, then take turns
        ps = [clean('apply', a, '--data', toy, wait=False), clean('apply', b, '--data', toy, wait=False)]
        waits = [p.stderr.readline() for p in ps]
    assert all('waiting for' in w and 'a test holding the folder' in w for w in waits), waits
    errs = [p.communicate(timeout=120)[1] for p in ps]
    assert [p.returncode for p in ps] == [0, 0], errs
    moves = [r for r in read_jsonl(journal_path(toy)) if r.get('phase') == 'begin']
    assert len(moves) == 60 and len({m['id'] for m in moves}) == 60                 # no journal id handed out twice
    assert len({m['to'] for m in moves}) == 60 and all((toy/m['to']).is_file() for m in moves)
    assert len(tree_state(toy, hidden=True)) == len(before)                          # nothing lost, nothing clobbered
    assert clean('undo', '--data', toy) == (0, '60 files put back\n')
    assert tree_state(toy, hidden=True) == before

def test_ctrl_c_ends_clean_apply_between_two_moves_and_a_rerun_finishes(tmp_path):
    toy = tmp_path/'toy'; files = toy_dataset(toy, n=100)
    before = tree_state(toy, hidden=True)
    a = decisions(tmp_path/'a.csv', [(f.relative_to(toy).as_posix(), 'delete', '') for f in files])
    p = clean('apply', a, '--data', toy, wait=False)
    wait_for(lambda: lines(journal_path(toy)) >= 40, what='some moves')
    secs, out, err = interrupt(p)
    assert secs < 2 and p.returncode == 130, (secs, p.returncode, err)
    assert 'Traceback' not in err and 'interrupted' in err and len(err.strip().splitlines()) == 1, err
    moves = journal_moves(journal_path(toy))
    assert 0 < len(moves) < len(files) and {m['state'] for m in moves.values()} == {'done'}   # no move left half-journalled
    assert all((toy/m['to']).is_file() and not (toy/m['from']).exists() for m in moves.values())
    assert clean('apply', a, '--data', toy)[0] == 0
    assert len(journal_moves(journal_path(toy))) == len(files)
    assert clean('undo', '--data', toy) == (0, f'{len(files)} files put back\n')
    assert tree_state(toy, hidden=True) == before

def test_a_photo_decided_twice(tmp_path):
    "The same decision twice: applied once, the repeat reported. Two different decisions: refused before anything moves, naming both lines."
    toy = tmp_path/'toy'; toy_dataset(toy, n=3)
    rc, err = clean('apply', decisions(tmp_path/'same.csv', [('black/00000000.jpg', 'delete', ''), ('black/00000001.jpg', 'keep', ''),
                                                          ('black/00000000.jpg', 'delete', '')]), '--data', toy)
    assert rc == 0 and '1 moved to the trash' in err and '1 row(s) repeating an earlier row skipped: black/00000000.jpg' in err, err
    before = tree_state(toy, hidden=True)
    rc, err = clean('apply', decisions(tmp_path/'two.csv', [('grizzly/00000000.jpg', 'relabel', 'teddy'), ('teddy/00000001.jpg', 'delete', ''),
                                                         ('grizzly/00000000.jpg', 'delete', '')]), '--data', toy)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert 'lines 2 and 4 both decide grizzly/00000000.jpg (relabel to teddy / delete)' in err, err
    assert tree_state(toy, hidden=True) == before

# ---------------------------------------------------------------- bear-train
SHIPPED = ModelBundle(ROOT/'models'/'bear_model')
needs_model = pytest.mark.skipif(not SHIPPED.card_path.exists(), reason='models/bear_model.json not found (run bear-train)')

def train_env(tmp:Path, data:Path)->dict:
    (tmp/'settings.ini').write_text('[categories]\n' + ''.join(f'{c} = {c} bear\n' for c in ('black', 'grizzly', 'teddy'))
                                    + f'[paths]\ndata = {data}\nmodels = models\n')
    return ENV | {'BEAR_SETTINGS': str(tmp/'settings.ini')}

def bear_train(env, *args, wait=True):
    p = subprocess.Popen([str(BIN/'bear-train'), '--candidates', 'logits', '--size', '64', *map(str, args)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait: return p
    out, err = p.communicate(timeout=300)
    return p.returncode, err

def answer(model:Path, photo:Path)->dict:
    "What bear-predict answers for `photo` with `model` (the same `Predictor`, in this process)."
    from bear_app.predict import Predictor
    return Predictor(model).predict(photo)

@needs_model
def test_ctrl_c_while_bear_train_exports_leaves_the_old_model_whole(tmp_path):
    models = tmp_path/'models'; models.mkdir()
    for r in ('card', *FILES): shutil.copy(SHIPPED.path(r), ModelBundle(models/'bear_model').path(r))
    toy_dataset(tmp_path/'data', n=12)
    env, photo = train_env(tmp_path, tmp_path/'data'), tmp_path/'data'/'grizzly'/'00000003.jpg'
    old_card, old_answer = (models/'bear_model.json').read_bytes(), answer(models/'bear_model.onnx', photo)
    first = subprocess.Popen([sys.executable, '-c', f"from bear_app.runs import run_lock; import time\n"
                              f"with run_lock({str(models)!r}, 'bear-train --models models'):\n    print('in', flush=True); time.sleep(120)"],
                             env=env, stdout=subprocess.PIPE, text=True)   # a first run holding the models folder, as long as needed
    try:
        assert first.stdout.readline() == 'in\n'
        rc, err = bear_train(env, '--models', models)                      # a second one into the same folder
        assert rc == 2 and f'process {first.pid}' in err and 'bear-train' in err and len(err.strip().splitlines()) == 1, err
    finally: first.kill(); first.wait()
    p = bear_train(env, '--models', models, wait=False)
    wait_for(lambda: any(models.glob('.bear_model.export-*')) or p.poll() is not None, timeout=240, what='the export')
    assert p.poll() is None, p.communicate()
    secs, out, err = interrupt(p)
    assert secs < 2 and p.returncode == 130, (secs, p.returncode, err)
    assert 'Traceback' not in err and 'interrupted' in err, err
    assert (models/'bear_model.json').read_bytes() == old_card and not any(models.glob('.bear_model.export-*'))
    assert answer(models/'bear_model.onnx', photo) == old_answer                 # the old model, whole
