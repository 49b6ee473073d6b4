"""The plan of a run as plain data, and its text and Mermaid renderings."""

from __future__ import annotations

from typing import Any


def plan_of(spec: Any, registry: Any = None) -> dict[str, Any]:
    """What a run of ``spec`` builds and does: the spec compiled on the meta device (no
    weights, no data read) and described (:meth:`vemkit.engine.program.Program.describe`)."""
    from vemkit.engine.program import compile

    context = {}
    size = _train_size(spec, registry)
    if size is not None:
        context["num_samples"] = size
    return compile(spec, registry=registry, meta=True, context=context).describe()


def _train_size(spec: Any, registry: Any) -> int | None:
    # The training set size sizes some components (CRD's memory bank); the data may be absent
    # where a plan is made, so it is only a best effort.
    from vemkit import registry as registry_module

    try:
        reg = registry or registry_module.default()
        return len(reg.build("dataset", spec.data.train, seed=spec.seed))
    except Exception:
        return None


def _params(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _opts(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def render(plan: dict[str, Any], fmt: str = "text") -> str:
    if fmt == "mermaid":
        return _mermaid(plan)
    lines = [
        f"plan of '{plan['name']}' ({plan['task']}, {plan['iterations']} iterations, "
        f"batch {plan['batch_size']}, {plan.get('precision', 'fp32')})",
        "",
        "modules:",
    ]
    for m in plan["modules"]:
        state = f"trained ({m['group']})" if m["trainable"] else "frozen"
        params = _params(m.get("params", 0))
        lines.append(
            f"  {m['name']:<16} {m['type'] or '?':<18} {params:>8} params  {state:<22}"
            f" {_opts(m['options'])}"
        )
    lines.append(f"\nmethod: {plan['method']['type']}  {_opts(plan['method']['options'])}")
    lines.append(f"mi:     {plan['mi']['type']}  {_opts(plan['mi']['options'])}")
    lines.append("\nphases of one iteration:")
    for i, ph in enumerate(plan["phases"], 1):
        terms = " + ".join(f"{t['weight']:g}·{t['name']}" for t in ph["terms"])
        every = f" every {ph['every']} iterations" if ph.get("every", 1) > 1 else ""
        lines.append(
            f"  {i}. {ph['name']:<14} updates {', '.join(ph['updates'])}{every}"
            + (f"; loss = {terms}" if terms else "")
        )
    for schedule in plan.get("schedules", []):
        lines.append(f"  schedule ({schedule['from']}): {schedule['about']}")
    lines.append("\noptimizers:")
    for o in plan["optimizers"]:
        clip = f", clip {o['grad_clip']}" if o.get("grad_clip") else ""
        lines.append(
            f"  {o['group']:<14} {o['optimizer']['type']} ({_opts(o['optimizer']['options'])})"
            f", schedule {o['scheduler']['type']}{clip}; modules {', '.join(o.get('modules', []))}"
        )
    if plan.get("taps"):
        lines.append(f"\nfeature taps: {', '.join(plan['taps'])}")
    if plan.get("stages"):
        lines.append("stages before training: " + ", ".join(s["name"] for s in plan["stages"]))
    for note in plan.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _node(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _mermaid(plan: dict[str, Any]) -> str:
    lines = ["flowchart LR", "  input([input]) --> teacher & student"]
    for m in plan["modules"]:
        lines.append(f'  {_node(m["name"])}["{m["name"]}: {m["type"]}"]')
    members = {o["group"]: o.get("modules", [o["group"]]) for o in plan["optimizers"]}
    prev = None
    for ph in plan["phases"]:
        node = f"phase_{_node(ph['name'])}"
        label = ph["name"] + "".join(f"<br/>{t['weight']:g}·{t['name']}" for t in ph["terms"])
        lines.append(f'  {node}{{{{"{label}"}}}}')
        for group in ph["updates"]:
            for module in members.get(group, []):
                lines.append(f"  {node} -. updates .-> {_node(module)}")
        if prev:
            lines.append(f"  {prev} --> {node}")
        prev = node
    return "\n".join(lines)
