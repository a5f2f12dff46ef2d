"""`phg train FILE --data DATA.npz`: build the model, run its train block with a progress bar,
save the parameters, optionally plot the loss."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from . import build, load
from .diagnostics import PhgError

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def _fail(err: Console, message: str, code: int = EXIT_INPUT) -> int:
    err.print(Text(f"phg train: {message}"))
    return code


def train_command(args, out: Console, err: Console) -> int:
    program = load(args.file)
    trained = [m for m in program.models.values() if m.loss is not None]
    if args.model:
        if args.model not in program.models:
            return _fail(err, f"{args.file} has no model {args.model!r}; it has {', '.join(program.models)}")
        name = args.model
    elif len(program.trains) == 1:
        name = next(iter(program.trains))
    elif len(trained) == 1:
        name = trained[0].name
    else:
        return _fail(err, f"{args.file} trains {len(program.trains) or len(trained)} models; "
                          f"name one with --model ({', '.join(m.name for m in trained)})")
    if program.models[name].loss is None:
        return _fail(err, f"model {name} has no loss to train; add `loss EXPR` to it")
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return _fail(err, "--plot needs matplotlib: pip install 'phg[plot]'")
    try:
        data = dict(np.load(args.data))
    except (OSError, ValueError) as exc:
        return _fail(err, f"cannot read the data {args.data}: {exc}")
    try:
        module = build(program, unverified=args.unverified)
    except PhgError as exc:
        if exc.kind != "build":
            raise
        err.print(Text(exc.render()))
        return EXIT_FAILED
    cls = module.MODELS[name]
    settings = cls.SPEC["train"]["settings"]
    model = cls(seed=settings["seed"])
    try:
        arrays = {k: v for k, v in data.items() if k in cls.SPEC["train"]["inputs"]}
        missing = [k for k in cls.SPEC["train"]["inputs"] if k not in data]
        if missing:
            layout = {k: cls.SPEC["inputs"][k]["layout"] for k in missing}
            return _fail(err, f"{args.data} has no array {missing[0]!r} (model {name} needs "
                              f"{', '.join(cls.SPEC['train']['inputs'])}; {missing[0]} is [N, ..., "
                              f"{len(layout[missing[0]])}] with components {', '.join(layout[missing[0]])}); "
                              f"it has {', '.join(sorted(data)) or 'no arrays'}")
        n = len(next(iter(arrays.values())))
        batch, steps = model.schedule(n, steps=args.steps)
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.6g}"), TextColumn("{task.fields[rate]:.0f} steps/s"),
                            TimeRemainingColumn(), console=out, transient=False)
        start = time.perf_counter()
        with progress:
            task = progress.add_task(f"training {name}", total=steps, loss=float("nan"), rate=0.0)

            def report(k, loss):
                if k % 10 == 0 or k == steps - 1:
                    elapsed = time.perf_counter() - start
                    progress.update(task, completed=k + 1, loss=loss, rate=(k + 1) / elapsed if elapsed else 0.0)

            history = model.fit(arrays, steps=steps, callback=report)
    except ValueError as exc:
        return _fail(err, str(exc))
    seconds = time.perf_counter() - start
    target = Path(args.output) if args.output else Path(args.file).with_suffix("").with_suffix(".params.npz")
    np.savez(target, **model.params)
    final = model.loss(**arrays)
    table = Table(title=Text(f"{name}: trained"), title_justify="left", show_header=False)
    table.add_row("steps", f"{len(history)} (batch {batch} of {n}, {settings['optimizer']}, "
                           f"accumulate {settings['accumulate']})")
    table.add_row("loss", f"{history[0]:.6g} at the first step -> {final:.6g} on the whole data set"
                  if len(history) else f"{final:.6g}")
    table.add_row("time", f"{seconds:.2f} s ({len(history) / seconds if seconds else 0:.0f} steps/s)")
    table.add_row("parameters", str(target))
    if args.plot:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.semilogy(np.arange(1, len(history) + 1), np.abs(history))
        ax.set_xlabel("step")
        ax.set_ylabel("batch loss")
        ax.set_title(f"{name}")
        fig.tight_layout()
        fig.savefig(args.plot)
        plt.close(fig)
        table.add_row("loss curve", args.plot)
    out.print(table)
    return EXIT_OK if np.isfinite(final) else _fail(err, "the loss is not finite: training diverged", EXIT_FAILED)
