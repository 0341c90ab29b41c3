"""``freqtail download``: the only place freqtail touches the network, and only when asked."""

from __future__ import annotations

import urllib.error

import pytest

from freqtail.cli import main


def test_imagenet_is_refused_with_where_to_get_it(tmp_path, capsys):
    assert main(["download", "imagenet", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "image-net.org" in err


def test_network_failure_is_one_sentence(tmp_path, capsys, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    calls = []

    def refuse(url, download_root, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", refuse)
    assert main(["download", "cifar10", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert calls and calls[0].endswith("cifar-10-python.tar.gz")
    assert err.count("\n") == 0 and "Downloading cifar10" in err and "failed" in err


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_message_names_the_download_command(tmp_path, capsys, name):
    assert main(["spectrum", "--dataset", name, "--data-root", str(tmp_path)]) == 2
    assert f"freqtail download {name} --data-root DIR" in capsys.readouterr().err
