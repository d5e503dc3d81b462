"""Bench: photos from another source, degraded as a worse camera or a heavy re-post degrades them, through the shipped
model and another exported model, in one run: how many are still right, called "not a bear", or "hard to read".

    .venv/bin/python bench/degraded.py [--compare models/bear_model-<version>.onnx]

Each of the 174 photos of `[paths] eval` (bears-elsewhere) is also judged at a quarter of its brightness, shrunk to
64 px, as a JPEG of quality 5, blurred by 1% of its size and 40% covered by a grey box (`bench/ood.py`'s `SHIFTS`).
A degraded bear is still a bear: "not a bear" for it is a false alarm, "hard to read" is the honest answer.
"""
import argparse, io, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'bench'))
from ood import SHIFTS
from bear_app.config import get_settings
from bear_app.images import open_image
from bear_app.predict import Predictor, default_model
from bear_app.train import dataset_files, held_out_files

def judge(pred, imgs, labels):
    rs = [pred.predict(i) for i in imgs]
    n = len(rs)
    return {'right': sum(r['label'] == y for r, y in zip(rs, labels)) / n, 'not a bear': sum(bool(r['ood']) for r in rs) / n,
            'hard to read': sum(bool(r['hard_to_read']) for r in rs) / n}

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--compare', help='another exported model (.onnx)')
    a = ap.parse_args()
    s = get_settings()
    files = held_out_files(s, dataset_files(s))['eval']
    if not files: sys.exit(f"no photos of the categories from another source at {s.eval_path} ([paths] eval)")
    labels = [f.parent.name for f in files]
    clean = [open_image(f) for f in files]
    sets = {'as they are': clean, **{name: [fn(i) for i in clean] for name, fn in SHIFTS.items()}}
    models = {'shipped': Predictor(default_model())}
    if a.compare: models['compared'] = Predictor(Path(a.compare))
    print(f"{len(files)} photos from {s.eval_path.name}; right / called not a bear / hard to read")
    for name, imgs in sets.items():
        row = []
        for m, p in models.items():
            j = judge(p, imgs, labels)
            row.append(f"{m}: {j['right']:6.1%} / {j['not a bear']:6.1%} / {j['hard to read']:6.1%}")
        print(f"  {name:12s} " + '   '.join(row), flush=True)

if __name__ == '__main__': main()
