"""DVC's download stage: the official CIFAR archive under data/raw/<name> (no-op when present)."""

from __future__ import annotations

from rescom.stages.entry import one_line_errors, stage_parser


def run(name: str, root: str | None, url: str | None = None) -> str:
    """Fetch and check the archive (rescom.data.sources.cifar); the line that says where it is."""
    from rescom.data.sources.cifar import download_cifar

    if name not in ("cifar10", "cifar100"):
        raise ValueError(f"data download: {name!r} cannot be downloaded; choose cifar10 or cifar100")
    return f"{download_cifar(name, root, url)}: md5 verified, unpacked beside it"


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser("download", __doc__, params=False)
    parser.add_argument("name", help="cifar10 or cifar100.")
    parser.add_argument("--root", default=None, help="Folder for the archive (default data/raw/<name>).")
    args = parser.parse_args(argv)
    with one_line_errors():
        print(run(args.name, args.root))


if __name__ == "__main__":
    main()
