"""Peak memory of opening one image: bear_app's `open_image` / `verify_image` against plain Pillow, same run.

Each measurement runs in a fresh Python process and reports that process's peak resident memory (`VmHWM`), so
imports count the same for all of them; "imports only" is the floor. The default file is the case that made this
bench: a 219 KB PNG that declares 10000×9990 16-bit pixels (`../shared/cases/images/16bit_99.9mp.png`).
Usage: python bench/images.py [FILE ...]
"""
import subprocess, sys
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

if __name__ == '__main__':
    files = [Path(a) for a in sys.argv[1:]] or [CASE]
    for f in files:
        if not f.exists(): sys.exit(f"{f} not found (the cases folder sits beside the repository)")
        print(f"{f.name} ({f.stat().st_size // 1024} KB)")
        for name, code in WAYS.items(): print(f"  {name:28} {peak_mb(code, f)}")
