"""`phg train FILE --data DATA.npz [--prior PRIOR.json] [--scheduler ADDRESS]`: build the model, run
its train block with a progress bar (MAP with a prior, LANGUAGE §13; on a Dask cluster, §15), save
the parameters, optionally plot the loss."""
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

from phg.codegen.compiling import compile_model
from phg.codegen.runtime import TrainingDiverged

from phg import build, files, load
from phg.diagnostics import PhgError
from phg.npz import ArchiveError, read_arrays
from phg.program import TrainSpec

from .console import cached_kernels, compile_progress

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def _fail(err: Console, message: str, code: int = EXIT_INPUT) -> int:
    err.print(Text(f"phg train: {message}"))
    return code


def _read_data(path: str, inputs) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays of an .npz archive named after the model's inputs, and the names of all it holds.
    Nothing else in it is read, and a claimed size past phg.npz's limit is refused before it is
    allocated; object arrays are refused, never unpickled."""
    try:
        return read_arrays(path, inputs)
    except ArchiveError as exc:
        hint = " named after the model's inputs (write it with np.savez(path, x=..., y=...))" if exc.single_array else ""
        raise ValueError(f"cannot read the data {path}: {exc}{hint}") from None


def _choose(program, requested: str | None) -> str:
    """The model to train: the one named, the one with a train block, or the only one with a loss."""
    trained = [m.name for m in program.models.values() if m.loss is not None]
    if requested:
        if requested not in program.models:
            raise ValueError(f"{program.path} has no model {requested!r}; it has {', '.join(program.models) or 'none'}")
        if program.models[requested].loss is None:
            raise ValueError(f"model {requested} has no loss; nothing to train (add `loss EXPR` to it)")
        return requested
    if not trained:
        if len(program.models) == 1:
            raise ValueError(f"model {next(iter(program.models))} has no loss; nothing to train "
                             "(add `loss EXPR` to it)")
        models = f"its models: {', '.join(program.models)}" if program.models else "it has no models"
        raise ValueError(f"{program.path} has no model with a loss ({models}); nothing to train")
    if len(program.trains) == 1:
        return next(iter(program.trains))
    if len(trained) == 1:
        return trained[0]
    raise ValueError(f"{program.path} has {len(trained)} models with a loss; name one with --model "
                     f"({', '.join(trained)})")


def _save(target: Path, params) -> None:
    """Write exactly target (np.savez would add .npz to another name), all or nothing: a failed
    write leaves an earlier file as it was."""
    files.replace(target, lambda f: np.savez(f, **params))


def train_command(args, out: Console, err: Console) -> int:
    program = load(args.file)
    try:
        name = _choose(program, args.model)
    except ValueError as exc:
        return _fail(err, str(exc))
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return _fail(err, "--plot needs matplotlib: pip install matplotlib")
    target = Path(args.output) if args.output else Path(args.file).with_suffix("").with_suffix(".params.npz")
    if not target.parent.is_dir():
        return _fail(err, f"cannot write the parameters to {target}: the folder {target.parent} does not exist")
    try:
        graph = program.models[name]
        data, held = _read_data(args.data, [graph.values[v].name for v in graph.inputs])
        val = None
        if args.val is not None:
            val, _ = _read_data(args.val, [graph.values[v].name for v in graph.inputs])
        elif args.patience is not None:
            raise ValueError("--patience stops on a validation set's loss; give it with --validation VAL.npz")
    except ValueError as exc:
        return _fail(err, str(exc))
    prior = None
    if args.prior:
        from phg.prior import Prior, PriorError
        try:
            prior = Prior.load(args.prior)
        except PriorError as exc:
            return _fail(err, str(exc))
    client = None
    if args.scheduler:
        try:
            client = _connect(args.scheduler)
        except ValueError as exc:
            return _fail(err, str(exc))
    try:
        return _train(args, program, name, data, held, val, prior, target, out, err, client,
                      plt if args.plot else None)
    finally:
        if client is not None:
            client.close()


def state_path(params: Path) -> Path:
    """Where phg train keeps the optimizer state of the parameters at `params`: beside them."""
    name = params.name[:-4] if params.name.endswith(".npz") else params.name
    return params.with_name(name + ".state.npz")


def _resume(model, path: str) -> int:
    """The parameters and optimizer state of an earlier phg train run set in `model`; the step of
    the samples' order to continue from.  A ValueError names what is missing or wrong."""
    names = list(model.SPEC["params"])
    state_file = state_path(Path(path))
    for needed in (Path(path), state_file):
        if not needed.is_file():
            raise ValueError(f"--resume {path}: there is no file {needed} (phg train writes PARAMS.npz and its "
                             "optimizer state PARAMS.state.npz beside it)")
    from .serving import _params

    try:
        params = _params(path, type(model))
        state, _ = read_arrays(state_file, ["t", "order"] + [f"moments.{n}" for n in names])
    except ArchiveError as exc:
        raise ValueError(f"--resume {state_file}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"--resume {exc}") from None
    try:
        model.params.update(params)
        model.load_optimizer_state(state)
    except ValueError as exc:
        raise ValueError(f"--resume {path}: {exc}") from None
    return int(state["order"])


def _overrides(args) -> dict:
    """fit()'s keyword overrides from --lr, --seed and --schedule (a ValueError naming the flag)."""
    out = {}
    if args.lr is not None:
        out["lr"] = args.lr
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
        out["seed"] = args.seed
    if args.schedule is not None:
        text = args.schedule.strip()
        if text in ("constant", "cosine"):
            out["schedule"] = text
        elif text.startswith("step:") and text.count(":") == 2:
            every, factor = text.split(":")[1:]
            try:
                out["schedule"] = ("step", int(every), float(factor))
            except ValueError:
                raise ValueError(f"--schedule {text}: expected step:EVERY:FACTOR with EVERY a whole number and "
                                 "FACTOR a number, e.g. step:100:0.5") from None
        else:
            raise ValueError(f"--schedule {text!r} is not a schedule; expected constant, cosine or "
                             "step:EVERY:FACTOR (e.g. step:100:0.5)")
    return out


# How long phg train waits for a Dask scheduler to answer.
CONNECT_SECONDS = 10


def _connect(address: str):
    """A dask.distributed Client of the scheduler at `address`, or a ValueError saying why not."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--scheduler trains on a Dask cluster and needs dask.distributed: "
                         "pip install 'dask[distributed]'") from None
    try:
        return Client(address, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address!r} within {CONNECT_SECONDS} s "
                         f"({type(exc).__name__}: {exc}); expected an address like tcp://HOST:8786") from None


def _train(args, program, name, data, held, val, prior, target, out, err, client, plt) -> int:
    try:
        module = build(program, unverified=args.unverified)
    except PhgError as exc:
        if exc.kind != "build":
            raise
        err.print(Text(exc.render()))
        return EXIT_FAILED
    cls = module.MODELS[name]
    settings = cls.SPEC["train"]["settings"]
    try:
        overrides = _overrides(args)
    except ValueError as exc:
        return _fail(err, str(exc))
    model = cls(seed=settings["seed"] if args.seed is None else args.seed)
    resume_at = 0
    if args.resume is not None:
        try:
            resume_at = _resume(model, args.resume)
        except ValueError as exc:
            return _fail(err, str(exc))

    spec = program.trains.get(name)
    defaults = (spec or TrainSpec(name)).defaults(also_given=("steps",) if args.steps is not None else ())
    if defaults:
        whence = f"the train block of {name} leaves these at their defaults" if spec is not None else \
            f"{name} has no train block, so it trains with the defaults"
        out.print(Text(f"{whence}: {'; '.join(defaults)}"))
    try:
        arrays = {k: v for k, v in data.items() if k in cls.SPEC["train"]["inputs"]}
        missing = [k for k in cls.SPEC["train"]["inputs"] if k not in data]
        if missing:
            layout = {k: cls.SPEC["inputs"][k]["layout"] for k in missing}
            return _fail(err, f"{args.data} has no array {missing[0]!r} (model {name} needs "
                              f"{', '.join(cls.SPEC['train']['inputs'])}; {missing[0]} is [N, ..., "
                              f"{len(layout[missing[0]])}] with components {', '.join(layout[missing[0]])}); "
                              f"it has {', '.join(sorted(held)) or 'no arrays'}")
        n = model.samples(arrays)
        batch, steps = model.schedule(n, steps=args.steps, batch=args.batch)
        resumed = args.resume is not None and target.exists() and target.resolve() == Path(args.resume).resolve()
        if target.exists() and not (args.force or resumed):
            return _fail(err, f"{target} exists; pass --force to overwrite it (or --resume {target} to continue "
                              "that run, writing it in place)")
        # Compiled once the data is known good, and before the clock starts: steps/s counts training alone.
        compiling = compile_progress(err)
        compile_model(cls, compiling)
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

            if prior is not None and prior.scale == "auto" and val is not None:
                raise ValueError("--validation watches one fit, and a prior whose scale is \"auto\" runs several to "
                                 "choose it; give the prior a scale, or train without --validation")
            if prior is not None and prior.scale == "auto":
                scales, history = model.choose_scale(arrays, prior, steps=steps, batch=batch, callback=report,
                                                     **overrides)
            else:
                watch = {} if val is None else {"validation": {k: v for k, v in val.items() if k in arrays},
                                                "patience": args.patience}
                history = model.fit(arrays, steps=steps, batch=batch, callback=report, prior=prior, client=client,
                                    start=resume_at, **overrides, **watch)
                scales = None if prior is None else prior.scale
    except ValueError as exc:
        return _fail(err, str(exc))
    except TrainingDiverged as exc:
        return _fail(err, f"{exc}; nothing written to {target}", EXIT_FAILED)
    seconds = time.perf_counter() - start
    final = model.loss(**arrays)
    if not np.isfinite(final):
        return _fail(err, f"the loss on the whole data set is {final}: training diverged; nothing written to {target}",
                     EXIT_FAILED)
    try:
        _save(target, model.params)
        if cls.SPEC["train"]["settings"]["optimizer"] != "cma":
            _save(state_path(target), model.optimizer_state())
    except OSError as exc:
        return _fail(err, f"cannot write the parameters to {target}: {exc}")
    table = Table(title=Text(f"{name}: trained"), title_justify="left", show_header=False)
    table.add_row("steps", f"{len(history)} (batch {batch} of {n}, {settings['optimizer']}, "
                           f"accumulate {settings['accumulate']})")
    if model.validation is not None and val is not None:
        v = model.validation
        table.add_row("validation", f"loss {v['loss'][-1]:.6g} at step {v['step'][-1]}, lowest {min(v['loss']):.6g} at "
                      f"step {v['best']}" + (f"; stopped early (patience {args.patience}), the lowest's parameters "
                                             "kept" if v["stopped"] else ""))
    if args.resume is not None:
        table.add_row("resumed", f"{args.resume} at step {resume_at} of the samples' order")
    if overrides:
        given = {"lr": lambda v: f"lr {v:g} (the train block's {settings['hyper'].get('lr', float('nan')):g})",
                 "seed": lambda v: f"seed {v} (the train block's {settings['seed']})",
                 "schedule": lambda v: f"schedule {args.schedule}"}
        table.add_row("overrides", ", ".join(given[k](v) for k, v in overrides.items()))
    table.add_row("loss", f"{history[0]:.6g} at the first step -> {final:.6g} on the whole data set"
                  if len(history) else f"{final:.6g}")
    if prior is not None:
        chosen = ", ".join(f"{k} {v:.4g}" for k, v in scales.items()) if isinstance(scales, dict) else f"{scales:.4g}"
        table.add_row("prior", f"{args.prior}, scale {chosen}" + (" (chosen on the data)" if prior.scale == "auto" else ""))
    if client is not None:
        workers = len(client.scheduler_info()["workers"])
        table.add_row("cluster", f"{args.scheduler}, {workers} worker{'s' * (workers != 1)}"
                      + (" (bit for bit as in one process)" if settings["accumulate"] == "exact" else ""))
    table.add_row("compile", f"{compiling.seconds:.2f} s (the kernels, before the first step: "
                             f"{cached_kernels(compiling)})")
    table.add_row("time", f"{seconds:.2f} s training ({len(history) / seconds if seconds else 0:.0f} steps/s)")
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
    return EXIT_OK
