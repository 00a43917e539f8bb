"""The CLI surface as users see it: every option has help, and every command's --help is the
checked-in reference (tests/reference/cli_help.txt), so a change to the CLI is a visible diff.

Regenerate the reference after a deliberate change: `.venv/bin/python tests/test_cli_help.py`.
"""

from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from renderflow.daemon.daemon_cli import main as rf_daemon
from renderflow.daemon.rf_render.cli import main as rf_render
from renderflow.training.cli import main as rf_train
from renderflow.training.eval_cli import main as rf_eval

REFERENCE = Path(__file__).parent / "reference" / "cli_help.txt"
CLIS = {"rf-render": rf_render, "rf-daemon": rf_daemon, "rf-train": rf_train, "rf-eval": rf_eval}
WIDTH = 100


def commands(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from commands(command.commands[name], [*path, name])


def all_help() -> str:
    """Every command's --help, one after the other, at a fixed width."""
    sections = []
    for name, cli in CLIS.items():
        for path, _ in commands(cli, [name]):
            result = CliRunner().invoke(cli, [*path[1:], "--help"], prog_name=name, terminal_width=WIDTH)
            assert result.exit_code == 0, result.output
            sections.append(f"$ {' '.join(path)} --help\n{result.output}")
    return "\n".join(sections)


def test_every_option_of_every_command_has_help():
    missing = [
        f"{' '.join(path)} {option.opts[0]}"
        for name, cli in CLIS.items()
        for path, command in commands(cli, [name])
        for option in command.params
        if isinstance(option, click.Option) and not option.help
    ]
    assert not missing


def test_every_commands_help_is_the_checked_in_reference():
    assert all_help() == REFERENCE.read_text(), "CLI changed: regenerate with python tests/test_cli_help.py"


if __name__ == "__main__":
    REFERENCE.write_text(all_help())
    print(f"wrote {REFERENCE}")
