"""Aggregate stage: comparison tables computed from score files, cross-model leaderboards and checkpoint
provenance on disk. The columns come from the suite registry (each suite declares its own), so no suite is named
here.

    python -m evals.aggregate --scores results/micro/scores/*/*.json \\
        --leaderboards results/micro/scores/leaderboard/*.json --models sft dpo --models-dir results/micro/models \\
        --evals-json '{...the evals block...}' --micro-world --out-dir results/micro/tables

Models are ``sft`` (the one shared checkpoint) and ``<variant>-s<seed>`` (pipeline/config.py ``seeded_name``): the
tables have one row per variant, each cell the mean over its seeds with a 95 % CI (``seed_interval``), and the share
of seeds that beat SFT on the headline metric. Writes ``per_seed.csv`` (long format: every cell's per-seed values,
which the tables are computed from), ``methods.{md,csv,json}`` (one row per variant: every suite's columns with
their CI, tokens seen, checkpoint and parent hashes: byte-identical when the same config and seeds run again),
``compute.{md,csv}`` (training wall time and devices per checkpoint, which vary run to run) and the RLHF Workflow
report's table shapes ``table4.{md,csv}`` (chat) and ``table5.{md,csv}`` (academic), with the published rows of any
paper a suite names (``published:``).
"""

from __future__ import annotations

import argparse
import html
import json
import math
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import yaml

from evals.registry import Column, get_suite
from pipeline.cli import entry_point
from pipeline.config import SHARED_MODEL, split_seeded
from pipeline.io import InputError, read_json, write_json, write_text
from pipeline.logs import get_logger
from pipeline.provenance import read_provenance

log = get_logger("evals.aggregate")

PUBLISHED_DIR = Path(__file__).resolve().parent.parent / "evals" / "published"
PAPER_TABLES = {
    "table4": "Chat benchmarks, in the shape of the RLHF Workflow report's Table 4",
    "table5": "Academic benchmarks, in the shape of the RLHF Workflow report's Table 5",
}
SE, LOW, HIGH = " SE", " CI low", " CI high"
MARK, DAGGER = " degenerate", "†"   # a cell computed from a degenerate fit or no data: the reason, and its mark in print
# A variant row whose CIs come from one seed (training variance not in them): the row's flag, and its mark in print.
FEW_SEEDS, DDAGGER = "CI from fewer than 2 seeds", "‡"
Z95 = 1.959963984540054             # the normal 97.5 % quantile: a suite's own 95 % CI is value ± Z95 * se
SEEDS, BEATS = "Seeds", "Seeds beating SFT"
PER_SEED_COLUMNS = ["variant", "seed", "model", "suite", "metric", "column", "value", "se", "lower", "upper", "n",
                    "degenerate"]


def load_scores(paths: list[Path]) -> dict[tuple[str, str], dict]:
    """(model, suite) -> score file contents."""
    scores = {}
    for path in paths:
        score = read_json(path, schema="score")
        scores[(score["model"], score["suite"])] = score
    return scores


def judges_by_suite(scores: Mapping[tuple[str, str], dict]) -> dict[str, list[str]]:
    """suite -> the judge ids its score files name (all models together)."""
    judges: dict[str, set[str]] = {}
    for (_, suite), score in scores.items():
        judges.setdefault(suite, set()).update(score.get("judges", []))
    return {suite: sorted(ids) for suite, ids in judges.items()}


def load_leaderboards(paths: list[Path]) -> dict[str, dict]:
    """suite -> leaderboard file contents."""
    return {board["suite"]: board for board in (read_json(p, schema="leaderboard") for p in paths)}


def suite_columns(evals: Mapping[str, Any]) -> list[tuple[str, Column]]:
    """(suite, column) for every configured suite, sorted stably by the columns' group."""
    columns = [(suite, column) for suite in evals for column in get_suite(suite).columns(evals[suite])]
    return sorted(columns, key=lambda sc: sc[1].group)


def lookup(model: str, suite: str, column: Column, scores: Mapping, boards: Mapping) -> dict | None:
    """The metric of one table cell, or None when that file has no such metric (e.g. gold metrics off the world)."""
    if column.leaderboard:
        board = boards.get(suite)
        if board is None:
            raise InputError(f"no leaderboard file for suite {suite!r}")
        return board["models"].get(model, {}).get(column.key)
    score = scores.get((model, suite))
    if score is None:
        raise InputError(f"no {suite} score file for model {model!r}")
    return score["metrics"].get(column.key)


def degenerate(metric: Mapping[str, Any] | None) -> str | None:
    """Why a metric is not a measurement (its score file's ``degenerate``, or no usable item), else None."""
    if metric is None:
        return None
    if metric.get("degenerate"):
        return str(metric["degenerate"])
    if metric.get("n") == 0:
        return "computed from no usable item (every judgment unparsable or missing)"
    return None


def metric_se(metric: Mapping[str, Any] | None) -> float | None:
    """A metric's own standard error: its ``stderr``, else its 95 % interval's half-width / 1.96 (Arena-Hard's
    bootstrap CI), else None."""
    if metric is None:
        return None
    if metric.get("stderr") is not None:
        return float(metric["stderr"])
    if metric.get("lower") is not None and metric.get("upper") is not None:
        return (float(metric["upper"]) - float(metric["lower"])) / (2 * Z95)
    return None


def seed_interval(values: list[float], stderrs: list[float | None]) -> tuple[float, float | None]:
    """Mean over S seeds and the half-width of its 95 % CI: t_{0.975, df} * sqrt(s^2 / S + mean(se_s^2)), s^2 the
    between-seed variance, se_s seed s's own standard error from its suite (the items are the same for every seed,
    so item noise does not average out over seeds; seeds without one add nothing). df is Welch-Satterthwaite's for
    this sum, the item part taken as known (hundreds of items): (s^2/S + mean se^2)^2 / ((s^2/S)^2 / (S - 1)), so
    S - 1 when seeds dominate and towards the normal 1.96 when the items do. With S = 1 there is no between-seed
    variance: the half-width is the suite's own 1.96 * se (None without one)."""
    from scipy.stats import t

    if not values:
        raise ValueError("seed_interval: no value")
    mean = math.fsum(values) / len(values)
    known = [se for se in stderrs if se is not None]
    item_var = math.fsum(se * se for se in known) / len(known) if known else 0.0
    if len(values) == 1:
        return mean, Z95 * known[0] if known else None
    seed_var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values)
    if seed_var == 0.0:
        return mean, Z95 * math.sqrt(item_var)
    df = (seed_var + item_var) ** 2 / (seed_var ** 2 / (len(values) - 1))
    return mean, float(t.ppf(0.975, df)) * math.sqrt(seed_var + item_var)


def combine(records: list[dict | None], seeds: list[int | None]) -> dict | None:
    """One table cell from the same metric of each seed's model (``per_seed_records`` rows: value, se, lower,
    upper, degenerate): ``{value, lower, upper, degenerate}`` (lower/upper None where no uncertainty is known;
    degenerate only when a seed's metric is). One model (one seed, or the shared SFT checkpoint) keeps its suite's
    own CI: its interval, else value ± 1.96 se."""
    present = [r for r in records if r is not None]
    if not present:
        return None
    if len(present) != len(records):
        missing = [s for r, s in zip(records, seeds) if r is None]
        raise InputError(f"{present[0]['column']}: no value for seeds {missing} but a value for the others: every "
                         f"seed's files must have the same metrics")
    if len(present) == 1 and present[0].get("lower") is not None and present[0].get("upper") is not None:
        mean, low, high = present[0]["value"], present[0]["lower"], present[0]["upper"]
    else:
        mean, half = seed_interval([float(r["value"]) for r in present], [r.get("se") for r in present])
        low, high = (None, None) if half is None else (mean - half, mean + half)
    cell = {"value": mean, "lower": low, "upper": high}
    reasons = [(s, r["degenerate"]) for r, s in zip(present, seeds) if r.get("degenerate")]
    if reasons:
        cell["degenerate"] = reasons[0][1] if len(present) == 1 else \
            "; ".join(f"seed {s}: {reason}" for s, reason in reasons)
    return cell


def put(row: dict, title: str, cell: dict | None) -> None:
    """Flat csv/json cells of one table cell: the value (a mean over seeds) and its 95 % CI bounds; plus why it is
    degenerate, if so (only then: the column ``<title> degenerate``)."""
    row[title] = None if cell is None else cell["value"]
    if cell is not None and cell.get("degenerate"):
        row[title + MARK] = cell["degenerate"]
    row[title + LOW] = None if cell is None else cell["lower"]
    row[title + HIGH] = None if cell is None else cell["upper"]


def per_seed_records(models: list[str], scores: Mapping, boards: Mapping,
                     columns: list[tuple[str, Column]]) -> list[dict]:
    """Long format, one record per (model, column): the per-seed values every table cell is computed from
    (``per_seed.csv``). ``seed`` is None for the shared SFT checkpoint."""
    records = []
    for model in models:
        variant, seed = split_seeded(model)
        for suite, column in columns:
            metric = lookup(model, suite, column, scores, boards)
            if metric is None:
                continue
            records.append({"variant": variant, "seed": seed, "model": model, "suite": suite, "metric": column.key,
                            "column": column.title, "value": metric["value"], "se": metric_se(metric),
                            "lower": metric.get("lower"), "upper": metric.get("upper"), "n": metric.get("n"),
                            "degenerate": degenerate(metric)})
    return records


def by_variant(models: list[str]) -> dict[str, list[str]]:
    """variant -> its models, in the order of ``models`` (sft: itself alone)."""
    groups: dict[str, list[str]] = {}
    for model in models:
        groups.setdefault(split_seeded(model)[0], []).append(model)
    return groups


def headline(columns: list[tuple[str, Column]], records: list[dict]) -> Column | None:
    """The metric the ranking column counts: the gold reward where the score files have it (micro world), else the
    first suite's first column that is neither a gold metric nor a length (group 0)."""
    present = {r["column"] for r in records}
    candidates = [c for _, c in columns if c.key == "gold_reward" and c.title in present]
    candidates += [c for _, c in columns if c.group == 0 and c.title in present]
    return candidates[0] if candidates else None


def method_rows(models: list[str], records: list[dict], columns: list[tuple[str, Column]],
                models_dir: Path) -> list[dict]:
    """One row per variant (SFT first as given): each cell ``combine``d over the variant's seeds, the number of
    seeds, the share of seeds beating SFT on the ``headline`` metric, tokens seen (mean over seeds), and every seed's
    checkpoint hash."""
    cells = {(r["model"], r["column"]): r for r in records}
    top = headline(columns, records)
    rows = []
    for variant, group in by_variant(models).items():
        seeds = [split_seeded(m)[1] for m in group]
        provenances = [read_provenance(models_dir / m) for m in group]
        row: dict[str, Any] = {"Model": variant,
                               "Method": provenances[0].get("module", provenances[0]["stage"]),
                               SEEDS: "shared" if variant == SHARED_MODEL else len(group)}
        for _, column in columns:
            put(row, column.title, combine([cells.get((m, column.title)) for m in group], seeds))
        row[BEATS] = None
        if variant != SHARED_MODEL and top is not None and (SHARED_MODEL, top.title) in cells:
            sft = cells[(SHARED_MODEL, top.title)]["value"]
            beats = sum(cells[(m, top.title)]["value"] > sft for m in group if (m, top.title) in cells)
            row[BEATS] = f"{beats}/{len(group)}"
        tokens = math.fsum(p["tokens_seen"] for p in provenances) / len(provenances)
        row["Tokens seen"] = int(tokens) if tokens.is_integer() else tokens   # the mean over seeds
        row["Checkpoint"] = " ".join(p["checkpoint_hash"] for p in provenances)
        row["Parent"] = " ".join(dict.fromkeys(p["parents"].get("policy", {}).get("checkpoint_hash", "")
                                               for p in provenances))
        row[FEW_SEEDS] = variant != SHARED_MODEL and len(group) < 2
        rows.append(row)
    return drop_empty(rows, columns)


def seeds_caption(rows: list[dict], headline_title: str | None) -> str:
    """How the cells over seeds were computed, what the SFT row is, and what the ranking column counts."""
    lines = ["Each method row: the mean over its seeds (column Seeds) [95 % CI: t_{0.975,df} * sqrt(s^2/S + "
             "mean(se^2)), s^2 the between-seed variance, se each seed's own standard error from its suite, df "
             "Welch-Satterthwaite's (S-1 when seeds dominate, larger when the items do)]; the "
             "per-seed values are in per_seed.csv."]
    if any(r["Model"] == SHARED_MODEL for r in rows):
        lines.append(f"{SHARED_MODEL}: the one shared checkpoint every method starts from (the shared stage's seed), "
                     f"no seed variance by design; its CI is the suite's own (value ± 1.96 se, or its interval).")
    if headline_title and any(r.get(BEATS) for r in rows):
        lines.append(f"{BEATS}: the seeds whose {headline_title} is above {SHARED_MODEL}'s, of all its seeds.")
    return "\n".join(f"- {line}" for line in lines)


def compute_rows(models: list[str], models_dir: Path) -> list[dict]:
    """What each checkpoint cost: wall time and devices. Kept apart from methods.*, whose every byte must repeat
    when the same config and seed run again (wall time never does)."""
    rows = []
    for model in models:
        provenance = read_provenance(models_dir / model)
        compute = provenance["compute"]
        rows.append({"Model": model, "Train wall time (s)": provenance["wall_time_s"],
                     "Device-hours": compute["device_hours"], "Device": compute["device"],
                     "Devices": compute["world_size"], "Tokens seen": provenance["tokens_seen"]})
    return rows


def drop_empty(rows: list[dict], columns: list[tuple[str, Column]]) -> list[dict]:
    """Leave out the columns no row has a value for (the gold metrics outside the micro world)."""
    for _, column in columns:
        title = column.title
        if rows and all(r.get(title) is None for r in rows):
            for r in rows:
                for key in (title, title + SE, title + LOW, title + HIGH, title + MARK):
                    r.pop(key, None)
    return rows


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def show(row: Mapping[str, Any], title: str, digits: int) -> str:
    """``v ± se``, ``v [lo, hi]`` or ``v`` (empty when there is no value)."""
    value = row.get(title)
    if _is_missing(value):
        return ""
    if not isinstance(value, (int, float)):
        return str(value)
    text = f"{value:.{digits}f}"
    interval = not _is_missing(row.get(title + LOW)) and not _is_missing(row.get(title + HIGH))
    if interval:
        text = f"{text} [{row[title + LOW]:.{digits}f}, {row[title + HIGH]:.{digits}f}]"
    elif not _is_missing(row.get(title + SE)):
        text = f"{text} ± {row[title + SE]:.{digits}f}"
    if _is_flagged(row.get(FEW_SEEDS)) and (title + LOW) in row:   # a metric cell of a one-seed variant
        text = f"{text} {DDAGGER}"
    return f"{text} {DAGGER}" if _is_marked(row.get(title + MARK)) else text


def _is_flagged(flag: Any) -> bool:
    return flag is True or (hasattr(flag, "item") and flag.item() is True)   # numpy's bool from a DataFrame


def _is_marked(reason: Any) -> bool:
    return isinstance(reason, str) and bool(reason)  # a DataFrame's empty mark cell is NaN


def degenerate_notes(rows: list[dict]) -> str:
    """One caption line per marked cell: which model and column, and why its number is not a measurement; and one
    line for the ‡ of variants measured with fewer than 2 seeds, naming them."""
    lines = [f"- {DAGGER} {row['Model']}, {key[:-len(MARK)]}: {row[key]}"
             for row in rows for key in row if key.endswith(MARK) and _is_marked(row[key])]
    few = [str(row["Model"]) for row in rows if _is_flagged(row.get(FEW_SEEDS))]
    if few:
        lines.append(f"- {DDAGGER} {FEW_SEEDS}: training variance not included (the suite's own CI over items "
                     f"only): {', '.join(few)}")
    return "\n".join(lines)


def with_notes(caption: str, rows: list[dict]) -> str:
    return "\n".join(part for part in (caption, degenerate_notes(rows)) if part)


def shown_cells(rows: list[dict], digits: Mapping[str, int]) -> tuple[list[str], list[dict]]:
    """The printed table: titles without the SE/CI/mark columns, each cell ``v ± se``, ``v [lo, hi]`` or ``v``."""
    hidden = (SE, LOW, HIGH, MARK, FEW_SEEDS)
    titles = [k for k in (rows[0] if rows else {}) if not k.endswith(hidden)]
    shown = []
    for row in rows:
        shown.append({t: show(row, t, digits.get(t, 1)) if isinstance(row.get(t), float) else
                      ("" if row.get(t) is None else row[t]) for t in titles})
    return titles, shown


def to_markdown(rows: list[dict], digits: Mapping[str, int], caption: str = "") -> str:
    """Values with their SE (``v ± se``) or CI (``v [lo, hi]``); SE and CI columns folded into their column, a
    degenerate cell marked ``†`` (its reason goes in the caption: ``with_notes``)."""
    titles, shown = shown_cells(rows, digits)
    table = pd.DataFrame(shown, columns=titles).to_markdown(index=False) if rows else "(no rows)"
    return table + "\n" + (f"\n{caption}\n" if caption else "")


def to_html(title: str, rows: list[dict], digits: Mapping[str, int], caption: str = "") -> str:
    """The same table as ``to_markdown`` as a standalone HTML page (the Snakemake report shows it as a table), the
    caption's ``- `` lines as a list beneath it."""
    titles, shown = shown_cells(rows, digits)
    head = "".join(f"<th>{html.escape(t)}</th>" for t in titles)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[t]))}</td>" for t in titles) + "</tr>\n" for r in shown)
    notes = "".join(f"<li>{html.escape(line[2:] if line.startswith('- ') else line)}</li>\n"
                    for line in caption.splitlines() if line.strip())
    style = ("body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse} "
             "th,td{border:1px solid #bbb;padding:3px 6px;text-align:right} td{white-space:nowrap} th{background:#eee}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head>\n<body><h3>{html.escape(title)}</h3>\n"
            f"<table id=\"table\"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"
            f"<ul class=\"caption\">{notes}</ul></body></html>\n")


def published_tables(evals: Mapping[str, Any]) -> dict[str, dict]:
    """The published papers named by the configured suites (``evals.<suite>.published``): name -> file contents."""
    papers = {}
    for suite, block in evals.items():
        name = block.get("published")
        if name and name not in papers:
            path = PUBLISHED_DIR / f"{name}.yaml"
            if not path.is_file():
                known = sorted(p.stem for p in PUBLISHED_DIR.glob("*.yaml"))
                raise InputError(f"config key evals.{suite}.published: no {path} (published tables: {known})")
            papers[name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return papers


def paper_table(table: str, method_table: list[dict], columns: list[tuple[str, Column]],
                papers: Mapping[str, dict]) -> tuple[list[dict], dict[str, int]]:
    """One paper-shaped table: the published rows (if any paper is named), then ours, in the paper's column titles.
    Our columns that the paper lacks (the micro world's gold reward, lengths) follow the paper's own."""
    ours = [(suite, c) for suite, c in columns if c.in_paper(table)]
    titles: list[str] = []
    for paper in papers.values():
        titles += [t for t in paper.get("tables", {}).get(table, {}).get("columns", []) if t not in titles]
    titles += [c.in_paper(table) for _, c in ours if c.in_paper(table) not in titles]
    rows: list[dict] = []
    for name, paper in papers.items():
        for ref in paper.get("tables", {}).get(table, {}).get("rows", []):
            rows.append({"Model": f"{ref['Model']} (published)", "Method": ref.get("Method", ""), SEEDS: None,
                         **{t: ref.get(t) for t in titles}})
    published = [ref for paper in papers.values() for ref in paper.get("tables", {}).get(table, {}).get("rows", [])]
    digits = {c.in_paper(table): c.digits for _, c in ours}
    for measured in method_table:
        row: dict[str, Any] = {"Model": measured["Model"], "Method": measured["Method"], SEEDS: measured.get(SEEDS)}
        row.update({t: None for t in titles})
        for _, c in ours:
            if c.title in measured:
                for suffix in ("", SE, LOW, HIGH, MARK):
                    if c.title + suffix in measured:
                        row[c.in_paper(table) + suffix] = measured[c.title + suffix]
        row[FEW_SEEDS] = measured.get(FEW_SEEDS, False)
        rows.append(row)
    rows += difference_rows(published, rows, titles)
    for t in titles:  # e.g. the gold reward outside the micro world
        if all(_is_missing(r.get(t)) for r in rows):
            for r in rows:
                for suffix in ("", SE, LOW, HIGH, MARK):
                    r.pop(t + suffix, None)
    return rows, digits


def difference_rows(published: list[dict], rows: list[dict], titles: list[str]) -> list[dict]:
    """Ours minus published, one row per published row whose ``ours`` model is in the table, numeric cells only."""
    measured = {r["Model"]: r for r in rows if not str(r["Model"]).endswith("(published)")}
    out = []
    for ref in published:
        ours = measured.get(ref.get("ours"))
        if ours is None:
            continue
        diff = {"Model": f"Δ {ref['ours']} − {ref['Model']}", "Method": "ours − published"}
        for t in titles:
            a, b = ours.get(t), ref.get(t)
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and not _is_missing(v) for v in (a, b))
            diff[t] = float(a - b) if numeric else None
        out.append(diff)
    return out


def judge_line(suite: str, judges: list[str], papers: Mapping[str, dict]) -> str:
    """Which judge made a suite's numbers, flagged when a named paper's numbers came from another judge."""
    published = {paper["judges"][suite] for paper in papers.values() if suite in paper.get("judges", {})}
    line = f"{suite} judge: {', '.join(judges) or 'none'}"
    if published and set(judges) != published:
        return (line + f" — not the published judge ({', '.join(sorted(published))}): these numbers are not "
                       f"comparable with the published rows")
    return line + (" (the published judge)" if published else "")


def captions(evals: Mapping[str, Any], columns: list[tuple[str, Column]], papers: Mapping[str, dict] | None = None,
             table: str | None = None, judges: Mapping[str, list[str]] | None = None) -> str:
    """The captions of the suites with a column in the table (every suite for methods.md), one line each, each
    judged suite's followed by the judge that made its numbers (``judges``: suite -> judge ids)."""
    shown = [suite for suite in evals if any(s == suite and (table is None or c.in_paper(table)) for s, c in columns)]
    lines = []
    for suite in shown:
        lines.append(get_suite(suite).caption(evals[suite]))
        if get_suite(suite).is_judged and judges is not None:
            lines.append(judge_line(suite, judges.get(suite, []), papers or {}))
    lines += [f"Rows marked (published): {paper['source']}." for paper in (papers or {}).values()
              if table in paper.get("tables", {})]
    return "\n".join(f"- {line}" for line in lines if line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", type=Path, nargs="+", required=True)
    parser.add_argument("--leaderboards", type=Path, nargs="*", default=[])
    parser.add_argument("--models", nargs="+", required=True, help="models in table order")
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--evals-json", required=True, help="the config's `evals` block")
    parser.add_argument("--suites", nargs="+", help="suites in column order (default: the evals block's order)")
    parser.add_argument("--micro-world", action="store_true", help="a micro-world study (gold metrics exist)")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    evals = json.loads(args.evals_json)
    if args.suites:
        unknown = sorted(set(args.suites) - set(evals))
        if unknown:
            raise InputError(f"--suites {unknown}: not in the evals block ({sorted(evals)})")
        evals = {suite: evals[suite] for suite in args.suites}
    columns = suite_columns(evals)
    papers = published_tables(evals)
    scores = load_scores(args.scores)
    records = per_seed_records(args.models, scores, load_leaderboards(args.leaderboards), columns)
    write_text(args.out_dir / "per_seed.csv",
               pd.DataFrame(records, columns=PER_SEED_COLUMNS).astype({"seed": "Int64"}).to_csv(index=False))
    rows = method_rows(args.models, records, columns, args.models_dir)
    top = headline(columns, records)
    seeds_note = seeds_caption(rows, top.title if top else None)
    judges = judges_by_suite(scores)
    digits = {c.title: c.digits for _, c in columns}
    write_text(args.out_dir / "methods.csv", pd.DataFrame(rows).to_csv(index=False))
    caption = with_notes("\n".join([captions(evals, columns, papers, judges=judges), seeds_note]), rows)
    markdown = to_markdown(rows, digits, caption)
    write_text(args.out_dir / "methods.md", markdown)
    write_text(args.out_dir / "methods.html", to_html("Methods: one row per method variant (mean over seeds)", rows,
                                                      digits, caption))
    write_json(args.out_dir / "methods.json", rows)
    compute = compute_rows(args.models, args.models_dir)
    write_text(args.out_dir / "compute.csv", pd.DataFrame(compute).to_csv(index=False))
    compute_digits, compute_caption = {"Train wall time (s)": 1, "Device-hours": 4}, \
        "- Measured wall time of each training job (varies run to run)."
    write_text(args.out_dir / "compute.md", to_markdown(compute, compute_digits, compute_caption))
    write_text(args.out_dir / "compute.html", to_html("Compute: each training job", compute, compute_digits,
                                                      compute_caption))
    for table, title in PAPER_TABLES.items():
        table_rows, table_digits = paper_table(table, rows, columns, papers)
        world = " (micro world: the same shapes filled with micro-world metrics)" if args.micro_world else ""
        table_caption = with_notes("\n".join([captions(evals, columns, papers, table, judges), seeds_note]),
                                   table_rows)
        write_text(args.out_dir / f"{table}.md", f"{title}{world}.\n\n" + to_markdown(table_rows, table_digits,
                                                                                      table_caption))
        write_text(args.out_dir / f"{table}.html", to_html(f"{title}{world}", table_rows, table_digits, table_caption))
        write_text(args.out_dir / f"{table}.csv", pd.DataFrame(table_rows).to_csv(index=False))
    log.info("wrote %s\n%s", args.out_dir / "methods.md", markdown)


if __name__ == "__main__":
    entry_point(main)
