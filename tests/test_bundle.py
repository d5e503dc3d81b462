"The exported model as one bundle: a reader runs only files of one export, needs only the files it runs, and says where its cache goes."
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
from PIL import Image
from conftest import ROOT
from bear_app.bundle import FILES, ModelBundle, ModelError, cached_model

SHIPPED = ModelBundle(ROOT/'models'/'bear_model')
needs_model = pytest.mark.skipif(not SHIPPED.card_path.exists(), reason="models/bear_model.json not found (run bear-train)")

def copy_of_shipped(folder:Path)->ModelBundle:
    b = ModelBundle(folder/'bear_model')
    folder.mkdir(parents=True, exist_ok=True)
    for r in ('card', *FILES): shutil.copy(SHIPPED.path(r), b.path(r))
    return b

def bear_predict(*args):
    return subprocess.run([str(Path(sys.executable).parent/'bear-predict'), *map(str, args)], capture_output=True, text=True, cwd=ROOT)

@needs_model
def test_the_shipped_card_names_every_file_with_its_hash():
    card = SHIPPED.read_card()
    assert card['bundle']['format'] == 2 and set(card['bundle']['files']) >= {'learner', 'onnx', 'detector', 'reference'}
    assert SHIPPED.locate(list(FILES), card) == {r: SHIPPED.path(r) for r in card['bundle']['files']}

@needs_model
def test_a_damaged_learner_beside_an_intact_onnx_does_not_stop_prediction(tmp_path):
    b = copy_of_shipped(tmp_path/'models')
    b.path('learner').write_bytes(b.path('learner').read_bytes()[:1000])      # cut off
    Image.new('RGB', (200, 150), (90, 60, 30)).save(tmp_path/'a.jpg')
    r = bear_predict('--json', '--model', b.path('onnx'), tmp_path/'a.jpg')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['error'] is None and json.loads(r.stdout)['ood'] is not None

@needs_model
def test_files_of_two_exports_are_refused_in_one_line_with_the_fix(tmp_path):
    b = copy_of_shipped(tmp_path/'models')
    b.path('detector').write_text(json.dumps({**json.loads(b.path('detector').read_text()), 'threshold': 0.1}))   # another run's detector
    Image.new('RGB', (200, 150), (90, 60, 30)).save(tmp_path/'a.jpg')
    r = bear_predict('--model', b.path('onnx'), tmp_path/'a.jpg')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'bear_model.ood.json' in r.stderr and 're-run bear-train' in r.stderr and 'Traceback' not in r.stderr

def test_an_unwritable_cache_is_named_with_BEAR_CACHE(tmp_path, monkeypatch, capsys):
    (tmp_path/'file').write_text('a file where a folder should be')
    monkeypatch.setenv('BEAR_CACHE', str(tmp_path/'file'/'cache'))
    with pytest.raises(ModelError, match='BEAR_CACHE'): cached_model('abc')
    monkeypatch.delenv('BEAR_CACHE'); monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path/'file'))   # a home that cannot be written
    monkeypatch.setattr('tempfile.tempdir', str(tmp_path/'tmp')); (tmp_path/'tmp').mkdir()
    b = cached_model('abc')
    assert b.folder == tmp_path/'tmp'/f'bear_app-{os.getuid()}'/'abc' and b.folder.is_dir()
    err = capsys.readouterr().err
    assert 'BEAR_CACHE' in err and str(tmp_path/'tmp') in err and 'conver' in err
