import sys

from . import buildtime, cgenn, checktime, cluster, cma, distill, formats, fuzz, learning, memory, predict, report, serve, \
    soundness, spiking, symmetry, torch_layer, train, widths, workflow

COMMANDS = {"soundness": soundness.main, "check": checktime.main, "predict": predict.main, "build": buildtime.main,
            "train": train.main, "fuzz": fuzz.main,
            "widths": widths.main, "cgenn": cgenn.main, "learning": learning.main, "memory": memory.main,
            "formats": formats.main, "serve": serve.main, "cma": cma.main,
            "distill": distill.main, "spiking": spiking.main,
            "cluster": cluster.main, "workflow": workflow.main, "torch": torch_layer.main, "symmetry": symmetry.main}

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name == "" or name.startswith("--"):          # every benchmark, one table
        sys.exit(report.main(sys.argv[1:]))
    if name not in COMMANDS:
        print("usage: python -m bench [--soundness N] [--jobs J]   (every benchmark, one table)\n"
              "       python -m bench soundness [N_MODELS] [--jobs J] | check | predict | build | train\n"
              "       python -m bench widths [C ...] [--batches 128,1024] [--accumulate exact|float] [--compile]\n"
              "       python -m bench cgenn [C ...] [--batches 128,1024] [--accumulate exact|float] [--compile]\n"
              "       python -m bench memory [C ...] [--batches 128,1024,4096]\n"
              "       python -m bench learning [--sizes 1024,..] [--steps N] [--width C] [--accumulate A] [--png F]\n"
              "       python -m bench fuzz [N] [--seed S] [--command check|graph]\n"
              "       python -m bench formats [--formats float64,posit16,...] [--steps N] [--batches B,...]\n"
              "       python -m bench serve [--clients 64] [--rotations 200] [--seconds 60] [--learn [--png F]]\n"
              "       python -m bench cma [--seeds 11]\n"
              "       python -m bench distill [--trials 50] [--png F]\n"
              "       python -m bench spiking [--seeds 8] [--brian2 PYTHON] [--png F]\n"
              "       python -m bench cluster [--models rigid,volume] [--samples N] [--batch B] [--steps S] [--workers 1,2]\n"
              "       python -m bench workflow [--samples N]\n"
              "       python -m bench torch [C ...] [--batches 128,1024] [--accumulate exact,float]\n"
              "       python -m bench symmetry [--width 96] [--models 1000]")
        sys.exit(2)
    sys.exit(COMMANDS[name](sys.argv[2:]))
