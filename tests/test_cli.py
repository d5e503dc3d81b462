"bear-predict, as a script or a check calls it: installed in .venv/bin, one line per file as each is done, errors reported, exit status."
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import numpy as np
from PIL import Image
import bear_app
from conftest import BEAR_DATA, CASES, ROOT, needs_bear_data, needs_cases

BIN = Path(sys.executable).parent
CLASS_NAME = re.compile(r'\b\w*(Error|Exception|Warning|Interrupt)\b|Traceback')

def bear_predict(*args, env=None):
    return subprocess.run([str(BIN/'bear-predict'), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})

def photos(folder:Path, n:int, seed:int=0)->list:
    "`n` generated photo-like JPEGs in `folder`."
    rng = np.random.default_rng(seed); folder.mkdir(parents=True, exist_ok=True)
    for i in range(n): Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(folder/f'photo_{i}.jpg')
    return sorted(folder.glob('photo_*.jpg'))

def one_line_usage_error(r, *words):
    "The command refused to run: exit 2, one line on stderr holding `words`, nothing on stdout, no traceback."
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == '' and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not CLASS_NAME.search(r.stderr), r.stderr
    for w in words: assert w in r.stderr, (w, r.stderr)

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
    assert r.returncode == 1

def test_plain_output_is_one_line_per_file(tmp_path):
    for i in range(3): Image.new('RGB', (64, 64), (40*i, 90, 200)).save(tmp_path/f'{i}.png')
    r = bear_predict(tmp_path)
    assert r.returncode == 0, r.stderr
    assert [l.split('\t')[0] for l in r.stdout.splitlines()] == [str(tmp_path/f'{i}.png') for i in range(3)]

@needs_cases
def test_every_awkward_file_gets_its_own_line_and_the_run_completes(tmp_path):
    "Every file of cases/images/ plus good photos: one JSON line each, in words, no traceback, exit 1 for the failures."
    for f in (CASES/'images').iterdir(): shutil.copy(f, tmp_path)
    good = photos(tmp_path, 4)
    r = bear_predict('--json', tmp_path)
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert sorted(l['path'] for l in lines) == sorted(str(f) for f in tmp_path.iterdir())
    assert all(l['error'] is None for l in lines if Path(l['path']) in good)
    errors = [l['error'] for l in lines if l['error']]
    assert errors and r.returncode == 1
    assert not [e for e in errors if CLASS_NAME.search(e)], errors
    assert 'Traceback' not in r.stderr and not CLASS_NAME.search(r.stderr), r.stderr

STREAM = r'''
import sys
folder = sys.argv[1]
def seen(event, args):
    if event == 'open' and str(args[0]).startswith(folder): sys.stdout.write(f'#open {args[0]}\n'); sys.stdout.flush()
sys.addaudithook(seen)
from bear_app.predict import main
sys.exit(main(['--json', folder]))
'''

@needs_cases
def test_lines_are_printed_as_files_finish(tmp_path):
    "The first answer is on stdout before the last file of the run is even opened (an audit hook logs each open in the same stream)."
    for f in (CASES/'images').iterdir(): shutil.copy(f, tmp_path)
    photos(tmp_path, 4)
    r = subprocess.run([sys.executable, '-c', STREAM, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    out = r.stdout.splitlines()
    last = str(sorted(tmp_path.iterdir())[-1])
    first_answer = next(i for i, l in enumerate(out) if not l.startswith('#open'))
    assert first_answer < out.index(f'#open {last}'), out[:first_answer + 1]
    assert len([l for l in out if not l.startswith('#open')]) == len(list(tmp_path.iterdir()))

@needs_cases
def test_mac_folder_hidden_files_are_skipped():
    r = bear_predict('--json', CASES/'predict'/'mac-folder')
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(Path(json.loads(l)['path']).name for l in r.stdout.splitlines()) == ['walk_01.jpg', 'walk_02.jpg']

@needs_cases
def test_git_lfs_pointer_in_place_of_the_model(tmp_path):
    shutil.copy(CASES/'predict'/'bear_model.pkl.lfs-pointer', tmp_path/'bear_model.pkl')
    good = photos(tmp_path/'in', 1)
    one_line_usage_error(bear_predict('--model', tmp_path/'bear_model.pkl', good[0]), 'Git LFS pointer', 'git lfs pull')
    shutil.copy(CASES/'predict'/'bear_model.pkl.lfs-pointer', tmp_path/'other.onnx')
    one_line_usage_error(bear_predict('--model', tmp_path/'other.onnx', good[0]), 'other.onnx', 'Git LFS pointer', 'git lfs pull')

def test_usage_errors_are_one_line_naming_the_file_and_the_fix(tmp_path):
    good = photos(tmp_path/'in', 1)
    one_line_usage_error(bear_predict('--model', tmp_path/'none.onnx', good[0]), str(tmp_path/'none.onnx'), 'bear-train')
    one_line_usage_error(bear_predict(tmp_path/'no-such-folder'), str(tmp_path/'no-such-folder'))
    (tmp_path/'empty').mkdir(); (tmp_path/'empty'/'.DS_Store').write_bytes(b'\0')
    one_line_usage_error(bear_predict(tmp_path/'empty'), str(tmp_path/'empty'), 'no files')
    one_line_usage_error(bear_predict('--colour', good[0]), '--colour', '--help')
    ini = tmp_path/'settings.ini'
    ini.write_text("[categories]\nblack = black bear\n[train]\nepochs = lots\n")
    one_line_usage_error(bear_predict(good[0], env={'BEAR_SETTINGS': str(ini)}), str(ini), "'lots' is not a whole number")

def test_version():
    r = bear_predict('--version')
    assert r.returncode == 0 and r.stdout.strip() == f'bear-predict {bear_app.__version__}'
