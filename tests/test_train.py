"Training: bear-train's outputs, a seeded split that keeps near-duplicates together, the card's fingerprint, the offline arch."
import json, os, re, shutil, socket, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from bear_app.config import read_settings
from bear_app.core import fingerprint
from bear_app.images import NEAR_DUP_BITS, near_duplicate_groups
from bear_app.model import efficientnet_lite0, get_arch, imagenet_top
from bear_app.train import OURS, GroupedSplitter, bear_datablock, dataset_files, group_folds
from bear_app.images import open_image, image_files
import bear_app
from conftest import CASES

ROOT = Path(__file__).resolve().parents[1]
BEAR_DATA = Path(os.environ.get('BEAR_DATA', ROOT/'..'/'shared'/'data'/'bears'))
needs_data = pytest.mark.skipif(not BEAR_DATA.is_dir(), reason=f'no bear photos at {BEAR_DATA} (set BEAR_DATA)')
CATS = {'red': (200, 40, 40), 'green': (40, 170, 60), 'blue': (40, 60, 200)}

def picture(rng, colour, size=72):
    "A noisy picture dominated by `colour`, with a random bright rectangle: each one different."
    a = np.clip(rng.normal(colour, 40, (size, size, 3)), 0, 255).astype(np.uint8)
    x, y = rng.integers(0, size//2, 2)
    a[y:y+size//3, x:x+size//3] = rng.integers(0, 256, 3)
    return Image.fromarray(a)

def make_dataset(root:Path, n:int=10, dups:int=2, seed:int=0)->list:
    "`n` generated photos per category, `dups` of them per category also saved as a shrunk, recompressed near-copy."
    rng, groups = np.random.default_rng(seed), []
    for c, col in CATS.items():
        (root/c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            im = picture(rng, col)
            im.save(root/c/f'{i:03d}.jpg', quality=90)
            if i < dups:
                im.resize((64, 64)).save(root/c/f'{i:03d}_copy.jpg', quality=60)
                groups.append({root/c/f'{i:03d}.jpg', root/c/f'{i:03d}_copy.jpg'})
    return groups

def write_settings(tmp:Path, data:Path, seed:int=42, batch_size:int=8)->Path:
    ini = tmp/'settings.ini'
    ini.write_text("[categories]\n" + ''.join(f"{c} = {c} things\n" for c in CATS) +
                   f"[train]\nseed = {seed}\nbatch_size = {batch_size}\n[paths]\ndata = {data}\nmodels = models\n")
    return ini

@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    return root, make_dataset(root)

def bear_train(ini:Path, *args):
    "Run bear-train with the settings `ini`, a small recipe passed on the command line (64 px, one epoch)."
    env = {**os.environ, 'BEAR_SETTINGS': str(ini)}
    env.pop('BEAR_DATA', None); env.pop('BEAR_SMALL', None)
    return subprocess.run([str(Path(sys.executable).parent/'bear-train'), '--size', '64', '--epochs', '1', *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=600)

def test_bear_train_on_8_photos_per_category_trains_and_writes_card(tmp_path):
    "8 photos per category with the default batch size 32: the batch fits the data, steps are taken and shown, bad files are named and skipped."
    root = tmp_path/'data'
    groups = make_dataset(root, n=6, dups=2)                            # 8 files per category, 2 near-duplicate pairs each
    bad = []
    if CASES.is_dir():
        for f in ('cut_off.jpg', 'panorama_110mp.png'): shutil.copy(CASES/'train'/f, root/'red'/f); bad.append(f)
    (root/'red'/'._000.jpg').write_bytes(b'\0\5\26\7')                # a macOS fork: not a photo, not a bad file either
    ini, models = write_settings(tmp_path, root, batch_size=32), tmp_path/'out'
    r = bear_train(ini, '--models', models, '--candidates', 'finetune')   # the one recipe that takes optimiser steps
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    steps = re.search(r'batch size (\d+): (\d+) optimiser step', r.stdout)
    assert steps and int(steps[1]) <= 24 and int(steps[2]) >= 1, r.stdout
    for f in bad: assert re.search(rf'skipped .*{f}: .+', r.stdout), (f, r.stdout)
    assert '._000.jpg' not in r.stdout
    assert {p.name for p in models.iterdir()} >= {'bear_model.pkl', 'bear_model.onnx', 'bear_model.json', 'bear_model.png',
                                                 'bear_model.ood.json', 'bear_model.ood.npz'}
    assert Image.open(models/'bear_model.png').size[0] > 100
    card = json.loads((models/'bear_model.json').read_text())
    test_vocab = sorted(CATS)
    assert card['vocab'] == test_vocab and card['arch'] == 'efficientnet_lite0' and card['seed'] == 42
    assert card['optimiser_steps'] >= 1 and card['batch_size'] == int(steps[1])
    m = card['metrics']
    assert set(m['per_class_error']) == set(test_vocab) and 0 <= m['error_rate'] <= 1
    cm = m['confusion_matrix']['counts']
    assert len(cm) == 3 and sum(map(sum, cm)) == m['n_valid'] > 0
    assert card['near_duplicates']['groups_merged'] == len(groups)
    assert card['class_counts'] == {c: 8 for c in test_vocab}                  # the mix the monitor compares traffic with
    kept = [p for p in models.iterdir() if p.name.startswith('bear_model-') and p.suffix == '.onnx']
    assert len(kept) == 1 and kept[0].stem in r.stdout                      # this export is kept as a version, by name
    assert kept[0].with_suffix('.json').read_bytes() == (models/'bear_model.json').read_bytes()
    assert card['preprocessing']['method'] in ('crop', 'squish')
    assert (card['preprocessing']['presize'] is None) == (card['recipe']['presize'] is None)
    assert set(card['versions']) >= {'torch', 'fastai', 'timm'} and card['train_seconds'] > 0 and card['recipe']['epochs'] == 1
    files = [f for f in dataset_files(read_settings(ini, env={}), root) if f.name not in bad]
    assert card['fingerprint'] == fingerprint(files) and sorted(card['skipped']) == sorted(f'red/{f}' for f in bad)
    valid = card['valid_files']
    assert valid == sorted(valid) and len(valid) == m['n_valid'] and all((root/v).is_file() and '\\' not in v for v in valid)
    assert set(valid) <= {f.relative_to(root).as_posix() for f in files}
    from fastai.learner import load_learner
    from fastai.vision.core import PILImage
    learn = load_learner(models/'bear_model.pkl')
    assert list(learn.dls.vocab) == test_vocab
    photo = (root/'red'/'005.jpg').read_bytes()
    for given in (PILImage.create(photo), photo, root/'red'/'005.jpg'):   # the book's app: learn_inf.predict(PILImage.create(upload))
        pred, idx, probs = learn.predict(given)
        assert pred in test_vocab and len(probs) == 3, type(given)
    from bear_app.predict import Predictor
    assert Predictor(models/'bear_model.onnx').predict(root/'red'/'005.jpg')['label'] in test_vocab

def test_bear_train_cross_validates_the_candidates_and_ships_the_best(dataset, tmp_path):
    "Frozen heads are cross-validated on the same folds; the card says which won and by how much, and carries the detector's expected flag rate."
    root, _ = dataset
    models = tmp_path/'out'
    r = bear_train(write_settings(tmp_path, root), '--models', models, '--candidates', 'features,logits')
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    card = json.loads((models/'bear_model.json').read_text())
    cv = card['recipe_cv']
    assert list(cv)[:2] == ['features', 'logits'] and all(0 <= c['error'] <= 1 and len(c['fold_errors']) == 5 for c in cv.values())
    best = min(c['error'] for c in cv.values())
    tied = [n for n in ('features', 'logits') if cv[n]['error'] == best]
    assert ('features+logits' in cv) == (len(tied) == 2)                    # tied heads are also tried averaged...
    shipped = 'features+logits' if len(tied) == 2 and cv['features+logits']['error'] == best else tied[0]
    assert card['chosen_recipe'] == shipped == card['recipe']['name']        # ...and the average wins a tie it is part of
    assert card['head_fit']['kind'] == card['recipe']['head'] and card['head_fit']['finite'] and card['head_fit']['n_train'] == card['n_images']
    assert f"recipe {card['chosen_recipe']} (in-source CV error {cv[card['chosen_recipe']]['error']:.2%})" in r.stdout
    e = card['ood']['expected_in_domain']
    assert e['n'] == card['n_images'] and 0 <= e['ood_rate_95'][0] <= e['ood_rate'] <= e['ood_rate_95'][1] <= 1
    assert card['ood']['hard_threshold'] < card['ood']['threshold']
    from bear_app.predict import Predictor
    p = Predictor(models/'bear_model.onnx').predict(root/'green'/'003.jpg')
    assert p['label'] in CATS and isinstance(p['ood'], bool) and isinstance(p['hard_to_read'], bool) and isinstance(p['ood_score'], float)
    r = bear_train(write_settings(tmp_path, root), '--models', models, '--candidates', 'logits,resnet')
    assert r.returncode == 2 and "unknown recipe 'resnet'" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_bear_train_judges_across_sources_and_never_trains_on_them(dataset, tmp_path):
    "[paths] eval / eval_none: the card and the summary give figures on photos from another source; training used only the data folder; eval = data is refused."
    root, _ = dataset
    other, none, models = tmp_path/'elsewhere', tmp_path/'none', tmp_path/'out'
    make_dataset(other, n=4, dups=0, seed=7)
    none.mkdir()
    for i in range(5): Image.fromarray(np.random.default_rng(i).integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(none/f'{i}.png')
    ini = write_settings(tmp_path, root)
    ini.write_text(ini.read_text() + f"eval = {other}\neval_none = {none}\n")
    r = bear_train(ini, '--models', models, '--candidates', 'logits')
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    card = json.loads((models/'bear_model.json').read_text())
    a = card['across_source']
    assert a['eval']['n'] == 12 and 0 <= a['eval']['error'] <= 1 and a['eval']['n_wrong'] == len(a['eval']['wrong'])
    assert a['none']['n'] == 5 and 0 <= a['none']['flagged_rate'] <= 1
    assert 'across sources, 12 photos from elsewhere' in r.stdout and 'in-source' in r.stdout
    trained = dataset_files(read_settings(ini, env={}), root)
    assert card['fingerprint'] == fingerprint(trained) and card['n_images'] == len(trained)      # the training file list
    assert not {f.resolve() for f in trained} & {f.resolve() for f in image_files(other) + image_files(none)}
    ood = json.loads((models/'bear_model.ood.json').read_text())
    assert ood['method'] == 'knn+concepts' and ood['across_source']['n'] == 12
    ini.write_text(ini.read_text().replace(f"eval = {other}", f"eval = {root}"))
    r = bear_train(ini, '--models', models, '--candidates', 'logits')
    assert r.returncode == 2 and 'apart from the data folder' in r.stderr, r.stderr

def test_bear_train_refuses_missing_or_empty_categories(tmp_path):
    root = tmp_path/'data'
    make_dataset(root, n=3, dups=0)
    shutil.rmtree(root/'green'); (root/'blue'/'000.jpg').unlink(); (root/'blue'/'001.jpg').unlink()
    r = bear_train(write_settings(tmp_path, root), '--models', tmp_path/'out')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "'green' (no folder" in r.stderr and "'blue' (1 usable photos" in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'out').exists()

def test_bear_train_usage_errors_are_one_line(tmp_path):
    ini = write_settings(tmp_path, tmp_path/'nowhere')
    r = bear_train(ini)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and str(tmp_path/'nowhere') in r.stderr, r.stderr
    ini.write_text(ini.read_text().replace('seed = 42', 'seed = forty-two'))
    r = bear_train(ini)
    assert r.returncode == 2 and str(ini) in r.stderr and "'forty-two' is not a whole number" in r.stderr, r.stderr
    r = subprocess.run([str(Path(sys.executable).parent/'bear-train'), '--version'], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f'bear-train {bear_app.__version__}'

def valid_files(s, files, seed):
    groups = near_duplicate_groups(files, NEAR_DUP_BITS)
    dsets = bear_datablock(s, OURS, GroupedSplitter(groups, 0.25, seed)).datasets(files)
    return sorted(map(str, dsets.valid.items))

def test_same_seed_same_split(dataset, tmp_path):
    root, _ = dataset
    s = read_settings(write_settings(tmp_path, root), env={})
    files = dataset_files(s)
    a, b, c = valid_files(s, files, 42), valid_files(s, list(reversed(files)), 42), valid_files(s, files, 7)
    assert a == b and a != c and len(a) == round(0.25 * len(files))

def test_near_duplicates_stay_on_one_side(dataset, tmp_path):
    root, groups = dataset
    files = dataset_files(read_settings(write_settings(tmp_path, root), env={}))
    found = near_duplicate_groups(files, NEAR_DUP_BITS)
    assert {frozenset(g) for g in found} == {frozenset(g) for g in groups}
    for seed in range(10):
        train, valid = GroupedSplitter(found, 0.2, seed)(files)
        valid = {files[i] for i in valid}
        for g in groups: assert g <= valid or not (g & valid), (seed, g)
    for fold in group_folds(files, found, k=4, seed=3):
        fold = {files[i] for i in fold}
        for g in groups: assert g <= fold or not (g & fold)

def test_fingerprint_changes_with_a_file(tmp_path):
    make_dataset(tmp_path, n=3, dups=0)
    files = image_files(tmp_path)
    before = fingerprint(files)
    assert fingerprint(list(reversed(files))) == before
    Image.new('RGB', (72, 72), 'white').save(files[0])
    assert fingerprint(files) != before

@needs_data
def test_untouched_imagenet_head_knows_bears():
    files = image_files(BEAR_DATA)[::7][:60]
    model = efficientnet_lite0()
    bears = [imagenet_top(model, open_image(f), k=1)[0] in (294, 295, 850) for f in files]
    assert len(files) == 60 and sum(bears) >= 0.8 * len(files), sum(bears)

@pytest.mark.timeout(120)
def test_torchvision_arch_offline_names_lite0(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # no cached weights
    try: socket.create_connection(('download.pytorch.org', 443), timeout=3).close()
    except OSError: pass
    else: pytest.skip('this machine can reach download.pytorch.org')
    t0 = time.time()
    with pytest.raises(RuntimeError, match='efficientnet_lite0'): get_arch('resnet18')
    assert time.time() - t0 < 60
