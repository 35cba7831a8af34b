import importlib
import pkgutil

from ffclr import benchmarks
from ffclr.cli import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "bench", "benchmarks of speed and accuracy (not tests)")
    targets = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{benchmarks.__name__}.{info.name}")
        if not hasattr(module, "NAME"):
            continue
        sub = add_command(targets, module.NAME, module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
