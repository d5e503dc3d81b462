"""Bench: which "none of these categories" detector, and which head, for the bears and for the clouds — in one run.

    .venv/bin/python bench/ood.py                      # detectors and heads on cached frozen features
    .venv/bin/python bench/ood.py --finetune           # also cross-validate the book's fine-tuning (slow: minutes)

Features of the frozen EfficientNet-Lite0 (pooled 1280-d penultimate features and the 1000 ImageNet logits) are
extracted once per photo and cached outside the repository (`$BEAR_OOD_CACHE`, default a folder in the temp dir).
Every figure is out of sample: 5 folds that keep near-duplicates together (`group_folds`), the threshold calibrated
on the *other* folds only (nested), as `bear-train` calibrates it on its training photos. The old detector (ImageNet
probability mass outside the classes the training photos activate, threshold at a 99.75% pass rate) runs beside the
new ones on the same folds. Degraded copies of the held-out photos (dark, tiny, heavy JPEG, blurred, partly
covered) stand for "another scrape, a worse photo"; they are in-domain, so flagging them is a false alarm.
"""
import argparse, dataclasses, hashlib, inspect, io, json, os, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bear_app.config import read_settings
from bear_app.images import image_files, near_duplicate_groups, open_image, NEAR_DUP_BITS
from bear_app.predict import to_input, sample_ood_images
from bear_app.train import fit_linear_head, group_folds
from bear_app.ood import (BANK_COPIES, KNNDetector, bank_copies, fit_concept_detector, fit_detector, kth_distance, l2_normalise,
                          softmax, thresholds, wilson_interval)

IMAGENET_PRE = {'size': [224, 224], 'method': 'crop', 'mean': [0.5]*3, 'std': [0.5]*3, 'presize': None, 'draft': 448}  # the frozen recipes' input

# the old detector, as bear_app.predict shipped it until this bench replaced it (learn_classes, ood_scores)
def learn_classes(P, min_mass=0.005):
    "The ImageNet classes the training images activate: those with mean probability >= `min_mass`."
    m = P.mean(0)
    return [int(i) for i in np.argsort(-m) if m[i] >= min_mass]
def ood_scores(P, classes): return 1 - P[:, classes].sum(1)

DATA = {'bears': ROOT/'settings.ini', 'clouds': ROOT/'examples'/'clouds'/'settings.ini'}
CACHE = Path(os.environ.get('BEAR_OOD_CACHE', Path(tempfile.gettempdir())/'bear_ood_cache'))

# ---------------------------------------------------------------------------------------------------------------------
# degraded copies: in-domain photos as another scrape or a worse camera gives them
def dark(im):     return ImageEnhance.Brightness(im).enhance(0.25)
def tiny(im):     im = im.copy(); im.thumbnail((64, 64)); return im
def jpeg(im):
    b = io.BytesIO(); im.save(b, 'JPEG', quality=5); return Image.open(io.BytesIO(b.getvalue())).convert('RGB')
def blurred(im):  return im.filter(ImageFilter.GaussianBlur(max(im.size) / 100))
def covered(im): return covered_at(im, 0.4)
def covered_at(im, area, seed=0):
    "A grey box over `area` of the photo, somewhere."
    rng, im = np.random.default_rng(seed), im.copy()
    w, h = int(im.width * area ** 0.5), int(im.height * area ** 0.5)
    x, y = int(rng.integers(0, im.width - w + 1)), int(rng.integers(0, im.height - h + 1))
    ImageDraw.Draw(im).rectangle((x, y, x + w, y + h), fill=(128, 128, 128))
    return im
SHIFTS = {'dark': dark, 'tiny': tiny, 'jpeg q5': jpeg, 'blurred': blurred, 'covered 40%': covered}

# ---------------------------------------------------------------------------------------------------------------------
# frozen features, once per photo
_net = None
def net():
    global _net
    if _net is None:
        import torch
        from bear_app.train import efficientnet_lite0
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        _net = efficientnet_lite0().eval()
    return _net

def embed(imgs:list, bs:int=32)->tuple:
    "Pooled penultimate features (N,1280) and ImageNet logits (N,1000) of the frozen Lite0 for PIL images."
    import torch
    m, F, Z = net(), [], []
    for b in range(0, len(imgs), bs):
        x = torch.from_numpy(np.stack([to_input(i, IMAGENET_PRE) for i in imgs[b:b+bs]]))
        with torch.inference_mode():
            f = m.forward_features(x).mean((2, 3))
            F.append(f.numpy()); Z.append(m.classifier(f).numpy())
    return np.concatenate(F), np.concatenate(Z)

def cached(name:str, key:str, make):
    "np.load the npz `name`, computing it with `make()` (a dict of arrays) when absent or made from other inputs."
    CACHE.mkdir(parents=True, exist_ok=True)
    p = CACHE/f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    if not p.exists():
        t = time.time(); arrs = make(); np.savez(p, **arrs)
        print(f"  cached {name} ({time.time() - t:.0f} s)", flush=True)
    return dict(np.load(p))

def dataset(name:str)->dict:
    "Files, labels, near-duplicate folds, and features (clean and degraded) of one dataset."
    s = read_settings(DATA[name], env={})
    files = sorted(f for f in image_files(s.data_path) if f.parent.name in s.categories)
    key = '\n'.join(f"{f.relative_to(s.data_path)} {f.stat().st_size}" for f in files)
    def make():
        imgs = [open_image(f, draft=IMAGENET_PRE['draft']) for f in files]
        out = {}
        out['F'], out['Z'] = embed(imgs)
        for sh, fn in SHIFTS.items():
            out[f'F {sh}'], out[f'Z {sh}'] = embed([fn(i) for i in imgs])
        return out
    d = cached(name, key, make)
    d.update(cached(f'{name}-bank', key + inspect.getsource(bank_copies), lambda: dict(zip(('F bank', 'Z bank'), embed(
        [a for f in files for a in bank_copies(open_image(f, draft=IMAGENET_PRE['draft']))])))))
    groups = near_duplicate_groups(files, NEAR_DUP_BITS)
    folds = group_folds(files, groups, 5, s.seed)
    fold = np.zeros(len(files), int)
    for k, f in enumerate(folds): fold[f] = k
    y = np.array([s.vocab.index(f.parent.name) for f in files])
    return {'name': name, 'settings': s, 'files': files, 'y': y, 'fold': fold, 'vocab': s.vocab, **d}

def samples()->dict:
    "Features of the offline non-photos-of-ours: {source: (F, Z)}."
    src = sample_ood_images()
    d = cached('samples', json.dumps({k: len(v) for k, v in src.items()}), lambda: {
        f'{w} {k}': a for k, v in src.items() for w, a in zip('FZ', embed(v))})
    return {k: (d[f'F {k}'], d[f'Z {k}']) for k in src}

# ---------------------------------------------------------------------------------------------------------------------
# detectors: `fit(d, rows)` on the in-domain photos `rows` of dataset `d`; `score(F, Z)` for any photos (higher: less
# like the training photos). F: penultimate features, Z: ImageNet logits.
class ImageNetMass:
    "The old detector: ImageNet probability mass outside the ImageNet classes the training photos activate."
    def fit(self, d, rows): self.classes = learn_classes(softmax(d['Z'][rows])); return self
    def score(self, F, Z): return ood_scores(softmax(Z), self.classes)

class KNN:
    "Sun et al. 2022 (`bear_app.ood`): distance to the k-th nearest training photo, optionally with their damaged copies."
    def __init__(self, k=5, copies=True): self.k, self.copies = k, copies
    def fit(self, d, rows):
        ref = [d['F'][rows]] + ([d['F bank'].reshape(len(d['F']), len(BANK_COPIES), -1)[rows].reshape(-1, d['F'].shape[1])] if self.copies else [])
        self.ref = l2_normalise(np.concatenate(ref)); return self
    def score(self, F, Z): return kth_distance(l2_normalise(F), self.ref, self.k)

class Mahalanobis:
    "Lee et al. 2018: smallest Mahalanobis distance to a class mean, one shared covariance (Ledoit-Wolf shrinkage), L2-normalised features."
    def fit(self, d, rows):
        from sklearn.covariance import LedoitWolf
        F, y = l2_normalise(d['F'][rows]), d['y'][rows]
        self.mu = np.stack([F[y == c].mean(0) for c in np.unique(y)])
        self.P = LedoitWolf().fit(F - self.mu[np.searchsorted(np.unique(y), y)]).precision_
        return self
    def score(self, F, Z):
        F = l2_normalise(F)
        return np.sqrt(np.min([np.einsum('ij,jk,ik->i', F - m, self.P, F - m) for m in self.mu], axis=0))

class Combined:
    "Mean of the parts' scores, each rescaled by its out-of-fold median (0) and 99.5% quantile (1) on the training photos."
    def __init__(self, *parts): self.parts = parts
    def fit(self, d, rows):
        self.fitted = [type(p)(**vars(p)) if isinstance(p, KNN) else type(p)() for p in self.parts]
        self.scale = []
        for p in self.fitted:
            s = oof(lambda p=p: type(p)(**vars(p)) if isinstance(p, KNN) else type(p)(), d, rows)
            self.scale.append((np.median(s), np.quantile(s, 0.995)))
            p.fit(d, rows)
        return self
    def score(self, F, Z): return np.mean([(p.score(F, Z) - m) / (q - m) for p, (m, q) in zip(self.fitted, self.scale)], 0)

def oof(make, d, rows):
    "Out-of-fold scores of the photos `rows`: each of their folds scored by `make()` fitted on their other folds."
    rows, s = np.asarray(rows), np.zeros(len(rows))
    for k in np.unique(d['fold'][rows]):
        te = d['fold'][rows] == k
        s[te] = make().fit(d, rows[~te]).score(d['F'][rows[te]], d['Z'][rows[te]])
    return s

def nested(make, d, outside:dict, calibrate)->dict:
    "Flag rates out of sample: each fold judged by a detector fitted, and calibrated by `calibrate(oof scores)`, on the other folds."
    n, flags = len(d['y']), {'in-domain': np.zeros(len(d['y']), bool), **{sh: np.zeros(len(d['y']), bool) for sh in SHIFTS}}
    out = {name: [] for name in outside}
    for k in range(5):
        rows, te = np.flatnonzero(d['fold'] != k), d['fold'] == k
        thr = calibrate(oof(make, d, rows))
        det = make().fit(d, rows)
        flags['in-domain'][te] = det.score(d['F'][te], d['Z'][te]) > thr
        for sh in SHIFTS: flags[sh][te] = det.score(d[f'F {sh}'][te], d[f'Z {sh}'][te]) > thr
        for name, (F, Z) in outside.items(): out[name].append(det.score(F, Z) > thr)
    return {'in_flagged': int(flags['in-domain'].sum()), 'n': n, **{sh: float(flags[sh].mean()) for sh in SHIFTS},
            **{name: float(np.mean(v)) for name, v in out.items()}}

def old_threshold(s): return float(np.quantile(s, 0.9975, method='higher'))   # as fit_ood / cv_threshold calibrate
def new_threshold(s): return thresholds(s, 0.995, 0.2)[1]                       # as bear_app.ood calibrates

DETECTORS = {  # name: (detector factory, calibration)
    'old: ImageNet mass, 99.75% pass': (ImageNetMass, old_threshold),
    'old score, q99.5 + 20% margin': (ImageNetMass, new_threshold),
    'Mahalanobis (Lee 2018)': (Mahalanobis, new_threshold),
    'kNN k=5 (Sun 2022)': (lambda: KNN(5, copies=False), new_threshold),
    'kNN k=5 + damaged copies': (lambda: KNN(5, copies=True), new_threshold),
    'kNN + copies, with old score': (lambda: Combined(KNN(5, copies=True), ImageNetMass()), new_threshold),
}
SHIPPED = 'kNN k=5 + damaged copies'

# ---------------------------------------------------------------------------------------------------------------------
# the book's fine-tuning, cross-validated on the same folds; its own (moved) feature space kept for the detectors
def finetune_cv(d:dict, other:dict)->dict:
    "Per fold: fine-tune on the other folds (`FINETUNE`), then class logits and body features of everything, cached."
    from bear_app.train import FINETUNE, train_learner, preprocessing
    import torch
    s, files = d['settings'], d['files']
    def make():
        out, cache = {}, {}
        for k in range(5):
            t, vs = time.time(), [int(i) for i in np.flatnonzero(d['fold'] == k)]
            from fastcore.foundation import L
            learn = train_learner(s, files, FINETUNE, lambda items, vs=vs: (L(i for i in range(len(items)) if i not in set(vs)), L(vs)),
                                  cache=cache, quiet=True)
            m, pre = learn.model.eval().cpu(), preprocessing(learn)
            def run(imgs):
                F, Y = [], []
                for b in range(0, len(imgs), 32):
                    x = torch.from_numpy(np.stack([to_input(i, pre) for i in imgs[b:b+32]]))
                    with torch.inference_mode():
                        f = m[0](x); F.append(f.mean((2, 3)).numpy()); Y.append(m[1](f).numpy())
                return np.concatenate(F), np.concatenate(Y)
            imgs = [open_image(f, draft=pre['draft']) for f in files]
            out[f'{k} F'], out[f'{k} Y'] = run(imgs)
            for sh, fn in SHIFTS.items(): out[f'{k} F {sh}'], out[f'{k} Y {sh}'] = run([fn(imgs[i]) for i in vs])
            out[f'{k} F other'], _ = run([open_image(f, draft=pre['draft']) for f in other['files']])
            smp = sample_ood_images()
            out[f'{k} F samples'], _ = run([i for v in smp.values() for i in v])
            out[f'{k} seconds'] = np.array(time.time() - t)
            print(f"  {d['name']} fine-tune fold {k}: {time.time() - t:.0f} s", flush=True)
        return out
    return cached(f"{d['name']}-finetune", _ft_key(d), make)

def _ft_key(d):
    from bear_app.train import FINETUNE as r
    return '\n'.join(map(str, d['files'])) + f"finetune {r.size} {r.method} {r.presize} {r.aug} {r.epochs} {r.freeze_epochs} {r.lr}"


# ---------------------------------------------------------------------------------------------------------------------
# heads on the frozen features, cross-validated on the same folds
def head_inputs(d:dict, kind:str, sfx:str='')->np.ndarray:
    "What a head reads: the centred ImageNet logits, the pooled features, or both."
    Z, F = d['Z' + sfx], d['F' + sfx]
    Zc = Z - Z.mean(1, keepdims=True)
    return {'logits': Zc, 'features': F, 'both': np.hstack([Zc, F])}[kind]

def head_cv(d:dict, kind:str)->dict:
    "Out-of-fold predictions of a linear head fitted by `fit_linear_head` on `kind`, clean and on the damaged copies."
    n, pred = len(d['y']), {'clean': np.zeros(len(d['y']), int), **{sh: np.zeros(len(d['y']), int) for sh in SHIFTS}}
    for k in range(5):
        tr, te = d['fold'] != k, d['fold'] == k
        W, b = fit_linear_head(head_inputs(d, kind)[tr], d['y'][tr])
        pred['clean'][te] = (head_inputs(d, kind)[te] @ W.T + b).argmax(1)
        for sh in SHIFTS: pred[sh][te] = (head_inputs(d, kind, ' ' + sh)[te] @ W.T + b).argmax(1)
    return {'wrong': int((pred['clean'] != d['y']).sum()), 'n': n, 'pred': pred['clean'],
            **{sh: float((pred[sh] != d['y']).mean()) for sh in SHIFTS}}

def finetuned_detector(d:dict, ft:dict, outside_names=('other', 'samples'))->dict:
    "The kNN detector (no damaged copies) in each fold's fine-tuned feature space, calibrated on that fold's training photos (which the model saw), judging the held-out fold it never saw."
    n, flags, out = len(d['y']), np.zeros(len(d['y']), bool), {k: [] for k in outside_names}
    shifted = {sh: np.zeros(len(d['y']), bool) for sh in SHIFTS}
    for k in range(5):
        rows, te = np.flatnonzero(d['fold'] != k), d['fold'] == k
        F = l2_normalise(ft[f'{k} F'])
        inner = [np.flatnonzero(d['fold'][rows] == j) for j in np.unique(d['fold'][rows])]
        from bear_app.ood import oof_scores
        _, thr = thresholds(oof_scores(F[rows], inner), 0.995, 0.2)
        ref = F[rows]
        flags[te] = kth_distance(F[te], ref) > thr
        for sh in SHIFTS: shifted[sh][te] = kth_distance(l2_normalise(ft[f'{k} F {sh}']), ref) > thr
        for name in outside_names: out[name].append(kth_distance(l2_normalise(ft[f'{k} F {name}']), ref) > thr)
    return {'in_flagged': int(flags.sum()), 'n': n, **{sh: float(v.mean()) for sh, v in shifted.items()},
            **{name: float(np.mean(v)) for name, v in out.items()}}

def finetune_errors(d:dict, ft:dict)->dict:
    "Out-of-fold error of the fine-tuned models, clean and on the damaged copies."
    pred = np.zeros(len(d['y']), int); sh = {s: np.zeros(len(d['y']), int) for s in SHIFTS}
    for k in range(5):
        te = d['fold'] == k
        pred[te] = ft[f'{k} Y'][te].argmax(1)
        for s in SHIFTS: sh[s][te] = ft[f'{k} Y {s}'].argmax(1)
    return {'wrong': int((pred != d['y']).sum()), 'n': len(d['y']), 'seconds': float(sum(ft[f'{k} seconds'] for k in range(5))),
            **{s: float((v != d['y']).mean()) for s, v in sh.items()}}

def pct(x): return f"{x:6.1%}"

# ---------------------------------------------------------------------------------------------------------------------
# across sources: what holds when the photos come from another scrape ([paths] eval, eval_none of settings.ini)
def folder_features(name:str, folder:Path, vocab:list|None=None)->tuple:
    "(files, F, Z) of the images in `folder` (only its category folders `vocab`, if given), cached."
    files = sorted(f for f in image_files(folder) if vocab is None or f.parent.name in vocab)
    d = cached(name, '\n'.join(f"{f.relative_to(folder)} {f.stat().st_size}" for f in files),
               lambda: dict(zip('FZ', embed([open_image(f, draft=IMAGENET_PRE['draft']) for f in files]))))
    return files, d['F'], d['Z']

def across_sources(b:dict, c:dict, SF:np.ndarray):
    "Bears: fit on bears/, judge on bears-elsewhere and not-bears: classifier heads, the shipped detector and the kNN alone."
    import torch
    s = b['settings']
    ef, EF, EZ = folder_features('bears-elsewhere', s.eval_path, s.vocab)
    nf, NF, NZ = folder_features('not-bears', s.eval_none_path)
    ye = np.array([s.vocab.index(f.parent.name) for f in ef])
    print(f"== across sources: fitted on {len(b['y'])} bears/, judged on {len(ef)} photos from {s.eval_path.name} and {len(nf)} from {s.eval_none_path.name}")
    for kind in ('logits', 'features', 'both'):
        W, bias = fit_linear_head(head_inputs(b, kind), b['y'])
        wrong = int(((head_inputs({'Z': EZ, 'F': EF}, kind) @ W.T + bias).argmax(1) != ye).sum())
        print(f"   head on {kind:9s}: {wrong} of {len(ef)} wrong across sources ({wrong/len(ef):.2%})")
    m = net(); imagenet = (m.classifier.weight.detach().numpy(), m.classifier.bias.detach().numpy())
    folds = [np.flatnonzero(b['fold'] == k) for k in range(5)]
    bank = b['F bank'].reshape(len(b['y']), len(BANK_COPIES), -1)
    det = fit_concept_detector(b['F'], b['y'], folds, imagenet, bank, EF)
    knn = fit_detector(b['F'], folds, bank)
    t_knn = max(knn.threshold, thresholds(knn.score(EF), 0.99, 0.2)[1])   # the kNN alone, its threshold raised the same way
    for name, score, thr in (('kNN + concepts (shipped)', det.score, det.threshold), ('kNN alone, same calibration', knn.score, t_knn)):
        fl = lambda F: float((score(F) > thr).mean())
        print(f"   {name:28s} bears from elsewhere flagged {pct(fl(EF))}  not-bears {pct(fl(NF))}  clouds {pct(fl(c['F']))}  offline samples {pct(fl(SF))}")
    cs = c['settings']
    te = np.array(['_test-' in f.name for f in c['files']])   # the clouds' second Kaggle source (their README)
    for kind in ('logits', 'features', 'both'):
        W, bias = fit_linear_head(head_inputs(c, kind)[~te], c['y'][~te])
        err = float(((head_inputs(c, kind)[te] @ W.T + bias).argmax(1) != c['y'][te]).mean())
        print(f"   clouds, head on {kind:9s} fitted on {int((~te).sum())} photos of one source, judged on {int(te.sum())} of the other: {err:.1%} wrong")
    print()

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--finetune', action='store_true', help="also cross-validate the book's fine-tuning (FINETUNE, 160 px, fine_tune(3)); minutes per fold on 2 cores")
    a = ap.parse_args()
    warnings.filterwarnings('ignore')
    t0 = time.time()
    b, c, smp = dataset('bears'), dataset('clouds'), samples()
    SF, SZ = (np.concatenate([v[i] for v in smp.values()]) for i in (0, 1))
    print(f"features cached in {CACHE} ({time.time() - t0:.0f} s); bears {len(b['y'])}, clouds {len(c['y'])}, "
          f"offline non-photos-of-either {len(SF)} ({', '.join(smp)})")
    across_sources(b, c, SF)
    print("in-source figures below, all out of sample: 5 folds keeping near-duplicates together; thresholds calibrated on the other 4 folds only\n")
    for d, other, oname in ((b, c, 'clouds'), (c, b, 'bears')):
        print(f"== {d['name']} model: in-domain photos flagged 'none of the categories' (target <= 1%), {oname} flagged (target >= 97%)")
        print(f"{'':36s} {'':27s} {'':7s} {'':7s}   damaged held-out photos flagged")
        print(f"{'detector':36s} {'in-domain flagged (95% CI)':27s} {oname:>7s} {'samples':>7s}  " + ' '.join(f"{s:>10s}" for s in SHIFTS))
        for name, (make, cal) in DETECTORS.items():
            r = nested(make, d, {'other': (other['F'], other['Z']), 'samples': (SF, SZ)}, cal)
            lo, hi = wilson_interval(r['in_flagged'], r['n'])
            print(f"{name + (' *' if name == SHIPPED else ''):36s} {r['in_flagged']:3d}/{r['n']} = {r['in_flagged']/r['n']:5.1%} ({lo:.1%}-{hi:.1%})"
                  f" {pct(r['other'])}  {pct(r['samples'])}  " + ' '.join(f"    {pct(r[s])}" for s in SHIFTS), flush=True)
        print(f"* shipped: kNN (k=5) on L2-normalised pooled features, reference = training photos + {len(BANK_COPIES)} milder damaged copies "
              f"each ({', '.join(BANK_COPIES)}); ood above the out-of-fold 99.5% quantile + 20% of its spread above the median")
        ref = fit_detector(d['F'], [np.flatnonzero(d['fold'] == k) for k in range(5)], d['F bank'].reshape(len(d['y']), len(BANK_COPIES), -1))
        from bear_app.ood import KNNDetector
        f16 = KNNDetector(ref.ref.astype(np.float16).astype(np.float32), ref.k, ref.hard, ref.threshold)
        print(f"  stored as float16, scores move by at most {np.abs(f16.score(other['F']) - ref.score(other['F'])).max():.1e} "
              f"(threshold {ref.threshold:.3f}); bear-train's own nested estimate on these photos: "
              f"{ref.info['expected_in_domain']['ood']} of {len(d['y'])} flagged, {ref.info['expected_in_domain']['hard_to_read']} hard to read\n")
        print(f"-- {d['name']}: which head (5-fold CV error; damaged held-out photos: share misclassified)")
        for kind in ('logits', 'features', 'both'):
            t = time.time(); r = head_cv(d, kind)
            print(f"   frozen Lite0 + linear head on {kind:9s} {r['wrong']:3d}/{r['n']} wrong = {r['wrong']/r['n']:5.2%}  ({time.time() - t:4.1f} s)   "
                  + ' '.join(f"{s} {pct(r[s])}" for s in SHIFTS), flush=True)
        ft = finetune_cv(d, other) if a.finetune else _cached_finetune(d)
        if ft is None: print("   fine-tuning: not run (pass --finetune)\n"); continue
        r = finetune_errors(d, ft)
        print(f"   fine-tuning (FINETUNE: 160 px, fine_tune(3), 1 frozen epoch)  {r['wrong']:3d}/{r['n']} wrong = {r['wrong']/r['n']:5.2%}  "
              f"({r['seconds']:.0f} s when cached)   " + ' '.join(f"{s} {pct(r[s])}" for s in SHIFTS))
        r = finetuned_detector(d, ft)
        print(f"   kNN detector in the fine-tuned feature space (no damaged copies): in-domain {r['in_flagged']}/{r['n']}, {oname} {pct(r['other'])}, "
              f"samples {pct(r['samples'])}; damaged: " + ' '.join(f"{s} {pct(r[s])}" for s in SHIFTS) + '\n', flush=True)

def _cached_finetune(d):
    "The fine-tuning CV's cache for `d`, if an earlier `--finetune` run made it."
    p = CACHE/f"{d['name']}-finetune-{hashlib.sha256(_ft_key(d).encode()).hexdigest()[:12]}.npz"
    return dict(np.load(p)) if p.exists() else None

if __name__ == '__main__': main()
