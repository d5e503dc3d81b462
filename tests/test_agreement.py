"""Every stage gives the same verdict on the same file (issue 11, "one reader of images"): gather's verify
(`bear-gather --from-folder`), training's dataset check (`dataset_files`), `bear-predict` and the app's classify path,
fed one folder of awkward files."""
import io, json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import CASES, ROOT, needs_cases
from bear_app.config import Settings
from bear_app.gather import folder_items, gather, read_manifest
from bear_app.train import dataset_files

def _jpeg(im, **kw): b = io.BytesIO(); im.save(b, 'JPEG', **kw); return b.getvalue()
def _png(im): b = io.BytesIO(); im.save(b, 'PNG'); return b.getvalue()

def photo(seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray((np.kron(rng.uniform(0, 255, (6, 8, 3)), np.ones((40, 40, 1)))).astype(np.uint8))

AWKWARD = {  # name -> (bytes, a reader should accept it); the cases' files are added below
    'good.jpg': (lambda: _jpeg(photo(1)), True),
    'cmyk.jpg': (lambda: _jpeg(photo(2).convert('CMYK')), True),
    'sixteen_bit.png': (lambda: _png(Image.fromarray((np.arange(240 * 320).reshape(240, 320) % 65536).astype(np.uint16))), True),
    'notes.jpg': (lambda: b'These are my notes, not a photo.\n' * 20, False),
    'cut_off.jpg': (lambda: (CASES/'train'/'cut_off.jpg').read_bytes(), False),
    'panorama_110mp.png': (lambda: (CASES/'train'/'panorama_110mp.png').read_bytes(), False),
    'phone_photo.heic': (lambda: (CASES/'gather'/'phone_photo.heic').read_bytes(), True),
}
HIDDEN = ['._good.jpg', '.DS_Store']

@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp('awkward')/'own'
    (d/'grizzly').mkdir(parents=True)
    for name, (make, _) in AWKWARD.items(): (d/'grizzly'/name).write_bytes(make())
    (d/'grizzly'/'._good.jpg').write_bytes(b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ')   # AppleDouble fork
    (d/'grizzly'/'.DS_Store').write_bytes(b'\x00\x00\x00\x01Bud1' + b'\x00' * 100)
    return d

def gather_verdicts(folder, tmp):
    gather(folder_items(folder), tmp/'data', progress=False, max_distance=-1)
    return {Path(r['url']).name: r['status'] == 'ok' for r in read_manifest(tmp/'data'/'manifest.jsonl').values()}

def train_verdicts(folder):
    s = Settings(categories={'grizzly': 'grizzly bear'}, data_path=folder)
    kept = {f.name for f in dataset_files(s, folder)}
    return {f.name: f.name in kept for f in (folder/'grizzly').iterdir() if not f.name.startswith('.')}

def predict_verdicts(folder):
    r = subprocess.run([str(Path(sys.executable).parent/'bear-predict'), '--json', str(folder)], capture_output=True, text=True, cwd=ROOT)
    assert 'Traceback' not in r.stderr, r.stderr
    return {Path(l['path']).name: l['error'] is None for l in map(json.loads, r.stdout.splitlines())}

def app_verdicts(folder):
    from bear_app.app import BearApp
    app = BearApp()
    return {f.name: not app.classify_one(f.name, f.read_bytes()).get('error') for f in (folder/'grizzly').iterdir() if not f.name.startswith('.')}

@needs_cases
def test_all_four_stages_agree_on_every_file(folder, tmp_path):
    want = {name: ok for name, (_, ok) in AWKWARD.items()}
    verdicts = {'bear-gather': gather_verdicts(folder, tmp_path), 'training': train_verdicts(folder),
                'bear-predict': {k: v for k, v in predict_verdicts(folder).items() if k not in HIDDEN}, 'app': app_verdicts(folder)}
    for stage, got in verdicts.items(): assert got == want, (stage, got)

@needs_cases
def test_hidden_files_are_skipped_by_gather_and_training(folder, tmp_path):
    assert not set(HIDDEN) & set(gather_verdicts(folder, tmp_path))
    s = Settings(categories={'grizzly': 'grizzly bear'}, data_path=folder)
    assert not set(HIDDEN) & {f.name for f in dataset_files(s, folder)}

@needs_cases
def test_hidden_files_are_skipped_by_bear_predict(folder):
    assert not set(HIDDEN) & set(predict_verdicts(folder))

# Round 3: the images3/ and gather3/ files, in a category folder, a sub-folder (black/2019/) and a linked folder;
# file name -> should every stage read it
ROUND3 = {'images3/16bit.MM.cropped.tif': True, 'images3/grayscale-old-style-jpeg.tiff': True, 'images3/broken.png': False,
          'images3/grizzly_8bit.png': True, 'images3/grizzly_float32.tif': True,
          'images3/timeout-060745d3f534ad6e4128c51d336ea5489182c69d.blp': False,
          'images3/timeout-31c8f86233ea728339c6e586be7af661a09b5b98.blp': False,
          'gather3/hopper.qoi': True, 'gather3/ctc24.tga': True, 'images/hopper.psd': True}
SUB, LINKED = ['images3/16bit.MM.cropped.tif', 'gather3/ctc24.tga'], ['gather3/hopper.qoi', 'images3/broken.png']

@pytest.fixture(scope='module')
def round3(tmp_path_factory):
    "own/grizzly/ (files), own/black/2019/ (a sub-folder), own/teddy -> elsewhere/ (a link to a folder), a .DS_Store."
    top = tmp_path_factory.mktemp('round3'); d = top/'own'
    for sub in ('grizzly', 'black/2019'): (d/sub).mkdir(parents=True)
    (top/'elsewhere').mkdir(); (d/'teddy').symlink_to(top/'elsewhere', target_is_directory=True)
    for name in ROUND3:
        to = d/'black'/'2019' if name in SUB else top/'elsewhere' if name in LINKED else d/'grizzly'
        shutil.copy(CASES/name, to/Path(name).name)
    (d/'black'/'good.jpg').write_bytes(_jpeg(photo(3)))
    (d/'black'/'2019'/'.DS_Store').write_bytes(b'\x00\x00\x00\x01Bud1' + b'\x00' * 100)
    return d

ROUND3_WANT = {Path(n).name: ok for n, ok in ROUND3.items()} | {'good.jpg': True}

def round3_train(folder):
    s = Settings(categories={'black': 'black bear', 'grizzly': 'grizzly bear', 'teddy': 'teddy bear'}, data_path=folder)
    kept = {f.name for f in dataset_files(s, folder)}
    return {n: n in kept for n in ROUND3_WANT}

def round3_app(folder):
    from bear_app.app import BearApp
    app = BearApp()
    files = [Path(r)/f for r, _, fs in os.walk(folder, followlinks=True) for f in fs if not f.startswith('.')]
    return {f.name: not app.classify_one(f.name, f.read_bytes()).get('error') for f in files}

def round3_gather(folder, tmp):
    "`bear-gather --from-folder`: each file's verdict from the manifest, and what it printed on stderr."
    r = subprocess.run([str(Path(sys.executable).parent/'bear-gather'), '--from-folder', str(folder), '--dest', str(tmp/'data'),
                        '--quiet', '--max-distance', '-1'], capture_output=True, text=True, cwd=ROOT)
    assert 'Traceback' not in r.stderr and r.returncode in (0, 1), r.stderr
    return {r['title']: r['status'] == 'ok' for r in read_manifest(tmp/'data'/'manifest.jsonl').values()}, r.stderr

@needs_cases
def test_round3_files_get_one_verdict_from_every_stage(round3, tmp_path):
    "The images3/ and gather3/ files, in a sub-folder and a linked folder too: gather, training, bear-predict and the app agree."
    gathered, _ = round3_gather(round3, tmp_path)
    verdicts = {'bear-gather --from-folder': gathered, 'training': round3_train(round3),
                'bear-predict': predict_verdicts(round3), 'app': round3_app(round3)}
    for stage, got in verdicts.items(): assert got == ROUND3_WANT, (stage, {k: v for k, v in got.items() if ROUND3_WANT.get(k) != v})

@needs_cases
def test_files_left_out_are_named_by_every_stage(round3, tmp_path, capsys):
    "What a stage passes over (here a .DS_Store in black/2019/) is said by gather, training and bear-predict, never dropped silently."
    assert 'skipped 1 hidden or metadata file' in round3_gather(round3, tmp_path)[1]
    round3_train(round3)
    assert 'skipped 1 hidden or metadata file' in capsys.readouterr().err
    r = subprocess.run([str(Path(sys.executable).parent/'bear-predict'), str(round3)], capture_output=True, text=True, cwd=ROOT)
    assert 'skipped 1 hidden or metadata file' in r.stderr and '.DS_Store' not in r.stdout, r.stderr

def test_broken_links_and_link_loops_are_named(tmp_path):
    "A link whose target is gone and a link back up the tree: each named with its reason by bear-predict, and the run ends."
    (tmp_path/'grizzly').mkdir(); (tmp_path/'grizzly'/'a.jpg').write_bytes(_jpeg(photo(4)))
    (tmp_path/'grizzly'/'gone.jpg').symlink_to(tmp_path/'nowhere.jpg'); (tmp_path/'grizzly'/'up').symlink_to(tmp_path)
    r = subprocess.run([str(Path(sys.executable).parent/'bear-predict'), str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.count('a.jpg') == 1, r.stdout + r.stderr
    assert 'gone.jpg: a link whose target is missing' in r.stderr and 'grizzly/up: a link to a folder already listed' in r.stderr, r.stderr

def test_training_and_the_cleaner_label_a_sub_folder_by_its_category(tmp_path):
    "black/2019/a.jpg is a black bear to training's DataBlock and to the cleaner, as gather files it."
    from bear_app.train import bear_datablock
    from bear_app.clean import cleaner_items
    s = Settings(categories={'black': 'black bear', 'grizzly': 'grizzly bear'}, data_path=tmp_path)
    f = tmp_path/'black'/'2019'/'a.jpg'; f.parent.mkdir(parents=True); f.write_bytes(_jpeg(photo(5)))
    ds = bear_datablock(s).datasets([f, f])
    assert {ds.vocab[int(y)] for _, y in [*ds.train, *ds.valid]} == {'black'}
    assert cleaner_items([f], np.array([[.9, .1]]), s.vocab, data=tmp_path)[0]['label'] == 'black'
