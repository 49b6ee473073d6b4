"""The plan of a run as plain data, and its text and Mermaid renderings."""

from __future__ import annotations

from typing import Any


def _component(options: Any) -> dict[str, Any]:
    data = options.model_dump(mode="json")
    kind = getattr(type(options), "__vemkit_component__", ("?", data.get("type")))[0]
    return {"kind": kind, "type": data.pop("type", None), "options": data}


def plan_of(spec: Any) -> dict[str, Any]:
    """What a run of ``spec`` builds and does, from the validated spec alone."""
    modules = [
        {
            "name": "teacher",
            **_component(spec.teacher.arch),
            "trainable": spec.teacher.mode == "online",
        },
        {"name": "student", **_component(spec.student.arch), "trainable": True},
    ]
    mi = _component(spec.mi)
    phases = []
    if mi["type"] != "none":
        phases.append({"name": "mi", "updates": [f"mi:{mi['type']}"], "terms": [], "from": "mi"})
    phases.append(
        {
            "name": "student",
            "updates": ["student"],
            "terms": [
                {"name": f"{t.type}", "weight": getattr(t, "weight", 1.0)} for t in spec.losses
            ],
            "from": "method + mi + losses",
        }
    )
    if spec.teacher.mode == "online":
        phases.append({"name": "teacher", "updates": ["teacher"], "terms": [], "from": "method"})
    return {
        "name": spec.name,
        "task": spec.task,
        "iterations": spec.train.iterations,
        "batch_size": spec.train.batch_size,
        "modules": modules,
        "method": _component(spec.method),
        "mi": mi,
        "phases": phases,
        "optimizers": [
            {
                "group": m["name"],
                "optimizer": _component(spec.train.optimizer),
                "scheduler": _component(spec.train.scheduler),
            }
            for m in modules
            if m["trainable"]
        ],
        "data": {
            "train": _component(spec.data.train),
            "eval": _component(spec.data.eval) if spec.data.eval else None,
        },
        "metrics": [_component(m) for m in spec.eval.metrics],
    }


def _opts(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def render(plan: dict[str, Any], fmt: str = "text") -> str:
    if fmt == "mermaid":
        return _mermaid(plan)
    lines = [
        f"plan of '{plan['name']}' ({plan['task']}, {plan['iterations']} iterations, "
        f"batch {plan['batch_size']})",
        "",
        "modules:",
    ]
    for m in plan["modules"]:
        state = "trained" if m["trainable"] else "frozen"
        lines.append(
            f"  {m['name']:<10} {m['kind']} {m['type']:<16} {state:<8} {_opts(m['options'])}"
        )
    lines.append(f"\nmethod: {plan['method']['type']}  {_opts(plan['method']['options'])}")
    lines.append(f"mi:     {plan['mi']['type']}  {_opts(plan['mi']['options'])}")
    lines.append("\nphases of one iteration:")
    for i, ph in enumerate(plan["phases"], 1):
        terms = ", ".join(f"{t['weight']}·{t['name']}" for t in ph["terms"])
        lines.append(
            f"  {i}. {ph['name']:<10} updates {', '.join(ph['updates'])}"
            + (f"; terms: {terms}" if terms else "")
        )
    lines.append("\noptimizers:")
    for o in plan["optimizers"]:
        lines.append(
            f"  {o['group']:<10} {o['optimizer']['type']} ({_opts(o['optimizer']['options'])})"
            f", schedule {o['scheduler']['type']}"
        )
    return "\n".join(lines)


def _mermaid(plan: dict[str, Any]) -> str:
    lines = ["flowchart LR", "  input([input]) --> teacher & student"]
    for m in plan["modules"]:
        lines.append(f'  {m["name"]}["{m["name"]}: {m["type"]}"]')
    prev = None
    for ph in plan["phases"]:
        node = f"phase_{ph['name']}"
        label = ph["name"] + "".join(f"<br/>{t['weight']}·{t['name']}" for t in ph["terms"])
        lines.append(f'  {node}{{{{"{label}"}}}}')
        for upd in ph["updates"]:
            target = upd.split(":")[0] if ":" not in upd else "mi"
            if target in ("teacher", "student"):
                lines.append(f"  {node} -. updates .-> {target}")
        if prev:
            lines.append(f"  {prev} --> {node}")
        prev = node
    return "\n".join(lines)
