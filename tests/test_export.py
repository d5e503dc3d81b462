"bear_app/ is generated from nbs/: it must be exactly what nbdev-export makes."
import filecmp, shutil, subprocess, sys
from pathlib import Path
from conftest import ROOT

def test_library_is_what_nbdev_export_makes(tmp_path):
    for p in ['nbs', 'pyproject.toml']: (shutil.copytree if (ROOT/p).is_dir() else shutil.copy)(ROOT/p, tmp_path/p)
    (tmp_path/'bear_app').mkdir()
    shutil.copy(ROOT/'bear_app'/'__init__.py', tmp_path/'bear_app'/'__init__.py')
    subprocess.run([str(Path(sys.executable).parent/'nbdev-export')], cwd=tmp_path, check=True, capture_output=True)
    made = sorted(p.name for p in (tmp_path/'bear_app').glob('*.py'))
    committed = sorted(p.name for p in (ROOT/'bear_app').glob('*.py'))
    assert made == committed, f"modules differ: nbdev-export makes {made}, bear_app/ holds {committed}"
    stale = [n for n in made if not filecmp.cmp(tmp_path/'bear_app'/n, ROOT/'bear_app'/n, shallow=False)]
    assert not stale, f"bear_app/{stale} differ from what nbdev-export makes of nbs/: run nbdev-export and commit"
