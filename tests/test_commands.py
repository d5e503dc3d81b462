"""The six commands speak one way (`bear_app.config.cli`): the same mistake gives the same exit status and one line on
stderr in every command; Ctrl-C ends a command with status 130 and one line, no traceback."""
import json, os, signal, subprocess, sys, time, tomllib
import pytest
from conftest import ROOT
from test_cli import BIN, CLASS_NAME, photos

COMMANDS = ['bear-gather', 'bear-train', 'bear-clean', 'bear-predict', 'bear-app', 'bear-monitor']

def run(cmd, *args, env=None):
    return subprocess.run([str(BIN/cmd), *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, **(env or {})})

def said_once(r, status, *words):
    "Exit `status`, one line on stderr starting with the command's name and holding `words`, no traceback or class name."
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{r.args[0].split('/')[-1]}: "), r.stderr
    assert not CLASS_NAME.search(r.stderr), r.stderr
    for w in words: assert w in r.stderr, (w, r.stderr)

NEEDED = {'bear-clean': ['undo'], 'bear-monitor': ['report'], 'bear-predict': ['photo.jpg']}   # what each requires first

@pytest.mark.parametrize('cmd', COMMANDS)
def test_a_bad_option_is_status_2_in_every_command(cmd):
    said_once(run(cmd, *NEEDED.get(cmd, []), '--no-such-option'), 2, '--no-such-option', f'{cmd} --help')

MISSING = {'bear-gather': ['--urls', '{m}'], 'bear-train': ['--data', '{m}'], 'bear-clean': ['apply', '{m}', '--data', '{t}'],
           'bear-predict': ['{m}'], 'bear-app': ['{m}'], 'bear-monitor': ['report', '--log', '{m}']}

@pytest.mark.parametrize('cmd', COMMANDS)
def test_a_missing_file_is_status_2_naming_it_in_every_command(cmd, tmp_path):
    missing = tmp_path/'no-such-file'
    said_once(run(cmd, *(a.format(m=missing, t=tmp_path) for a in MISSING[cmd])), 2, str(missing))

def test_ctrl_c_ends_a_command_with_130_and_one_line(tmp_path):
    files = photos(tmp_path/'in', 300)
    p = subprocess.Popen([str(BIN/'bear-predict'), str(tmp_path/'in')], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT, env=os.environ.copy())
    try:
        assert p.stdout.readline().startswith(str(files[0].parent))   # it is at work: the first answer is out
        t0 = time.monotonic(); p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - t0
    finally: p.kill(); p.wait()
    assert p.returncode == 130 and err == 'bear-predict: interrupted\n', (p.returncode, err)
    assert took < 5, took
    assert len(out.splitlines()) < len(files) - 1   # it stopped, rather than finishing the run

def as_installed(cmd, *args, **kw):
    "Start `cmd` as the console script `pyproject.toml` declares for it does (`from module import func; sys.exit(func())`)."
    module, func = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['scripts'][cmd].split(':')
    script = f"import sys; sys.argv[0] = {cmd!r}; from {module} import {func}; sys.exit({func}())"
    return subprocess.Popen([sys.executable, '-c', script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, **{'env': os.environ.copy(), **kw})

def interrupted_quietly(p, cmd):
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == f'{cmd}: interrupted\n', (p.returncode, err[-3000:])

def test_ctrl_c_while_bear_train_still_imports_torch_is_130_and_one_line(tmp_path):
    photos(tmp_path/'data'/'black', 2); photos(tmp_path/'data'/'grizzly', 2, seed=1)
    p = as_installed('bear-train', '--data', tmp_path/'data', '--models', tmp_path/'models')
    try:
        time.sleep(0.5); assert p.poll() is None   # torch alone takes seconds to import
        p.send_signal(signal.SIGINT)
        interrupted_quietly(p, 'bear-train')
    finally: p.kill(); p.wait()
    assert not (tmp_path/'models').exists()

SLOW_IMPORT = """import importlib.abc, sys, time
class Slow(importlib.abc.MetaPathFinder):   # the command's module takes a minute to import, like torch on a busy machine
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}: print('importing', flush=True); time.sleep(60)
sys.meta_path.insert(0, Slow())
"""

@pytest.mark.parametrize('cmd', COMMANDS)
def test_ctrl_c_while_any_command_imports_is_130_and_one_line(cmd, tmp_path):
    from bear_app.commands import COMMANDS as modules
    (tmp_path/'sitecustomize.py').write_text(SLOW_IMPORT.format(module=f'bear_app.{modules[cmd]}'))
    env = {**os.environ, 'PYTHONPATH': f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    p = as_installed(cmd, *NEEDED.get(cmd, []), env=env)
    try:
        assert p.stdout.readline() == 'importing\n'
        p.send_signal(signal.SIGINT)
        interrupted_quietly(p, cmd)
    finally: p.kill(); p.wait()

def test_a_closed_output_ends_quietly_and_what_was_answered_is_logged(tmp_path):
    "`bear-predict photos/ | head -1`: status 141 (as any Unix tool whose reader went away), nothing on stderr, the answers given are in the log."
    from bear_app.monitor import PredictionLog
    photos(tmp_path/'in', 200)
    p = subprocess.Popen([str(BIN/'bear-predict'), tmp_path/'in', '--json', '--log', tmp_path/'log.sqlite'], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=ROOT, env=os.environ.copy())
    try:
        first = json.loads(p.stdout.readline()); p.stdout.close()   # `head -1`
        err = p.stderr.read().decode(); p.wait(timeout=60)
    finally: p.kill(); p.wait()
    assert (p.returncode, err) == (141, ''), (p.returncode, err[-3000:])
    rows = PredictionLog(tmp_path/'log.sqlite', readonly=True).rows()
    assert 1 <= len(rows) < 200 and (rows[0]['label'], rows[0]['probability']) == (first['label'], first['probability'])

def test_output_to_a_full_disk_is_status_2_saying_so(tmp_path):
    photos(tmp_path/'in', 3)
    with open('/dev/full', 'w') as full:   # a disk with no room left, as Linux offers it
        r = subprocess.run([str(BIN/'bear-predict'), tmp_path/'in'], stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    said_once(r, 2, 'its output could not be written: the disk it goes to is full; free space on it')

FULL_DISK = """mount -t tmpfs -o size=4m tmpfs "$0" || exit 99
"$PYTHON" -c "from bear_app.testing import toy_dataset; toy_dataset('$0/bears', n=5)" || exit 98
head -c 64k /dev/zero > "$0/room"
(head -c 8M /dev/zero > "$0/filler") 2>/dev/null   # the disk is full from here
if [ -n "$ROOM" ]; then rm "$0/room"; fi            # but for 64 KB (a lock file, not a model)
exec "$@"
"""

@pytest.fixture
def on_a_full_disk(tmp_path):
    "Run a command with a full 4 MB disk (or one with 64 KB left: `room`) mounted at `tmp_path/'disk'`, holding toy photos in `bears/`."
    disk = tmp_path/'disk'; disk.mkdir()
    env = {**os.environ, 'PYTHON': sys.executable}   # this venv's Python, whatever PATH holds
    probe = subprocess.run(['unshare', '-Urm', 'sh', '-c', FULL_DISK, disk, 'true'], capture_output=True, text=True, env=env)
    if probe.returncode == 98: raise AssertionError(probe.stderr)
    if probe.returncode:
        pytest.skip("no user namespaces here to mount a small disk in (unshare -Urm)")
    def run_full(*args, room=False):
        r = subprocess.run(['unshare', '-Urm', 'sh', '-c', FULL_DISK, disk, *map(str, args)], capture_output=True, text=True,
                           cwd=tmp_path, env={**env, 'ROOM': 'yes' if room else ''}, timeout=300)
        r.args = list(map(str, args)); return r
    return disk, run_full

def test_a_full_disk_names_the_folder_and_what_to_free_with_status_2(on_a_full_disk, tmp_path):
    disk, run_full = on_a_full_disk
    photos(tmp_path/'in', 3)
    said_once(run_full(BIN/'bear-predict', tmp_path/'in', '--log', disk/'logs'/'predictions.sqlite'), 2,
              f"{disk/'logs'}: the disk is full (writing predictions.sqlite); free space on it")
    (tmp_path/'decisions.csv').write_text('file,action,category\nblack/00000001.jpg,relabel,grizzly\n')
    said_once(run_full(BIN/'bear-clean', 'apply', tmp_path/'decisions.csv', '--data', disk/'bears'), 2,
              f"{disk/'bears'}: the disk is full (writing ", 'free space on it')
    for c in ('black', 'grizzly'): photos(tmp_path/'mine'/c, 2)
    for room in (False, True):   # full at once (its lock), or once the lock is written (the photos, the manifest)
        said_once(run_full(BIN/'bear-gather', '--from-folder', tmp_path/'mine', '--dest', disk/'bears', '--quiet', room=room), 2,
                  f"{disk/'bears'}: the disk is full (writing ", 'free space on it')

EXPORT = """import sys, torch
from pathlib import Path
from bear_app.bundle import ModelBundle
from bear_app.config import cli
def export(argv):   # as bear-train exports: torch.save into the staging folder of the models folder
    with ModelBundle(Path(argv[0])/'bear_model').new() as new: torch.save(torch.zeros(1_000_000), new.path('learner'))
sys.exit(cli('bear-train', export, sys.argv[1:]))
"""

def test_a_model_export_onto_a_full_disk_names_the_models_folder(on_a_full_disk, tmp_path):
    "torch.save words a full disk as 'unexpected pos …': the export still says the disk is full, naming the models folder."
    disk, run_full = on_a_full_disk
    r = run_full(sys.executable, '-c', EXPORT, disk/'models', room=True)
    r.args = ['bear-train']
    said_once(r, 2, f"{disk/'models'}: the disk is full (writing bear_model); free space on it")
