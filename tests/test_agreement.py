"""Every stage gives the same verdict on the same file (issue 11, "one reader of images"): gather's verify
(`bear-gather --from-folder`), training's dataset check (`dataset_files`), `bear-predict` and the app's classify path,
fed one folder of awkward files."""
import io, json, subprocess, sys
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
