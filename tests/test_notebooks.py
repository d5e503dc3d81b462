"""Every notebook in nbs/ runs top to bottom (its cells are tests) in the small CI mode (BEAR_SMALL=1: few images,
small size, one epoch), under nbval (`pytest --nbval-lax`, set up by nbs/conftest.py): the cells nbdev-test would run
are run, and those marked `# NBVAL_CHECK_OUTPUT` must still show the notebook's committed output (after
nbs/sanitize.cfg's substitutions), so an output that no longer tells the truth fails until the notebook is run again.
app.ipynb, the page Voilà serves, is driven by the browser test instead."""
import json, os, shutil, subprocess, sys
import pytest
from conftest import ROOT

NOTEBOOKS = sorted(p.name for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))

def nbval(*args, cwd=ROOT, **env):
    "Run `pytest --nbval-lax` on `args` in a fresh process (its own kernel per notebook, BEAR_SMALL=1)."
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--nbval-lax', *args], cwd=cwd,
                          env={**os.environ, 'BEAR_SMALL': '1', **env}, capture_output=True, text=True)

@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_notebook_runs_and_its_checked_outputs_hold(nb):
    r = nbval(f'nbs/{nb}')
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]

def test_every_notebook_checks_some_output():
    "Each notebook of the chapter has outputs CI compares, or it could drift from its code unnoticed."
    def checked(nb): return sum(c['cell_type'] == 'code' and '# NBVAL_CHECK_OUTPUT' in ''.join(c['source']).splitlines()
                                for c in json.loads((ROOT/'nbs'/nb).read_text())['cells'])
    chapter = ['01_gather.ipynb', '02_train.ipynb', '03_clean.ipynb']
    test = {nb: checked(nb) for nb in chapter}
    assert all(test.values()), test

def _edit_output(cell:dict, old:str, new:str):
    for o in cell['outputs']:
        if 'text' in o:
            text = ''.join(o['text'])
            if old in text: o['text'] = text.replace(old, new); return
    raise AssertionError(f'{old!r} not in the output of {"".join(cell["source"])[:80]!r}')

def test_a_changed_checked_output_fails(tmp_path):
    "01_gather with one checked output changed (a count) and one only in a timing: exactly the first cell fails."
    nbs = tmp_path/'nbs'; nbs.mkdir()
    for f in ('conftest.py', 'sanitize.cfg'): shutil.copy(ROOT/'nbs'/f, nbs/f)
    shutil.copy(ROOT/'pyproject.toml', tmp_path/'pyproject.toml')   # nbdev's settings (tst_flags) for the copy
    nb = json.loads((ROOT/'nbs'/'01_gather.ipynb').read_text())
    cells = {''.join(c['source']).split('\n')[1][:40]: c for c in nb['cells']
             if c['cell_type'] == 'code' and ''.join(c['source']).startswith('# NBVAL_CHECK_OUTPUT')}
    verdict = next(c for k, c in cells.items() if k.startswith('rep = GatherReport'))
    refused = next(c for k, c in cells.items() if k.startswith('for status in (403, 202)'))
    _edit_output(verdict, '19 images', '18 images')          # what the recipe says: must fail
    _edit_output(refused, 'over 0.03 s', 'over 9.87 s')      # a timing: sanitized, must pass
    (nbs/'01_gather.ipynb').write_text(json.dumps(nb))
    r = nbval('nbs/01_gather.ipynb', cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and 'Cell outputs differ' in out, out[-4000:]
    failed = [l for l in out.splitlines() if l.startswith('FAILED')]
    assert len(failed) == 1 and '18 images' in out and '19 images' in out, failed

def _outputs(nb:str, text:str)->list:
    "The committed outputs of the code cell of `nbs/nb` whose source holds `text`."
    cells = [c for c in json.loads((ROOT/'nbs'/nb).read_text())['cells'] if c['cell_type'] == 'code' and text in ''.join(c['source'])]
    assert len(cells) == 1, (nb, text, len(cells))
    return cells[0]['outputs']

def test_02_train_shows_the_version_of_the_shipped_model():
    "The committed run of 02_train exported the model in models/: its output names that file's version."
    from bear_app.core import file_sha256
    shown = ''.join(''.join(o.get('text', '')) for o in _outputs('02_train.ipynb', "card['pkl_sha256'][:12]"))
    version = file_sha256(ROOT/'models'/'bear_model.pkl')[:12]
    assert f'version {version}' in shown, (f"nbs/02_train.ipynb shows {shown.strip()!r}, models/bear_model.pkl is version {version}: "
                                           "run 02_train top to bottom on the real photos and commit models/ and the notebook")

def test_05_app_shows_the_live_app():
    "05_app's committed outputs hold the app itself, as a widget (JupyterLab draws it when the notebook runs)."
    outs = _outputs('05_app.ipynb', 'app.ui')
    assert any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in outs), outs
