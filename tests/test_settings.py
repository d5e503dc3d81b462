"""settings.ini as people edit it, read by the one reader (`bear_app.config.read_settings`) for every command, the app's
server, the monitor and the tests: Notepad's byte-order mark and CRLF, a `%` in the title, `~` in a path, a file saved
as Latin-1, a number out of range. Cases from ../shared/cases/settings/ (skipped when absent)."""
import os, re, shutil, subprocess, urllib.request
from pathlib import Path
import pytest
from conftest import CASES, ROOT
from test_cli import BIN, photos
from test_commands import said_once
from bear_app.config import SettingsError, read_settings
from bear_app.monitor import monitor_settings
from bear_app.serve import app_config, app_settings
from bear_app.testing import settings_copy

SETTINGS = CASES/'settings'
needs_settings_cases = pytest.mark.skipif(not SETTINGS.is_dir(), reason=f"the settings cases are not at {SETTINGS}")
NOTEPAD_TITLE = '100% bears, or not?'

@needs_settings_cases
def test_a_notepad_file_reads_like_any_other_and_the_title_is_shown_as_written():
    raw = (SETTINGS/'settings_notepad.ini').read_bytes()
    assert raw.startswith(b'\xef\xbb\xbf') and b'\r\n' in raw and b'%' in raw   # the case is what it says
    s = read_settings(SETTINGS/'settings_notepad.ini', env={})
    assert s.vocab == ['black', 'grizzly', 'teddy'] and s.title == NOTEPAD_TITLE
    assert app_settings(SETTINGS/'settings_notepad.ini')['title'] == NOTEPAD_TITLE
    c = app_config(settings=app_settings(SETTINGS/'settings_notepad.ini'))        # what the server is configured with
    assert c.VoilaConfiguration.resources['metadata']['name'] == NOTEPAD_TITLE

@needs_settings_cases
def test_bear_app_starts_with_a_notepad_file(tmp_path):
    "The server reads the Notepad file (BOM, CRLF, `%`) and starts; the page's title is the title as written."
    from test_browser import free_port, server_env, start_server, stop_server
    ini = tmp_path/'settings.ini'   # the case, with no warm kernels and the real model folder (CRLF kept)
    ini.write_bytes((SETTINGS/'settings_notepad.ini').read_bytes().rstrip(b'\r\n') + b'\r\nwarm_kernels = 0\r\n'
                    + f'[paths]\r\nmodels = {ROOT/"models"}\r\n'.encode())
    port = free_port()
    proc = start_server([str(BIN/'bear-app'), '--no-browser', f'--port={port}'], server_env(tmp_path, ini), port, tmp_path/'server.log')
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=120) as r: page = r.read().decode()
        assert re.search(r'<title>\s*100% bears, or not\?\s*</title>', page), page[:2000]
    finally: stop_server(proc)

@needs_settings_cases
def test_tilde_is_the_home_folder_never_a_folder_named_tilde(tmp_path, monkeypatch):
    home, proj = tmp_path/'home', tmp_path/'project'
    proj.mkdir(); shutil.copy(SETTINGS/'settings_tilde.ini', proj/'settings.ini')
    monkeypatch.setenv('HOME', str(home))
    assert read_settings(proj/'settings.ini', env={}).data_path == home/'bears'
    for i, cat in enumerate(('black', 'grizzly', 'teddy')): photos(tmp_path/'mine'/cat, 2, seed=i)
    env = {**os.environ, 'HOME': str(home), 'BEAR_SETTINGS': str(proj/'settings.ini')}
    env.pop('BEAR_DATA', None)
    r = subprocess.run([str(BIN/'bear-gather'), '--from-folder', str(tmp_path/'mine'), '--quiet'], cwd=proj, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(list((home/'bears'/'black').iterdir())) == 2
    assert not any(p.name == '~' for p in tmp_path.rglob('*')), sorted(tmp_path.rglob('*'))

def latin1(folder:Path, text:str="[categories]\nours = ours bruns\nchat = chat de gouttière\n")->Path:
    (folder/'settings.ini').write_bytes(text.encode('latin-1')); return folder/'settings.ini'

def test_a_latin1_file_is_refused_in_one_line_naming_the_file_and_the_fix(tmp_path):
    with pytest.raises(SettingsError) as e: read_settings(latin1(tmp_path), env={})
    assert str(tmp_path/'settings.ini') in str(e.value) and 'line 3' in str(e.value) and 'save the file as UTF-8' in str(e.value)

def test_a_utf16_file_is_called_utf16_not_latin1(tmp_path):
    (tmp_path/'settings.ini').write_text("[categories]\nours = ours bruns\n", encoding='utf-16')   # Notepad's "Unicode"
    with pytest.raises(SettingsError) as e: read_settings(tmp_path/'settings.ini', env={})
    assert str(tmp_path/'settings.ini') in str(e.value) and 'UTF-16' in str(e.value) and 'save it as UTF-8' in str(e.value)
    assert 'Latin-1' not in str(e.value), str(e.value)

@pytest.mark.parametrize('text, words', [
    ("[categories]\nbear = bear\n[train]\nepochs = 3\nseed = 1\n\nepochs = 5\n", "[train] epochs is set twice, on lines 4 and 7; keep one"),
    ("[categories]\nbear = bear\ncat = cat\nbear = brown bear\n", "[categories] bear is set twice, on lines 2 and 4"),
    ("[categories]\nbear = bear\n[app]\ntitle = Bears\n[categories]\ncat = cat\n", "[categories] appears twice, on lines 1 and 5")])
def test_a_repeated_key_or_section_is_named_with_both_lines(tmp_path, text, words):
    (tmp_path/'settings.ini').write_text(text)
    with pytest.raises(SettingsError) as e: read_settings(tmp_path/'settings.ini', env={})
    assert str(e.value).startswith(f"{tmp_path/'settings.ini'}: ") and words in str(e.value), str(e.value)

def test_bear_settings_naming_a_folder_says_so_and_names_the_file_inside(tmp_path):
    (tmp_path/'settings.ini').write_text("[categories]\nbear = bear\n")
    r = subprocess.run([str(BIN/'bear-monitor'), 'versions'], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'BEAR_SETTINGS': str(tmp_path)})
    said_once(r, 2, f"{tmp_path} is a folder", str(tmp_path/'settings.ini'))
    assert 'no such file' not in r.stderr, r.stderr
    with pytest.raises(SettingsError, match='is a folder'): read_settings(tmp_path, env={})

def test_out_of_range_numbers_are_refused_naming_file_key_and_fix(tmp_path):
    for text, words in [("[app]\nmax_visitors = 0\n", "[app] max_visitors = '0' is not a whole number of at least 1, e.g. `max_visitors = 8`"),
                        ("[app]\nwarm_kernels = -1\n", "warm_kernels = '-1' is not a whole number of at least 0"),
                        ("[monitor]\nlow_confidence = 60\n", "low_confidence = '60' is not a number from 0 to 1"),
                        ("[monitor]\nretention_days = -1\n", "retention_days = '-1' is not a number of at least 0"),
                        ("[train]\nvalid_pct = 1\n", "valid_pct = '1' is not a fraction between 0 and 1")]:
        (tmp_path/'settings.ini').write_text("[categories]\nbear = bear\n" + text)
        for read in (lambda p: read_settings(p, env={}), app_settings, lambda p: monitor_settings(p, env={})):
            with pytest.raises(SettingsError) as e: read(tmp_path/'settings.ini')
            assert str(e.value).startswith(f"{tmp_path/'settings.ini'}: ") and words in str(e.value), str(e.value)

FIRST = {'bear-clean': ['undo'], 'bear-monitor': ['versions'], 'bear-predict': ['{photo}']}   # what each needs before it reads settings

@pytest.mark.parametrize('cmd', ['bear-gather', 'bear-train', 'bear-clean', 'bear-predict', 'bear-app', 'bear-monitor'])
def test_every_command_refuses_a_latin1_file_with_status_2(cmd, tmp_path):
    ini, photo = latin1(tmp_path), photos(tmp_path/'in', 1)[0]
    r = subprocess.run([str(BIN/cmd), *(a.format(photo=photo) for a in FIRST.get(cmd, []))], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**os.environ, 'BEAR_SETTINGS': str(ini)})
    said_once(r, 2, str(ini), 'save the file as UTF-8')

@pytest.mark.parametrize('cmd', ['bear-app', 'bear-predict'])
def test_no_visitors_is_refused_before_anything_runs(cmd, tmp_path):
    (tmp_path/'settings.ini').write_text("[categories]\nbear = bear\n[app]\nmax_visitors = 0\n")
    photo = photos(tmp_path/'in', 1)[0]
    r = subprocess.run([str(BIN/cmd), *(a.format(photo=photo) for a in FIRST.get(cmd, []))], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**os.environ, 'BEAR_SETTINGS': str(tmp_path/'settings.ini')})
    said_once(r, 2, str(tmp_path/'settings.ini'), 'max_visitors', 'at least 1')

def test_settings_copy_goes_through_the_reader(tmp_path):
    (tmp_path/'src').mkdir(); (tmp_path/'out').mkdir()
    (tmp_path/'src'/'settings.ini').write_bytes('\ufeff[categories]\r\nbear = bear\r\n[app]\r\ntitle = 50% off\r\n[paths]\r\ndata = ~/x\r\n'.encode())
    s = read_settings(settings_copy(tmp_path/'out', tmp_path/'src'/'settings.ini', max_visitors=2), env={})
    assert (s.title, s.app.max_visitors, s.data_path) == ('50% off', 2, Path.home()/'x')
    latin1(tmp_path/'src')
    with pytest.raises(SettingsError, match='save the file as UTF-8'): settings_copy(tmp_path/'out', tmp_path/'src'/'settings.ini')

def koala_settings(folder:Path)->Path:
    "The project's settings with a category added since the model was trained (no retraining)."
    ini = settings_copy(folder)
    ini.write_text(ini.read_text().replace('[categories]\n', '[categories]\nkoala = koala bear\n', 1))
    return ini

def test_a_category_added_without_retraining_is_said_once_with_the_fix(tmp_path):
    ini = koala_settings(tmp_path)
    assert 'koala' in read_settings(ini, env={}).vocab
    good = photos(tmp_path/'in', 3)
    r = subprocess.run([str(BIN/'bear-predict'), str(tmp_path/'in')], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env={**os.environ, 'BEAR_SETTINGS': str(ini)})
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(good), (r.stdout, r.stderr)
    notes = [l for l in r.stderr.splitlines() if 'koala' in l]
    assert len(notes) == 1 and 'was not trained on' in notes[0] and 'run bear-train' in notes[0], r.stderr
    assert 'koala' not in r.stdout   # it answers in its own categories

def test_the_app_offers_only_feedback_the_model_can_store(tmp_path):
    "With a category the model does not know in settings.ini, every choice under an answer can still be saved."
    from bear_app.app import BearApp
    from bear_app.monitor import PredictionLog, record_feedback
    from bear_app.predict import Predictor
    s = read_settings(koala_settings(tmp_path), env={})
    pred = Predictor(ROOT/'models'/'bear_model.onnx')
    r = pred.predict(photos(tmp_path/'in', 1)[0])
    log = PredictionLog(tmp_path/'log.sqlite')
    app = BearApp(predictor=pred, settings=s, monitor=None)
    row = app.feedback_row({**r, 'name': 'photo.jpg', 'log_id': 1})
    import ipywidgets as widgets
    def buttons(w): return [w.description] if isinstance(w, widgets.Button) else [d for c in getattr(w, 'children', ()) for d in buttons(c)]
    choices = buttons(row)   # the Right? row's buttons
    assert 'koala' not in choices and choices == ['yes', *pred.vocab, 'not a bear'], choices
    for said in choices:
        log_id = log.add({'label': r['label'], 'probability': r['probability'], 'probs': r['probs'], 'ood': r['ood']})
        record_feedback(log, log_id, said)   # raises if the log could not store it

def test_one_reader_of_settings():
    "Only bear_app.config parses settings.ini; every other module asks it."
    assert [p.name for p in sorted((ROOT/'bear_app').glob('*.py')) if 'configparser' in p.read_text()] == ['config.py']
