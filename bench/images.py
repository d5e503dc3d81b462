"""Peak memory of opening one image: bear_app's `open_image` / `verify_image` against plain Pillow, same run; and of a
folder run of `bear-predict` over files that declare huge pictures, against a baseline revision of bear_app.

Each measurement runs in a fresh Python process and reports that process's peak resident memory (`VmHWM`), so
imports count the same for all of them; "imports only" is the floor. The default file is the case that made this
bench: a 219 KB PNG that declares 10000×9990 16-bit pixels (`../shared/cases/images/16bit_99.9mp.png`).
Usage: python bench/images.py [FILE ...]          one file at a time
       python bench/images.py --folder [REV]     the folder run (baseline REV, default the one named below)
"""
import os, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT.parent/'shared'/'cases'/'images'/'16bit_99.9mp.png'

SETUP = "import resource, sys, warnings; warnings.simplefilter('ignore'); from PIL import Image; import bear_app.images as bi\n"
WAYS = {
    'imports only':                       "pass",
    'Pillow: open + load':                "Image.MAX_IMAGE_PIXELS = None; im = Image.open(f); im.load()",
    'Pillow: open + load + RGB':          "Image.MAX_IMAGE_PIXELS = None; im = Image.open(f); im.load(); im = im.convert('RGB')",
    'bear_app: open_image':               "r = bi.open_image(f)",
    'bear_app: verify_image':             "r = bi.verify_image(f)",
}
REPORT = "\nprint(int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) // 1024)"  # own peak; ru_maxrss survives exec

def peak_mb(code:str, f:Path)->str:
    "Peak resident memory (MB) of a fresh interpreter running `code` on file `f`, or the error it ended with."
    body = f"f = {str(f)!r}\ntry:\n    {code}\nexcept Exception as e: print('refused:', str(e)[:70])"
    r = subprocess.run([sys.executable, '-c', SETUP + body + REPORT], capture_output=True, text=True, cwd=ROOT)
    if r.returncode: return 'crashed: ' + r.stderr.strip().splitlines()[-1][:70]
    return ' '.join(r.stdout.split('\n')[:-1]).replace('\n', ' ') + ' MB'

# A folder run: peak memory of `bear-predict` over a folder of small files that declare huge pictures (the 1.6 KB BLP
# files of ../shared/cases/images3/, each copied COPIES times), for this checkout and for a baseline revision of
# bear_app (extracted with `git archive` into a temporary folder), in the same run.
BLPS = sorted((ROOT.parent/'shared'/'cases'/'images3').glob('timeout-*.blp'))
BASELINE = 'd9c3b16^'   # main just before round 3's image fixes (the decode budget, the header check)
COPIES = 4
FOLDER_RUN = ("import sys\n{setup}\nfrom bear_app.predict import main\nrc = main([{folder!r}, '--model', {model!r}])\n"
              "print(int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) // 1024)")

def folder_peak_mb(folder:Path, code_root:Path, setup:str='')->str:
    "Peak resident memory (MB) of a fresh process running bear-predict (the bear_app found in `code_root`) on `folder`."
    code = FOLDER_RUN.format(setup=setup, folder=str(folder), model=str(ROOT/'models'/'bear_model.onnx'))
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=folder.parent,   # not ROOT: `-c` imports from the cwd first
                       env={**os.environ, 'PYTHONPATH': str(code_root)})
    if 'Traceback' in r.stderr or not r.stdout.strip(): return 'crashed: ' + (r.stderr.strip().splitlines() or ['?'])[-1][:70]
    refused = sum('damaged' in l for l in r.stdout.splitlines())
    return f"{r.stdout.split()[-1]:>5} MB  ({refused} of {len(list(folder.iterdir()))} refused as damaged)"

def folder_run(baseline:str=BASELINE):
    "Print the folder run's peak memory: the baseline revision, this checkout, and this checkout with only the decode budget."
    if not BLPS: sys.exit("../shared/cases/images3/timeout-*.blp not found (the cases folder sits beside the repository)")
    with tempfile.TemporaryDirectory() as tmp:
        folder, old = Path(tmp)/'blp', Path(tmp)/'baseline'
        folder.mkdir(); old.mkdir()
        for k in range(COPIES):
            for f in BLPS: shutil.copy(f, folder/f"{k}-{f.name}")
        print(f"bear-predict on a folder of {len(BLPS) * COPIES} BLP files ({', '.join(f'{f.stat().st_size} B' for f in BLPS)}; "
              "declaring 17-84 million pixels), peak resident memory:")
        tar = subprocess.run(['git', 'archive', baseline, 'bear_app'], cwd=ROOT, capture_output=True)
        if tar.returncode == 0:
            subprocess.run(['tar', '-x', '-C', str(old)], input=tar.stdout, check=True)
            print(f"  {'baseline ' + baseline + ' (main before)':50} {folder_peak_mb(folder, old)}")
        else: print(f"  baseline {baseline}: not in this clone's history ({tar.stderr.decode().strip()[:60]})")
        print(f"  {'this checkout':50} {folder_peak_mb(folder, ROOT)}")
        off = "import bear_app.images as bi; bi._least_bytes = lambda im: 0   # the header check off"
        print(f"  {'this checkout, the decode budget alone':50} {folder_peak_mb(folder, ROOT, off)}")

if __name__ == '__main__':
    if sys.argv[1:2] == ['--folder']: folder_run(*sys.argv[2:3]); sys.exit()
    files = [Path(a) for a in sys.argv[1:]] or [CASE]
    for f in files:
        if not f.exists(): sys.exit(f"{f} not found (the cases folder sits beside the repository)")
        print(f"{f.name} ({f.stat().st_size // 1024} KB)")
        for name, code in WAYS.items(): print(f"  {name:28} {peak_mb(code, f)}")
