"""The retrain run summary: a Markdown artifact and a table artifact of the same rows.

Rendered from the flow's result dict only, so the CLI, the Prefect UI and tests read the same
facts: what was retrained and what was cached, metrics, promotion decisions, MLflow links.
"""

from __future__ import annotations

from typing import Any

from registry.models import model_name
from registry.promotion import decision_text

MLFLOW_UI = "http://127.0.0.1:5000"  # `foundry ui` serves a local store here


def persona_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per persona: status, data hash, metrics, registry decision, time."""
    per_persona = (result.get("evaluation") or {}).get("per_persona", {})
    rows = []
    for slug, row in result["personas"].items():
        metrics = per_persona.get(slug, {})
        registered = row.get("registry") or {}
        train = row.get("adapters") or {}
        rows.append(
            {
                "persona": slug,
                "status": row["status"],
                "data hash": row.get("content_hash", ""),
                "turns": (row.get("synthesis") or {}).get("accepted"),
                "pairs": _pair_count(row.get("pairs")),
                "sft eval loss": _loss(train.get("sft")),
                "dpo eval loss": _loss(train.get("dpo")),
                "content recall": _round(metrics.get("content_recall")),
                "style recall": _round(metrics.get("style_recall")),
                "fluency nll": _round(metrics.get("fluency_nll")),
                "version": registered.get("version"),
                "decision": registered.get("decision"),
                "champion": registered.get("champion"),
                "seconds": row.get("seconds"),
                "failure": result["failed"].get(slug, ""),
            }
        )
    return rows


def summary_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for `create_table_artifact`: JSON-able, one per persona."""
    return [{k: ("" if v is None else v) for k, v in row.items()} for row in persona_rows(result)]


def render_summary(result: dict[str, Any]) -> str:
    rows = persona_rows(result)
    retrained = [r["persona"] for r in rows if r["status"] == "retrained"]
    cached = [r["persona"] for r in rows if r["status"] == "cached"]
    lines = [
        "# Retrain summary",
        "",
        f"- data version: `{result['data_rev']}`",
        f"- retrained: {', '.join(retrained) or 'none'}",
        f"- cached (nothing changed): {', '.join(cached) or 'none'}",
        f"- failed: {_failures(result)}",
        f"- synthesis cost: ${result.get('cost_usd', 0.0):.4f}; wall time {result['seconds']} s",
        "",
        "| persona | status | data hash | turns | pairs | SFT loss | DPO loss | content recall "
        "| style recall | fluency NLL | version | decision | champion | time (s) |",
        "|---" * 14 + "|",
    ]
    for r in rows:
        cells = [
            r["persona"], r["status"], f"`{r['data hash']}`", r["turns"], r["pairs"],
            r["sft eval loss"], r["dpo eval loss"], r["content recall"], r["style recall"],
            r["fluency nll"], _version(r["version"]), r["decision"], _version(r["champion"]),
            r["seconds"],
        ]  # fmt: skip
        lines.append("| " + " | ".join("-" if c in (None, "") else str(c) for c in cells) + " |")
    lines += _vectors(result)
    lines += _decisions(result)
    lines += _evaluation(result.get("evaluation") or {})
    if result.get("not_trainable"):
        lines += ["", "Left out (not trainable):", ""]
        lines += [f"- {slug}: {why}" for slug, why in result["not_trainable"].items()]
    if result.get("pending_stages"):
        lines += ["", "Not run yet (later issues add them):", ""]
        lines += [f"- {stage}" for stage in result["pending_stages"]]
    return "\n".join(lines) + "\n"


def mlflow_link(tracking_uri: str, path: str) -> str:
    """A link into the MLflow UI: the tracking server itself, or `foundry ui`'s for a file store."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith("http") else MLFLOW_UI
    return f"{base}/#/{path}"


def _vectors(result: dict[str, Any]) -> list[str]:
    rows = [(s, r["vectors"]) for s, r in result["personas"].items() if r.get("vectors")]
    if not rows:
        return []
    lines = [
        "",
        "Persona vectors (layer by AUC, strength by the fluency-guarded sweep):",
        "",
        "| persona | layer | AUC | alpha steer | alpha dpo+steer | notes |",
        "|---|---|---|---|---|---|",
    ]
    for slug, v in rows:
        alpha = v.get("alpha") or {}
        cells = [slug, v.get("layer"), v.get("auc"), alpha.get("steer", "-"),
                 alpha.get("dpo+steer", "-"), "; ".join(v.get("notes") or []) or "-"]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def _decisions(result: dict[str, Any]) -> list[str]:
    rows = [(s, r.get("registry")) for s, r in result["personas"].items() if r.get("registry")]
    if not rows:
        return []
    uri = result.get("tracking_uri", "")
    lines = ["", "Registry (MLflow):", ""]
    for slug, reg in rows:
        why = decision_text(reg.get("reasons") or [], reg.get("notes") or [])
        model = model_name(slug)
        version_path = f"models/{model}/versions/{reg['version']}"
        links = f"[model v{reg['version']}]({mlflow_link(uri, version_path)})"
        if reg.get("experiment_id") and reg.get("run_id"):
            run_path = f"experiments/{reg['experiment_id']}/runs/{reg['run_id']}"
            links += f", [run]({mlflow_link(uri, run_path)})"
        cached = " (registered by an earlier run)" if result["personas"][slug]["steps"].get(
            "register"
        ) == "cached" else ""  # fmt: skip
        lines.append(f"- {model}: v{reg['version']} {reg['decision']} ({why}){cached}; {links}")
    return lines


EVAL_COLUMNS = (  # the report's headline, in its order
    ("conflict fidelity", "conflict_fidelity"),
    ("stance", "stance_accuracy"),
    ("belief dominance", "belief_dominance"),
    ("content attribution", "content_accuracy"),
    ("style attribution", "style_accuracy"),
    ("copy rate", "copy_rate"),
    ("fluency NLL", "fluency_nll"),
    ("A-B cosine", "answer_cosine"),
)


def _evaluation(evaluation: dict[str, Any]) -> list[str]:
    """A variant x metric table from the flat `eval.<variant>.<metric>` numbers, each with its
    95 % interval where the evaluation gave one."""
    metrics = evaluation.get("metrics") or {}
    intervals = evaluation.get("intervals") or {}
    variants = list(dict.fromkeys(key.split(".")[1] for key in metrics))
    if not variants:
        return []
    cached = " (cached: no adapter changed)" if evaluation.get("cached") else ""
    lines = ["", f"Evaluation{cached} (report: `{evaluation.get('folder')}/report.md`):", ""]
    lines.append("| variant | " + " | ".join(name for name, _ in EVAL_COLUMNS) + " |")
    lines.append("|---" * (len(EVAL_COLUMNS) + 1) + "|")
    for variant in variants:
        names = [f"eval.{variant}.{key}" for _, key in EVAL_COLUMNS]
        text = [_with_interval(metrics.get(n), intervals.get(n)) for n in names]
        lines.append(f"| {variant} | " + " | ".join(text) + " |")
    return lines


def _with_interval(value: Any, interval: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    if isinstance(interval, list | tuple) and len(interval) == 2:
        return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"
    return f"{value:.2f}"


def _failures(result: dict[str, Any]) -> str:
    failed = result.get("failed") or {}
    if not failed:
        return "none"
    return "; ".join(
        f"**{slug}** ({why}; its champion is unchanged)" for slug, why in failed.items()
    )


def _pair_count(pairs: dict[str, Any] | None) -> int | None:
    counts = (pairs or {}).get("pairs") or {}
    return sum(v for k, v in counts.items() if k != "validation") or None


def _loss(artifact: dict[str, Any] | None) -> float | None:
    best = ((artifact or {}).get("summary") or {}).get("best_eval_loss")
    return round(best, 3) if isinstance(best, int | float) else None


def _round(value: Any) -> float | None:
    return round(value, 3) if isinstance(value, int | float) else None


def _version(number: Any) -> str | None:
    return f"v{number}" if number else None
