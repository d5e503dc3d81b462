"""The chapter as a student runs it: a fresh `git clone` of the project, `BEAR_DATA` pointing at a temporary copy of
real photos, and `02_train` then `03_clean` run top to bottom as JupyterLab's Run All does (every cell, `#| eval: false`
ones included: nbdev's flags only steer the test suite). `02_train` exports the student's model into the clone's
`models/` and prints its version; in `03_clean` the student marks two photos in the cleaner widget (through its
dropdowns, between the cell that shows the widget and the cell that applies the marks), the apply moves exactly those
files inside the data folder, and `bear-clean undo` puts them back.

To stay fast (minutes, on 2 cores) the photos are a subset, the first 12 of each category of the settings' data
folder, and the clone's settings.ini cross-validates only the two cheapest recipes (`candidates = logits, features`:
no fine-tuning), as a student may set it."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT

N_PER_CATEGORY = 12
MARKS = '''# the student, at the widget: the first photo of the first category to the trash, the first of the second relabelled
cleaner.dd_cat.value = vocab[0]; cleaner.tiles[0].children[-1].value = '<Delete>'
cleaner.dd_cat.value = vocab[1]; cleaner.tiles[0].children[-1].value = vocab[2]
print(json.dumps(cleaner.decisions))'''

def run_as_student(nb:Path, env:dict, before:dict|None=None, timeout:int=1800):
    "Run All of the notebook `nb` in its folder, with `env`; `before[text]` is code run just before the cell whose source holds `text`."
    import nbformat
    from nbclient import NotebookClient
    book = nbformat.read(nb, as_version=4)
    client = NotebookClient(book, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(nb.parent)}})
    extra = {}
    with client.setup_kernel(env=env):
        for i, cell in enumerate(book.cells):
            for text, code in (before or {}).items():
                if text in cell.source:
                    extra[text] = client.execute_cell(nbformat.v4.new_code_cell(code), i)
            if cell.cell_type == 'code': client.execute_cell(cell, i)
    return book, extra

def text_of(cell)->str:
    "What a cell printed or showed as text."
    return ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', '') for o in cell.outputs)

def cell_with(book, text:str):
    cells = [c for c in book.cells if c.cell_type == 'code' and text in c.source]
    assert len(cells) == 1, (text, len(cells))
    return cells[0]

@pytest.fixture(scope='module')
def student(tmp_path_factory):
    "A fresh clone, a copy of some real photos, the environment of a student's JupyterLab on them."
    from bear_app.config import get_settings
    from bear_app.train import dataset_files
    s = get_settings()
    if not s.data_path.is_dir(): pytest.skip(f"no photos at {s.data_path} (settings.ini [paths] data, or BEAR_DATA)")
    d = tmp_path_factory.mktemp('student')
    clone, data = d/'bear_app', d/'bears'
    subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
    ini = clone/'settings.ini'
    ini.write_text(re.sub(r'(?m)^candidates\s*=.*$', 'candidates = logits, features', ini.read_text()))
    by_cat = {}
    for f in sorted(dataset_files(s)): by_cat.setdefault(f.parent.name, []).append(f)
    for cat, fs in by_cat.items():
        (data/cat).mkdir(parents=True)
        for f in fs[:N_PER_CATEGORY]: shutil.copy2(f, data/cat/f.name)
    env = {k: v for k, v in os.environ.items() if k not in ('BEAR_SMALL', 'BEAR_SETTINGS', 'IN_TEST')}
    env.update(BEAR_DATA=str(data), PYTHONPATH=str(clone), BEAR_LOG=str(d/'predictions.sqlite'),
               IPYTHONDIR=str(d/'ipython'), MPLCONFIGDIR=str(d/'mpl'))
    return clone, data, env

def test_a_student_trains_and_cleans_their_own_photos(student):
    from bear_app.clean import tree_state
    clone, data, env = student
    shipped = json.loads((clone/'models'/'bear_model.json').read_text())
    book, _ = run_as_student(clone/'nbs'/'02_train.ipynb', env)
    card = json.loads((clone/'models'/'bear_model.json').read_text())
    assert card['pkl_sha256'] != shipped['pkl_sha256'] and card['n_images'] == 3 * N_PER_CATEGORY, card['n_images']
    assert f"version {card['pkl_sha256'][:12]}" in text_of(cell_with(book, "card['pkl_sha256'][:12]"))

    before = tree_state(data)
    book, extra = run_as_student(clone/'nbs'/'03_clean.ipynb', env, {'cleaner.apply()': MARKS})
    marks = json.loads(text_of(extra['cleaner.apply()']))
    assert sorted(a for a, _ in marks.values()) == ['delete', 'relabel'], marks
    said = text_of(cell_with(book, 'cleaner.apply()'))
    assert '1 relabelled, 1 moved to the trash' in said, said
    after = dict(tree_state(data, hidden=True))
    for f, (action, cat) in marks.items():
        assert not (data/f).exists(), f
        name = Path(f).name
        where = data/'.trash'/Path(f).parent.name if action == 'delete' else data/cat
        assert any(p.startswith(where.relative_to(data).as_posix() + '/') and dict(before)[f] == sha
                   for p, sha in after.items()), (f, action, sorted(after)[:5], name)

    bin_ = Path(sys.executable).parent
    r = subprocess.run([str(bin_/'bear-clean'), 'undo'], cwd=clone, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert tree_state(data) == before and tree_state(data, hidden=True) == before
