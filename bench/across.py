"""Bench: the clouds across sources, trained by bear-train's own code on one Kaggle source and judged on the other.

    BEAR_SETTINGS=examples/clouds/settings.ini .venv/bin/python bench/across.py

The clouds' photos come from two Kaggle sets (`../shared/data/clouds/README`): the second's files are named `*_test-*`.
For each direction this cross-validates the settings' candidates on one source (`compare_recipes`, 5 folds keeping
near-duplicates together), ships the recipe `choose_recipe` picks (`train_and_export`, as `bear-train` does, into a
temporary folder) and judges it on the other source through the card's `across_source` section: the figures are
across sources, the CV figures in-source. Prints one line per direction and their photo-weighted mean.
"""
import os, sys, tempfile, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def main():
    warnings.filterwarnings('ignore')
    os.environ.setdefault('BEAR_SETTINGS', str(ROOT/'examples'/'clouds'/'settings.ini'))
    from bear_app.config import get_settings
    from bear_app.bundle import ModelBundle
    from bear_app.train import _candidates, choose_recipe, compare_recipes, dataset_files, recipe_for, train_and_export
    import dataclasses
    s = get_settings()
    files = sorted(dataset_files(s))
    second = [f for f in files if '_test-' in f.name]
    first = [f for f in files if '_test-' not in f.name]
    if not second or not first: sys.exit(f"{s.data_path}: expected photos of both Kaggle sources (names with and without '_test-')")
    print(f"{s.data_path.name}: {len(first)} photos of the first source, {len(second)} of the second; candidates {s.candidates}", flush=True)
    wrong = n = 0
    for name, train, judge in (('first -> second', first, second), ('second -> first', second, first)):
        t0, cache = time.time(), {}
        cv = compare_recipes(s, train, _candidates(s.candidates), 5, quiet=True, cache=cache)
        best = choose_recipe(cv)
        with tempfile.TemporaryDirectory() as d:
            s1 = dataclasses.replace(s, eval_path=s.data_path, eval_none_path=None)   # the card names the folder judged on
            card = ModelBundle(train_and_export(s1, train, Path(d), recipe_for(s, best), root=s.data_path, held={'eval': judge},
                                                cache=cache)).read_card()
        e = card['across_source']['eval']
        wrong, n = wrong + e['n_wrong'], n + e['n']
        print(f"  {name}: fitted on {len(train)}, in-source CV error {cv[best]['error']:.1%} ({best}); judged on {e['n']} of the other source: "
              f"{e['error']:.1%} wrong ({e['n_wrong']}), 95% {e['error_95'][0]:.1%}-{e['error_95'][1]:.1%}  [{time.time() - t0:.0f} s]", flush=True)
    print(f"both directions: {wrong} of {n} wrong across sources ({wrong / n:.1%})")

if __name__ == '__main__': main()
