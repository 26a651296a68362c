"""Your own images: load_image makes a digit as MNIST's were made, ImageFolder loads a folder of
classes (grey or RGB) for fit, and minicnn predict reads a PNG or JPEG. The images are drawn
here, in a temporary folder, with Pillow (the tests that need it skip without it)."""
import os
import sys

import numpy as np
import pytest

import minicnn
from conftest import mnist_root
from minicnn import Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU, Sequential, cli
from minicnn.data import ImageError, ImageFolder, load_image
from minicnn.extras import MissingExtraError

try:
    from PIL import Image, ImageDraw
except ImportError:
    Image = None
needs_pillow = pytest.mark.skipif(Image is None, reason="Pillow is not installed "
                                                        "(pip install 'minicnn[images]')")


def digit(path, size=(90, 120), box=(30, 20, 50, 100), ink=0, paper=255, mode="L"):
    """A bar of ink ``box`` (left, top, right, bottom) with a foot, on paper, saved to path."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    draw.rectangle(box, fill=ink)
    draw.rectangle((box[0], box[3] - 12, box[2] + 20, box[3]), fill=ink)
    image.save(path)
    return path


def centre_of_mass(x):
    return [(x.sum(axis=1 - a) * np.arange(28)).sum() / x.sum() for a in (0, 1)]


@needs_pillow
def test_a_dark_digit_on_paper_becomes_an_mnist_digit(tmp_path):
    x = load_image(digit(tmp_path / "d.png"))
    assert x.shape == (28, 28) and x.dtype == np.float32 and x.min() == 0 and x.max() == 1
    rows, cols = np.nonzero(x.any(axis=1))[0], np.nonzero(x.any(axis=0))[0]
    # the digit is 41 wide and 81 tall: its box scaled to 20 tall keeps the aspect (10 wide)
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (20, 10)
    assert np.allclose(centre_of_mass(x), 14, atol=0.5)
    light = load_image(digit(tmp_path / "light.png", ink=255, paper=0))
    np.testing.assert_allclose(light, x, atol=1e-6)             # already bright on dark
    grey = load_image(digit(tmp_path / "grey.png", ink=60, paper=200))
    np.testing.assert_allclose(grey, x, atol=1e-5)              # background to 0, ink to 1


@needs_pillow
def test_a_top_heavy_digit_moves_only_as_far_as_its_box_stays_inside(tmp_path):
    image = Image.new("L", (60, 100), 255)
    ImageDraw.Draw(image).rectangle((10, 0, 50, 30), fill=0)      # a heavy head
    ImageDraw.Draw(image).rectangle((29, 30, 31, 99), fill=0)     # a long thin tail
    image.save(tmp_path / "head.png")
    x = load_image(tmp_path / "head.png")
    rows = np.nonzero(x.any(axis=1))[0]
    assert (rows[0], rows[-1]) == (8, 27)            # down 4 rows, as far as it fits; no wrapping
    assert centre_of_mass(x)[0] < 13


@needs_pillow
def test_jpeg_transparency_colour_and_16_bit(tmp_path):
    x = load_image(digit(tmp_path / "d.png"))
    jpeg = load_image(digit(tmp_path / "d.jpg", mode="RGB", ink=(20, 20, 120), paper=(250, 250, 240)))
    assert np.abs(jpeg - x).mean() < 0.02
    inked = load_image(digit(tmp_path / "t.png", mode="RGBA", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0)))
    np.testing.assert_allclose(inked, x, atol=1e-6)           # transparent: paper, not black
    Image.fromarray((np.asarray(Image.open(tmp_path / "d.png"), np.uint16) * 257)).save(
        tmp_path / "d16.png")
    assert Image.open(tmp_path / "d16.png").mode.startswith("I")
    np.testing.assert_allclose(load_image(tmp_path / "d16.png"), x, atol=1e-5)


@needs_pillow
def test_images_that_cannot_be_a_digit(tmp_path):
    Image.new("L", (30, 30), 128).save(tmp_path / "flat.png")
    with pytest.raises(ImageError, match=r"load_image: .*flat.png shows no digit: its pixels are"):
        load_image(tmp_path / "flat.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(ImageError, match=r"load_image: cannot read .*junk.png as an image: Pillow "
                                         r"does not recognise its data"):
        load_image(tmp_path / "junk.png")
    whole = open(digit(tmp_path / "d.png"), "rb").read()
    (tmp_path / "cut.png").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ImageError, match=r"load_image: cannot read .*cut.png as an image: "):
        load_image(tmp_path / "cut.png")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")


@needs_pillow
@pytest.mark.parametrize("index", [0, 1, 3])
def test_an_mnist_digit_drawn_large_comes_back(tmp_path, index):
    """An MNIST test digit, inverted, blown up 4x and placed off-centre on a large page,
    comes back as (nearly) the digit MNIST holds."""
    root = mnist_root()
    if root is None:
        pytest.skip("real MNIST not found: set MINICNN_DATA")
    _, (x_test, _) = minicnn.data.load_mnist(root, download=False, progress=False)
    original = x_test[index]
    page = Image.new("L", (200, 170), 255)
    page.paste(Image.fromarray(255 - original).resize((112, 112), Image.Resampling.BICUBIC),
               (20 + 7 * index, 40))
    page.save(tmp_path / "page.png")
    x = load_image(tmp_path / "page.png")
    reference = original / 255.0
    assert np.abs(x - reference).mean() < 0.03
    assert np.corrcoef(x.ravel(), reference.ravel())[0, 1] > 0.95


def build_folder(root, classes, mode="L", size=(10, 12), per_class=3):
    """root/NAME/i.png for each class: class k's images have the value 40 + 80k (grey) or are
    red, green or blue (RGB)."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    for k, name in enumerate(classes):
        os.makedirs(root / name)
        for i in range(per_class):
            fill = 40 + 80 * k + i if mode == "L" else tuple(c + 5 * i for c in colours[k])
            Image.new(mode, (size[1], size[0]), fill).save(root / name / f"{i}.png")
    return root


@needs_pillow
def test_a_grey_folder_loads_into_arrays(tmp_path):
    root = build_folder(tmp_path / "data", ["two", "one"])
    Image.new("L", (24, 20), 90).save(root / "one" / "3.png")      # another size: resized
    (root / "one" / "notes.txt").write_text("not an image")         # left alone
    folder = ImageFolder(root)
    assert folder.classes == ["one", "two"] and folder.size == (10, 12)
    assert folder.x.shape == (7, 1, 10, 12) and folder.x.dtype == np.float32
    assert folder.y.tolist() == [0, 0, 0, 0, 1, 1, 1] and folder.y.dtype == np.int64
    assert folder.x[0].min() == folder.x[0].max() == np.float32(120 / 255)
    np.testing.assert_allclose(folder.x[3], 90 / 255, atol=1e-6)
    assert folder.paths[3].endswith(os.path.join("one", "3.png")) and len(folder) == 7
    x, y = folder[4]
    assert x.shape == (1, 10, 12) and y == 1
    assert ImageFolder(root, size=5).x.shape == (7, 1, 5, 5)
    rgb = ImageFolder(root, grayscale=False).x
    assert rgb.shape == (7, 3, 10, 12) and (rgb[:, 0] == rgb[:, 2]).all()
    assert "7 images of 2 classes ['one', 'two'], 1 x 10 x 12" in repr(folder)


@needs_pillow
def test_an_rgb_folder_trains_end_to_end(tmp_path):
    folder = ImageFolder(build_folder(tmp_path / "data", ["blue", "red", "green"], "RGB",
                                      size=(8, 8), per_class=4))
    assert folder.x.shape == (12, 3, 8, 8) and folder.classes == ["blue", "green", "red"]
    model = Sequential(Conv2D(3, 4, 3, padding=1, rng=0), ReLU(), GlobalAvgPool2D(), Flatten(),
                       Dense(4, 3, rng=0))
    sgd = minicnn.SGD(model.parameters(), lr=0.5, momentum=0.9)
    trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(), sgd)
    history = trainer.fit(folder.x, folder.y, epochs=40, batch_size=6, seed=0, verbose=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert trainer.evaluate(folder.x, folder.y)[1] == 1.0
    assert model.summary(print_fn=None).input_shape == (3, 8, 8)


@needs_pillow
def test_folder_mistakes_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageFolder: .*nowhere is not a folder"):
        ImageFolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match=r"ImageFolder: .*empty has no class folders \(give it one "
                                         r"subfolder per class"):
        ImageFolder(tmp_path / "empty")
    root = build_folder(tmp_path / "a", ["x"])
    (root / "y").mkdir()
    (root / "y" / "readme.md").write_text("no images here")
    with pytest.raises(ImageError, match=r"class folder .*y holds no images \(.png, .jpg"):
        ImageFolder(root)
    (root / "y" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match=r"ImageFolder: cannot read .*bad.png as an image"):
        ImageFolder(root)
    mixed = build_folder(tmp_path / "b", ["grey"])
    build_folder(tmp_path / "b2", ["colour"], "RGB")
    os.rename(tmp_path / "b2" / "colour", mixed / "colour")
    with pytest.raises(ImageError, match=r"mixed modes: .*grey.0\.png is grey \(L\) and .*colour.0"
                                         r"\.png is colour \(RGB\); pass grayscale=True"):
        ImageFolder(mixed)
    assert ImageFolder(mixed, grayscale=True).x.shape == (6, 1, 10, 12)
    with pytest.raises(ValueError, match=r"size must be an int or \(h, w\) of positive ints, got 0"):
        ImageFolder(mixed, size=0, grayscale=True)
    with pytest.raises(TypeError, match="grayscale must be None, True or False, got 'yes'"):
        ImageFolder(mixed, grayscale="yes")


@pytest.fixture
def no_pillow(monkeypatch):
    for name in [m for m in sys.modules if m == "PIL" or m.startswith("PIL.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "PIL", None)


def test_without_pillow_one_line_names_the_extra(no_pillow, tmp_path):
    with pytest.raises(MissingExtraError, match=r"^load_image needs Pillow, which is not installed: "
                                                r"pip install 'minicnn\[images\]'$"):
        load_image(tmp_path / "d.png")
    with pytest.raises(MissingExtraError, match=r"^ImageFolder needs Pillow"):
        ImageFolder(tmp_path)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    minicnn.architectures.lenet5(rng=np.random.default_rng(0)).save(path)
    return str(path)


@needs_pillow
def test_predict_reads_a_png_or_jpeg_and_shows_the_top_classes(tmp_path, checkpoint, capsys):
    png = digit(tmp_path / "seven.png")
    assert cli.main(["predict", checkpoint, str(png)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{png}: ") and line.count("%") == 3 and "\n" not in line
    digit(tmp_path / "seven.jpg", mode="RGB", ink=(0, 0, 0), paper=(255, 255, 255))
    assert cli.main(["predict", checkpoint, str(tmp_path / "seven.jpg"), "--top", "1"]) == 0
    assert capsys.readouterr().out.count("%") == 1
    model = minicnn.load(checkpoint)
    probs = model.predict(minicnn.data.normalize(load_image(png)[None]))[0]
    best = int(np.argmax(probs))
    assert line.split(": ", 1)[1].startswith(f"{best} {100 * probs[best]:.1f}%")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    assert cli.main(["predict", checkpoint, str(tmp_path / "junk.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err and "Pillow does not recognise" in err


def test_predict_without_pillow_names_the_extra(no_pillow, tmp_path, checkpoint, capsys):
    (tmp_path / "seven.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    assert cli.main(["predict", checkpoint, str(tmp_path / "seven.png")]) == 2
    err = capsys.readouterr().err
    assert err == (f"minicnn predict: error: {tmp_path / 'seven.png'} is a PNG image: load_image "
                   "needs Pillow, which is not installed: pip install 'minicnn[images]'\n")
