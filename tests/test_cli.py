"""The ``freqtail`` entry point: subcommand discovery, fast help, error handling."""

from __future__ import annotations

import subprocess
import sys

from freqtail.cli import COMMAND_ORDER, build_parser, main


def test_every_documented_subcommand_is_registered():
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    expected = {
        "demo",
        "spectrum",
        "bass",
        "corrupt",
        "download",
        "train",
        "evaluate",
        "compare",
        "sensitivity",
        "landscape",
        "heatmap",
        "report",
    }
    assert expected <= set(choices)
    assert set(choices) <= set(COMMAND_ORDER)


def test_help_does_not_import_torch():
    code = "import sys, freqtail.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bass_default_chunk_size_matches_the_library():
    from freqtail.bass.convert import DEFAULT_CHUNK_SIZE

    bass = build_parser()._subparsers._group_actions[0].choices["bass"]
    help_text = next(a.help for a in bass._actions if a.dest == "chunk_size")
    assert f"default {DEFAULT_CHUNK_SIZE}" in help_text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_evaluate_help_states_the_masking_minimum_and_the_suite_aliases():
    from freqtail.attacks.masking_verdicts import MIN_JUDGED_IMAGES
    from freqtail.evaluate.suite_names import SUITE_ALIASES

    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    helps = {a.dest: a.help for a in evaluate._actions}
    assert f"MIN_JUDGED_IMAGES, {MIN_JUDGED_IMAGES})" in helps["masking_min"]
    assert all(f"{alias} = {name}" in helps["suite"] for alias, name in SUITE_ALIASES.items())
    assert "stratified" in helps["n"]
