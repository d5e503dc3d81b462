"""Bench: the book's chapter-2 recipe against ours, on the same photos in one run: wall time of a full training run,
validation error on the settings' seeded split (near-duplicates kept together), k-fold cross-validated error (in-source:
folds of one scrape), and the error on photos from another source that training never touches ([paths] eval).

    .venv/bin/python bench/train.py                      # book and ours, 5 folds
    .venv/bin/python bench/train.py --variants ours,ls --k 5 --json /tmp/cv.jsonl
    .venv/bin/python bench/train.py --bear-train --variants ours --k 0   # + bear-train with the shipped settings, wall time
"""
import argparse, dataclasses, json, subprocess, sys, tempfile, time
from pathlib import Path
from bear_app.config import get_settings
from bear_app.images import NEAR_DUP_BITS, near_duplicate_groups
from bear_app.train import (BOOK, FINETUNE, OURS, PRESIZE, GroupedSplitter, cross_validate, dataset_files, held_out_files, judge,
                            recipe_for, train_learner, validation_metrics)

R = dataclasses.replace
VARIANTS = {
    'book': BOOK,
    'ours': OURS,
    'finetune': FINETUNE,
    'ours_presized': R(OURS, name='ours_presized', presize=PRESIZE),   # shrunk to 1.15x before the crop, as OURS was
    'crop160': R(FINETUNE, name='crop160', method='crop'),
    'sq128e3': R(FINETUNE, name='sq128e3', size=128),
    'sq128e4': R(FINETUNE, name='sq128e4', size=128, epochs=4),
    'sq160e2': R(FINETUNE, name='sq160e2', epochs=2),
    'sq160e4': R(FINETUNE, name='sq160e4', epochs=4),
    'sq192e3': R(FINETUNE, name='sq192e3', size=192),
    'sq160lr3': R(FINETUNE, name='sq160lr3', lr=3e-3),
    'sq160ls': R(FINETUNE, name='sq160ls', label_smoothing=0.1),
    'sq224e4': R(FINETUNE, name='sq224e4', size=224, epochs=4),
}

def single_run(s, files, r, elsewhere=()):
    "Wall time and validation error of one training run from cold (nothing decoded yet); its error on `elsewhere` (photos from another source)."
    groups = near_duplicate_groups(files, NEAR_DUP_BITS)
    t0, c0 = time.time(), time.process_time()
    learn = train_learner(s, files, r, GroupedSplitter(groups, s.valid_pct, s.seed), quiet=True)
    secs, cpu = time.time() - t0, time.process_time() - c0
    out = {'seconds': round(secs, 1), 'cpu_seconds': round(cpu, 1), 'valid_error': validation_metrics(learn)['error_rate'], 'groups': len(groups)}
    if elsewhere:
        P, _ = judge(learn, elsewhere)
        wrong = [str(f) for f, p in zip(elsewhere, P.argmax(1)) if learn.dls.vocab[int(p)] != Path(f).parent.name]
        out.update(across_error=len(wrong) / len(elsewhere), across_wrong=wrong, across_n=len(elsewhere))
    return out

def bear_train_run():
    "Wall time of `bear-train` with the shipped settings (into a temporary models folder) and the figures its card gives."
    with tempfile.TemporaryDirectory() as d:
        t = time.time()
        r = subprocess.run([str(Path(sys.executable).parent/'bear-train'), '--models', d], capture_output=True, text=True)
        secs = time.time() - t
        if r.returncode: sys.exit(f"bear-train failed: {r.stderr[-2000:]}")
        card = json.loads((Path(d)/f"{get_settings().model_name}.json").read_text())
    print(f"bear-train, shipped settings (candidates {', '.join(card['command']['candidates'])}): {secs:.0f} s wall")
    print('  ' + r.stdout.strip().splitlines()[-2])
    a = card.get('across_source', {})
    if 'eval' in a: print(f"  across sources: {a['eval']['n_wrong']} of {a['eval']['n']} wrong ({a['eval']['error']:.2%}), "
                          f"not a bear {a['eval']['not_a_bear']} of {a['eval']['n']} ({a['eval']['not_a_bear_rate']:.2%})")
    if 'none' in a: print(f"  photos of none of the categories flagged: {a['none']['flagged']} of {a['none']['n']} ({a['none']['flagged_rate']:.1%})")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--variants', default='book,ours')
    ap.add_argument('--k', type=int, default=5)
    ap.add_argument('--no-single', action='store_true', help='cross-validate only')
    ap.add_argument('--json', help='append one JSON line per variant to this file')
    ap.add_argument('--bear-train', action='store_true', help='also time bear-train with the shipped settings (first)')
    a = ap.parse_args()
    s = get_settings()
    VARIANTS['ours'] = recipe_for(s, OURS.name)   # at the settings' img_size, as bear-train runs it
    if a.bear_train: bear_train_run()
    files = sorted(dataset_files(s))
    elsewhere = held_out_files(s, files)['eval']
    print(f"{len(files)} photos, {a.k}-fold CV (in-source), seed {s.seed}; {len(elsewhere)} photos from another source ({s.eval_path}) to judge on")
    names, res = a.variants.split(','), {}
    def report(name):
        out = res[name]
        print(f"{name:10s} train {out.get('seconds', float('nan')):6.1f} s wall ({out.get('cpu_seconds', float('nan')):6.1f} s CPU)  "
              f"valid error {out.get('valid_error', float('nan')):.3f}  across sources {out.get('across_error', float('nan')):.4f}  "
              f"in-source {a.k}-fold CV error {out.get('cv_error', float('nan')):.4f} "
              f"(folds {[round(e, 3) for e in out.get('cv_fold_errors', [])]}, {out.get('cv_seconds')} s)", flush=True)
        if a.json:
            with open(a.json, 'a') as f: f.write(json.dumps(out) + '\n')
    # every single run first (the timings), then the cross-validations (slow)
    for name in names:
        res[name] = {'variant': name, 'recipe': dataclasses.asdict(VARIANTS[name])}
        if not a.no_single: res[name].update(single_run(s, files, VARIANTS[name], elsewhere)); report(name)
    ratios(res)
    for name in names if a.k else []:
        cv = cross_validate(s, files, a.k, VARIANTS[name])
        res[name].update(cv_error=cv['error'], cv_fold_errors=cv['fold_errors'], cv_seconds=cv['seconds'], cv_wrong=cv['wrong'])
        report(name)
    ratios(res)
    for name, o in res.items():
        for w in o.get('across_wrong', []): print(f"  {name} wrong across sources: {w}")
        for w in o.get('cv_wrong', []): print(f"  {name} wrong: {w['file']} labelled {w['label']}, predicted {w['predicted']} ({w['probability']})")

def ratios(res):
    "Each variant's figures over the book's."
    if 'book' in res:
        b = res['book']
        for name, o in res.items():
            if name == 'book': continue
            parts = []
            if 'seconds' in o: parts.append(f"wall time {o['seconds'] / b['seconds']:.2f}x, CPU time {o['cpu_seconds'] / b['cpu_seconds']:.2f}x")
            if 'cv_error' in o and b.get('cv_error'): parts.append(f"CV error {o['cv_error'] / b['cv_error']:.2f}x")
            print(f"{name} / book: " + ', '.join(parts), flush=True)

if __name__ == '__main__': main()
