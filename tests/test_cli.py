"bear-predict, as a script or a check calls it: installed in .venv/bin, one line per file, errors reported, exit status."
import json, subprocess, sys
from pathlib import Path
from PIL import Image
from conftest import BEAR_DATA, ROOT, needs_bear_data

BIN = Path(sys.executable).parent

def bear_predict(*args):
    return subprocess.run([str(BIN/'bear-predict'), *map(str, args)], capture_output=True, text=True, cwd=ROOT)

@needs_bear_data
def test_predicts_grizzly_as_json():
    r = bear_predict('--json', BEAR_DATA/'grizzly'/'00000001.jpg')
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout)
    assert line['label'] == 'grizzly' and line['error'] is None
    assert set(line['probs']) == {'black', 'grizzly', 'teddy'}
    assert abs(sum(line['probs'].values()) - 1) < 1e-4 and line['probability'] == max(line['probs'].values())

def test_folder_with_a_bad_file_reports_it_and_goes_on(tmp_path):
    (tmp_path/'sub').mkdir()
    Image.new('RGB', (300, 200), (120, 80, 40)).save(tmp_path/'sub'/'photo.jpg;w=960', 'JPEG')
    (tmp_path/'notes.jpg').write_text('not a photo')
    r = bear_predict('--json', tmp_path)
    lines = {Path(l['path']).name: l for l in map(json.loads, r.stdout.splitlines())}
    assert set(lines) == {'photo.jpg;w=960', 'notes.jpg'}
    assert lines['photo.jpg;w=960']['error'] is None and lines['photo.jpg;w=960']['label'] in ('black', 'grizzly', 'teddy')
    assert 'not an image' in lines['notes.jpg']['error'] and lines['notes.jpg']['label'] is None
    assert r.returncode != 0

def test_plain_output_is_one_line_per_file(tmp_path):
    for i in range(3): Image.new('RGB', (64, 64), (40*i, 90, 200)).save(tmp_path/f'{i}.png')
    r = bear_predict(tmp_path)
    assert r.returncode == 0, r.stderr
    assert [l.split('\t')[0] for l in r.stdout.splitlines()] == [str(tmp_path/f'{i}.png') for i in range(3)]
