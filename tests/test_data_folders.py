"""Tiny-ImageNet, ImageNet (ImageFolder) and Restricted-ImageNet trees written by the tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from freqtail.data import build_dataset, iter_uint8_batches
from freqtail.data.folders import RESTRICTED_IMAGENET_RANGES
from freqtail.errors import ConfigError, DatasetNotFoundError


def _image(seed: int, size=(64, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _save(path, array, fmt="PNG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


@pytest.fixture()
def tiny(tmp_path):
    """A Tiny-ImageNet tree: 3 wnids (listed unsorted), 2 train images each, 3 val images."""
    folder = tmp_path / "tiny-imagenet-200"
    wnids = ["n03", "n01", "n02"]
    folder.mkdir()
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text(
        "n01\tgoldfish, Carassius auratus\nn02\ttabby, tabby cat\nn03\tlimo\nn99\tx\n"
    )
    expected = {}
    for k, wnid in enumerate(sorted(wnids)):
        for j in range(2):
            array = _image(10 * k + j)
            _save(folder / "train" / wnid / "images" / f"{wnid}_{j}.png", array)
            expected[(k, j)] = array
    lines = []
    for j, wnid in enumerate(["n02", "n03", "n01"]):
        array = _image(100 + j)
        _save(folder / "val" / "images" / f"val_{j}.png", array)
        expected[("val", j)] = array
        lines.append(f"val_{j}.png\t{wnid}\t0\t0\t10\t10")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, expected


def _as_uint8(item: torch.Tensor) -> np.ndarray:
    return (item * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def test_tiny_imagenet_images_labels_and_names(tiny):
    root, expected = tiny
    train = build_dataset("tiny-imagenet", "train", root)
    assert train.classes == ["goldfish", "tabby", "limo"] and train.num_classes == 3
    assert train.image_size == (64, 64) and len(train) == 6
    for index in range(6):
        image, label = train[index]
        assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
        assert label == index // 2
        assert np.array_equal(_as_uint8(image), expected[(label, index % 2)])
    val = build_dataset("tiny-imagenet", "val", root / "tiny-imagenet-200")  # alias and inner folder
    assert [val[j][1] for j in range(3)] == [1, 2, 0]
    assert np.array_equal(_as_uint8(val[2][0]), expected[("val", 2)])


def test_tiny_imagenet_other_sizes_and_jpeg_are_resized_to_64(tiny):
    root, _ = tiny
    _save(root / "tiny-imagenet-200" / "train" / "n01" / "images" / "big.JPEG", _image(7, (80, 100)), "JPEG")
    train = build_dataset("tiny-imagenet", "train", root, augment=True)
    assert all(train[i][0].shape == (3, 64, 64) for i in range(len(train)))
    batches = list(iter_uint8_batches("tiny-imagenet", "train", root, batch_size=4))
    assert [b.shape for b in batches] == [(4, 64, 64, 3), (3, 64, 64, 3)]
    assert all(b.dtype == np.uint8 for b in batches)


def test_tiny_imagenet_missing_and_damaged(tiny, tmp_path):
    root, _ = tiny
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("tiny-imagenet", "train", tmp_path / "elsewhere")
    message = str(err.value)
    assert "wnids.txt" in message and "tiny-imagenet-200.zip" in message and "\n" not in message
    (root / "tiny-imagenet-200" / "val" / "val_annotations.txt").write_text("val_0.png\tn77\n")
    with pytest.raises(DatasetNotFoundError, match="damaged at line 1"):
        build_dataset("tiny-imagenet", "test", root)


def test_truncated_jpeg_gets_a_clear_error(tiny):
    root, _ = tiny
    path = root / "tiny-imagenet-200" / "train" / "n01" / "images" / "n01_0.png"
    _save(path.with_suffix(".JPEG"), _image(3), "JPEG")
    path.unlink()
    data = path.with_suffix(".JPEG").read_bytes()
    path.with_suffix(".JPEG").write_bytes(data[: len(data) // 3])
    train = build_dataset("tiny-imagenet", "train", root)
    index = [p for p, _ in train.samples].index(str(path.with_suffix(".JPEG")))
    with pytest.raises(DatasetNotFoundError, match="truncated or not a readable image") as err:
        train[index]
    assert "\n" not in str(err.value)


@pytest.fixture()
def imagenet(tmp_path):
    """ImageFolder tree: 3 wnids with odd-sized images, names from LOC_synset_mapping.txt."""
    for split in ("train", "val"):
        for k, wnid in enumerate(["n2", "n1", "n3"]):
            _save(tmp_path / split / wnid / f"{split}_{k}.png", _image(k, (300, 260 + 20 * k)))
    (tmp_path / "LOC_synset_mapping.txt").write_text("n1 crane, bird\nn2 crane, machine\nn3 tench, Tinca\n")
    return tmp_path


def test_imagenet_folder_layout(imagenet):
    test = build_dataset("imagenet", "val", imagenet)
    # sorted wnids give the labels; the repeated first name "crane" is made unique with its wnid
    assert test.classes == ["crane (n1)", "crane (n2)", "tench"]
    assert [label for _, label in test.samples] == [0, 1, 2]
    image, _ = test[0]
    assert image.shape == (3, 224, 224) and test.image_size == (224, 224)
    # deterministic test transform: PIL bilinear Resize(shorter side 256) + CenterCrop(224)
    source = Image.fromarray(_image(1, (300, 280)))  # wnid n1 = the k=1 image, 280 wide
    resized = np.asarray(source.resize((256, int(256 * 300 / 280)), Image.BILINEAR))  # 274 x 256
    top, left = round((274 - 224) / 2), round((256 - 224) / 2)
    assert np.array_equal(_as_uint8(image), resized[top : top + 224, left : left + 224])
    train = build_dataset("imagenet", "train", imagenet, augment=True)
    assert train[1][0].shape == (3, 224, 224)
    with pytest.raises(ConfigError, match="cannot be downloaded"):
        build_dataset("imagenet", "train", imagenet, download=True)


def test_restricted_imagenet_super_classes(tmp_path):
    wnids = [f"n{k:08d}" for k in range(1000)]
    for wnid in wnids:
        (tmp_path / "train" / wnid).mkdir(parents=True)
    # (class index, expected super-class or None): both ends of ranges and neighbours outside them
    probes = [
        (151, "dog"),
        (268, "dog"),
        (150, None),
        (269, None),
        (281, "cat"),
        (285, "cat"),
        (30, "frog"),
        (37, "turtle"),
        (80, "bird"),
        (100, "bird"),
        (365, "primate"),
        (382, "primate"),
        (397, "fish"),
        (398, None),
        (118, "crab"),
        (121, "crab"),
        (300, "insect"),
        (319, "insect"),
        (0, None),
        (999, None),
    ]
    for index, _ in probes:
        _save(tmp_path / "train" / wnids[index] / "a.png", _image(index, (8, 8)))
    data = build_dataset("restricted-imagenet", "train", tmp_path)
    assert data.classes == ["dog", "cat", "frog", "turtle", "bird", "primate", "fish", "crab", "insect"]
    assert data.num_classes == 9 and len(RESTRICTED_IMAGENET_RANGES) == 9
    found = {int(path.split("/")[-2][1:]): data.classes[label] for path, label in data.samples}
    assert found == {index: name for index, name in probes if name is not None}
    (tmp_path / "val" / wnids[0]).mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="1000 class folders") as err:
        build_dataset("restricted-imagenet", "val", tmp_path)
    assert "has 1;" in str(err.value)


def test_imagenet_missing_is_one_sentence(tmp_path):
    for name in ("imagenet", "restricted-imagenet"):
        with pytest.raises(DatasetNotFoundError) as err:
            build_dataset(name, "train", tmp_path)
        message = str(err.value)
        assert str(tmp_path) in message and "image-net.org" in message and "\n" not in message


def restricted_tree(root, split: str, images: dict[int, list[np.ndarray]]):
    """A full ImageNet ``split/`` tree of 1000 class folders; ``images[k]`` go into folder ``k``."""
    for k in range(1000):
        (root / split / f"n{k:08d}").mkdir(parents=True, exist_ok=True)
    for k, arrays in images.items():
        for j, array in enumerate(arrays):
            _save(root / split / f"n{k:08d}" / f"{j}.JPEG", array, "JPEG")
    return root


def _pil(path) -> Image.Image:
    with Image.open(path) as handle:
        return handle.convert("RGB")


def _resize_128(path) -> np.ndarray:
    """The authors' test transform before BaSS: PIL's bilinear Resize((128, 128))."""
    return np.asarray(_pil(path).resize((128, 128), Image.BILINEAR))


def test_restricted_imagenet_bass_is_applied_at_128_after_the_resize(tmp_path, natural_crops):
    from freqtail.bass import balance_spectrum

    crops = natural_crops((150, 110), 1, seed=3)
    restricted_tree(tmp_path, "val", {151: [crops[0], crops[1]], 300: [crops[2]]})
    restricted_tree(tmp_path, "train", {151: [crops[3]], 33: [crops[4]]})
    test = build_dataset("restricted-imagenet", "test", tmp_path, bass="dataset")
    assert test.image_size == (128, 128) and len(test) == 3
    for i, (path, _) in enumerate(test.samples):
        got = _as_uint8(test[i][0]).astype(int)
        expected = balance_spectrum(_resize_128(path)).astype(int)
        assert got.shape == (128, 128, 3) and np.abs(got - expected).max() <= 1
        # the old order (BaSS at the stored 150 x 110, then resize) is a visibly different image
        late = Image.fromarray(balance_spectrum(np.asarray(_pil(path)))).resize((128, 128), Image.BILINEAR)
        assert np.abs(got - np.asarray(late).astype(int)).mean() > 3.0
    plain = build_dataset("restricted-imagenet", "test", tmp_path)
    assert all(
        np.array_equal(_as_uint8(plain[i][0]), _resize_128(p)) for i, (p, _) in enumerate(plain.samples)
    )
    # augmentation "none": the dataset's own test part on the train split too, no randomness
    still = build_dataset("restricted-imagenet", "train", tmp_path, augment=True, augmentation="none")
    assert all(
        np.array_equal(_as_uint8(still[i][0]), _resize_128(p)) for i, (p, _) in enumerate(still.samples)
    )
    # bass="augment" with gamma 1, train split without the random part: resize -> BaSS as well
    train = build_dataset("restricted-imagenet", "train", tmp_path, bass="augment", gamma=1.0)
    for i, (path, _) in enumerate(train.samples):
        expected = balance_spectrum(_resize_128(path)).astype(int)
        assert np.abs(_as_uint8(train[i][0]).astype(int) - expected).max() <= 1


def test_restricted_imagenet_train_pipeline_is_the_authors(tmp_path, natural_crops):
    """Resize((128, 128)) -> flip -> ColorJitter(0.1, 0.1, 0.1) -> to tensor -> lighting, same RNG draws."""
    from torchvision import transforms as T

    restricted_tree(tmp_path, "train", {80: list(natural_crops((150, 110), 1, seed=4)[:2])})
    train = build_dataset("restricted-imagenet", "train", tmp_path, augment=True)
    eigval = np.array([0.2175, 0.0188, 0.0045])
    eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
    authors = T.Compose([T.RandomHorizontalFlip(), T.ColorJitter(0.1, 0.1, 0.1), T.ToTensor()])
    outside = 0
    for seed in range(6):
        index = seed % 2
        torch.manual_seed(seed)
        ours = train[index][0]
        torch.manual_seed(seed)
        reference = authors(Image.fromarray(_resize_128(train.samples[index][0])))
        alpha = torch.empty(3).normal_(0, 0.05).double().numpy()  # the lighting's draw comes last
        reference = reference.double().numpy() + (eigvec @ (alpha * eigval))[:, None, None]
        assert ours.dtype == torch.float32 and ours.shape == (3, 128, 128)
        assert np.abs(ours.double().numpy() - reference).max() < 1e-6
        outside += int((ours < 0).any() or (ours > 1).any())
    assert outside > 0  # the reference does not clamp the lighting noise, and neither does freqtail


@pytest.mark.parametrize("max_pixels", [3000, 1000], ids=["pil-warns", "pil-refuses"])
def test_decompression_bomb_is_one_sentence(tiny, monkeypatch, max_pixels):
    """A 64x64 image (4096 pixels) is a bomb once PIL's limit is made small: PIL warns above
    MAX_IMAGE_PIXELS (3000) and refuses above twice it (1000); freqtail refuses both."""
    root, _ = tiny
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", max_pixels)
    train = build_dataset("tiny-imagenet", "train", root)
    with pytest.raises(DatasetNotFoundError, match=f"more than {max_pixels} pixels") as err:
        train[0]
    assert "\n" not in str(err.value) and "n01_0.png" in str(err.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4096)  # at the limit: decoded as before
    assert train[0][0].shape == (3, 64, 64)


@pytest.mark.parametrize(("name", "split"), [("wnids.txt", "train"), ("val/val_annotations.txt", "test")])
def test_tiny_imagenet_listing_that_is_not_utf8_is_one_sentence(tiny, name, split):
    root, _ = tiny
    listing = root / "tiny-imagenet-200" / name
    listing.write_bytes(listing.read_bytes() + b"n04\xff\xfe\n")
    with pytest.raises(DatasetNotFoundError, match=r"is not UTF-8 text \(byte 0xff at offset") as err:
        build_dataset("tiny-imagenet", split, root)
    assert str(listing) in str(err.value) and "\n" not in str(err.value)
