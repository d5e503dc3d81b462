"""The monitor: a prediction log several processes write at once, a report whose drift alarm rings on a shifted
domain and not on bears, feedback and consent, review decisions that bear-clean applies and undoes, shadow mode."""
import io, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import BEAR_DATA, ROOT, needs_bear_data
from bear_app.images import open_image, visible_files
from bear_app.monitor import (MonitorSettings, Monitor, PredictionLog, CandidateError, InboxFull, NOT_ANY, generated_images, image_facts,
                              keep_model_version, main, model_versions, monitor_settings, record_feedback, report,
                              review_rows, share_photo, shadow_stats, unshare_photo, write_review)

BIN = Path(sys.executable).parent
ONNX = ROOT/'models'/'bear_model.onnx'
needs_model = pytest.mark.skipif(not ONNX.exists(), reason="models/bear_model.onnx not found (run bear-train)")

def card_and_ood(model=ONNX):
    return json.loads(model.with_suffix('.json').read_text()), json.loads(model.with_name(model.stem + '.ood.json').read_text())

def bear_photos(per_category=10):
    return [f for c in ('black', 'grizzly', 'teddy') for f in visible_files([BEAR_DATA/c])[:per_category]]

def settings_for(tmp:Path, **kw)->MonitorSettings:
    return MonitorSettings(**{'log': tmp/'logs'/'predictions.sqlite', 'data': tmp/'data', 'inbox': tmp/'data'/'.inbox', **kw})

@pytest.fixture(scope='module')
def predictor():
    from bear_app.predict import Predictor
    return Predictor(ONNX, threads=1)

def random_jpeg(seed=0, size=(300, 200))->bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, 'JPEG', quality=95)
    return buf.getvalue()

# --- the log ---------------------------------------------------------------------------------------------------

def test_four_processes_writing_at_once_lose_nothing(tmp_path):
    "4 real processes, 50 answers each, one by one, into a log none of them has created yet: 200 rows, no lock errors."
    path, go = tmp_path/'logs'/'predictions.sqlite', time.time() + 3
    code = f'from bear_app.monitor import _write_many; _write_many({str(path)!r}, 50, {go})'
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    ps = [subprocess.Popen([sys.executable, '-c', code], stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    errs = [p.communicate(timeout=120)[1] for p in ps]
    assert [p.returncode for p in ps] == [0] * 4, errs
    assert not any('locked' in e for e in errs), errs
    log = PredictionLog(path)
    assert log.count() == 200
    assert log.con.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'

def test_the_log_has_no_place_for_a_photo(tmp_path):
    log = PredictionLog(tmp_path/'p.sqlite')
    cols = [r[1] for r in log.con.execute('PRAGMA table_info(predictions)')]
    types = [r[2] for r in log.con.execute('PRAGMA table_info(predictions)')]
    assert 'BLOB' not in types and not {'image', 'photo', 'thumbnail'} & set(cols)
    with pytest.raises(ValueError, match='unknown log column'): log.add({'image': b'\xff\xd8'})

def test_retention_deletes_old_rows_but_not_photos_waiting_for_review(tmp_path):
    log = PredictionLog(tmp_path/'p.sqlite')
    old = '2020-01-01T00:00:00.000+00:00'
    (tmp_path/'data'/'.inbox').mkdir(parents=True); (tmp_path/'data'/'.inbox'/'a.jpg').write_bytes(b'x')
    log.add([{'time': old, 'label': 'teddy'}, {'time': old, 'label': 'black', 'shared': '.inbox/a.jpg'},
             {'time': old, 'label': 'grizzly', 'shared': '.inbox/reviewed.jpg'}, {'label': 'black'}])
    assert log.prune(90, data=tmp_path/'data') == 2
    assert sorted(r['label'] for r in log.rows()) == ['black', 'black']
    log.close()
    PredictionLog(tmp_path/'p.sqlite', retention_days=1)        # opening with a retention period prunes too
    assert PredictionLog(tmp_path/'p.sqlite').count() == 2

def test_settings_without_a_monitor_section_use_the_defaults(tmp_path):
    (tmp_path/'settings.ini').write_text("[categories]\ncat = cat\n[paths]\ndata = pets\n")
    ms = monitor_settings(tmp_path/'settings.ini', env={})
    assert (ms.log, ms.inbox, ms.retention_days, ms.candidate) == (tmp_path/'logs'/'predictions.sqlite', tmp_path/'pets'/'.inbox', 90, None)
    (tmp_path/'settings.ini').write_text("[categories]\ncat = cat\n[monitor]\ninbox = ../elsewhere\n")
    with pytest.raises(ValueError, match='inside the data folder'): monitor_settings(tmp_path/'settings.ini', env={})
    (tmp_path/'settings.ini').write_text("[categories]\ncat = cat\n[monitor]\nretention_days = -1\n")   # would empty the log
    with pytest.raises(ValueError, match='retention_days'): monitor_settings(tmp_path/'settings.ini', env={})

# --- the report and its drift alarm ------------------------------------------------------------------------------

@needs_model
@needs_bear_data
def test_bear_photos_raise_no_alarm(tmp_path, predictor):
    ms = settings_for(tmp_path, data=BEAR_DATA)
    mon = Monitor(predictor, ms.log, settings=ms, source='cli')
    photos = bear_photos()
    mon.predict_many(photos)
    rep = report(mon.log, *card_and_ood(), ms)
    assert rep['n'] == len(photos) == 30
    assert sum(rep['labels'].values()) + round(rep['ood_rate'] * rep['n']) == 30
    assert rep['class_mix']['psi'] < ms.psi_alarm
    assert rep['drift'] is False, rep['alarms']

@needs_model
@needs_bear_data
def test_mostly_non_bears_raise_the_alarm(tmp_path, predictor):
    ms = settings_for(tmp_path, data=BEAR_DATA)
    mon = Monitor(predictor, ms.log, settings=ms)
    for b in generated_images(24): mon.predict(b)
    mon.predict_many(bear_photos(2))
    rep = report(mon.log, *card_and_ood(), ms)
    assert rep['n'] == 30 and rep['ood_rate'] > 0.5
    assert rep['drift'] is True
    assert any('not-a-bear rate' in a for a in rep['alarms'])

ELSEWHERE, NOT_BEARS = BEAR_DATA.parent/'bears-elsewhere', BEAR_DATA.parent/'not-bears'

def predict_log_report(tmp:Path, photos:list)->dict:
    "`bear-predict --log L --json PHOTOS...`, then `bear-monitor report --log L --json`: the report."
    log = tmp/'predictions.sqlite'
    p = subprocess.run([str(BIN/'bear-predict'), '--log', str(log), '--json', *map(str, photos)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    r = subprocess.run([str(BIN/'bear-monitor'), 'report', '--log', str(log), '--json'], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

@needs_model
@pytest.mark.skipif(not (ELSEWHERE.is_dir() and NOT_BEARS.is_dir()), reason=f"{ELSEWHERE} or {NOT_BEARS} not found")
def test_drift_alarm_is_quiet_on_bears_from_elsewhere_and_rings_on_not_bears(tmp_path):
    "A normal day from another source (every photo of bears-elsewhere): no drift; 20 cats and dogs: drift at the first verdict."
    bears = visible_files([ELSEWHERE/c for c in ('black', 'grizzly', 'teddy')])
    rep = predict_log_report(tmp_path, bears)
    assert rep['n'] == len(bears) >= 100 and rep['drift'] is False, rep['alarms']
    pets = [f for c in ('cats', 'dogs') for f in visible_files([NOT_BEARS/c])[:10]]
    (tmp_path/'pets').mkdir()
    rep = predict_log_report(tmp_path/'pets', pets)
    assert rep['n'] == 20 == rep['min_n'] and rep['drift'] is True and any('not-a-bear rate' in a for a in rep['alarms']), rep

def test_a_class_mix_far_from_training_raises_the_alarm(tmp_path):
    "Only grizzlies, confidently, on a model trained on three even classes: the PSI alarm."
    log = PredictionLog(tmp_path/'p.sqlite')
    log.add([{'label': 'grizzly', 'probability': 0.95, 'ood': False, 'model': 'v1'} for _ in range(40)])
    card = {'vocab': ['black', 'grizzly', 'teddy'], 'class_counts': {'black': 100, 'grizzly': 100, 'teddy': 100}}
    ood = {'measured': {'in_domain_cv_pass': 0.99}, 'calibration': {'n_images': 300}}
    rep = report(log, card, ood, settings_for(tmp_path))
    assert rep['drift'] is True and rep['class_mix']['psi'] > 0.25 and 'class mix PSI' in rep['alarms'][0]
    few = PredictionLog(tmp_path/'few.sqlite')
    few.add([{'label': 'grizzly', 'probability': 0.95, 'ood': False} for _ in range(5)])
    assert report(few, card, ood, settings_for(tmp_path))['drift'] is False        # fewer than min_n: no verdict

@needs_model
@needs_bear_data
def test_bear_predict_log_then_bear_monitor_report_json(tmp_path):
    "The done-when check: `bear-predict --log L --json DIR`, then `bear-monitor report --log L --json`."
    d = tmp_path/'photos'; d.mkdir()
    for f in bear_photos(3): shutil.copy(f, d/f'{f.parent.name}-{f.name}')
    (d/'notes.txt').write_text('not a photo')
    log = tmp_path/'predictions.sqlite'
    p = subprocess.run([str(BIN/'bear-predict'), '--log', str(log), '--json', str(d)], capture_output=True, text=True, cwd=ROOT)
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    answered = sum(1 for l in lines if not l['error'])
    assert answered == 9 and len(lines) == 10
    r = subprocess.run([str(BIN/'bear-monitor'), 'report', '--log', str(log), '--json'], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep['n'] == answered and rep['errors'] == 1
    assert set(rep['labels']) == {'black', 'grizzly', 'teddy'} and isinstance(rep['drift'], bool) and 0 <= rep['ood_rate'] <= 1

def test_report_command_explains_bad_input(tmp_path, capsys):
    assert main(['report', '--log', str(tmp_path/'missing.sqlite')]) == 2
    assert 'No prediction log' in capsys.readouterr().err
    (tmp_path/'junk.sqlite').write_text('this is not a database' * 100)
    assert main(['report', '--log', str(tmp_path/'junk.sqlite')]) == 2
    err = capsys.readouterr().err
    assert 'cannot be used as a prediction log (file is not a database)' in err and 'Traceback' not in err
    assert main(['report', '--since', 'last tuesday']) == 2
    assert 'is not a date like' in capsys.readouterr().err

def test_commands_refuse_what_would_lose_rows_or_crash(tmp_path, capsys):
    "Negative days would delete every row; a folder as the CSV, a model without its card: one line each, nothing lost."
    log = PredictionLog(tmp_path/'p.sqlite')
    log.add([{'label': 'grizzly', 'probability': .9, 'ood': False}] * 3); log.close()
    for days in ('-5', '0'):
        assert main(['prune', '--log', str(tmp_path/'p.sqlite'), '--days', days]) == 2
        assert 'more than 0' in capsys.readouterr().err
    assert PredictionLog(tmp_path/'p.sqlite').count() == 3
    (tmp_path/'folder').mkdir()
    assert main(['review', '--decisions', str(tmp_path/'folder'), '--log', str(tmp_path/'p.sqlite'), '--data', str(tmp_path)]) == 2
    assert main(['review', '--decisions', str(tmp_path/'d.csv'), '--log', str(tmp_path/'p.sqlite'), '--data', str(tmp_path/'nope')]) == 2
    assert main(['report', '--log', str(tmp_path/'p.sqlite'), '--model', str(tmp_path/'nope.onnx')]) == 2
    err = capsys.readouterr().err
    assert 'is a folder' in err and 'no data folder' in err and 'no model card' in err, err
    assert 'Errno' not in err and 'Traceback' not in err, err

# --- feedback, consent, review ---------------------------------------------------------------------------------

def files_holding(roots:list, needles:list, newer_than:float)->list:
    "Files under `roots` changed since `newer_than` that contain any of `needles`."
    hits = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for n in names:
                f = Path(dirpath)/n
                try:
                    st = f.stat()
                    if st.st_mtime < newer_than or st.st_size > 50_000_000 or not f.is_file(): continue
                    b = f.read_bytes()
                except OSError: continue
                if any(x in b for x in needles): hits.append(f)
    return hits

@needs_model
def test_without_consent_no_byte_of_the_photo_is_written(tmp_path, predictor):
    start = time.time() - 1
    ms = settings_for(tmp_path)
    (tmp_path/'data'/'grizzly').mkdir(parents=True)
    photo = random_jpeg(1)
    needles = [photo[i:i + 48] for i in range(600, len(photo) - 48, len(photo) // 8)]
    pixels = open_image(photo).tobytes()
    needles += [pixels[i:i + 48] for i in range(0, len(pixels) - 48, len(pixels) // 4)]
    mon = Monitor(predictor, ms.log, settings=ms)
    r = mon.predict(photo)
    record_feedback(mon.log, r['log_id'], 'grizzly')
    mon.log.close()
    assert ms.log.exists()
    assert files_holding([tmp_path, tempfile.gettempdir()], needles, start) == []
    assert not (tmp_path/'data'/'.inbox').exists()
    row = PredictionLog(ms.log).get(r['log_id'])
    assert (row['truth'], row['shared'], row['width'], row['height']) == ('grizzly', None, 300, 200)

@needs_model
def test_with_consent_the_photo_lands_in_the_inbox(tmp_path, predictor):
    ms = settings_for(tmp_path)
    mon = Monitor(predictor, ms.log, settings=ms)
    photo = random_jpeg(2)
    r = mon.predict(photo)
    dest = share_photo(mon.log, r['log_id'], photo, ms.inbox, ms.data, ms.inbox_quota_mb)
    assert dest.parent == ms.inbox and open_image(dest).size == (300, 200)
    assert mon.log.get(r['log_id'])['shared'] == f'.inbox/{dest.name}'
    with pytest.raises(ValueError, match='not the photo'): share_photo(mon.log, r['log_id'], random_jpeg(3), ms.inbox, ms.data)
    r2 = mon.predict(random_jpeg(4, (900, 900)))
    with pytest.raises(InboxFull, match='inbox is full'):
        share_photo(mon.log, r2['log_id'], random_jpeg(4, (900, 900)), ms.inbox, ms.data, quota_mb=0.05)
    assert sorted(p.name for p in ms.inbox.iterdir()) == [dest.name]        # nothing half-written left behind

def test_the_same_photo_shared_twice_stays_until_both_take_it_back(tmp_path):
    "A visitor uploads one photo twice and shares both answers; unsharing the second keeps the first's photo for review."
    data = tmp_path/'data'
    log = PredictionLog(tmp_path/'p.sqlite')
    photo = random_jpeg(20, (64, 64))
    probs = {'black': .05, 'grizzly': .9, 'teddy': .05}
    row = lambda label: {'label': label, 'probability': .9, 'ood': False, 'probs': probs, **image_facts(open_image(photo), photo)}
    a, b = log.add([row('grizzly'), row('grizzly')])
    record_feedback(log, a, 'teddy')                                  # the correction a person should review
    share_photo(log, a, photo, data/'.inbox', data)
    dest = share_photo(log, b, photo, data/'.inbox', data)
    record_feedback(log, b, 'not a bear')                             # two answers for one file: one decision, the latest
    assert [(r['action'], r['category'], r['reason']) for r in review_rows(log, data)] == \
        [('delete', '', f'prediction #{b}: visitor says none of the categories; the model said grizzly (0.90)')]
    assert unshare_photo(log, b, data)                                # the second answer's box unticked
    assert dest.exists() and log.get(a)['shared'] and not log.get(b)['shared']
    assert [(r['action'], r['category']) for r in review_rows(log, data)] == [('relabel', 'teddy')]
    assert unshare_photo(log, a, data) and not dest.exists()          # the last one out deletes it

def test_feedback_answers(tmp_path):
    log = PredictionLog(tmp_path/'p.sqlite')
    probs = {'black': .1, 'grizzly': .8, 'teddy': .1}
    a, b, c = log.add([{'label': 'grizzly', 'probability': .8, 'ood': False, 'probs': probs},
                       {'label': 'teddy', 'probability': .5, 'ood': True, 'probs': probs}, {'error': 'empty file'}])
    assert record_feedback(log, a, 'yes') == 'grizzly'
    assert record_feedback(log, b, 'yes') == NOT_ANY          # "yes, it is not a bear"
    assert record_feedback(log, a, 'not a bear') == NOT_ANY
    with pytest.raises(ValueError, match='say yes, one of black, grizzly, teddy'): record_feedback(log, a, 'grizly')
    with pytest.raises(ValueError, match='could not be read'): record_feedback(log, c, 'yes')
    with pytest.raises(ValueError, match='no prediction #99'): record_feedback(log, 99, 'yes')

def test_review_decisions_are_applied_and_undone_by_bear_clean(tmp_path):
    data = tmp_path/'data'
    for c in ('black', 'grizzly', 'teddy'): (data/c).mkdir(parents=True)
    Image.new('RGB', (32, 32), 'black').save(data/'black'/'00000001.jpg')
    log = PredictionLog(tmp_path/'p.sqlite')
    cases = [('grizzly', .55, False, 'black'),   # disputed: visitor says black
             ('teddy', .40, True, None),         # flagged not a bear, no answer
             ('black', .52, False, 'yes'),       # unsure, confirmed
             ('black', .99, False, 'yes'),       # confident and confirmed: nothing to review
             ('grizzly', .97, False, None)]      # confident, not shared below
    for k, (label, p, ood, said) in enumerate(cases):
        photo = random_jpeg(10 + k, (64, 64))
        i = log.add({'label': label, 'probability': p, 'ood': ood, 'ood_score': .9 if ood else .1,
                     'probs': {'black': 0, 'grizzly': 0, 'teddy': 0}, **image_facts(open_image(photo), photo)})
        if said: record_feedback(log, i, said)
        if k < 4: share_photo(log, i, photo, data/'.inbox', data)
    rows = review_rows(log, data)
    assert [(r['action'], r['category']) for r in rows] == [('relabel', 'black'), ('delete', ''), ('relabel', 'black')]
    decisions = write_review(rows, tmp_path/'decisions.csv')
    from bear_app.clean import main as clean, tree_state
    before = tree_state(data, hidden=True)
    assert clean(['apply', str(decisions), '--data', str(data)]) == 0
    assert len(list((data/'black').iterdir())) == 3 and len(list((data/'.inbox').iterdir())) == 1   # the confident one waits
    assert review_rows(log, data) == []                                                         # reviewed: gone from the list
    assert clean(['undo', '--data', str(data)]) == 0
    assert tree_state(data, hidden=True) == before

def test_review_command_writes_the_csv(tmp_path, capsys):
    (tmp_path/'data'/'.inbox').mkdir(parents=True)
    Image.new('RGB', (8, 8)).save(tmp_path/'data'/'.inbox'/'a.jpg')
    log = PredictionLog(tmp_path/'p.sqlite')
    log.add({'label': 'teddy', 'probability': .3, 'ood': False, 'shared': '.inbox/a.jpg'})
    assert main(['review', '--decisions', str(tmp_path/'d.csv'), '--log', str(tmp_path/'p.sqlite'), '--data', str(tmp_path/'data')]) == 0
    assert (tmp_path/'d.csv').read_text().splitlines()[1].startswith('.inbox/a.jpg,relabel,teddy,')

# --- versions and shadow mode ----------------------------------------------------------------------------------

@needs_model
def test_kept_version_runs_in_shadow_and_every_row_holds_both_answers(tmp_path, predictor):
    models = tmp_path/'models'; models.mkdir()
    for suf in ('.onnx', '.pkl', '.json', '.ood.json', '.ood.npz'): shutil.copy(ONNX.with_name('bear_model' + suf), models/('bear_model' + suf))
    v = keep_model_version(models/'bear_model.onnx')
    card = json.loads((models/'bear_model.json').read_text())
    assert v.name == f"bear_model-{card['trained_at'][:10].replace('-', '')}-{card['pkl_sha256'][:8]}.onnx"
    assert keep_model_version(models/'bear_model.onnx') == v
    assert [m['name'] for m in model_versions(models)] == [v.stem]
    ms = settings_for(tmp_path)
    mon = Monitor(predictor, ms.log, candidate=v, settings=ms)
    mon.predict_many([ONNX.with_name('bear_model.png')])
    mon.predict(random_jpeg(5))
    rows = mon.log.rows()
    assert len(rows) == 2 and all(r['cand_label'] is not None and r['cand_model'] == r['model'] for r in rows)
    assert rows[0]['cand_probs'] == pytest.approx(rows[0]['probs'], abs=1e-5)
    sh = report(mon.log, *card_and_ood(), ms)['shadow']
    assert len(sh) == 1 and sh[0]['n'] == 2 and sh[0]['agreement'] == 1.0

def settings_with_candidate(tmp:Path, name:str)->Path:
    "The project's settings.ini with `[app] candidate = name`, absolute paths, written into `tmp`."
    text = (ROOT/'settings.ini').read_text().replace('\ncandidate =', f'\ncandidate = {name}')
    text = text.replace('\nmodels = models', f'\nmodels = {ROOT/"models"}').replace('\ndata = ', f'\ndata = {tmp}/data\n# ')
    (tmp/'settings.ini').write_text(text)
    return tmp/'settings.ini'

@needs_model
def test_a_wrong_candidate_name_is_named_and_the_app_still_logs(tmp_path, predictor, monkeypatch, capsys):
    "A typo in `[app] candidate`: bear-predict --log says which setting is wrong; the app logs its answers without it."
    from bear_app.app import BearApp, upload_value
    from bear_app.predict import main as predict
    monkeypatch.setenv('BEAR_SETTINGS', str(settings_with_candidate(tmp_path, 'bear_model-nope')))
    monkeypatch.setenv('BEAR_LOG', str(tmp_path/'log.sqlite'))
    with pytest.raises(CandidateError, match=r'\[app\] candidate = bear_model-nope'): Monitor(predictor)
    assert predict(['--log', str(tmp_path/'log.sqlite'), str(ONNX.with_name('bear_model.png'))]) == 2
    assert 'candidate = bear_model-nope' in capsys.readouterr().err
    app = BearApp(predictor)
    app.log_answers = True                                            # as when BearApp loads its own predictor
    app.btn_upload.value = upload_value([('bear.jpg', random_jpeg(9))])
    app.btn_run.click(); app.settled()
    assert len(PredictionLog(tmp_path/'log.sqlite').rows()) == 1 and len(feedback_rows(app)) == 1

def test_shadow_report_compares_current_and_candidate(tmp_path):
    log = PredictionLog(tmp_path/'p.sqlite')
    row = lambda l, o, cl, co, truth=None: {'model': 'a' * 64, 'cand_model': 'b' * 64, 'label': l, 'ood': o,
                                            'cand_label': cl, 'cand_ood': co, 'probability': .9, 'truth': truth}
    log.add([row('grizzly', False, 'grizzly', False, 'grizzly'), row('black', False, 'grizzly', False, 'grizzly'),
             row('teddy', True, 'teddy', False), row('black', False, 'black', False)])
    [s] = shadow_stats(log.rows())
    assert s['n'] == 4 and s['agreement'] == 0.5
    assert s['ood_rate'] == {'current': 0.25, 'candidate': 0.0}
    assert s['feedback'] == {'n': 2, 'current_accuracy': 0.5, 'candidate_accuracy': 1.0}

# --- the app ---------------------------------------------------------------------------------------------------

def feedback_rows(app)->list:
    "The *Right?* rows on the page, each in its photo's card (None for a card without one)."
    return [c.children[1] if len(c.children) > 1 else None for c in app.out_pl.children]

def tap(row, option:str):
    "Tap the *Right?* button `option` of a feedback row."
    right, *_ = row.children
    next(b for b in right.children[1:] if b.description == option).click()

@needs_model
def test_app_logs_every_answer_and_takes_feedback_and_consent(tmp_path, predictor):
    from bear_app.app import BearApp, upload_value
    ms = settings_for(tmp_path)
    app = BearApp(predictor, monitor=Monitor(predictor, ms.log, settings=ms))
    assert 'version ' + predictor.card['pkl_sha256'][:12] in app.lbl_footer.value
    photo, other = random_jpeg(7), random_jpeg(8)
    app.btn_upload.value = upload_value([('mine.jpg', photo), ('other.jpg', other), ('notes.jpg', b'hello')])
    app.btn_run.click(); app.settled()
    rows = app.monitor.log.rows()
    assert len(rows) == 3 and rows[2]['error'] and all(r['model'] == predictor.card['pkl_sha256'] for r in rows)
    fb = feedback_rows(app)                                           # each photo's card holds its own "Right?"
    assert [c.children[0].value.count('mine.jpg') > 0 for c in app.out_pl.children] == [True, False, False]
    assert fb[0] is not None and fb[1] is not None and fb[2] is None  # none under the unreadable file
    right, thanks, (share_box, status) = fb[0].children[0], fb[0].children[1], fb[0].children[2].children
    assert right.children[0].value == 'Right?' and [b.description for b in right.children[1:]] == ['yes', 'black', 'grizzly', 'teddy', 'not a bear']
    tap(fb[0], 'grizzly'); app.settled()
    assert app.monitor.log.get(rows[0]['id'])['truth'] == 'grizzly'
    assert 'Thanks!' in thanks.value and status.value == ''           # the thanks sits by the answer it thanks for
    tap(fb[1], 'not a bear'); app.settled()
    assert app.monitor.log.get(rows[1]['id'])['truth'] == NOT_ANY
    assert not ms.inbox.exists()                                      # nothing shared yet
    share_box.value = True; app.settled()
    assert [open_image(f).size for f in ms.inbox.iterdir()] == [(300, 200)] and 'review' in status.value
    share_box.value = False; app.settled()                            # consent withdrawn
    assert list(ms.inbox.iterdir()) == [] and app.monitor.log.get(rows[0]['id'])['shared'] is None

def test_app_answers_even_when_the_log_cannot_be_written(tmp_path, monkeypatch):
    "A log path that cannot be opened: the visitor still gets the answer."
    from bear_app.app import BearApp, headline, upload_value
    class Fixed:
        model, card = ONNX, {'pkl_sha256': 'ab' * 32}
        def open(self, data): return open_image(data)
        def predict(self, img): return {'label': 'teddy', 'probability': .8, 'probs': {'teddy': .8}, 'error': None, 'ood': False}
    (tmp_path/'blocker').write_text('a file where the log folder should be')
    monkeypatch.setenv('BEAR_LOG', str(tmp_path/'blocker'/'predictions.sqlite'))
    app = BearApp(Fixed())
    app.log_answers = True                                            # as when BearApp loads its own predictor
    app.btn_upload.value = upload_value([('bear.jpg', random_jpeg(9))])
    app.btn_run.click()
    assert [headline(r, app.not_a_bear) for r in app.results] == ['Prediction: teddy; Probability: 80.0%']
    app.settled()
    assert app.monitor is None and feedback_rows(app) == [None]      # no "Right?" that could not be saved

class Teddy:
    "A stand-in predictor: every photo is a teddy."
    model, card = ONNX, {'pkl_sha256': 'ab' * 32}
    def open(self, data): return open_image(data)
    def predict(self, img): return {'label': 'teddy', 'probability': .8, 'probs': {'teddy': .8}, 'error': None, 'ood': False}

def test_a_locked_log_costs_the_answer_no_time(tmp_path):
    "Another process holds the log's write lock: the answer comes at once; the row is written once the lock is gone."
    import sqlite3, time
    from bear_app.app import BearApp, upload_value
    ms = settings_for(tmp_path)
    app = BearApp(Teddy(), monitor=Monitor(Teddy(), ms.log, settings=ms))
    locker = sqlite3.connect(ms.log, isolation_level=None); locker.execute('BEGIN IMMEDIATE')
    t = time.monotonic()
    app.btn_upload.value = upload_value([('bear.jpg', random_jpeg(9))]); app.btn_run.click()
    assert time.monotonic() - t < 2 and app.results[0]['label'] == 'teddy'
    locker.execute('ROLLBACK'); locker.close(); app.settled()
    assert app.monitor.log.count() == 1

def test_report_reads_a_log_it_may_not_write(tmp_path):
    "`bear-monitor report` opens the log read-only: it works on a log in a folder this user may only read."
    import sqlite3
    d = tmp_path/'ro'; d.mkdir()
    log = PredictionLog(d/'log.sqlite'); log.add({'source': 'app', 'label': 'teddy', 'probability': .9, 'ood': False}); log.close()
    with pytest.raises(sqlite3.OperationalError, match='readonly'): PredictionLog(d/'log.sqlite', readonly=True).add({'label': 'x'})
    cmd = [sys.executable, '-c', 'from bear_app.monitor import main; raise SystemExit(main())', 'report', '--log', str(d/'log.sqlite'), '--json']
    if os.geteuid() == 0:                          # root may write anything: a read-only mount of the log's folder instead
        if not shutil.which('unshare'): pytest.skip('running as root without unshare: cannot make the log read-only')
        cmd = ['unshare', '-m', 'sh', '-c', 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"',
               'sh', str(d), *cmd]
    else:
        for f in d.iterdir(): os.chmod(f, 0o444)
        os.chmod(d, 0o555)
    try: r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    finally: os.chmod(d, 0o755)
    if r.returncode and 'mount' in r.stderr: pytest.skip(f'cannot mount a folder read-only here: {r.stderr[-300:]}')
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)['n'] == 1

def test_a_flood_of_non_images_stops_at_the_log_cap_and_the_app_answers(tmp_path):
    "Two pages sending non-images as fast as they can: the log holds at most `max_rows`, each page at most `log_per_minute`."
    from dataclasses import replace
    from bear_app.app import BearApp, headline, upload_value
    ms = replace(settings_for(tmp_path), max_rows=50, log_per_minute=40)
    apps = [BearApp(Teddy(), monitor=Monitor(Teddy(), ms.log, settings=ms)) for _ in range(2)]
    for k in range(4):
        for app in apps:
            app.btn_upload.value = upload_value([(f'{k}-{i}.jpg', b'not a photo %d' % i) for i in range(20)]); app.btn_run.click()
            assert len(app.results) == 20 and all('not an image' in r['error'] for r in app.results)
    for app in apps: app.settled()
    log = PredictionLog(ms.log)
    assert log.count() == 50                       # the cap: 80 rows were logged, the oldest went
    assert min(r['id'] for r in log.rows()) == 31
    app = apps[0]
    app.btn_upload.value = upload_value([('bear.jpg', random_jpeg(3))]); app.btn_run.click()
    assert headline(app.results[0], app.not_a_bear).startswith('Prediction: teddy')   # still answering
    assert app.results[0]['log_id'] is None        # past its 40 a minute: shown, not logged

def test_a_page_keeps_only_the_photos_on_screen(tmp_path):
    "Every upload used to stay in the kernel for its share box (40 uploads: +37 MB); now only the cards on screen keep theirs."
    from bear_app.app import BearApp, upload_value
    ms = settings_for(tmp_path)
    app = BearApp(Teddy(), monitor=Monitor(Teddy(), ms.log, settings=ms))
    for i in range(20):                            # 40 photos, two per Classify
        app.btn_upload.value = upload_value([(f'{i}a.jpg', random_jpeg(i)), (f'{i}b.jpg', random_jpeg(i + 50))]); app.btn_run.click()
    app.settled()
    assert app.monitor.log.count() == 40 and len(app._photos) == 2   # the last selection's two photos, for their share boxes
