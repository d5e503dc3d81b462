"""Every notebook in nbs/ runs top to bottom (its cells are tests), in the small CI mode (BEAR_SMALL=1:
few images, small size, one epoch). app.ipynb, the page Voilà serves, is driven by the browser test instead."""
import os, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT

NOTEBOOKS = sorted(p.name for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))

@pytest.mark.parametrize('nb', NOTEBOOKS)
def test_notebook_runs(nb):
    r = subprocess.run([str(Path(sys.executable).parent/'nbdev-test'), f'nbs/{nb}', '--verbose'], cwd=ROOT,
                       env={**os.environ, 'BEAR_SMALL': '1'}, capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
