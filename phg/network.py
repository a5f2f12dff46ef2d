"""A lowered spiking network (LANGUAGE §16): its spike inputs, neuron groups and synapse groups,
and the models derived from its statements (phg.dsl.network), one hypergraph each."""
from __future__ import annotations

from dataclasses import dataclass, field

from .hypergraph import Hypergraph

METHODS = ("exact", "euler")


@dataclass
class NetworkBlock:
    """A derived model: its role (init, ode, spike, reset, pre, post), the group it belongs to,
    what it reads ((variable, owner) per input, in order) and writes ((variable, owner, output))."""
    role: str
    owner: str
    graph: Hypergraph
    reads: list[tuple[str, str]]
    writes: list[tuple[str, str, str]]


@dataclass
class Network:
    name: str
    algebra: str
    inputs: dict[str, int]                                # spike inputs: channels
    groups: dict[str, int]                                # neuron groups: neurons
    synapses: dict[str, tuple[str, str]]                  # synapse groups: (source, target)
    variables: dict[str, list[tuple[str, str]]]           # group -> [(name, state | param | trace)]
    blocks: list[NetworkBlock]
    dt: float | None = None                               # seconds (the simulate block's), or given to simulate
    method: str = "exact"
    seed: int = 0
    simulate_span: object = None

    def block(self, owner: str, role: str) -> NetworkBlock | None:
        return next((b for b in self.blocks if b.owner == owner and b.role == role), None)

    def graphs(self) -> list[Hypergraph]:
        return [b.graph for b in self.blocks]

    def to_dict(self) -> dict:
        return {"name": self.name, "algebra": self.algebra, "inputs": self.inputs, "groups": self.groups,
                "synapses": {k: list(v) for k, v in self.synapses.items()},
                "blocks": [b.graph.to_dict() for b in self.blocks],
                "simulate": {"dt": self.dt, "method": self.method, "seed": self.seed}}
