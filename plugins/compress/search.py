"""Search a width configuration under a MAC budget: exhaustive, or evolutionary.

A configuration maps names (channel spaces, or any genes the caller defines) to one of their
``choices``. ``macs_fn(config)`` must be cheap (:class:`.macs.WidthMacs` is); ``score_fn(config)``
may be expensive (a metric of the supernet's sub-network on a held-out part of the training
split) and is called at most once per configuration: results are cached by
:func:`config_key`, and a ``done`` dict of earlier scores (a resumed search) is honoured
without calling it again. No candidate over the budget is ever proposed or scored.

:func:`evolutionary_search` follows GAN-Compression's ``evolution_search.py`` (itself after
Once-for-All): a population of ``population`` random configurations under the budget; each
iteration keeps the best ``round(parent_ratio · population)`` as parents, adds
``round(mutation_ratio · population)`` mutants of random parents (each gene resampled with
probability ``mutate_prob``) and ``population − that`` crossovers of two random parents (each
gene from either), resampling any child over the budget. GAN-Compression scores its crossover
children but, by an indexing slip, keeps only the mutants; here they are kept, as in
Once-for-All. All randomness comes from one ``random.Random(seed)`` and does not depend on the
cache, so the same seed retraces the same trajectory, scored or resumed.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from vemkit.errors import VemkitError

__all__ = [
    "SearchResult",
    "config_key",
    "evolutionary_search",
    "exhaustive_search",
]

Config = dict[str, int]


def config_key(config: Mapping[str, int]) -> str:
    """A stable string key of a configuration (compact JSON, keys sorted)."""
    return json.dumps({k: int(v) for k, v in config.items()}, sort_keys=True, separators=(",", ":"))


@dataclass
class SearchResult:
    """The best configuration found and a ranked table of the best candidates."""

    best: Config
    best_score: float
    best_macs: int
    table: list[dict[str, Any]]
    """Rows ``{rank, config, macs, score}``, best first (ties: fewer MACs first)."""
    evaluated: int
    """Configurations scored by ``score_fn`` in this call (cache hits not counted)."""
    scores: dict[str, float] = field(default_factory=dict)
    """Every score known at the end, by :func:`config_key` (feed it back as ``done``)."""
    history: list[float] = field(default_factory=list)
    """Best score after each iteration (evolution) or empty (exhaustive)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Scorer:
    def __init__(
        self,
        macs_fn: Callable[[Config], float],
        score_fn: Callable[[Config], float],
        done: Mapping[str, float] | None,
        lower_is_better: bool,
    ) -> None:
        self.macs_fn = macs_fn
        self.score_fn = score_fn
        self.scores: dict[str, float] = dict(done or {})
        self.macs: dict[str, int] = {}
        self.configs: dict[str, Config] = {}
        self.evaluated = 0
        self.lower = lower_is_better

    def mac(self, config: Config) -> int:
        key = config_key(config)
        if key not in self.macs:
            self.macs[key] = int(self.macs_fn(config))
        return self.macs[key]

    def score(self, config: Config) -> float:
        key = config_key(config)
        self.configs[key] = dict(config)
        if key not in self.scores:
            value = float(self.score_fn(dict(config)))
            if math.isnan(value):
                raise VemkitError(f"score_fn returned NaN for {key}")
            self.scores[key] = value
            self.evaluated += 1
        return self.scores[key]

    def rank_key(self, config: Config) -> tuple[float, int]:
        s = self.score(config)
        return (s if self.lower else -s, self.mac(config))

    def result(self, top: int, history: list[float]) -> SearchResult:
        ranked = sorted(self.configs.values(), key=self.rank_key)
        if not ranked:
            raise VemkitError("the search scored no configuration")
        table = [
            {"rank": i + 1, "config": c, "macs": self.mac(c), "score": self.score(c)}
            for i, c in enumerate(ranked[:top])
        ]
        best = ranked[0]
        return SearchResult(
            best=dict(best),
            best_score=self.score(best),
            best_macs=self.mac(best),
            table=table,
            evaluated=self.evaluated,
            scores=dict(self.scores),
            history=history,
        )


def _check_choices(choices: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    if not choices:
        raise VemkitError("choices: nothing to search")
    out = {}
    for name, options in choices.items():
        opts = [int(v) for v in options]
        if not opts:
            raise VemkitError(f"choices.{name}: no option")
        out[name] = opts
    return out


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def exhaustive_search(
    choices: Mapping[str, Sequence[int]],
    macs_fn: Callable[[Config], float],
    score_fn: Callable[[Config], float],
    budget: float,
    *,
    lower_is_better: bool = False,
    done: Mapping[str, float] | None = None,
    progress: bool = True,
    top: int = 20,
) -> SearchResult:
    """Score every configuration whose MACs fit ``budget`` and rank them."""
    opts = _check_choices(choices)
    scorer = _Scorer(macs_fn, score_fn, done, lower_is_better)
    names = list(opts)
    total = math.prod(len(v) for v in opts.values())
    with _progress(total, "search", progress) as bar:
        for values in itertools.product(*(opts[n] for n in names)):
            config = dict(zip(names, values, strict=True))
            if scorer.mac(config) <= budget:
                scorer.score(config)
            bar.update(1)
    if not scorer.configs:
        raise VemkitError(f"no configuration fits the budget of {budget:.4g} MACs")
    return scorer.result(top, [])


def evolutionary_search(
    choices: Mapping[str, Sequence[int]],
    macs_fn: Callable[[Config], float],
    score_fn: Callable[[Config], float],
    budget: float,
    *,
    population: int = 100,
    iterations: int = 500,
    mutate_prob: float = 0.2,
    parent_ratio: float = 0.25,
    mutation_ratio: float = 0.5,
    seed: int = 0,
    lower_is_better: bool = False,
    done: Mapping[str, float] | None = None,
    progress: bool = True,
    top: int = 20,
    max_tries: int = 100_000,
) -> SearchResult:
    """GAN-Compression's evolution under a MAC budget (see the module docstring).

    ``max_tries``: draws allowed to find one child under the budget before giving up with a
    :class:`VemkitError` (the budget is then too tight for these choices).
    """
    opts = _check_choices(choices)
    if population < 2:
        raise VemkitError("population must be at least 2")
    if not (0 <= mutate_prob <= 1 and 0 < parent_ratio <= 1 and 0 <= mutation_ratio <= 1):
        raise VemkitError(
            "mutate_prob and mutation_ratio must be in [0, 1], parent_ratio in (0, 1]"
        )
    if iterations < 0:
        raise VemkitError("iterations must be non-negative")
    names = list(opts)
    smallest = {n: min(v) for n, v in opts.items()}
    scorer = _Scorer(macs_fn, score_fn, done, lower_is_better)
    if scorer.mac(smallest) > budget:
        raise VemkitError(
            f"even the smallest configuration ({scorer.mac(smallest):.4g} MACs) is over the "
            f"budget of {budget:.4g}"
        )
    rng = random.Random(seed)
    n_parents = max(1, round(parent_ratio * population))
    n_mutants = round(mutation_ratio * population)

    def under_budget(make: Callable[[], Config]) -> Config:
        for _ in range(max_tries):
            child = make()
            if scorer.mac(child) <= budget:
                return child
        raise VemkitError(
            f"no configuration under the budget of {budget:.4g} MACs after {max_tries} draws"
        )

    def random_config() -> Config:
        return {n: rng.choice(opts[n]) for n in names}

    def mutate(parent: Config) -> Config:
        return {n: rng.choice(opts[n]) if rng.random() < mutate_prob else parent[n] for n in names}

    def crossover(a: Config, b: Config) -> Config:
        return {n: rng.choice([a[n], b[n]]) for n in names}

    history: list[float] = []
    with _progress(population + iterations * population, "evolution", progress) as bar:
        pool = []
        for _ in range(population):
            pool.append(under_budget(random_config))
        for c in pool:
            scorer.score(c)
            bar.update(1)
        for _ in range(iterations):
            parents = sorted(pool, key=scorer.rank_key)[:n_parents]
            history.append(scorer.score(parents[0]))
            children = []
            for _ in range(n_mutants):
                # As GAN-Compression: one parent, mutated again until the child fits.
                parent = rng.choice(parents)
                children.append(under_budget(functools.partial(mutate, parent)))
            for _ in range(population - n_mutants):
                a, b = rng.choice(parents), rng.choice(parents)
                children.append(under_budget(functools.partial(crossover, a, b)))
            for c in children:
                scorer.score(c)
                bar.update(1)
            pool = parents + children
            bar.set_postfix(best=f"{history[-1]:.4g}")
    return scorer.result(top, history)
