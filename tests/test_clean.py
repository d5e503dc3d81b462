"Cleaning never loses a mark or a file: widget marks survive view switches; apply is journalled, resumable and undoable."
import csv, dataclasses, io, os, random, subprocess, sys, textwrap
from collections import Counter
from contextlib import nullcontext, redirect_stdout
from pathlib import Path
import numpy as np
import pytest
from bear_app.clean import (DELETE, KEEP, TRASH, Decision, DecisionCleaner, apply_decisions, cleaner_items, journal_moves,
                            journal_path, kfold_probs, main, move_file, rank_candidates, read_decisions, split_names,
                            tree_state, undo)
from bear_app.bundle import ModelBundle
from bear_app.images import image_files, near_duplicate_groups
from bear_app.testing import toy_dataset
from conftest import BEAR_DATA, CASES, ROOT, needs_bear_data, needs_cases
VOCAB = ['black', 'grizzly', 'teddy']

def shas(data): return Counter(s for _, s in tree_state(data, hidden=True))

def label_probs(files, sure=0.8):
    "Probabilities that agree with each file's folder."
    return np.array([np.eye(3)[VOCAB.index(Path(f).parent.name)] * sure + (1 - sure) / 3 for f in files])

def random_decisions(data, n=50, seed=0):
    "n decisions on distinct random files: relabels into other categories (same names live there) and deletions."
    rng = random.Random(seed)
    files = rng.sample([f.relative_to(data).as_posix() for f in image_files(data)], n)
    out = []
    for f in files:
        cat = f.split('/')[0]
        a = rng.choice(['delete', 'relabel', 'relabel', 'keep'])
        out.append(Decision(f, a, rng.choice([c for c in VOCAB if c != cat]) if a == 'relabel' else None))
    return out

@pytest.fixture
def toy(tmp_path):
    d = tmp_path/'bears'
    toy_dataset(d, n=30)
    return d

# --- the widget -----------------------------------------------------------------------------------------------

def make_cleaner(d):
    files = image_files(d)
    splits = ['Valid' if i % 4 == 3 else 'Train' for i in range(len(files))]
    return DecisionCleaner(cleaner_items(files, label_probs(files), VOCAB, splits, d), VOCAB, d, max_n=10)

def dd(tile): return tile.children[-1]

def test_marks_survive_category_and_split_switches(toy):
    cl = make_cleaner(toy)
    assert (cl.dd_cat.value, cl.dd_split.value) == ('black', 'Train') and len(cl.tiles) == 10
    dd(cl.tiles[0]).value = DELETE
    dd(cl.tiles[1]).value = 'teddy'
    black = [dd(t).file for t in cl.tiles[:2]]
    cl.dd_cat.value = 'grizzly'
    assert all(dd(t).value == KEEP for t in cl.tiles)          # the new view is not polluted by black's marks
    dd(cl.tiles[2]).value = 'black'
    grizzly = dd(cl.tiles[2]).file
    cl.dd_split.value = 'Valid'
    assert all(it['split'] == 'Valid' and it['label'] == 'grizzly' for it in cl.shown())
    dd(cl.tiles[0]).value = DELETE
    valid = dd(cl.tiles[0]).file
    cl.dd_cat.value = 'black'; cl.dd_split.value = 'Train'
    assert [dd(t).value for t in cl.tiles[:3]] == [DELETE, 'teddy', KEEP]
    assert [dd(t).file for t in cl.tiles[:2]] == black
    cl.dd_cat.value = 'grizzly'
    assert next(dd(t).value for t in cl.tiles if dd(t).file == grizzly) == 'black'
    cl.dd_split.value = 'Valid'
    assert dd(cl.tiles[0]).file == valid and dd(cl.tiles[0]).value == DELETE
    assert cl.decisions == {black[0]: ('delete', None), black[1]: ('relabel', 'teddy'), grizzly: ('relabel', 'black'),
                            valid: ('delete', None)}
    assert cl.lbl_pending.value.startswith('4 decisions pending (2 delete, 2 relabel)')
    dd(cl.tiles[0]).value = KEEP                                 # un-marking removes the decision
    assert len(cl.decisions) == 3 and cl.lbl_pending.value.startswith('3 decisions')

def test_widget_mark_switch_apply_cycle(toy):
    before = tree_state(toy)
    cl = make_cleaner(toy)
    dd(cl.tiles[0]).value = DELETE
    cl.dd_cat.value = 'teddy'
    dd(cl.tiles[1]).value = 'black'                              # black/ already holds a file of this name
    moved_name = dd(cl.tiles[1]).file
    cl.dd_split.value = 'Valid'; cl.dd_cat.value = 'grizzly'
    dd(cl.tiles[1]).value = 'teddy'
    cl.dd_split.value = 'Train'
    marked = dict(cl.decisions)
    assert len(marked) == 3
    assert sorted(image_files(toy)) == sorted(toy/f for f, _ in before)   # marking alone touches no file
    cl.btn_apply.click()
    assert cl.report is not None and len(cl.report.moved) == 3, cl.out_.outputs
    assert cl.decisions == {} and cl.lbl_pending.value.startswith('0 decisions')
    sha, after = dict(before), dict(tree_state(toy, hidden=True))
    for f, (a, c) in marked.items():
        assert after.get(f) != sha[f]
        m = next(m for m in cl.report.moved if m['from'] == f)
        assert m['to'].startswith(f'{TRASH}/' if a == 'delete' else f'{c}/') and after[m['to']] == sha[f]
    name = Path(moved_name).name
    assert after[f'black/{name}'] == sha[f'black/{name}'] and after[f'black/{name[:-4]}-1.jpg'] == sha[moved_name]
    assert all(it['file'] not in marked for it in cl.items)     # applied images leave the views
    assert shas(toy) == Counter(s for _, s in before)
    assert undo(toy) == 3 and tree_state(toy) == before

def test_widget_shows_prediction_and_sorts_by_loss(toy):
    files = image_files(toy)
    probs = label_probs(files)
    probs[files.index(toy/'black/00000005.jpg')] = [0.1, 0.7, 0.2]
    cl = DecisionCleaner(cleaner_items(files, probs, VOCAB, None, toy), VOCAB, toy)
    assert cl.shown()[0]['file'] == 'black/00000005.jpg'
    assert 'grizzly 0.70' in cl.tiles[0].children[1].value

def test_apply_error_keeps_marks_and_says_why(toy):
    cl = make_cleaner(toy)
    dd(cl.tiles[0]).value = DELETE
    def broken(src, dst): raise PermissionError('read-only file system')
    assert cl.apply(mover=broken) is None
    assert len(cl.decisions) == 1 and 'read-only file system' in cl.out_.outputs[0]['text']
    assert cl.apply() is not None and not cl.decisions

# --- apply, undo, interruptions -------------------------------------------------------------------------------

@pytest.mark.parametrize('seed', [0, 1])
def test_fifty_random_decisions_apply_then_undo(toy, seed):
    before = tree_state(toy)
    decs = random_decisions(toy, 50, seed)
    rep = apply_decisions(decs, toy)
    n = Counter(d.action for d in decs)
    assert len(rep.moved) == n['delete'] + n['relabel'] and len(rep.kept) == n['keep']
    assert shas(toy) == Counter(s for _, s in before)            # nothing lost, nothing duplicated
    assert len(tree_state(toy)) == len(before) - n['delete']
    for d in decs:
        if d.action == 'relabel':
            m = next(m for m in rep.moved if m['from'] == d.file)
            assert m['to'].startswith(d.category + '/') and (toy/m['to']).is_file()
    assert any(m['to'].endswith('-1.jpg') for m in rep.moved)   # names collided and were resolved
    assert apply_decisions(decs, toy).moved == []                 # idempotent
    undo(toy)
    assert tree_state(toy) == before
    assert tree_state(toy, hidden=True) == before                 # the trash is empty again

class Crash(Exception): pass

def crashing_mover(k, after_rename):
    "A mover that raises on the k-th call (0-based), before or after renaming the file."
    calls = []
    def mover(src, dst):
        if len(calls) == k:
            if after_rename: move_file(src, dst)
            raise Crash(f'injected after {k} moves')
        calls.append(src); move_file(src, dst)
    return mover

@pytest.mark.parametrize('k,after_rename', [(0, False), (7, False), (7, True), (23, True), (36, False)])
def test_interrupted_apply_completes_on_rerun(tmp_path, k, after_rename):
    ref, d = tmp_path/'ref', tmp_path/'cut'
    toy_dataset(ref, n=30); toy_dataset(d, n=30)
    decs = random_decisions(d, 50, seed=3)
    assert sum(x.action != 'keep' for x in decs) > k
    before = tree_state(d)
    apply_decisions(decs, ref)
    with pytest.raises(Crash): apply_decisions(decs, d, mover=crashing_mover(k, after_rename))
    assert shas(d) == Counter(s for _, s in before)              # every file moved or not: none lost or doubled
    states = Counter(m['state'] for m in journal_moves(journal_path(d)).values())
    assert states['begun'] == 1 and states['done'] == k
    rep = apply_decisions(decs, d)
    assert tree_state(d, hidden=True) == tree_state(ref, hidden=True)
    assert len(rep.already_done) == k + after_rename
    assert apply_decisions(decs, d).moved == []
    undo(d)
    assert tree_state(d, hidden=True) == before

def test_killed_apply_and_undo_recover(toy, tmp_path):
    "A real kill (SIGKILL) between the rename and the journal's done line, in apply and in undo."
    before = tree_state(toy)
    decs = random_decisions(toy, 20, seed=5)
    csv_path = tmp_path/'decisions.csv'
    csv_path.write_text('file,action,category\n' + ''.join(f'{x.file},{x.action},{x.category or ""}\n' for x in decs))
    script = textwrap.dedent(f'''
        import os, signal, sys
        from bear_app.clean import apply_decisions, undo, move_file, read_decisions
        n = []
        def mover(src, dst):
            move_file(src, dst); n.append(1)
            if len(n) == 5: os.kill(os.getpid(), signal.SIGKILL)
        if sys.argv[1] == 'apply': apply_decisions(read_decisions({str(csv_path)!r}), {str(toy)!r}, mover=mover)
        else: undo({str(toy)!r}, mover=mover)
    ''')
    for cmd in ('apply', 'undo'):
        r = subprocess.run([sys.executable, '-c', script, cmd], capture_output=True, text=True)
        assert r.returncode == -9, r.stderr
        assert shas(toy) == Counter(s for _, s in before)
    undo(toy)
    assert tree_state(toy) == before
    apply_decisions(decs, toy)
    undo(toy)
    assert tree_state(toy) == before

def test_undo_refuses_to_overwrite(toy):
    apply_decisions([Decision('grizzly/00000001.jpg', 'delete')], toy)
    (toy/'grizzly/00000001.jpg').write_bytes(b'a new file that took the name')
    with pytest.raises(Exception, match='now holds another file'): undo(toy)
    assert (toy/'grizzly/00000001.jpg').read_bytes() == b'a new file that took the name'

# --- candidates and the command line -------------------------------------------------------------------------

def plant(d):
    "A teddy photo copied into black/ (a cross-category duplicate), returning its path."
    (d/'black/00000099.jpg').write_bytes((d/'teddy/00000004.jpg').read_bytes())
    return 'black/00000099.jpg'

def test_rank_candidates_reasons(toy):
    dup = plant(toy)
    files = image_files(toy)
    probs = label_probs(files)
    probs[files.index(toy/'grizzly/00000003.jpg')] = [0.05, 0.05, 0.9]    # confident disagreement
    probs[files.index(toy/'teddy/00000007.jpg')] = [0.33, 0.33, 0.34]     # none of the categories
    probs[files.index(toy/dup)] = [0.1, 0.1, 0.8]
    rows = rank_candidates(files, probs, VOCAB, toy)
    got = {r['file']: (r['action'], r['category']) for r in rows}
    assert got == {dup: ('delete', 'black'), 'grizzly/00000003.jpg': ('relabel', 'teddy'), 'teddy/00000007.jpg': ('delete', 'teddy')}
    assert [r['score'] for r in rows] == sorted((r['score'] for r in rows), reverse=True)
    assert 'near-duplicate of teddy/00000004.jpg' in rows[0]['reason'] and 'looks like teddy' in rows[0]['reason']

def test_kfold_probs_are_out_of_sample(toy):
    "Each file is predicted exactly once, by a learner that never trained on it (fake learners record their data)."
    files = image_files(toy)
    trained, predicted = [], []
    class Fake:
        def __init__(self, fs): self.dls = self; self.vocab = VOCAB; trained.append(set(fs))
        def test_dl(self, fs, **kw): predicted.append((len(trained) - 1, list(fs))); return fs
        def no_bar(self): return nullcontext()
        def get_preds(self, dl):
            import torch
            return torch.tensor(label_probs(dl)), None
    s = _settings(toy)
    p = kfold_probs(s, files, k=3, train=lambda s, fs: Fake(fs))
    assert len(trained) == 3 and sorted(f for _, fs in predicted for f in fs) == sorted(files)
    for i, fs in predicted: assert not trained[i] & set(fs)
    np.testing.assert_allclose(p, label_probs(files))

def _settings(d):
    from bear_app.config import Settings
    return Settings(categories={c: c for c in VOCAB}, data_path=d, batch_size=8)

def test_kfold_with_a_tiny_trained_learner(toy):
    "The real training path: two tiny learners give finite out-of-sample probabilities in vocab order."
    files = image_files(toy)
    p = kfold_probs(_settings(toy), files, k=2)
    assert p.shape == (len(files), 3) and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-4)
    rows = rank_candidates(files, p, VOCAB, toy)
    assert all((toy/r['file']).is_file() for r in rows)

def run_cli(*args):
    out = io.StringIO()
    with redirect_stdout(out): rc = main([str(a) for a in args])
    return rc, out.getvalue()

def test_cli_candidates_apply_undo(toy, tmp_path):
    dup = plant(toy)
    before = tree_state(toy)
    rc, out = run_cli('candidates', '--data', toy, '--model', ROOT/'models'/'bear_model.onnx')
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ['file', 'action', 'category', 'reason', 'score']
    assert {r['file']: r['action'] for r in rows}.get(dup) == 'delete'   # the planted duplicate is listed for the trash
    assert all((toy/r['file']).is_file() for r in rows)
    assert [float(r['score']) for r in rows] == sorted((float(r['score']) for r in rows), reverse=True)
    dec = tmp_path/'decisions.csv'
    dec.write_text('file,action,category\n' f'{dup},delete,\n' 'black/00000001.jpg,relabel,grizzly\n' 'teddy/00000002.jpg,keep,\n')
    assert run_cli('apply', dec, '--data', toy)[0] == 0
    assert not (toy/dup).exists() and (toy/'grizzly/00000001-1.jpg').is_file() and (toy/TRASH/dup).is_file()
    assert run_cli('undo', '--data', toy)[0] == 0
    assert tree_state(toy) == before
    dec.write_text('file,action,category\nblack/00000001.jpg,move,\n')
    assert run_cli('apply', dec, '--data', toy)[0] == 2

# --- input as people produce it, the one split, CLI hygiene (issues 11 and 12) ---

@needs_cases
def test_decisions_saved_by_excel_are_read(toy):
    "UTF-8 byte-order mark and CRLF line ends, as Excel's 'CSV UTF-8' writes them."
    decs = read_decisions(CASES/'clean'/'decisions_excel.csv')
    assert decs == [Decision('teddy/00000005.jpg', 'delete'), Decision('grizzly/00000002.jpg', 'relabel', 'black')]
    rc, _ = run_cli('apply', CASES/'clean'/'decisions_excel.csv', '--data', toy)
    assert rc == 0 and (toy/TRASH/'teddy'/'00000005.jpg').is_file() and (toy/'black'/'00000002-1.jpg').is_file()

@needs_cases
def test_relabel_to_a_misspelt_category_is_refused(toy, capsys):
    before = tree_state(toy, hidden=True)
    rc, _ = run_cli('apply', CASES/'clean'/'decisions_typo.csv', '--data', toy)
    err = capsys.readouterr().err
    assert rc == 2 and "'grizly', which is not a category" in err and 'black, grizzly, teddy' in err, err
    assert tree_state(toy, hidden=True) == before and not (toy/'grizly').exists()     # nothing moved, no new folder
    rc, _ = run_cli('apply', CASES/'clean'/'decisions_typo.csv', '--data', toy, '--allow-new-category')
    assert rc == 0 and (toy/'grizly'/'00000004.jpg').is_file()

def test_cli_usage_errors(tmp_path, capsys):
    (tmp_path/'empty').mkdir()
    for args, words in [(('candidates', '--data', tmp_path/'nowhere'), 'no such folder'),
                        (('candidates', '--data', tmp_path/'empty'), 'no images'),
                        (('apply', tmp_path/'none.csv', '--data', tmp_path/'empty'), 'no such file'),
                        (('undo', '--data', tmp_path/'nowhere'), 'no such folder')]:
        rc, _ = run_cli(*args)
        err = capsys.readouterr().err
        assert rc == 2 and words in err and len(err.strip().splitlines()) == 1 and 'Error' not in err, (args, err)

def test_cli_bad_settings_and_version(tmp_path):
    (tmp_path/'settings.ini').write_text('[categories]\nblack = black bear\n[train]\nepochs = five\n')
    env = {**os.environ, 'BEAR_SETTINGS': str(tmp_path/'settings.ini')}
    r = subprocess.run([sys.executable, '-c', 'import sys; from bear_app.clean import main; sys.exit(main())', 'undo'],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 2 and 'settings.ini: [train] epochs' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, '-c', 'import sys; from bear_app.clean import main; sys.exit(main())', '--version'],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith('bear-clean 0.'), r.stdout

def test_kfold_folds_keep_near_duplicates_together(toy):
    "A near-duplicate pair is predicted by the same fold's learner: it can never leak from training into its own test."
    import shutil
    shutil.copy(toy/'black'/'00000003.jpg', toy/'black'/'00000099.jpg')
    files = image_files(toy)
    groups = near_duplicate_groups(files)
    assert groups
    fold_of = {}
    class Fake:
        def __init__(self, fs): self.dls = self; self.vocab = VOCAB; self.n = len(fold_of)
        def test_dl(self, fs, **kw):
            for f in fs: fold_of[f] = id(self)
            return fs
        def no_bar(self): return nullcontext()
        def get_preds(self, dl):
            import torch
            return torch.tensor(label_probs(dl)), None
    kfold_probs(_settings(toy), files, k=3, train=lambda s, fs: Fake(fs))
    for g in groups: assert len({fold_of[f] for f in g}) == 1, g

def test_split_names_read_the_model_card(toy, tmp_path):
    files = image_files(toy)
    card = tmp_path/'card.json'
    card.write_text('{"valid_files": ["black/00000001.jpg", "teddy/00000007.jpg"]}')
    names = split_names(_settings(toy), files, toy, card)
    assert sorted(f.relative_to(toy).as_posix() for f, n in zip(files, names) if n == 'Valid') == ['black/00000001.jpg', 'teddy/00000007.jpg']

@needs_bear_data
def test_valid_view_equals_the_split_bear_train_used():
    "On the real photos: the cleaner's Valid files are the model card's validation files (or, for an older card, as many as it validated on, chosen as training chooses them)."
    import json
    from bear_app.config import get_settings
    from bear_app.train import dataset_files, GroupedSplitter
    s = dataclasses.replace(get_settings(), data_path=BEAR_DATA)
    files = dataset_files(s, BEAR_DATA)
    names = split_names(s, files, BEAR_DATA, ModelBundle.of(s).card_path)
    valid = {f.relative_to(BEAR_DATA).as_posix() for f, n in zip(files, names) if n == 'Valid'}
    card = json.loads(ModelBundle.of(s).card_path.read_text())
    if 'valid_files' in card: assert valid == set(card['valid_files'])
    else:
        assert len(valid) == card['metrics']['n_valid']
        order = sorted(files)
        _, idx = GroupedSplitter(near_duplicate_groups(order), s.valid_pct, s.seed)(order)
        assert valid == {order[i].relative_to(BEAR_DATA).as_posix() for i in idx}
