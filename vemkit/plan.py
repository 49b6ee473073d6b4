"""The plan of a run as plain data, and its text and Mermaid renderings."""

from __future__ import annotations

from typing import Any


def plan_of(spec: Any, registry: Any = None) -> dict[str, Any]:
    """What a run of ``spec`` builds and does: the spec compiled on the meta device (no
    weights, no data read) and described (:meth:`vemkit.engine.program.Program.describe`)."""
    from vemkit.engine.program import compile
    from vemkit.stages import recipe_of

    context = {}
    size = _train_size(spec, registry)
    if size is not None:
        context["num_samples"] = size
    recipe = recipe_of(spec)
    if not recipe:
        return compile(spec, registry=registry, meta=True, context=context).describe()
    return _recipe_plan(spec, recipe, registry, context)


def _recipe_plan(spec: Any, recipe: list[Any], registry: Any, context: dict[str, Any]) -> Any:
    """Each stage compiled on the meta device as it would run. A stage after a prune or search
    is shown with the architecture the spec starts from (the real one is known only then)."""
    from vemkit import registry as registry_module
    from vemkit.engine.program import compile
    from vemkit.spec_model import spec_model
    from vemkit.stages import stage_spec_data

    reg = registry or registry_module.default()
    stages = []
    changed_by: dict[str, str] = {}
    first: dict[str, Any] | None = None
    for stage in recipe:
        stage_spec = spec_model(reg).model_validate(stage_spec_data(spec, stage))
        program = compile(stage_spec, registry=reg, meta=True, context=context, stage=stage)
        described = program.describe()
        first = first or described
        options = stage.options
        entry: dict[str, Any] = {
            "name": stage.name,
            "kind": stage.kind,
            "about": stage.describe(spec),
            "changes": list(type(options).changes),
            "modules": [m["name"] for m in described["modules"]],
            "architectures": {
                role: {"from": changed_by.get(role), **_component(getattr(stage_spec, role).arch)}
                for role in ("teacher", "student")
            },
        }
        if stage.is_training:
            entry.update(
                iterations=stage_spec.train.iterations,
                teacher=stage_spec.teacher.mode,
                student=options.student,
                inherit=options.inherit,
                mi=stage.uses_mi,
                plan={**described, "mi_active": stage.uses_mi},
            )
        for role in type(options).changes:
            changed_by[role] = stage.name
        stages.append(entry)
    assert first is not None
    total = sum(s.get("iterations", 0) for s in stages)
    return {**first, "iterations": total, "recipe": stages}


def _component(options: Any) -> dict[str, Any]:
    data = options.model_dump(mode="json")
    return {"type": data.pop("type", None), "options": data}


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
    if plan.get("recipe"):
        return _render_recipe(plan)
    return _render_program(plan)


def _render_recipe(plan: dict[str, Any]) -> str:
    stages = plan["recipe"]
    lines = [
        f"plan of '{plan['name']}' ({plan['task']}): a recipe of {len(stages)} stages, "
        f"{plan['iterations']} training iterations in all, batch {plan['batch_size']}",
        "",
        "stages:",
    ]
    for i, st in enumerate(stages, 1):
        if st["kind"] == "train":
            what = (
                f"train, {st['iterations']} iterations, teacher {st['teacher']}"
                + ("" if st["student"] else ", student not trained")
                + (f", with mi {plan['mi']['type']}" if st["mi"] else "")
                + (
                    ""
                    if st["inherit"] is None
                    else f", inherits {', '.join(st['inherit']) or 'nothing (fresh weights)'}"
                )
            )
        else:
            what = "step"
        lines.append(f"  {i}. {st['name']:<12} ({what}): {st['about']}")
        for role in st["changes"]:
            lines.append(
                f"     replaces the {role}'s architecture (recorded in the stage's folder)"
            )
        for role, arch in st["architectures"].items():
            if arch["from"]:
                lines.append(
                    f"     {role}: the architecture stage '{arch['from']}' leaves (shown below "
                    f"as the spec's {arch['type']})"
                )
    for i, st in enumerate(stages, 1):
        if st["kind"] != "train":
            continue
        lines += ["", f"-- stage {i}: {st['name']} " + "-" * 40]
        lines += _render_program(st["plan"]).splitlines()[2:]
    for note in plan.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _render_program(plan: dict[str, Any]) -> str:
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
    # A recipe's stages are listed above the stages' programs, not in every method line.
    method = {k: v for k, v in plan["method"]["options"].items() if k != "stages"}
    lines.append(f"\nmethod: {plan['method']['type']}  {_opts(method)}")
    if plan.get("mi_active", True):
        lines.append(f"mi:     {plan['mi']['type']}  {_opts(plan['mi']['options'])}")
    else:
        lines.append(f"mi:     none in this stage ({plan['mi']['type']} joins another stage)")
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
    if plan.get("recipe"):
        return _mermaid_recipe(plan["recipe"])
    return _mermaid_program(plan)


def _mermaid_recipe(stages: list[dict[str, Any]]) -> str:
    lines = ["flowchart LR"]
    prev = None
    for i, st in enumerate(stages, 1):
        node = f"stage_{i}_{_node(st['name'])}"
        if st["kind"] == "train":
            label = f"{i}. {st['name']}<br/>train, {st['iterations']} iterations"
            lines.append(f'  {node}["{label}"]')
        else:
            label = f"{i}. {st['name']}<br/>{st['about']}".replace('"', "'")
            lines.append(f'  {node}{{{{"{label}"}}}}')
        if prev:
            changed = ", ".join(stages[i - 2]["changes"])
            edge = f" -- {changed} --> " if changed else " --> "
            lines.append(f"  {prev}{edge}{node}")
        prev = node
    return "\n".join(lines)


def _mermaid_program(plan: dict[str, Any]) -> str:
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
