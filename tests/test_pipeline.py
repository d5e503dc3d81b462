"""The whole pipe for another set of categories: edit settings.ini, train, export, predict.
Changing the categories is all a user does to build a classifier for something else."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw

BIN = Path(sys.executable).parent

def draw(kind, seed):
    "A 96 px picture of a `kind` of shape on a noisy background."
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 60, (96, 96, 3), dtype=np.uint8))
    d, c = ImageDraw.Draw(im), tuple(int(v) for v in rng.integers(150, 256, 3))
    x, y, r = (int(v) for v in rng.integers(25, 70, 3) // (1, 1, 2))
    (d.ellipse if kind == 'circles' else d.rectangle)((x-r, y-r, x+r, y+r), fill=c)
    return im

def test_new_categories_from_settings_ini(tmp_path):
    for k in ('circles', 'squares'):
        (tmp_path/'shapes'/k).mkdir(parents=True)
        for i in range(12): draw(k, i + 100*(k == 'squares')).save(tmp_path/'shapes'/k/f'{i:08d}.jpg')
    (tmp_path/'settings.ini').write_text("[categories]\ncircles = circle drawing\nsquares = square drawing\n"
                                         "[train]\nbatch_size = 8\n[paths]\ndata = shapes\nmodels = out\n[app]\ntitle = Select your shape!\n")
    env = {**os.environ, 'BEAR_SETTINGS': str(tmp_path/'settings.ini')}
    env.pop('BEAR_DATA', None); env.pop('BEAR_SMALL', None)
    r = subprocess.run([str(BIN/'bear-train'), '--size', '64', '--epochs', '1'], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads((tmp_path/'out'/'bear_model.json').read_text())
    assert card['vocab'] == ['circles', 'squares']
    r = subprocess.run([str(BIN/'bear-predict'), '--json', '--model', tmp_path/'out'/'bear_model.onnx', tmp_path/'shapes'],
                       env=env, cwd=tmp_path, capture_output=True, text=True)
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(lines) == 24 and all(l['error'] is None and set(l['probs']) == {'circles', 'squares'} for l in lines)
    assert all(isinstance(l['ood'], bool) for l in lines)  # bear-train also learned what counts as a shape picture
