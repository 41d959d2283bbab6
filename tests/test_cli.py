"""The CLI's contract: exit codes, exact one-line errors, and help for every option."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from invarbench import __version__
from invarbench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"invarbench {__version__}"


def test_unknown_model_suggests_the_near_miss():
    result = invoke("eval", "mnist5k/lenet-standrd")
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown model 'mnist5k/lenet-standrd'. Did you mean 'mnist5k/lenet-standard'?\n"
    assert "Traceback" not in result.output


def test_unknown_model_without_near_miss_points_to_the_list():
    far = "cifar10/" + "q" * 44  # like no registered card id
    result = invoke("eval", far)
    assert result.exit_code == 1
    assert result.stderr == f"Error: unknown model '{far}'. Run 'invarbench cards list' to see registered models.\n"


def test_missing_card_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = invoke("eval", str(missing))
    assert result.exit_code == 1
    assert result.stderr == f"Error: model card file not found: {missing}\n"


def test_malformed_yaml_names_file_and_line(tmp_path):
    card = tmp_path / "bad.yaml"
    card.write_text("id: mnist5k/x\nname: [unclosed\n")
    result = invoke("eval", str(card))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: invalid YAML in model card {card} (line ")
    assert result.stderr.count("\n") == 1


def test_card_with_missing_fields_names_them(tmp_path):
    card = tmp_path / "partial.yaml"
    card.write_text("id: mnist5k/partial\nname: Partial\ndataset: mnist5k\n")
    result = invoke("eval", str(card))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: invalid model card {card}: ")
    for field in ("num_classes", "source", "format", "preprocessing", "training", "license", "submitted_by"):
        assert f"{field}: required field is missing" in result.stderr


def test_unknown_device():
    result = invoke("eval", "mnist5k/lenet-standard", "--device", "tpu")
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown --device 'tpu': use one of auto, cpu, cuda\n"


def test_cuda_requested_without_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("eval", "mnist5k/lenet-standard", "--device", "cuda")
    assert result.exit_code == 1
    assert result.stderr == "Error: device 'cuda' was requested but no CUDA GPU is available: use --device cpu\n"


def test_unknown_suite_suggests_the_near_miss():
    result = invoke("eval", "mnist5k/lenet-standard", "--suite", "quik")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: unknown suite 'quik'. Did you mean 'quick'?")


def test_results_list_on_an_empty_database(tmp_path):
    result = invoke("results", "list", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.exit_code == 0
    assert "No runs stored yet" in result.stdout


def _all_commands(command, path: tuple[str, ...] = ()):
    yield path, command
    if hasattr(command, "commands"):  # a group (Typer vendors its own click)
        for name, sub in command.commands.items():
            yield from _all_commands(sub, (*path, name))


@pytest.mark.parametrize(
    "path", [p for p, _ in _all_commands(typer.main.get_command(app))], ids=lambda p: " ".join(p) or "invarbench"
)
def test_every_command_and_option_has_help(path):
    command = dict(_all_commands(typer.main.get_command(app)))[path]
    assert command.help, f"'{' '.join(path)}' has no help text"
    for param in command.params:
        if param.name in ("help",):
            continue
        assert getattr(param, "help", None), f"'{' '.join(path)}' option/argument '{param.name}' has no help"
    result = invoke(*path, "--help")
    assert result.exit_code == 0
