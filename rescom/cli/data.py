"""`rescom data`: fetch the data sets that can be fetched freely (CIFAR-10/100), atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rescom.cli.common import expected_errors

data_app = typer.Typer(no_args_is_help=True, help="Data sets: download the official CIFAR archives.")


@data_app.command("download")
@expected_errors
def download(name: str = typer.Argument(..., help="cifar10 or cifar100."),
             root: Optional[Path] = typer.Option(None, help="Folder for the archive (default data/raw/<name>)."),
             url: Optional[str] = typer.Option(None, help="A mirror of the official archive (default: torchvision's URL).")):
    """Fetch the official archive (torchvision's URL and md5), check it and unpack it; no-op when present.

    A partial download never takes the archive's name; offline, it fails within seconds saying where
    to put the file by hand. ImageNet-LT, Places-LT and iNaturalist cannot be fetched freely: their
    prepare stages name the missing split lists and image roots.
    """
    from rescom.stages import download as stage

    typer.echo(stage.run(name, root, url))
