"""README and docs/ as a reader uses them: every relative link reaches a file (and a heading, for an
anchor), and every `rescom ...` command shown names commands and options the CLI has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from rescom.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PENDING = {ROOT / "docs" / "sharing.md"}  # linked from README's "Share results", written by that work


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            for title in re.findall(r"^#+ (.*)$", page.read_text(), re.M)}


def _shown_commands(page: Path) -> list[str]:
    text = page.read_text()
    spans = [s for s in re.findall(r"`([^`\n]+)`", text) if s.startswith("rescom ")]
    blocks = "\n".join(re.findall(r"^```.*?^```", text, re.M | re.S))
    lines = [line.split("  #")[0].rstrip(" \\") for line in re.findall(r"^rescom .*$", blocks, re.M)]
    return spans + lines


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists() or dest in PENDING, f"{page.name}: {target} does not exist"
        assert not anchor or not dest.exists() or anchor in _anchors(dest), f"{page.name}: no heading for {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_shown_commands_exist(page):
    cli = typer.main.get_command(app)
    for shown in _shown_commands(page):
        words = shown.replace("\\|", "|").split()[1:]
        command = cli
        while words and words[0] in getattr(command, "commands", {}):
            command = command.commands[words.pop(0)]
        if hasattr(command, "commands") and words and words[0][0] not in "-[.":
            assert set(words[0].split("|")) <= set(command.commands), f"{page.name}: {shown}"
        if (command.context_settings or {}).get("allow_extra_args"):
            continue  # its other options go to the command it wraps (rescom exp show -> dvc exp show)
        options = {"--help", *(o for p in command.params for o in [*p.opts, *p.secondary_opts])}
        for option in re.findall(r"(?<![\w-])--[\w-]+", " ".join(words)):
            assert option in options, f"{page.name}: {shown}: {option} is no option of it"
