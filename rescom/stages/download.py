"""DVC's download stage: the official CIFAR archive under data/raw/<name> (no-op when present)."""

from __future__ import annotations

from rescom.stages.entry import stage_main


def run(name: str, root: str | None, url: str | None = None) -> str:
    """Fetch and check the archive (rescom.data.sources.cifar); the line that says where it is."""
    from rescom.data.sources.cifar import download_cifar
    from rescom.errors import UsageError

    if name not in ("cifar10", "cifar100"):
        raise UsageError(f"data download: {name!r} cannot be downloaded; choose cifar10 or cifar100")
    return f"{download_cifar(name, root, url)}: md5 verified, unpacked beside it"


def main(argv: list[str] | None = None) -> None:
    stage_main("download", __doc__, run, argv, (["name"], {"help": "cifar10 or cifar100."}),
               (["--root"], {"help": "Folder for the archive (default data/raw/<name>)."}), params=False)


if __name__ == "__main__":
    main()
