"""The notebooks as tests, with nbval: `pytest --nbval-lax nbs/` (tests/test_notebooks.py runs it one notebook at a time).

Every code cell nbdev-test would run is run in one kernel per notebook (nbdev's own rule picks them: `#| eval: false`
and the `tst_flags` of pyproject.toml skip a cell); a cell that raises fails. The cells marked `# NBVAL_CHECK_OUTPUT`
must also print what the notebook shows, after the substitutions of `nbs/sanitize.cfg` (timings, temporary paths,
versions): a changed recipe or message fails until the notebook is run again and its outputs committed.
Hermetic by default, as CI: `BEAR_SMALL=1` (a few photos, tiny trainings), `IN_TEST=1` (the closing
`nbdev_export()` cells do nothing)."""
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault('BEAR_SMALL', '1')   # the kernel inherits this process's environment
os.environ['IN_TEST'] = '1'
collect_ignore = ['app.ipynb']             # the page Voilà serves: the browser tests drive it
collect_ignore_glob = ['_*.ipynb', '.ipynb_checkpoints/*']

def pytest_configure(config):
    o = config.option
    if getattr(o, 'nbval_sanitize_with', 'absent') is None: o.nbval_sanitize_with = str(HERE/'sanitize.cfg')
    if hasattr(o, 'nbval_current_env') and not getattr(o, 'nbval_kernel_name', None):
        o.nbval_current_env = True   # this Python's kernel, whatever kernelspecs are installed

def _nbdev_runs(path:Path)->set:
    "The ids of the cells nbdev-test would run in the notebook at `path`."
    from nbdev.config import get_config
    from nbdev.test import nb_test_cells
    flags = get_config(path=path).tst_flags
    return {c.id for c in nb_test_cells(path, flags.split() if isinstance(flags, str) else flags)}

def pytest_collection_modifyitems(config, items):
    runs = {}
    for item in items:
        cell = getattr(item, 'cell', None)
        if cell is None or not hasattr(item, 'options'): continue   # not an nbval cell
        path = Path(str(item.parent.fspath))
        if path not in runs: runs[path] = _nbdev_runs(path)
        if cell.get('id') not in runs[path]: item.options['skip'] = True
        # nbdev-clean drops execution counts and keeps outputs; nbval would take such a cell for one never run
        # ("Unrun reference cell has outputs") and compare nothing: its outputs are the committed run's
        if cell.get('outputs') and cell.get('execution_count') is None: cell['execution_count'] = 1
