"The fast predictor: same answers as fastai on every photo, no torch on its path, a fresh ONNX file, and 'not a bear'."
import json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import BEAR_DATA, ROOT, needs_bear_data
from bear_app.images import image_files
from bear_app.images import ImageError
from bear_app.predict import (ModelError, Predictor, fastai_probs, ood_path, onnx_is_stale, sample_ood_images)
from bear_app.core import file_sha256

MODELS = ROOT/'models'
PKL, ONNX = MODELS/'bear_model.pkl', MODELS/'bear_model.onnx'
needs_ood = pytest.mark.skipif(not ood_path(ONNX).exists(), reason=f"{ood_path(ONNX).name} not found (run bear-train)")

@pytest.fixture(scope='module')
def pred(): return Predictor(ONNX)

@pytest.fixture(scope='module')
def bear_files(): return image_files(BEAR_DATA)

@pytest.fixture(scope='module')
def ours(pred, bear_files): return pred.predict_many(bear_files)

@needs_bear_data
def test_fastai_batch_path_is_what_predict_says(bear_files):
    "The agreement test compares with get_preds; check on a sample of awkward files that it equals Learner.predict."
    odd = [f for f in bear_files if f.suffix.lower() not in ('.jpg', '.jpeg')][:3] + bear_files[::140]
    np.testing.assert_allclose(fastai_probs(PKL, odd), fastai_probs(PKL, odd, one_by_one=True), atol=1e-5)

@needs_bear_data
def test_same_answers_as_fastai_on_every_photo(pred, bear_files, ours):
    assert len(bear_files) >= 400
    theirs = fastai_probs(PKL, bear_files)
    mine = np.array([[r['probs'][c] for c in pred.vocab] for r in ours])
    assert not [r['error'] for r in ours if r['error']]
    wrong = [str(f) for f, a, b in zip(bear_files, mine.argmax(1), theirs.argmax(1)) if a != b]
    assert wrong == [], f"top-1 differs from fastai on {wrong}"
    assert np.abs(mine - theirs).max() < 0.01

def test_predict_path_imports_neither_torch_nor_fastai(tmp_path):
    Image.new('RGB', (320, 240), (90, 60, 30)).save(tmp_path/'a.png')
    code = ("import sys, bear_app.predict as p; r = p.Predictor().predict(sys.argv[1]); assert r['error'] is None, r; "
            "print(sorted(m for m in ('torch', 'fastai') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path/'a.png')], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'

def test_stale_onnx_is_rebuilt_from_the_learner_into_the_cache(tmp_path, pred, monkeypatch):
    "No ONNX beside the learner: it is built from the .pkl into the cache, never beside the user's files, and gives the same answers."
    monkeypatch.setenv('BEAR_CACHE', str(tmp_path/'cache'))
    (tmp_path/'model').mkdir()
    for f in (PKL, ONNX.with_suffix('.json')): shutil.copy(f, tmp_path/'model')
    onnx = tmp_path/'model'/'bear_model.onnx'
    assert onnx_is_stale(tmp_path/'model'/'bear_model.pkl', onnx) == 'bear_model.onnx is missing'
    with pytest.warns(UserWarning, match='ood'): rebuilt = Predictor(onnx)
    assert sorted(p.name for p in (tmp_path/'model').iterdir()) == ['bear_model.json', 'bear_model.pkl']
    assert rebuilt.model == tmp_path/'cache'/file_sha256(PKL)/'model.onnx' and rebuilt.model.exists()
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    a, b = rebuilt.predict(img), pred.predict(img)
    assert a['label'] == b['label'] and max(abs(a['probs'][c] - b['probs'][c]) for c in a['probs']) < 1e-4
    assert a['ood'] is None and a['ood_score'] is None   # no calibration file beside the copy
    (tmp_path/'model'/'bear_model.pkl').write_bytes(PKL.read_bytes() + b'\0')   # "retrained"
    shutil.copy(ONNX, onnx)
    assert 'bear_model.pkl' in onnx_is_stale(tmp_path/'model'/'bear_model.pkl', onnx)   # the changed learner makes the ONNX stale

def book_learner(path:Path, item_tfms, **kw):
    "A learner as chapter 2 builds it (a torchvision ResNet, weights not downloaded), on generated photos in `path`."
    from fastai.vision.all import CategoryBlock, DataBlock, ImageBlock, RandomSplitter, get_image_files, parent_label, resnet18, vision_learner
    rng = np.random.default_rng(1)
    for c in ('black', 'grizzly'):
        (path/c).mkdir(parents=True, exist_ok=True)
        for i, (w, h) in enumerate([(160, 120), (90, 200), (333, 250), (64, 64)]):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path/c/f'{i}.jpg', quality=90)
    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                   splitter=RandomSplitter(seed=0), item_tfms=item_tfms, **kw)
    return vision_learner(db.dataloaders(path, bs=4, num_workers=0), resnet18, pretrained=False)

@pytest.mark.parametrize('kind', ['resize', 'random_resized_crop'])
def test_book_style_export_pkl_works_and_nothing_is_written_beside_it(tmp_path, kind):
    "`--model export.pkl` of a plain `learn.export()` (no card): a card is derived from the learner, answers equal fastai's."
    from fastai.vision.all import Normalize, RandomResizedCrop, Resize, imagenet_stats
    tfm = Resize(96) if kind == 'resize' else RandomResizedCrop(96, min_scale=0.5)
    learn = book_learner(tmp_path/'data', tfm, batch_tfms=Normalize.from_stats(*imagenet_stats) if kind == 'resize' else None)
    (tmp_path/'nb').mkdir(); learn.export(tmp_path/'nb'/'export.pkl')
    files = sorted((tmp_path/'data').rglob('*.jpg'))
    env = {**os.environ, 'BEAR_CACHE': str(tmp_path/'cache')}
    r = subprocess.run([str(Path(sys.executable).parent/'bear-predict'), '--json', '--model', str(tmp_path/'nb'/'export.pkl'),
                        str(tmp_path/'data')], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (tmp_path/'nb').iterdir()] == ['export.pkl']
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    mine = np.array([[l['probs'][c] for c in ('black', 'grizzly')] for l in lines])
    np.testing.assert_allclose(mine, fastai_probs(tmp_path/'nb'/'export.pkl', files), atol=1e-4)

def test_a_file_that_is_not_a_learner_is_a_model_error_in_words(tmp_path, monkeypatch):
    "Model faults raise `ModelError` (the service is unavailable), never `ImageError` (the photo is bad), and write nothing beside."
    monkeypatch.setenv('BEAR_CACHE', str(tmp_path/'cache'))
    (tmp_path/'export.pkl').write_bytes(b'these are not the weights you are looking for')
    with pytest.raises(ModelError, match='could not be loaded as a fastai learner'): Predictor(tmp_path/'export.pkl')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['export.pkl']
    assert not issubclass(ModelError, ImageError) and not issubclass(ImageError, ModelError)   # the app tells them apart

@needs_ood
def test_every_prediction_says_whether_it_is_out_of_domain(pred):
    r = pred.predict(Image.new('RGB', (300, 200), (120, 80, 40)))
    assert isinstance(r['ood'], bool) and isinstance(r['hard_to_read'], bool) and np.isfinite(r['ood_score'])   # a scaled score: 0 at the median held-out training photo
    assert not (r['ood'] and r['hard_to_read'])
    bad = pred.predict(b'not a photo')
    assert bad['error'] and bad['ood'] is None and bad['ood_score'] is None and bad['hard_to_read'] is None

@needs_ood
def test_shipped_model_gives_label_and_ood_from_one_forward_pass(pred):
    "The ONNX also outputs the pooled features the detector reads: one model, one forward pass."
    assert pred.detector is not None and {'logits', 'features'} <= pred.session.outputs
    x = np.zeros((2, 3, *pred.pre['size']), np.float32)
    logits, feats = pred.session.run(['logits', 'features'], {'image': x})
    assert logits.shape == (2, len(pred.vocab)) and feats.shape == (2, pred.detector.ref.shape[1])

@needs_ood
def test_cat_and_astronaut_are_not_bears(pred):
    s = sample_ood_images(n_synthetic=5)
    for name in ('cat (skimage chelsea)', 'astronaut (skimage)', 'noise', 'flat colour', 'drawn shapes'):
        assert all(r['ood'] for r in pred.predict_many(s[name])), name

@needs_ood
@needs_bear_data
def test_bear_photos_are_in_domain(ours):
    flagged = [r['ood'] for r in ours]
    assert np.mean(flagged) <= 0.01, f"{sum(flagged)} of {len(flagged)} bear photos flagged as not bears"

@needs_ood
@needs_bear_data
def test_a_dark_bear_is_hard_to_read_not_a_non_bear(pred, bear_files):
    "A bear photo at a quarter of its brightness stays a bear: at most 'hard to read', never 'not a bear' for most of them."
    from PIL import ImageEnhance
    from bear_app.images import open_image
    rs = pred.predict_many([ImageEnhance.Brightness(open_image(f)).enhance(0.25) for f in bear_files[::20]])
    assert np.mean([r['ood'] for r in rs]) <= 0.1 and all(not (r['ood'] and r['hard_to_read']) for r in rs)

@needs_ood
def test_cli_json_lines_carry_ood(tmp_path):
    s = sample_ood_images(n_synthetic=0)
    s['cat (skimage chelsea)'][0].save(tmp_path/'cat.png')
    out = subprocess.run([str(Path(sys.executable).parent/'bear-predict'), '--json', str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    line = json.loads(out.stdout)
    assert line['ood'] is True and line['hard_to_read'] is False and line['ood_score'] > json.loads(ood_path(ONNX).read_text())['threshold']

@pytest.mark.parametrize('recipe', ['OURS', 'FINETUNE', 'FINETUNE_CROP'])   # BOOK's RandomResizedCrop is for the bench only
def test_inputs_are_what_fastai_feeds_the_model(tmp_path, recipe):
    "For each recipe's presize and Resize, `to_input` builds the very pixels fastai's test DataLoader gives the model."
    import dataclasses
    from bear_app.config import get_settings
    from bear_app.images import open_image
    from bear_app.predict import to_input
    from bear_app import train
    r = dataclasses.replace(train.FINETUNE, method='crop') if recipe == 'FINETUNE_CROP' else getattr(train, recipe)
    s, rng, files = get_settings(), np.random.default_rng(0), []
    for c, (w, h) in zip(s.vocab * 2, [(400, 300), (250, 500), (640, 427), (301, 199), (224, 224), (1000, 260)]):
        (tmp_path/c).mkdir(exist_ok=True)
        files.append(tmp_path/c/f'{w}x{h}.png')
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(files[-1])
    files.append(tmp_path/s.vocab[0]/'phone.jpg')                       # big enough for a reduced-scale JPEG decode
    Image.fromarray(rng.integers(0, 256, (1800, 2400, 3), dtype=np.uint8)).save(files[-1], quality=90)
    dls = train.bear_datablock(s, r).dataloaders(files, bs=len(files), num_workers=0)
    xb = dls.test_dl(files).one_batch()[0].numpy()                      # 0..1, before the learner's Normalize
    px = next(t for t in dls.tls[0].tfms.fs if isinstance(t, train.PresizedImages))
    pre = {'size': [r.size]*2, 'method': r.method, 'presize': px.size, 'draft': px.draft, 'mean': [0]*3, 'std': [1]*3}
    # atol: fastai's batch lighting transforms round-trip through logit/sigmoid at test time (±5e-6); a grey level is 4e-3
    np.testing.assert_allclose(np.stack([to_input(open_image(f, draft=pre['draft']), pre) for f in files]), xb, atol=1e-5)

@needs_bear_data
def test_big_phone_photo_agrees_with_fastai(tmp_path, pred, bear_files):
    "A 12-megapixel JPEG (decoded at a reduced scale by both) gets fastai's answer."
    photo = tmp_path/'phone.jpg'
    Image.open(bear_files[0]).convert('RGB').resize((4032, 3024), Image.BICUBIC).save(photo, quality=92)
    mine, theirs = pred.predict(photo), fastai_probs(PKL, [photo], one_by_one=True)[0]
    assert pred.pre['draft'] and pred.open(photo).size[0] < 4032
    np.testing.assert_allclose([mine['probs'][c] for c in pred.vocab], theirs, atol=0.01)
    assert mine['label'] == pred.vocab[int(theirs.argmax())]
